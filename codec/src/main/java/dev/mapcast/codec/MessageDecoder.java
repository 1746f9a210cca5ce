package dev.mapcast.codec;

import dev.mapcast.core.OffHeapMap;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Applies received {@code SnapshotChunk} and {@code Delta} messages to a map, reading the bytes
 * where they are: no object per entry.
 *
 * <p>It accepts what protobuf accepts (entry fields in any order, a missing key or value meaning
 * empty, unknown fields and groups, non-minimal varints, a key repeated in one message where the
 * last wins) and stores every entry canonically. It refuses what protobuf refuses (a truncated
 * varint or field, a length past the end, an invalid tag or wire type, a string that is not
 * UTF-8) and a key or value longer than the map's limits, with a {@link MalformedMessageException}
 * naming the offset and the reason. A refused message changes nothing: the whole message is
 * checked before the first entry is applied.
 *
 * <p>The message is the buffer's bytes from its position to its limit; neither moves.
 */
public final class MessageDecoder {

    private static final int ENTRY_KEY_TAG = 0x0A;    // field 1, length-delimited
    private static final int ENTRY_VALUE_TAG = 0x12;  // field 2, length-delimited

    private MessageDecoder() {
    }

    /** The fields of a {@code SnapshotChunk} other than its entries; {@code entries} counts entry records. */
    public record ChunkFields(String map, long revision, boolean last, long totalEntries, long digest, int order,
            long compactRevision, int entries, long incarnation) {
    }

    /** The fields of a {@code Delta} other than its puts and deletes, which count records. */
    public record DeltaFields(long revision, long prevRevision, long digest, int puts, int deletes) {
    }

    /** Applies the chunk's entries to {@code map}; returns its other fields. */
    public static ChunkFields applySnapshotChunk(ByteBuffer message, OffHeapMap map) {
        Objects.requireNonNull(map, "map");
        WireReader in = new WireReader(Objects.requireNonNull(message, "message"), "SnapshotChunk");
        ChunkFields fields = scanChunk(in, message, map);  // pass 1: check everything
        applyEntries(in, message, map, new int[Math.min(fields.entries(), WatchStreamReader.PUT_BATCH) * 4]);
        return fields;
    }

    /**
     * Reads a chunk's fields other than its entries, without applying or checking the entries
     * (a receiver learns the revision and order before choosing the map to apply it to). The
     * message structure is checked: what this accepts, {@link #applySnapshotChunk} may still refuse.
     */
    public static ChunkFields peekSnapshotChunk(ByteBuffer message) {
        return scanChunk(new WireReader(Objects.requireNonNull(message, "message"), "SnapshotChunk"), message, null);
    }

    /**
     * Receives a message's entries one at a time, as spans of the message's buffer (absolute
     * indexes): no object per entry. A span may be empty (a missing field means empty).
     */
    @FunctionalInterface
    public interface EntryVisitor {
        void entry(ByteBuffer message, int keyFrom, int keyLength, int valueFrom, int valueLength);
    }

    /**
     * Checks the whole chunk (structure, every key UTF-8; no length limit, as there is no map),
     * then gives its entries to {@code visitor} in order; returns its other fields. A refused chunk
     * reaches the visitor not at all.
     */
    public static ChunkFields visitSnapshotChunk(ByteBuffer message, EntryVisitor visitor) {
        Objects.requireNonNull(visitor, "visitor");
        WireReader in = new WireReader(Objects.requireNonNull(message, "message"), "SnapshotChunk");
        ChunkFields fields = scanChunk(in, message, true, Integer.MAX_VALUE, Integer.MAX_VALUE);
        int[] spans = new int[4];
        for (int p = in.start; p < in.end; p = in.next) {
            int tag = in.tag(p, in.end);
            if (tag == 0x0A) {
                readEntry(in, in.next, spans, 0);
                visitor.entry(message, spans[0], spans[1], spans[2], spans[3]);
            } else {
                in.skip(tag, in.next, in.end, 0);
            }
        }
        return fields;
    }

    private static ChunkFields scanChunk(WireReader in, ByteBuffer message, OffHeapMap map) {
        return map == null ? scanChunk(in, message, false, 0, 0)
                : scanChunk(in, message, true, map.maxKeyLength(), map.maxValueLength());
    }

