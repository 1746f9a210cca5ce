package dev.mapcast.core;

/**
 * Where records live: segments of off-heap memory filled by appending, never changed in place.
 *
 * <p>Implementation notes.
 *
 * <p>Appends go to the tail segment; a record that does not fit seals the tail and starts a new one,
 * and a record larger than a segment gets a sealed segment of its own. A record dies when its key is
 * updated or removed: its live bit is cleared and its bytes count as dead. A sealed segment whose
 * dead bytes reach {@code compactionThreshold} of its capacity joins the compaction queue.
 *
 * <p>Compaction takes the queue's head and walks its records a bounded number of bytes per step;
 * each live one is copied to the tail by the {@link Relocator} (which also repoints the index), and
 * when the walk ends the segment's memory is retired: freed at once unless a pinned view may still
 * read it. Segment ids are reused through a free list threaded through the table.
 *
 * <p>Copy-on-write: the table is never shared (views copy it); data blocks are never written below
 * their append position; bitmaps are copied before a bit is cleared while a view may see them. Bits
 * set by appends need no copy: a view ignores everything at or past the append position it copied.
 */
final class SegmentStore {

    /** Copies one live record during compaction (with {@link #appendCopy}) and repoints what references it. */
    interface Relocator {
        void relocate(long oldRef, long record, int length);
    }

    private final MapMemory memory;
    private final RecordLocator locator;
    private final int segmentSize;
    private final double compactionThreshold;

    private long table;
    private int tableCapacity;
    private int highestId = -1;
    /** No id below this is free. */
    private int lowestFreeHint;
    private int tail = SegmentLayout.NO_SEGMENT;
    private int queueHead = SegmentLayout.NO_SEGMENT;
    private int queueTail = SegmentLayout.NO_SEGMENT;
    private int compacting = SegmentLayout.NO_SEGMENT;
    private int compactOffset;

    private int segments;
    private long liveBytes;
    private long deadBytes;
    private long dataBytes;

    SegmentStore(MapMemory memory, RecordLocator locator, int segmentSize, double compactionThreshold) {
        this.memory = memory;
        this.locator = locator;
        this.segmentSize = segmentSize;
        this.compactionThreshold = compactionThreshold;
        this.tableCapacity = 16;
        this.table = memory.allocateZeroed((long) tableCapacity * SegmentLayout.ENTRY_BYTES);
        locator.segments = table;
    }

    // ---- appending and retiring records ----

    /** Appends a canonical record; returns its reference. */
    long append(Object keyBase, long keyOffset, int keyLength, Object valueBase, long valueOffset, int valueLength) {
        int length = RecordLayout.recordLength(keyLength, valueLength);
        long ref = reserve(length);
        RecordLayout.write(locator.addressOfRef(ref), keyBase, keyOffset, keyLength, valueBase, valueOffset, valueLength);
        return ref;
    }

    /** Appends a copy of the record at {@code record}; returns the copy's reference. */
    long appendCopy(long record, int length) {
        long ref = reserve(length);
        NativeMemory.copy(record, locator.addressOfRef(ref), length);
        return ref;
    }

    /** The record at {@code ref} is no longer reachable from the map. */
    void kill(long ref) {
        int id = RecordRef.segment(ref);
        int offset = RecordRef.offset(ref);
        long entry = SegmentLayout.entry(table, id);
        int length = RecordLayout.length(NativeMemory.getLong(entry + SegmentLayout.DATA_ADDRESS) + offset);
        SegmentLayout.setLive(mutableBitmap(entry), offset, false);
        int live = NativeMemory.getInt(entry + SegmentLayout.LIVE_BYTES) - length;
        NativeMemory.putInt(entry + SegmentLayout.LIVE_BYTES, live);
        NativeMemory.putInt(entry + SegmentLayout.LIVE_RECORDS, NativeMemory.getInt(entry + SegmentLayout.LIVE_RECORDS) - 1);
        NativeMemory.putInt(entry + SegmentLayout.DEAD_BYTES, NativeMemory.getInt(entry + SegmentLayout.DEAD_BYTES) + length);
        liveBytes -= length;
        deadBytes += length;
        int flags = NativeMemory.getInt(entry + SegmentLayout.FLAGS);
        if ((flags & SegmentLayout.FLAG_SEALED) != 0 && (flags & SegmentLayout.FLAG_QUEUED) == 0 && dueForCompaction(entry)) {
            enqueue(id);
        }
    }

