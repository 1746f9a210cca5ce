package dev.mapcast.codec;

import dev.mapcast.codec.MessageDecoder.WatchEvent;
import dev.mapcast.core.OffHeapMap;
import java.nio.ByteBuffer;
import java.util.Objects;

/**
 * Reads one watch stream's messages where they lie, reusing its state from message to message: no
 * object per event, per batched event or per delta. (A process with many replicas applies hundreds
 * of thousands of deltas a second; an object or two each was half of its garbage.) Not
 * thread-safe: one per stream, used by the thread that receives it.
 *
 * <p>Messages are given as absolute index ranges of a buffer, below its limit; its position and
 * limit do not move. It accepts and refuses exactly what {@link MessageDecoder}'s
 * {@link MessageDecoder#watchEvent watchEvent}, {@link MessageDecoder#batchedEvents batchedEvents}
 * and {@link MessageDecoder#applyDeltaAfter applyDeltaAfter} do, which are built on it; offsets in
 * its exceptions count from the start of the message read.
 */
public final class WatchStreamReader {

    /** Entries handed to {@link OffHeapMap#putAll} at a time. */
    static final int PUT_BATCH = 64;

    private final WireReader response = new WireReader();
    private final WireReader batch = new WireReader();
    private final WireReader delta = new WireReader();
    /** Key and value spans of the entries handed to the map at a time; made by the first delta applied. */
    private int[] spans;

    private int bodyFrom;
    private int bodyTo;
    private int batchedFrom;
    private int batchedTo;
    private long revision;
    private long prevRevision;
    private long digest;
    private int puts;
    private int deletes;

    /**
     * Reads the {@code WatchResponse} at {@code message[from, to)} as protobuf reads a oneof (the
     * last event field wins, unknown fields are skipped); returns its event's field number, one of
     * {@link WatchEvent}'s constants ({@link WatchEvent#NONE} when it has no known event). The
     * event's bytes are then at {@link #bodyFrom()} to {@link #bodyTo()}.
     */
    public int event(ByteBuffer message, int from, int to) {
        WireReader in = response.reset(checkRange(message, from, to), from, to, "WatchResponse");
        int field = WatchEvent.NONE;
        int start = from;
        int length = 0;
        for (int p = in.start; p < in.end; p = in.next) {
            int tag = in.tag(p, in.end);
            if ((tag & 7) == ProtoWire.LENGTH_DELIMITED && (tag >>> 3) >= WatchEvent.SNAPSHOT
                    && (tag >>> 3) <= WatchEvent.DELETED) {
                in.length(in.next, in.end);
                field = tag >>> 3;
                start = in.next;
                length = (int) in.value;
                in.next += length;
            } else {
                MessageDecoder.skipUnknown(in, tag, in.next, p);
            }
        }
        bodyFrom = start;
        bodyTo = start + length;
        return field;
    }

    /** First byte of the event {@link #event} read. */
    public int bodyFrom() {
        return bodyFrom;
    }

    /** The index after the last byte of the event {@link #event} read. */
    public int bodyTo() {
        return bodyTo;
    }

    /**
     * Starts on the {@code EventBatch} at {@code message[from, to)} (the body of a
     * {@link WatchEvent#BATCH}), checking its structure whole before any event is handed out; returns
     * the number of events, which {@link #nextBatched()} then visits in order.
     */
    public int startBatch(ByteBuffer message, int from, int to) {
        WireReader in = batch.reset(checkRange(message, from, to), from, to, "EventBatch");
        int events = 0;
        for (int p = in.start; p < in.end; p = in.next) {
            int tag = in.tag(p, in.end);
            if (tag == 0x0A) {
                in.length(in.next, in.end);
                in.next += (int) in.value;
                events++;
            } else {
                MessageDecoder.skipUnknown(in, tag, in.next, p);
            }
        }
        in.next = in.start;
        return events;
    }

