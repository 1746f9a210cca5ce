package dev.mapcast.core;

/**
 * First-insertion order: a log of record references indexed by position, used in INSERTION order.
 *
 * <p>A new key takes the next position and keeps it through updates; a remove leaves a hole (a 0
 * reference). Iterating positions in order, skipping holes, gives the first-insertion order of the
 * live keys, the same for the same history whatever the seed, capacity or compaction history.
 *
 * <pre>
 *   chunk array (off-heap): one address per 4096 positions, 0 if not allocated
 *   chunk: 0        8                                  8 + 4096 * 8
 *          +--------+--------+--------+---- ... ----+
 *          | epoch  | ref @0 | ref @1 |             |   ref 0 = hole
 *          +--------+--------+--------+---- ... ----+
 *
 *   positions:  0 ........ w ~~~~~~~~~~~ r ........ end
 *               live region   gap (moved)   live region
 * </pre>
 *
 * <p>Implementation notes. Holes are squeezed out by a sliding compaction that moves entries from the
 * read cursor {@code r} down to the write cursor {@code w}, a bounded number per step, telling the
 * index each new position; order is kept because nothing overtakes. Outside a compaction {@code w == r}.
 * Chunks wholly inside the gap are freed as the cursors pass. Chunks are copy-on-write for pinned
 * views, which copy the chunk array and the three cursors.
 */
final class OrderLog {

    static final int CHUNK_SHIFT = 12;
    static final int CHUNK_POSITIONS = 1 << CHUNK_SHIFT;
    static final int CHUNK_EPOCH = 0;
    static final int CHUNK_REFS = Long.BYTES;
    static final long CHUNK_BYTES = CHUNK_REFS + (long) CHUNK_POSITIONS * Long.BYTES;

    /** Told where compaction moved an entry, so the index can follow. */
    interface Mover {
        void moved(long ref, long from, long to);
    }

    private final MapMemory memory;
    private final RecordLocator locator;
    private long chunks;
    private int chunkCapacity;
    private long w;
    private long r;
    private long end;
    private long holes;
    private boolean sliding;

    OrderLog(MapMemory memory, RecordLocator locator) {
        this.memory = memory;
        this.locator = locator;
        this.chunkCapacity = 4;
        this.chunks = memory.allocateZeroed((long) chunkCapacity * Long.BYTES);
        locator.orderChunks = chunks;
    }

    static long refAt(long chunks, long position) {
        long chunk = NativeMemory.getLong(chunks + ((position >>> CHUNK_SHIFT) << 3));
        return NativeMemory.getLong(chunk + CHUNK_REFS + ((position & (CHUNK_POSITIONS - 1)) << 3));
    }

    long ref(long position) {
        return refAt(chunks, position);
    }

    /** Appends a reference at the end; returns its position. */
    long append(long ref) {
        long position = end;
        int c = (int) (position >>> CHUNK_SHIFT);
        if (c >= chunkCapacity) {
            growChunkArray(c + 1);
        }
        end = position + 1;
        if (!sliding) {
            w = end;
            r = end;
        }
        set(position, ref);
        return position;
    }

    /** Replaces the reference at a live position (an update). */
    void set(long position, long ref) {
        long chunk = mutableChunk((int) (position >>> CHUNK_SHIFT));
        NativeMemory.putLong(chunk + CHUNK_REFS + ((position & (CHUNK_POSITIONS - 1)) << 3), ref);
    }

    /** Leaves a hole at a live position (a remove). */
    void remove(long position) {
        set(position, RecordRef.NONE);
        holes++;
    }

    long holes() {
        return holes;
    }

    boolean compacting() {
        return sliding;
    }

    /** Whether enough holes built up to start squeezing them out. */
    boolean wantsCompaction(long liveEntries) {
        return holes > 1024 && holes > liveEntries / 2;
    }