    /**
     * Whether enough of a segment is dead records to compact it. Space never written (the slack a
     * sealed tail leaves) does not count: moving the records would only move the slack along, and
     * the new tail would be due again, for ever.
     */
    private boolean dueForCompaction(long entry) {
        int dead = NativeMemory.getInt(entry + SegmentLayout.DEAD_BYTES);
        return dead > 0 && dead >= compactionThreshold * NativeMemory.getInt(entry + SegmentLayout.CAPACITY);
    }

    // ---- compaction ----

    boolean hasCompactionWork() {
        return compacting != SegmentLayout.NO_SEGMENT || queueHead != SegmentLayout.NO_SEGMENT;
    }

    /**
     * Queues every segment holding dead records, the tail included (it is sealed first), so that
     * the following steps reclaim all dead memory.
     */
    void queueAllDead() {
        if (tail != SegmentLayout.NO_SEGMENT
                && NativeMemory.getInt(SegmentLayout.entry(table, tail) + SegmentLayout.DEAD_BYTES) > 0) {
            sealTail();
        }
        for (int id = 0; id <= highestId; id++) {
            long entry = SegmentLayout.entry(table, id);
            int flags = NativeMemory.getInt(entry + SegmentLayout.FLAGS);
            if (NativeMemory.getLong(entry + SegmentLayout.DATA_ADDRESS) != 0
                    && (flags & (SegmentLayout.FLAG_SEALED | SegmentLayout.FLAG_QUEUED)) == SegmentLayout.FLAG_SEALED
                    && NativeMemory.getInt(entry + SegmentLayout.DEAD_BYTES) > 0) {
                enqueue(id);
            }
        }
    }

    /**
     * Walks at most {@code maxBytes} of the segment being compacted, relocating its live records;
     * frees the segment when the walk reaches its end. Returns the bytes reclaimed (0 until a
     * segment is freed), or -1 when there was nothing to do.
     */
    long compactStep(int maxBytes, Relocator relocator) {
        if (compacting == SegmentLayout.NO_SEGMENT) {
            if (queueHead == SegmentLayout.NO_SEGMENT) {
                return -1;
            }
            compacting = queueHead;
            long entry = SegmentLayout.entry(table, queueHead);
            queueHead = NativeMemory.getInt(entry + SegmentLayout.LINK);
            if (queueHead == SegmentLayout.NO_SEGMENT) {
                queueTail = SegmentLayout.NO_SEGMENT;
            }
            compactOffset = 0;
        }
        long entry = SegmentLayout.entry(table, compacting);
        long data = NativeMemory.getLong(entry + SegmentLayout.DATA_ADDRESS);
        int used = NativeMemory.getInt(entry + SegmentLayout.USED);
        int stop = (int) Math.min(used, (long) compactOffset + maxBytes);
        while (compactOffset < used && compactOffset < stop) {
            long record = data + compactOffset;
            int length = RecordLayout.length(record);
            // The relocator may grow the table: re-read the bitmap address from the entry each time.
            long bitmap = NativeMemory.getLong(SegmentLayout.entry(table, compacting) + SegmentLayout.BITMAP_ADDRESS);
            if (SegmentLayout.isLive(bitmap, compactOffset)) {
                long ref = RecordRef.of(compacting, compactOffset);
                relocator.relocate(ref, record, length);
                kill(ref);
            }
            compactOffset += length;
        }
        if (compactOffset < used) {
            return 0;
        }
        entry = SegmentLayout.entry(table, compacting);
        long reclaimed = NativeMemory.getInt(entry + SegmentLayout.CAPACITY);
        deadBytes -= NativeMemory.getInt(entry + SegmentLayout.DEAD_BYTES);
        releaseSegment(compacting);
        compacting = SegmentLayout.NO_SEGMENT;
        return reclaimed;
    }

    // ---- figures and views ----

    long table() {
        return table;
    }

    /** Number of ids a copy of the table must cover. */
    int idLimit() {
        return highestId + 1;
    }

    int segments() {
        return segments;
    }

    long liveBytes() {
        return liveBytes;
    }

    long deadBytes() {
        return deadBytes;
    }

    /** Off-heap bytes: data blocks, bitmaps and the table. */
    long reservedBytes() {
        return dataBytes + (long) tableCapacity * SegmentLayout.ENTRY_BYTES;
    }

