package dev.mapcast.codec;

import dev.mapcast.core.EntryCursor;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.PinnedView;
import java.nio.BufferOverflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * Encodes a pinned view of a map as the contract's {@code SnapshotChunk} messages, with the entries
 * copied straight from the map's memory: a chunk's field 1 is runs of stored records, each run one
 * memory copy, and the other fields are written around them. No object per entry.
 *
 * <pre>{@code
 * try (PinnedView view = map.pin()) {
 *     SnapshotEncoder chunks = new SnapshotEncoder(view, "config", revision, compactRevision,
 *             SnapshotEncoder.DEFAULT_CHUNK_BYTES);
 *     while (chunks.hasNext()) {
 *         ByteBuffer chunk = ByteBuffer.allocate(chunks.nextChunkSize());
 *         chunks.writeNextChunk(chunk);
 *         ...
 *     }
 * }
 * }</pre>
 *
 * Each chunk holds whole entries of at most {@code chunkBytes} in all (an entry larger than that
 * gets a chunk of its own), so boundaries depend only on the entries and their order. The bytes
 * are exactly protobuf-java's for the same message with the same entry order: fields in number
 * order, defaults omitted, every chunk carrying {@code total_entries} (a receiver sizes its map
 * from the first), the last one {@code last} and
 * {@code digest}. The view's map must track its digest ({@code trackDigest(true)}).
 *
 * <p>Implementation notes: two cursors walk the view; the first measures the next chunk's entries
 * (so its size is known before a byte is written, as gRPC's KnownLength and any enclosing message
 * need), the second copies the same run, cut by the same budget.
 */
public final class SnapshotEncoder {

    /** Default entry bytes per chunk: near 1 MiB, far under gRPC's 4 MiB inbound default. */
    public static final int DEFAULT_CHUNK_BYTES = 1 << 20;

    // SnapshotChunk field numbers, as in mapcast.proto; field 1 (entries) is the stored records themselves.
    private static final int MAP = 2;
    private static final int REVISION = 3;
    private static final int LAST = 4;
    private static final int TOTAL_ENTRIES = 5;
    private static final int DIGEST = 6;
    private static final int ORDER = 7;
    private static final int COMPACT_REVISION = 8;
    private static final int INCARNATION = 9;
    /** WatchResponse.snapshot. */
    private static final int WATCH_RESPONSE_SNAPSHOT = 1;

    private final byte[] map;
    private final long revision;
    private final long compactRevision;
    private final long incarnation;
    private final int order;
    private final long totalEntries;
    private final long digest;
    private final int chunkBytes;
    private final EntryCursor measure;
    private final EntryCursor copy;

    private boolean planned;
    private boolean done;
    private long entryBytes;
    private boolean last;
    private int chunkSize;

    public SnapshotEncoder(PinnedView view, String map, long revision, long compactRevision, int chunkBytes) {
        this(view, map, revision, compactRevision, 0, chunkBytes);
    }

    /** As above, for the map incarnation {@code incarnation} (0: none, the field is left out). */
    public SnapshotEncoder(PinnedView view, String map, long revision, long compactRevision, long incarnation,
            int chunkBytes) {
        Objects.requireNonNull(view, "view");
        Objects.requireNonNull(map, "map");
        if (chunkBytes < 1) {
            throw new IllegalArgumentException("chunkBytes: " + chunkBytes + " (expected: >= 1)");
        }
        this.map = map.getBytes(StandardCharsets.UTF_8);
        this.revision = revision;
        this.compactRevision = compactRevision;
        this.incarnation = incarnation;
        this.order = view.order() == IterationOrder.INSERTION ? 2 : 1;  // ITERATION_ORDER_INSERTION / _HASH
        this.totalEntries = view.size();
        this.digest = view.digest();
        this.chunkBytes = chunkBytes;
        this.measure = view.cursor();
        this.copy = view.cursor();
    }

    /** Whether a chunk remains to be written. */
    public boolean hasNext() {
        return !done;
    }

    /** Bytes of the next chunk message. */
    public int nextChunkSize() {
        plan();
        return chunkSize;
    }

    /** Whether the next chunk is the last. */
    public boolean nextIsLast() {
        plan();
        return last;
    }