    /** Reads the scalar fields; checks each entry against the limits if {@code checkEntries}, or only skips it. */
    private static ChunkFields scanChunk(WireReader in, ByteBuffer message, boolean checkEntries, int maxKeyLength,
            int maxValueLength) {
        String name = "";
        long revision = 0;
        boolean last = false;
        long total = 0;
        long digest = 0;
        int order = 0;
        long compactRevision = 0;
        int entries = 0;
        long incarnation = 0;
        for (int p = in.start; p < in.end; ) {
            int tag = in.tag(p, in.end);
            int at = in.next;
            switch (tag) {
                case 0x0A -> {
                    if (checkEntries) {
                        checkEntry(in, at, maxKeyLength, maxValueLength);
                    } else {
                        in.length(at, in.end);
                        in.next += (int) in.value;
                    }
                    entries++;
                }
                case 0x12 -> name = string(message, in.utf8Field(at, in.end, "map name", Integer.MAX_VALUE),
                        (int) in.value);
                case 0x18 -> revision = in.varintField(at);
                case 0x20 -> last = in.varintField(at) != 0;
                case 0x28 -> total = in.varintField(at);
                case 0x31 -> digest = in.fixed64Field(at);
                case 0x38 -> order = (int) in.varintField(at);
                case 0x40 -> compactRevision = in.varintField(at);
                case 0x49 -> incarnation = in.fixed64Field(at);
                default -> skipUnknown(in, tag, at, p);
            }
            p = in.next;
        }
        return new ChunkFields(name, revision, last, total, digest, order, compactRevision, entries, incarnation);
    }

    /** One event of a {@code WatchResponse}: the oneof's field number and the event's bytes. */
    public record WatchEvent(int field, ByteBuffer body) {
        public static final int NONE = 0;
        public static final int SNAPSHOT = 1;
        public static final int DELTA = 2;
        public static final int COMPACTION = 3;
        public static final int PROGRESS = 4;
        /** A mapcast addition: an {@code EventBatch}; see {@link MessageDecoder#batchedEvents}. */
        public static final int BATCH = 5;
        /** A mapcast addition: a {@code MapDeleted} (to clients that set {@code wait_for_map}). */
        public static final int DELETED = 6;
    }

    /**
     * Finds the event in a {@code WatchResponse}, as protobuf reads a oneof (the last event field
     * wins, unknown fields are skipped). The body is a slice of {@code message}, not a copy; a
     * response with no known event gives {@link WatchEvent#NONE} and an empty body.
     */
    public static WatchEvent watchEvent(ByteBuffer message) {
        Objects.requireNonNull(message, "message");
        WatchStreamReader reader = new WatchStreamReader();
        int field = reader.event(message, message.position(), message.limit());
        return new WatchEvent(field, message.slice(reader.bodyFrom(), reader.bodyTo() - reader.bodyFrom()));
    }

    /**
     * The events of an {@code EventBatch} (the body of a {@link WatchEvent#BATCH}), in order, each a
     * {@code WatchResponse} to read with {@link #watchEvent}: slices of {@code batch}, not copies.
     * The batch's structure is checked whole before any event is returned.
     */
    public static List<ByteBuffer> batchedEvents(ByteBuffer batch) {
        Objects.requireNonNull(batch, "batch");
        WatchStreamReader reader = new WatchStreamReader();
        List<ByteBuffer> events = new ArrayList<>(reader.startBatch(batch, batch.position(), batch.limit()));
        while (reader.nextBatched()) {
            events.add(batch.slice(reader.batchedFrom(), reader.batchedTo() - reader.batchedFrom()));
        }
        return events;
    }

    /** Applies the delta's puts, then its deletes, to {@code map}; returns its other fields. */
    public static DeltaFields applyDelta(ByteBuffer message, OffHeapMap map) {
        return applyDelta(message, map, -1);
    }

    /**
     * Applies the delta only if it follows {@code revision} ({@code prev_revision == revision});
     * otherwise applies nothing and returns null: the caller has missed a revision (a gap).
     */
    public static DeltaFields applyDeltaAfter(ByteBuffer message, OffHeapMap map, long revision) {
        if (revision < 0) {
            throw new IllegalArgumentException("revision: " + revision + " (expected: >= 0)");
        }
        return applyDelta(message, map, revision);
    }