    /**
     * Moves up to {@code maxPositions} positions of the sliding compaction; starts one if none is
     * running. Returns false when no hole is left.
     */
    boolean compactStep(int maxPositions, Mover mover) {
        if (holes == 0) {
            return false;
        }
        if (!sliding) {
            w = 0;
            r = 0;
            sliding = true;
        }
        for (int n = 0; n < maxPositions && r < end; n++, r++) {
            long ref = ref(r);
            if (ref == RecordRef.NONE) {
                holes--;
                continue;
            }
            if (r != w) {
                set(w, ref);
                mover.moved(ref, r, w);
            }
            w++;
        }
        if (r == end) {
            end = w;
            r = w;
            sliding = false;
            freeChunks(chunkCeil(end), chunkCapacity);
        } else {
            freeChunks(chunkCeil(w), (int) (r >>> CHUNK_SHIFT));
        }
        return holes > 0;
    }

    long end() {
        return end;
    }

    long writeCursor() {
        return w;
    }

    long readCursor() {
        return r;
    }

    long chunks() {
        return chunks;
    }

    int chunkCapacity() {
        return chunkCapacity;
    }

    /** A private copy of the chunk array for a pinned view; the view frees it. */
    long copyChunkArray() {
        long bytes = (long) chunkCapacity * Long.BYTES;
        long copy = memory.allocate(bytes);
        NativeMemory.copy(chunks, copy, bytes);
        return copy;
    }

    long reservedBytes() {
        long bytes = (long) chunkCapacity * Long.BYTES;
        for (int c = 0; c < chunkCapacity; c++) {
            if (NativeMemory.getLong(chunks + ((long) c << 3)) != 0) {
                bytes += CHUNK_BYTES;
            }
        }
        return bytes;
    }

    void free() {
        freeChunks(0, chunkCapacity);
        memory.free(chunks, (long) chunkCapacity * Long.BYTES);
        chunks = 0;
        locator.orderChunks = 0;
    }

    private static int chunkCeil(long position) {
        return (int) ((position + CHUNK_POSITIONS - 1) >>> CHUNK_SHIFT);
    }

    private void freeChunks(int from, int to) {
        for (int c = from; c < to && c < chunkCapacity; c++) {
            long at = chunks + ((long) c << 3);
            long chunk = NativeMemory.getLong(at);
            if (chunk != 0) {
                memory.retire(chunk, CHUNK_BYTES, NativeMemory.getLong(chunk + CHUNK_EPOCH));
                NativeMemory.putLong(at, 0);
            }
        }
    }

    /** The chunk for writing: allocated if absent (past the end, or freed inside the gap), copied if shared. */
    private long mutableChunk(int c) {
        long at = chunks + ((long) c << 3);
        long chunk = NativeMemory.getLong(at);
        if (chunk == 0) {
            chunk = memory.allocateZeroed(CHUNK_BYTES);
            NativeMemory.putLong(chunk + CHUNK_EPOCH, memory.epoch());
            NativeMemory.putLong(at, chunk);
            return chunk;
        }
        long created = NativeMemory.getLong(chunk + CHUNK_EPOCH);
        if (!memory.isShared(created)) {
            return chunk;
        }
        long copy = memory.allocate(CHUNK_BYTES);
        NativeMemory.copy(chunk, copy, CHUNK_BYTES);
        NativeMemory.putLong(copy + CHUNK_EPOCH, memory.epoch());
        NativeMemory.putLong(at, copy);
        memory.retire(chunk, CHUNK_BYTES, created);
        return copy;
    }

    private void growChunkArray(int needed) {
        int capacity = Math.max(needed, chunkCapacity * 2);
        long fresh = memory.allocateZeroed((long) capacity * Long.BYTES);
        NativeMemory.copy(chunks, fresh, (long) chunkCapacity * Long.BYTES);
        memory.free(chunks, (long) chunkCapacity * Long.BYTES);
        chunks = fresh;
        chunkCapacity = capacity;
        locator.orderChunks = fresh;
    }
}