    /** A private copy of the table's used entries for a pinned view; the view frees it. */
    long copyTable() {
        long bytes = copyBytes(idLimit());
        long copy = memory.allocate(bytes);
        NativeMemory.copy(table, copy, bytes);
        return copy;
    }

    /** Size of a view's copy of a table covering {@code idLimit} ids; the view frees that much. */
    static long copyBytes(int idLimit) {
        return (long) Math.max(1, idLimit) * SegmentLayout.ENTRY_BYTES;
    }

    void free() {
        for (int id = 0; id <= highestId; id++) {
            long entry = SegmentLayout.entry(table, id);
            long data = NativeMemory.getLong(entry + SegmentLayout.DATA_ADDRESS);
            if (data != 0) {
                int capacity = NativeMemory.getInt(entry + SegmentLayout.CAPACITY);
                memory.free(data, capacity);
                memory.free(NativeMemory.getLong(entry + SegmentLayout.BITMAP_ADDRESS), SegmentLayout.bitmapBytes(capacity));
            }
        }
        memory.free(table, (long) tableCapacity * SegmentLayout.ENTRY_BYTES);
        table = 0;
        locator.segments = 0;
    }

    // ---- internals ----

    /** Makes room for {@code length} bytes and marks them as a live record; returns its reference. */
    private long reserve(int length) {
        int id;
        if (length > segmentSize) {
            id = newSegment(length);
            seal(id);
        } else {
            if (tail == SegmentLayout.NO_SEGMENT
                    || NativeMemory.getInt(SegmentLayout.entry(table, tail) + SegmentLayout.USED) + length > segmentSize) {
                if (tail != SegmentLayout.NO_SEGMENT) {
                    sealTail();
                }
                tail = newSegment(segmentSize);
            }
            id = tail;
        }
        long entry = SegmentLayout.entry(table, id);
        int offset = NativeMemory.getInt(entry + SegmentLayout.USED);
        NativeMemory.putInt(entry + SegmentLayout.USED, offset + length);
        NativeMemory.putInt(entry + SegmentLayout.LIVE_BYTES, NativeMemory.getInt(entry + SegmentLayout.LIVE_BYTES) + length);
        NativeMemory.putInt(entry + SegmentLayout.LIVE_RECORDS, NativeMemory.getInt(entry + SegmentLayout.LIVE_RECORDS) + 1);
        SegmentLayout.setLive(NativeMemory.getLong(entry + SegmentLayout.BITMAP_ADDRESS), offset, true);
        liveBytes += length;
        return RecordRef.of(id, offset);
    }

    private int newSegment(int capacity) {
        int id = lowestFreeId();
        if (id > highestId) {
            if (id >= RecordRef.MAX_SEGMENTS) {
                throw new IllegalStateException("map is full: " + id + " segments (expected: at most "
                        + RecordRef.MAX_SEGMENTS + "; use a larger segmentSize)");
            }
            if (id == tableCapacity) {
                growTable();
            }
            highestId = id;
        }
        long bitmapBytes = SegmentLayout.bitmapBytes(capacity);
        long data = memory.allocate(capacity);
        long bitmap = memory.allocateZeroed(bitmapBytes);
        long entry = SegmentLayout.entry(table, id);
        NativeMemory.putLong(entry + SegmentLayout.DATA_ADDRESS, data);
        NativeMemory.putLong(entry + SegmentLayout.DATA_EPOCH, memory.epoch());
        NativeMemory.putLong(entry + SegmentLayout.BITMAP_ADDRESS, bitmap);
        NativeMemory.putLong(entry + SegmentLayout.BITMAP_EPOCH, memory.epoch());
        NativeMemory.putInt(entry + SegmentLayout.CAPACITY, capacity);
        NativeMemory.putInt(entry + SegmentLayout.USED, 0);
        NativeMemory.putInt(entry + SegmentLayout.LIVE_BYTES, 0);
        NativeMemory.putInt(entry + SegmentLayout.DEAD_BYTES, 0);
        NativeMemory.putInt(entry + SegmentLayout.LINK, SegmentLayout.NO_SEGMENT);
        NativeMemory.putInt(entry + SegmentLayout.FLAGS, 0);
        NativeMemory.putInt(entry + SegmentLayout.LIVE_RECORDS, 0);
        segments++;
        dataBytes += capacity + bitmapBytes;
        return id;
    }

