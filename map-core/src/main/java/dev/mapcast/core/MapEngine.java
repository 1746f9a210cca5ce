package dev.mapcast.core;

import java.util.function.Consumer;

/**
 * The single-writer map: the segment store, the index and (in INSERTION order) the order log, kept
 * consistent. Keys and values arrive as {@code (base, offset, length)} so that arrays, heap buffers
 * and direct buffers share one path. Not thread-safe: {@link OffHeapMap} adds the locking.
 *
 * <p>Implementation notes. An update appends the new record before it kills the old one, and a
 * remove takes the key out of the index before it kills the record, so the index never points at a
 * dead record and a rehash never reads one. Automatic compaction runs one bounded step after a
 * write, only when there is queued work, so no write pays for more than one step.
 */
final class MapEngine {

    /** Bytes of a segment walked per automatic compaction step. */
    static final int COMPACTION_STEP_BYTES = 16 * 1024;
    /** Order-log positions moved per automatic compaction step. */
    static final int LOG_STEP_POSITIONS = 1024;
    /** Entries whose index reads {@link #putBatch} overlaps: enough to cover a cache miss. */
    static final int PUT_BATCH = 16;

    final IterationOrder order;
    final MapMemory memory = new MapMemory();
    final RecordLocator locator = new RecordLocator(0, 0);
    final SegmentStore store;
    final OrderLog log;
    final SwissIndex index;
    private final boolean autoCompaction;
    private final boolean trackDigest;
    private final double tombstoneWarningRatio;
    private final Consumer<MemoryStats> tombstoneWarning;
    private boolean warned;

    private final SegmentStore.Relocator relocator = this::relocate;
    private final OrderLog.Mover mover = this::moved;
    private final long[] batchHashes = new long[PUT_BATCH];

    long size;
    /** Sum of {@link #digestOf} over live records, when tracked. */
    long digest;
    long modCount;
    boolean closed;

    MapEngine(IterationOrder order, long seed, long initialCapacity, int segmentSize, double compactionThreshold,
            boolean autoCompaction, double tombstoneWarningRatio, Consumer<MemoryStats> tombstoneWarning,
            boolean trackDigest) {
        this.order = order;
        this.autoCompaction = autoCompaction;
        this.trackDigest = trackDigest;
        this.tombstoneWarningRatio = tombstoneWarningRatio;
        this.tombstoneWarning = tombstoneWarning;
        this.store = new SegmentStore(memory, locator, segmentSize, compactionThreshold);
        this.log = order == IterationOrder.INSERTION ? new OrderLog(memory, locator) : null;
        this.index = new SwissIndex(memory, locator, seed, initialCapacity);
    }

    // ---- reads ----

    /** Address of the key's record, or 0. */
    long find(Object keyBase, long keyOffset, int keyLength) {
        long hash = index.hash(keyBase, keyOffset, keyLength);
        long slot = index.find(hash, keyBase, keyOffset, keyLength);
        return slot == 0 ? 0 : locator.address(SwissIndex.handleAt(slot));
    }

    // ---- writes ----

    /** Puts the entry; returns true when the key was new. */
    boolean put(Object keyBase, long keyOffset, int keyLength, Object valueBase, long valueOffset, int valueLength) {
        return put(index.hash(keyBase, keyOffset, keyLength), keyBase, keyOffset, keyLength, valueBase, valueOffset,
                valueLength);
    }

    /**
     * Puts {@code count} entries of one buffer in order; {@code spans} holds key offset, key length,
     * value offset and value length (relative to {@code origin}) for each. Returns the number of new
     * keys.
     *
     * <p>Why a batch: filling a large map, nearly every put's first index read is a cache miss.
     * Hashing a batch first and loading each key's first group before any put lets those misses
     * overlap instead of being paid one after another.
     */
    int putBatch(Object base, long origin, int[] spans, int count) {
        long[] hashes = batchHashes;
        int added = 0;
        for (int from = 0; from < count; from += PUT_BATCH) {
            int n = Math.min(PUT_BATCH, count - from);
            for (int i = 0; i < n; i++) {
                int s = (from + i) << 2;
                hashes[i] = index.hash(base, origin + spans[s], spans[s + 1]);
            }
            for (int i = 0; i < n; i++) {
                index.touchFirstGroup(hashes[i]);
            }
            for (int i = 0; i < n; i++) {
                int s = (from + i) << 2;
                if (put(hashes[i], base, origin + spans[s], spans[s + 1], base, origin + spans[s + 2],
                        spans[s + 3])) {
                    added++;
                }
            }
        }
        return added;
    }

    private boolean put(long hash, Object keyBase, long keyOffset, int keyLength, Object valueBase, long valueOffset,
            int valueLength) {
        boolean inserted;
        if (log == null) {
            long slot = index.findForUpdate(hash, keyBase, keyOffset, keyLength);
            long ref = store.append(keyBase, keyOffset, keyLength, valueBase, valueOffset, valueLength);
            addToDigest(ref, 1);
            if (slot != 0) {
                long old = SwissIndex.handleAt(slot);
                SwissIndex.setHandle(slot, ref);
                addToDigest(old, -1);
                store.kill(old);
            } else {
                index.insert(hash, ref);
            }
            inserted = slot == 0;
        } else {
            long slot = index.find(hash, keyBase, keyOffset, keyLength);
            long ref = store.append(keyBase, keyOffset, keyLength, valueBase, valueOffset, valueLength);
            addToDigest(ref, 1);
            if (slot != 0) {
                long position = SwissIndex.handleAt(slot);
                long old = log.ref(position);
                log.set(position, ref);
                addToDigest(old, -1);
                store.kill(old);
            } else {
                index.insert(hash, log.append(ref));
            }
            inserted = slot == 0;
        }
        if (inserted) {
            size++;
        }
        modCount++;
        autoCompactionStep();
        return inserted;
    }