    private static DeltaFields applyDelta(ByteBuffer message, OffHeapMap map, long expectedPrevRevision) {
        Objects.requireNonNull(message, "message");
        WatchStreamReader reader = new WatchStreamReader();
        if (!reader.applyDelta(message, message.position(), message.limit(), map, expectedPrevRevision)) {
            return null;
        }
        return new DeltaFields(reader.revision(), reader.prevRevision(), reader.digest(), reader.puts(),
                reader.deletes());
    }

    /** An unknown field (or a known one with another wire type, which protobuf also skips). */
    static void skipUnknown(WireReader in, int tag, int at, int tagAt) {
        if (!in.skip(tag, at, in.end, 0)) {
            throw in.malformed(tagAt, "end-group tag outside any group");
        }
    }

    /** Checks one entry (length prefix at {@code at}): its fields, its key's UTF-8, the limits. */
    static void checkEntry(WireReader in, int at, int maxKeyLength, int maxValueLength) {
        in.length(at, in.end);
        int end = in.next + (int) in.value;
        int keyLength = 0;
        int valueLength = 0;
        for (int p = in.next; p < end; ) {
            int tag = in.tag(p, end);
            int fieldAt = in.next;
            if (tag == ENTRY_KEY_TAG) {
                in.utf8Field(fieldAt, end, "key", Integer.MAX_VALUE);
                keyLength = (int) in.value;
            } else if (tag == ENTRY_VALUE_TAG) {
                in.length(fieldAt, end);
                valueLength = (int) in.value;
                in.next += valueLength;
            } else if (!in.skip(tag, fieldAt, end, 0)) {
                throw in.malformed(p, "end-group tag outside any group");
            }
            p = in.next;
        }
        checkLimit(in, at, "key", keyLength, maxKeyLength);
        checkLimit(in, at, "value", valueLength, maxValueLength);
        in.next = end;
    }

    private static void checkLimit(WireReader in, int at, String what, int length, int limit) {
        if (length > limit) {
            throw in.malformed(at, what + " of " + length + " bytes (expected: at most " + limit + ")");
        }
    }

    /**
     * Pass 2, once the whole message checked out: puts every entry of field 1, in order, in batches
     * of up to {@code spans.length / 4} (the map overlaps a batch's index reads).
     */
    static void applyEntries(WireReader in, ByteBuffer message, OffHeapMap map, int[] spans) {
        int batchSize = spans.length / 4;
        int batched = 0;
        for (int p = in.start; p < in.end; p = in.next) {
            int tag = in.tag(p, in.end);
            if (tag == 0x0A) {
                readEntry(in, in.next, spans, batched << 2);
                if (++batched == batchSize) {
                    map.putAll(message, spans, batched);
                    batched = 0;
                }
            } else {
                in.skip(tag, in.next, in.end, 0);
            }
        }
        map.putAll(message, spans, batched);
    }

    /**
     * Reads one checked entry's key and value spans into {@code spans[at, at + 4)}: the last key
     * and value fields win, a missing one is empty.
     */
    private static void readEntry(WireReader in, int at, int[] spans, int to) {
        in.length(at, in.end);
        int end = in.next + (int) in.value;
        int keyFrom = 0;
        int keyLength = 0;
        int valueFrom = 0;
        int valueLength = 0;
        for (int p = in.next; p < end; ) {
            int tag = in.tag(p, end);
            if (tag == ENTRY_KEY_TAG || tag == ENTRY_VALUE_TAG) {
                in.length(in.next, end);
                if (tag == ENTRY_KEY_TAG) {
                    keyFrom = in.next;
                    keyLength = (int) in.value;
                } else {
                    valueFrom = in.next;
                    valueLength = (int) in.value;
                }
                in.next += (int) in.value;
            } else {
                in.skip(tag, in.next, end, 0);
            }
            p = in.next;
        }
        spans[to] = keyFrom;
        spans[to + 1] = keyLength;
        spans[to + 2] = valueFrom;
        spans[to + 3] = valueLength;
        in.next = end;
    }

    private static String string(ByteBuffer message, int from, int length) {
        byte[] bytes = new byte[length];
        message.get(from, bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }
}