    private void sealTail() {
        int sealed = tail;
        tail = SegmentLayout.NO_SEGMENT;
        seal(sealed);
        if (dueForCompaction(SegmentLayout.entry(table, sealed))) {
            enqueue(sealed);
        }
    }

    private void seal(int id) {
        long flags = SegmentLayout.entry(table, id) + SegmentLayout.FLAGS;
        NativeMemory.putInt(flags, NativeMemory.getInt(flags) | SegmentLayout.FLAG_SEALED);
    }

    private void enqueue(int id) {
        long entry = SegmentLayout.entry(table, id);
        NativeMemory.putInt(entry + SegmentLayout.FLAGS, NativeMemory.getInt(entry + SegmentLayout.FLAGS) | SegmentLayout.FLAG_QUEUED);
        NativeMemory.putInt(entry + SegmentLayout.LINK, SegmentLayout.NO_SEGMENT);
        if (queueTail == SegmentLayout.NO_SEGMENT) {
            queueHead = id;
        } else {
            NativeMemory.putInt(SegmentLayout.entry(table, queueTail) + SegmentLayout.LINK, id);
        }
        queueTail = id;
    }

    private void releaseSegment(int id) {
        long entry = SegmentLayout.entry(table, id);
        int capacity = NativeMemory.getInt(entry + SegmentLayout.CAPACITY);
        long bitmapBytes = SegmentLayout.bitmapBytes(capacity);
        memory.retire(NativeMemory.getLong(entry + SegmentLayout.DATA_ADDRESS), capacity,
                NativeMemory.getLong(entry + SegmentLayout.DATA_EPOCH));
        memory.retire(NativeMemory.getLong(entry + SegmentLayout.BITMAP_ADDRESS), bitmapBytes,
                NativeMemory.getLong(entry + SegmentLayout.BITMAP_EPOCH));
        NativeMemory.fill(entry, SegmentLayout.ENTRY_BYTES, (byte) 0);
        lowestFreeHint = Math.min(lowestFreeHint, id);
        segments--;
        dataBytes -= capacity + bitmapBytes;
        while (highestId >= 0 && isFree(highestId)) {
            highestId--;
        }
        if (tableCapacity > 16 && highestId + 1 <= tableCapacity / 4) {
            resizeTable(tableCapacity / 2);
        }
    }

    /**
     * The lowest free id, or {@code highestId + 1}. New segments take the lowest id so that, as
     * compaction frees segments, the high ids empty out and the table can shrink.
     */
    private int lowestFreeId() {
        int id = Math.min(lowestFreeHint, highestId + 1);
        while (id <= highestId && !isFree(id)) {
            id++;
        }
        lowestFreeHint = id + 1;
        return id;
    }

    private boolean isFree(int id) {
        return NativeMemory.getLong(SegmentLayout.entry(table, id) + SegmentLayout.DATA_ADDRESS) == 0;
    }

    private long mutableBitmap(long entry) {
        long bitmap = NativeMemory.getLong(entry + SegmentLayout.BITMAP_ADDRESS);
        long created = NativeMemory.getLong(entry + SegmentLayout.BITMAP_EPOCH);
        if (!memory.isShared(created)) {
            return bitmap;
        }
        long bytes = SegmentLayout.bitmapBytes(NativeMemory.getInt(entry + SegmentLayout.CAPACITY));
        long copy = memory.allocate(bytes);
        NativeMemory.copy(bitmap, copy, bytes);
        NativeMemory.putLong(entry + SegmentLayout.BITMAP_ADDRESS, copy);
        NativeMemory.putLong(entry + SegmentLayout.BITMAP_EPOCH, memory.epoch());
        memory.retire(bitmap, bytes, created);
        return copy;
    }

    private void growTable() {
        resizeTable(tableCapacity * 2);
    }

    private void resizeTable(int capacity) {
        long fresh = memory.allocateZeroed((long) capacity * SegmentLayout.ENTRY_BYTES);
        NativeMemory.copy(table, fresh, (long) Math.min(capacity, tableCapacity) * SegmentLayout.ENTRY_BYTES);
        memory.free(table, (long) tableCapacity * SegmentLayout.ENTRY_BYTES);
        table = fresh;
        tableCapacity = capacity;
        locator.segments = fresh;
    }
}