    /**
     * Writes the next chunk message, exactly {@link #nextChunkSize()} bytes, at {@code dst}'s
     * position and advances it.
     *
     * @throws BufferOverflowException if dst has less room (nothing is written)
     * @throws IllegalStateException if no chunk remains
     */
    public void writeNextChunk(ByteBuffer dst) {
        plan();
        if (done) {
            throw new IllegalStateException("no chunk left: the last one was written");
        }
        if (dst.remaining() < chunkSize) {
            throw new BufferOverflowException();
        }
        int start = dst.position();
        long copied = copy.copyRecordsTo(dst, chunkBytes);
        if (copied != entryBytes) {
            throw new IllegalStateException("chunk entries: copied " + copied + " bytes, measured " + entryBytes);
        }
        if (map.length > 0) {
            ProtoWire.putBytesField(dst, MAP, map);
        }
        if (revision != 0) {
            ProtoWire.putVarintField(dst, REVISION, revision);
        }
        if (last) {
            ProtoWire.putVarintField(dst, LAST, 1);
        }
        if (totalEntries != 0) {
            ProtoWire.putVarintField(dst, TOTAL_ENTRIES, totalEntries);
        }
        if (last && digest != 0) {
            ProtoWire.putFixed64Field(dst, DIGEST, digest);
        }
        ProtoWire.putVarintField(dst, ORDER, order);
        if (compactRevision != 0) {
            ProtoWire.putVarintField(dst, COMPACT_REVISION, compactRevision);
        }
        if (incarnation != 0) {
            ProtoWire.putFixed64Field(dst, INCARNATION, incarnation);
        }
        assert dst.position() - start == chunkSize;
        planned = false;
        done = last;
    }

    /** Bytes of a {@code WatchResponse} holding the next chunk (field 1, snapshot). */
    public int nextWatchResponseSize() {
        return ProtoWire.bytesFieldSize(WATCH_RESPONSE_SNAPSHOT, nextChunkSize());
    }

    /**
     * Writes a {@code WatchResponse} holding the next chunk, exactly {@link #nextWatchResponseSize()}
     * bytes, at dst's position and advances it.
     *
     * @throws BufferOverflowException if dst has less room (nothing is written)
     */
    public void writeNextWatchResponse(ByteBuffer dst) {
        if (dst.remaining() < nextWatchResponseSize()) {
            throw new BufferOverflowException();
        }
        ProtoWire.putVarint(dst, ProtoWire.tag(WATCH_RESPONSE_SNAPSHOT, ProtoWire.LENGTH_DELIMITED));
        ProtoWire.putVarint(dst, chunkSize);
        writeNextChunk(dst);
    }

    /** Writes the next chunk into a new heap buffer, flipped for reading. */
    public ByteBuffer nextChunk() {
        ByteBuffer chunk = ByteBuffer.allocate(nextChunkSize());
        writeNextChunk(chunk);
        return chunk.flip();
    }

    private void plan() {
        if (planned || done) {
            return;
        }
        entryBytes = measure.skipRecords(chunkBytes);
        last = measure.isExhausted();
        long size = entryBytes;
        if (map.length > 0) {
            size += ProtoWire.bytesFieldSize(MAP, map.length);
        }
        if (revision != 0) {
            size += ProtoWire.varintFieldSize(REVISION, revision);
        }
        if (last) {
            size += ProtoWire.varintFieldSize(LAST, 1);
        }
        if (totalEntries != 0) {
            size += ProtoWire.varintFieldSize(TOTAL_ENTRIES, totalEntries);
        }
        if (last && digest != 0) {
            size += ProtoWire.fixed64FieldSize(DIGEST);
        }
        size += ProtoWire.varintFieldSize(ORDER, order);
        if (compactRevision != 0) {
            size += ProtoWire.varintFieldSize(COMPACT_REVISION, compactRevision);
        }
        if (incarnation != 0) {
            size += ProtoWire.fixed64FieldSize(INCARNATION);
        }
        if (size > Integer.MAX_VALUE) {
            throw new IllegalStateException("chunk of " + size + " bytes: an entry is too large for one message");
        }
        chunkSize = (int) size;
        planned = true;
    }
}
