package dev.mapcast.core;

import java.nio.ByteBuffer;
import java.util.Iterator;
import java.util.Map;

/**
 * A consistent read-only view of a map at one moment, taken by {@link OffHeapMap#pin()}.
 *
 * <p>Taking one copies no record: the view copies the directory and segment table (a few bytes per
 * thousand entries) and from then on the map copies any index table, bitmap or log chunk before
 * changing it, and keeps any segment the view needs until the view is closed. Writers go on
 * meanwhile; the view keeps answering as of the moment it was taken. Close it promptly: memory the
 * map has given up stays reserved while a view that may read it is open.
 *
 * <p>A view of a thread-safe map may be read from any thread. Closing it while another thread
 * still reads it is a bug in the caller, as for any resource.
 */
public final class PinnedView implements AutoCloseable, Iterable<Map.Entry<byte[], byte[]>> {

    private final OffHeapMap owner;
    private final MapEngine engine;
    private final long epoch;
    private final long directory;
    private final int globalDepth;
    private final RecordLocator locator;
    private final int idLimit;
    private final int chunkCapacity;
    private final long w;
    private final long r;
    private final long end;
    private final long size;
    private final long digest;
    private volatile boolean closed;

    PinnedView(OffHeapMap owner, MapEngine engine, long epoch, long directory, int globalDepth, long segments,
            int idLimit, long chunks, int chunkCapacity, long w, long r, long end, long size, long digest) {
        this.owner = owner;
        this.engine = engine;
        this.epoch = epoch;
        this.directory = directory;
        this.globalDepth = globalDepth;
        this.locator = new RecordLocator(segments, chunks);
        this.idLimit = idLimit;
        this.chunkCapacity = chunkCapacity;
        this.w = w;
        this.r = r;
        this.end = end;
        this.size = size;
        this.digest = digest;
    }

    /** Entries in the view. */
    public long size() {
        checkOpen();
        return size;
    }

    /**
     * The contract's digest of the view's entries (see {@link OffHeapMap#digest()}).
     *
     * @throws IllegalStateException if the map does not track its digest
     */
    public long digest() {
        checkOpen();
        owner.checkTracksDigest();
        return digest;
    }

    public IterationOrder order() {
        return engine.order;
    }

    /** The value of {@code key} when the view was taken, or null. */
    public byte[] get(byte[] key) {
        OffHeapMap.checkKey(key);
        return owner.readLocked(() -> {
            long record = find(key, NativeMemory.BYTE_ARRAY_OFFSET, key.length);
            return record == 0 ? null : valueOf(record);
        });
    }

    /** The value of the key in {@code key}'s remaining bytes when the view was taken, or null. */
    public byte[] get(ByteBuffer key) {
        ByteBuffer k = OffHeapMap.readable(key, "key");
        return owner.readLocked(() -> {
            long record = find(NativeMemory.base(k), NativeMemory.offset(k), k.remaining());
            return record == 0 ? null : valueOf(record);
        });
    }

    public boolean containsKey(byte[] key) {
        OffHeapMap.checkKey(key);
        return owner.readLocked(() -> find(key, NativeMemory.BYTE_ARRAY_OFFSET, key.length) != 0);
    }

    /** A cursor over the view's entries in the map's order, valid until the view is closed. */
    public EntryCursor cursor() {
        checkOpen();
        return new EntryCursor(engine, this, locator, idLimit, w, r, end);
    }

    /** The view's entries in the map's order; keys and values are copies. */
    @Override
    public Iterator<Map.Entry<byte[], byte[]>> iterator() {
        return cursor().entries();
    }

    /** Releases what only this view needed. Idempotent. */
    @Override
    public void close() {
        owner.closeView(this);
    }

    boolean isClosed() {
        return closed;
    }

    void checkOpen() {
        if (closed) {
            throw new IllegalStateException("pinned view is closed");
        }
        if (engine.closed) {
            throw new IllegalStateException("map is closed");
        }
    }

    /** Frees the view's copies and tells the map's memory; called by the owner under its write lock. */
    void release() {
        if (closed) {
            return;
        }
        closed = true;
        MapMemory memory = engine.memory;
        memory.free(directory, (long) Long.BYTES << globalDepth);
        memory.free(locator.segments, SegmentStore.copyBytes(idLimit));
        if (locator.orderChunks != 0) {
            memory.free(locator.orderChunks, (long) chunkCapacity * Long.BYTES);
        }
        memory.closeView(epoch);
    }

    private long find(Object base, long offset, int length) {
        checkOpen();
        long hash = engine.index.hash(base, offset, length);
        long slot = SwissIndex.find(directory, globalDepth, hash, base, offset, length, locator);
        return slot == 0 ? 0 : locator.address(SwissIndex.handleAt(slot));
    }

    private static byte[] valueOf(long record) {
        long span = RecordLayout.valueSpan(record);
        return NativeMemory.toArray(record + RecordLayout.spanOffset(span), RecordLayout.spanLength(span));
    }
}