    /**
     * Moves to the next event of the batch {@link #startBatch} checked: returns false after the
     * last. The event, a {@code WatchResponse} to read with {@link #event}, is then at
     * {@link #batchedFrom()} to {@link #batchedTo()}.
     */
    public boolean nextBatched() {
        WireReader in = batch;
        for (int p = in.next; p < in.end; p = in.next) {
            int tag = in.tag(p, in.end);
            if (tag == 0x0A) {
                in.length(in.next, in.end);
                batchedFrom = in.next;
                batchedTo = in.next + (int) in.value;
                in.next = batchedTo;
                return true;
            }
            in.skip(tag, in.next, in.end, 0);
        }
        return false;
    }

    /** First byte of the batched event {@link #nextBatched} moved to. */
    public int batchedFrom() {
        return batchedFrom;
    }

    /** The index after the last byte of the batched event {@link #nextBatched} moved to. */
    public int batchedTo() {
        return batchedTo;
    }

    /**
     * Applies the {@code Delta} at {@code message[from, to)} to {@code map}, puts then deletes, if it
     * follows {@code afterRevision} ({@code prev_revision == afterRevision}; a negative
     * {@code afterRevision} applies any delta). Returns false, applying nothing, when it does not
     * follow (the caller missed a revision). The whole delta is checked before anything is applied;
     * its other fields are then {@link #revision()}, {@link #prevRevision()}, {@link #digest()},
     * {@link #puts()} and {@link #deletes()}.
     */
    public boolean applyDelta(ByteBuffer message, int from, int to, OffHeapMap map, long afterRevision) {
        Objects.requireNonNull(map, "map");
        WireReader in = delta.reset(checkRange(message, from, to), from, to, "Delta");
        long rev = 0;
        long prev = 0;
        long sum = 0;
        int putCount = 0;
        int deleteCount = 0;
        int maxKey = map.maxKeyLength();
        for (int p = in.start; p < in.end; ) {
            int tag = in.tag(p, in.end);
            int at = in.next;
            switch (tag) {
                case 0x0A -> {
                    MessageDecoder.checkEntry(in, at, maxKey, map.maxValueLength());
                    putCount++;
                }
                case 0x12 -> {
                    in.utf8Field(at, in.end, "deleted key", maxKey);
                    deleteCount++;
                }
                case 0x18 -> rev = in.varintField(at);
                case 0x20 -> prev = in.varintField(at);
                case 0x29 -> sum = in.fixed64Field(at);
                default -> MessageDecoder.skipUnknown(in, tag, at, p);
            }
            p = in.next;
        }
        revision = rev;
        prevRevision = prev;
        digest = sum;
        puts = putCount;
        deletes = deleteCount;
        if (afterRevision >= 0 && prev != afterRevision) {
            return false;
        }
        if (spans == null) {
            spans = new int[PUT_BATCH * 4];
        }
        MessageDecoder.applyEntries(in, message, map, spans);
        if (deleteCount > 0) {
            for (int p = in.start; p < in.end; p = in.next) {
                int tag = in.tag(p, in.end);
                if (tag == 0x12) {
                    in.length(in.next, in.end);
                    map.remove(message, in.next, (int) in.value);
                    in.next += (int) in.value;
                } else {
                    in.skip(tag, in.next, in.end, 0);
                }
            }
        }
        return true;
    }

    /** The revision of the delta {@link #applyDelta} read last. */
    public long revision() {
        return revision;
    }

    /** The prev_revision of the delta {@link #applyDelta} read last. */
    public long prevRevision() {
        return prevRevision;
    }

    /** The digest of the delta {@link #applyDelta} read last (0 if it carried none). */
    public long digest() {
        return digest;
    }

    /** The put records of the delta {@link #applyDelta} read last. */
    public int puts() {
        return puts;
    }

    /** The delete records of the delta {@link #applyDelta} read last. */
    public int deletes() {
        return deletes;
    }

    private static ByteBuffer checkRange(ByteBuffer message, int from, int to) {
        Objects.requireNonNull(message, "message");
        if (from < 0 || to < from || to > message.limit()) {
            throw new IndexOutOfBoundsException("range [" + from + ", " + to + ") (expected: within the buffer's limit, "
                    + message.limit() + ")");
        }
        return message;
    }
}