    /** Removes the key; returns whether it was there. */
    boolean remove(Object keyBase, long keyOffset, int keyLength) {
        long hash = index.hash(keyBase, keyOffset, keyLength);
        long slot = index.findForUpdate(hash, keyBase, keyOffset, keyLength);
        if (slot == 0) {
            return false;
        }
        long handle = SwissIndex.handleAt(slot);
        long ref = locator.ref(handle);
        index.remove(hash, slot);
        if (log != null) {
            log.remove(handle);
        }
        addToDigest(ref, -1);
        store.kill(ref);
        size--;
        modCount++;
        checkTombstones();
        autoCompactionStep();
        return true;
    }

    // ---- digest ----

    boolean tracksDigest() {
        return trackDigest;
    }

    /** XXH64 (seed 0) of the record's canonical form, its entry body. */
    static long digestOf(long record) {
        long body = RecordLayout.bodySpan(record);
        return Xxh64.hash(null, record + RecordLayout.spanOffset(body), RecordLayout.spanLength(body), 0);
    }

    /** Adds ({@code sign} 1) or takes away (-1) a record's hash; compaction moves records, never this. */
    private void addToDigest(long ref, int sign) {
        if (trackDigest) {
            digest += sign * digestOf(locator.addressOfRef(ref));
        }
    }

    // ---- compaction ----

    private void autoCompactionStep() {
        if (!autoCompaction) {
            return;
        }
        if (store.hasCompactionWork()) {
            store.compactStep(COMPACTION_STEP_BYTES, relocator);
        } else if (log != null && (log.compacting() || log.wantsCompaction(size))) {
            log.compactStep(LOG_STEP_POSITIONS, mover);
        }
    }

    /** On-demand compaction, run as bounded steps so a thread-safe map can let readers in between. */
    final class Compaction {
        private int phase;
        private long bytesReclaimed;
        private long tombstonesPurged;
        private final long deadBefore = store.deadBytes();
        private final long reservedBefore = memory.reservedBytes();

        /** Runs one bounded step; returns false when compaction is complete. */
        boolean step() {
            switch (phase) {
                case 0:
                    store.queueAllDead();
                    phase = 1;
                    return true;
                case 1:
                    if (store.compactStep(COMPACTION_STEP_BYTES * 4, relocator) < 0) {
                        phase = 2;
                    }
                    return true;
                case 2:
                    if (log == null || !log.compactStep(LOG_STEP_POSITIONS * 4, mover)) {
                        phase = 3;
                    }
                    return true;
                case 3:
                    long purged = index.purgeStep();
                    if (purged < 0) {
                        phase = 4;
                        bytesReclaimed = Math.max(0, reservedBefore - memory.reservedBytes());
                        return false;
                    }
                    tombstonesPurged += purged;
                    return true;
                default:
                    return false;
            }
        }

        CompactionResult result() {
            modCount++;
            checkTombstones();
            return new CompactionResult(tombstonesPurged, deadBefore - store.deadBytes(), bytesReclaimed);
        }
    }

    private void relocate(long oldRef, long record, int length) {
        long ref = store.appendCopy(record, length);
        long key = RecordLayout.keySpan(record);
        long keyAddress = record + RecordLayout.spanOffset(key);
        int keyLength = RecordLayout.spanLength(key);
        long hash = index.hash(null, keyAddress, keyLength);
        if (log == null) {
            SwissIndex.setHandle(index.findHandleForUpdate(hash, oldRef), ref);
        } else {
            long slot = index.find(hash, null, keyAddress, keyLength);
            log.set(SwissIndex.handleAt(slot), ref);
        }
    }

    private void moved(long ref, long from, long to) {
        long record = locator.addressOfRef(ref);
        long key = RecordLayout.keySpan(record);
        long hash = index.hash(null, record + RecordLayout.spanOffset(key), RecordLayout.spanLength(key));
        SwissIndex.setHandle(index.findHandleForUpdate(hash, from), to);
    }

    // ---- figures ----

    MemoryStats memoryStats() {
        long slots = index.totalSlots();
        return new MemoryStats(size, memory.reservedBytes(), store.liveBytes(), store.deadBytes(), index.tombstones(),
                slots == 0 ? 0 : (double) size / slots, store.segments(), memory.openViewCount(),
                index.reservedBytes(), store.reservedBytes(), log == null ? 0 : log.reservedBytes(),
                tombstoneWarningRatio, isTombstoneWarning());
    }

    private boolean isTombstoneWarning() {
        return index.tombstones() > tombstoneWarningRatio * index.totalSlots();
    }

    private void checkTombstones() {
        boolean over = isTombstoneWarning();
        if (over && !warned) {
            warned = true;
            if (tombstoneWarning != null) {
                tombstoneWarning.accept(memoryStats());
            }
        } else if (!over) {
            warned = false;
        }
    }

    // ---- views and closing ----

    PinnedView pin(OffHeapMap owner) {
        long epoch = memory.openView();
        long segments = store.copyTable();
        long chunks = log == null ? 0 : log.copyChunkArray();
        return new PinnedView(owner, this, epoch, index.copyDirectory(), index.globalDepth(), segments,
                store.idLimit(), chunks, log == null ? 0 : log.chunkCapacity(),
                log == null ? 0 : log.writeCursor(), log == null ? 0 : log.readCursor(),
                log == null ? 0 : log.end(), size, digest);
    }

    void close() {
        if (closed) {
            return;
        }
        closed = true;
        memory.freeRetired();
        index.free();
        if (log != null) {
            log.free();
        }
        store.free();
    }
}
