package dev.mapcast.core;

/**
 * The hash index: a directory of small Swiss tables (extendible hashing, as in Go 1.24's maps).
 *
 * <p>The directory is an off-heap array of {@code 2^globalDepth} table addresses, indexed by the top
 * {@code globalDepth} bits of the hash. A table of local depth {@code L} owns the {@code 2^(global -
 * L)} consecutive directory entries that share its top {@code L} bits. Inside a table the low 7 bits
 * of the hash are the control byte and the bits above them pick the first group to probe.
 *
 * <p>Implementation notes.
 *
 * <p>Bounded work: a table never exceeds {@link TableLayout#MAX_GROUPS}. A full table below that
 * doubles; at that size it splits in two on its next hash bit, doubling the directory first when its
 * local depth is the global depth. After a remove, a table under a quarter of its load halves, and a
 * small table merges with its buddy when both fit in half a full table; the directory halves when no
 * table needs its last bit. Each of these rehashes at most two tables of at most
 * {@link TableLayout#MAX_SLOTS} slots, so no single operation rehashes the whole map.
 *
 * <p>Deletes: a slot whose group still has an EMPTY byte becomes EMPTY again (no probe ever passed
 * that group); otherwise it becomes a tombstone. Tombstones go when their table is rehashed, by
 * growth or by {@link #purgeStep}.
 *
 * <p>Copy-on-write: the directory is never shared (a pinned view copies it), but tables are. Every
 * change to a table goes through {@link #mutableTable}, which copies a table an open view may see.
 */
final class SwissIndex {

    private final MapMemory memory;
    private final RecordLocator locator;
    private final long seed;

    private long directory;
    private int globalDepth;
    private long totalSlots;
    private long totalTombstones;
    private int purgeCursor;

    SwissIndex(MapMemory memory, RecordLocator locator, long seed, long expectedEntries) {
        this.memory = memory;
        this.locator = locator;
        this.seed = seed;
        long perFullTable = TableLayout.maxLoad(TableLayout.MAX_GROUPS) / 2;
        long tables = Long.highestOneBit(Math.max(1, (expectedEntries + perFullTable - 1) / perFullTable) * 2 - 1);
        int groups = groupsFor(expectedEntries / tables);
        globalDepth = Long.numberOfTrailingZeros(tables);
        directory = memory.allocate(tables * Long.BYTES);
        for (long i = 0; i < tables; i++) {
            long table = TableLayout.allocate(memory, groups, globalDepth);
            NativeMemory.putLong(directory + i * Long.BYTES, TableLayout.entry(table));
            totalSlots += (long) groups * TableLayout.SLOTS_PER_GROUP;
        }
    }

    long hash(Object base, long offset, int length) {
        return KeyHash.hash(seed, base, offset, length);
    }

    // ---- lookups (also used by pinned views over their own directory copy) ----

    static int dirIndex(long hash, int globalDepth) {
        return (int) (hash >>> 1 >>> (63 - globalDepth));
    }

    /** The slot holding the key, or 0. */
    static long find(long directory, int globalDepth, long hash, Object keyBase, long keyOffset, int keyLength,
            RecordLocator locator) {
        long entry = NativeMemory.getLong(directory + ((long) dirIndex(hash, globalDepth) << 3));
        long table = TableLayout.address(entry);
        int mask = TableLayout.groupMask(entry);
        byte h2 = TableLayout.h2(hash);
        int g = (int) (hash >>> 7) & mask;
        for (int i = 1; ; i++) {
            long group = TableLayout.group(table, g);
            long control = TableLayout.controlWord(group);
            for (long m = TableLayout.matchH2(control, h2); m != 0; m &= m - 1) {
                long slot = TableLayout.slot(group, TableLayout.firstMatch(m));
                if (keyEquals(locator.address(TableLayout.handle(slot)), keyBase, keyOffset, keyLength)) {
                    return slot;
                }
            }
            if (TableLayout.matchEmpty(control) != 0) {
                return 0;
            }
            g = (g + i) & mask;
        }
    }

    /** Brings in the table header and first group a lookup of {@code hash} reads (see {@link MapEngine#putBatch}). */
    void touchFirstGroup(long hash) {
        long entry = NativeMemory.getLong(directory + ((long) dirIndex(hash, globalDepth) << 3));
        long table = TableLayout.address(entry);
        NativeMemory.touch(table);
        NativeMemory.touch(TableLayout.group(table, (int) (hash >>> 7) & TableLayout.groupMask(entry)));
    }

    static boolean keyEquals(long record, Object keyBase, long keyOffset, int keyLength) {
        long key = RecordLayout.keySpan(record);
        return RecordLayout.spanLength(key) == keyLength
                && NativeMemory.equal(record + RecordLayout.spanOffset(key), keyBase, keyOffset, keyLength);
    }

    long find(long hash, Object keyBase, long keyOffset, int keyLength) {
        return find(directory, globalDepth, hash, keyBase, keyOffset, keyLength, locator);
    }

    /** Like {@link #find} but the slot returned is in a table this map may change. */
    long findForUpdate(long hash, Object keyBase, long keyOffset, int keyLength) {
        long slot = find(hash, keyBase, keyOffset, keyLength);
        return slot == 0 ? 0 : mutableSlot(hash, slot);
    }

    /** The slot, in a table this map may change, that holds exactly {@code handle} for a key of {@code hash}. */
    long findHandleForUpdate(long hash, long handle) {
        long table = tableAt(dirIndex(hash, globalDepth));
        int mask = TableLayout.groups(table) - 1;
        byte h2 = TableLayout.h2(hash);
        int g = (int) (hash >>> 7) & mask;
        for (int i = 1; ; i++) {
            long group = TableLayout.group(table, g);
            long control = TableLayout.controlWord(group);
            for (long m = TableLayout.matchH2(control, h2); m != 0; m &= m - 1) {
                long slot = TableLayout.slot(group, TableLayout.firstMatch(m));
                if (TableLayout.handle(slot) == handle) {
                    return mutableSlot(hash, slot);
                }
            }
            if (TableLayout.matchEmpty(control) != 0) {
                throw new IllegalStateException("index lost handle " + Long.toHexString(handle));
            }
            g = (g + i) & mask;
        }
    }

    // ---- changes ----

    static void setHandle(long slot, long handle) {
        TableLayout.setHandle(slot, handle);
    }

    static long handleAt(long slot) {
        return TableLayout.handle(slot);
    }

    /** Adds a handle for a key that is not in the index. */
    void insert(long hash, long handle) {
        while (true) {
            int di = dirIndex(hash, globalDepth);
            long table = tableAt(di);
            int groups = TableLayout.groups(table);
            long slot = firstFree(table, hash);
            boolean reuseTombstone = NativeMemory.getByte(TableLayout.controlOfSlot(slot)) == TableLayout.DELETED;
            int used = TableLayout.used(table);
            int tombstones = TableLayout.tombstones(table);
            if (!reuseTombstone && used + tombstones >= TableLayout.maxLoad(groups)) {
                makeRoom(di, table);
                continue;
            }
            long mutable = mutableTable(di);
            slot += mutable - table;
            NativeMemory.putByte(TableLayout.controlOfSlot(slot), TableLayout.h2(hash));
            TableLayout.setHandle(slot, handle);
            NativeMemory.putInt(mutable + TableLayout.USED, used + 1);
            if (reuseTombstone) {
                NativeMemory.putInt(mutable + TableLayout.TOMBSTONES, tombstones - 1);
                totalTombstones--;
            }
            return;
        }
    }

    /** Removes the entry at {@code slot} (from a find-for-update), then shrinks or merges if due. */
    void remove(long hash, long slot) {
        int di = dirIndex(hash, globalDepth);
        long table = tableAt(di);
        int groups = TableLayout.groups(table);
        long control = TableLayout.controlOfSlot(slot);
        int used = TableLayout.used(table) - 1;
        NativeMemory.putInt(table + TableLayout.USED, used);
        if (TableLayout.matchEmpty(TableLayout.controlWord(control & -TableLayout.GROUP_BYTES)) != 0) {
            NativeMemory.putByte(control, TableLayout.EMPTY);
        } else {
            NativeMemory.putByte(control, TableLayout.DELETED);
            NativeMemory.putInt(table + TableLayout.TOMBSTONES, TableLayout.tombstones(table) + 1);
            totalTombstones++;
        }
        if (used < TableLayout.maxLoad(TableLayout.MAX_GROUPS) / 4 && tryMerge(di, table)) {
            return;
        }
        if (groups > 1 && used < TableLayout.maxLoad(groups) / 4) {
            rehash(di, table, groups / 2);
        }
    }

    /**
     * One bounded step of on-demand compaction: rehashes the next table that holds tombstones or is
     * larger than its entries need. Returns the tombstones purged, or -1 when a full pass found
     * nothing left to do.
     */
    long purgeStep() {
        int dirSize = 1 << globalDepth;
        for (int visited = 0; visited < dirSize; ) {
            if (purgeCursor >= dirSize) {
                purgeCursor = 0;
            }
            int di = purgeCursor;
            long table = tableAt(di);
            int span = 1 << (globalDepth - TableLayout.localDepth(table));
            purgeCursor = (di & -span) + span;
            visited += span;
            int tombstones = TableLayout.tombstones(table);
            int groups = TableLayout.groups(table);
            int tight = tightGroupsFor(TableLayout.used(table));
            if (tombstones > 0 || tight < groups) {
                rehash(di, table, Math.min(groups, tight));
                return tombstones;
            }
        }
        return -1;
    }

    // ---- figures ----

    long totalSlots() {
        return totalSlots;
    }

    long tombstones() {
        return totalTombstones;
    }

    int globalDepth() {
        return globalDepth;
    }

    long directory() {
        return directory;
    }

    /** Off-heap bytes of the live index: the directory and every table. */
    long reservedBytes() {
        long bytes = directoryBytes();
        int dirSize = 1 << globalDepth;
        for (int di = 0; di < dirSize; ) {
            long table = tableAt(di);
            bytes += TableLayout.bytes(TableLayout.groups(table));
            di += 1 << (globalDepth - TableLayout.localDepth(table));
        }
        return bytes;
    }

    long directoryBytes() {
        return (long) Long.BYTES << globalDepth;
    }

    /** A private copy of the directory for a pinned view; the view frees it. */
    long copyDirectory() {
        long copy = memory.allocate(directoryBytes());
        NativeMemory.copy(directory, copy, directoryBytes());
        return copy;
    }

    /** Frees every table and the directory; the map is closing. */
    void free() {
        int dirSize = 1 << globalDepth;
        for (int di = 0; di < dirSize; ) {
            long table = tableAt(di);
            int span = 1 << (globalDepth - TableLayout.localDepth(table));
            TableLayout.free(memory, table);
            di += span;
        }
        memory.free(directory, directoryBytes());
        directory = 0;
    }

    // ---- internals ----

    private long tableAt(int di) {
        return TableLayout.address(NativeMemory.getLong(directory + ((long) di << 3)));
    }

    /** Points every directory entry of the table at {@code di} (local depth {@code depth}) at {@code table}. */
    private void setRange(int di, int depth, long table) {
        int span = 1 << (globalDepth - depth);
        long start = directory + ((long) (di & -span) << 3);
        long entry = TableLayout.entry(table);
        for (int i = 0; i < span; i++) {
            NativeMemory.putLong(start + ((long) i << 3), entry);
        }
    }

    private long mutableSlot(long hash, long slot) {
        int di = dirIndex(hash, globalDepth);
        long table = tableAt(di);
        return slot + (mutableTable(di) - table);
    }

    /** The table at {@code di}, copied first if an open view may see it. */
    private long mutableTable(int di) {
        long table = tableAt(di);
        long created = TableLayout.createdEpoch(table);
        if (!memory.isShared(created)) {
            return table;
        }
        long copy = TableLayout.copy(memory, table);
        setRange(di, TableLayout.localDepth(table), copy);
        TableLayout.retire(memory, table);
        return copy;
    }

    /** The first EMPTY or DELETED slot on the probe sequence of {@code hash}. */
    private static long firstFree(long table, long hash) {
        int mask = TableLayout.groups(table) - 1;
        int g = (int) (hash >>> 7) & mask;
        for (int i = 1; ; i++) {
            long group = TableLayout.group(table, g);
            long m = TableLayout.matchEmptyOrDeleted(TableLayout.controlWord(group));
            if (m != 0) {
                return TableLayout.slot(group, TableLayout.firstMatch(m));
            }
            g = (g + i) & mask;
        }
    }

    /** A full table: purge its tombstones, double it, or split it. */
    private void makeRoom(int di, long table) {
        int groups = TableLayout.groups(table);
        int used = TableLayout.used(table);
        if (TableLayout.tombstones(table) > 0 && used <= TableLayout.maxLoad(groups) / 2) {
            rehash(di, table, groups);
        } else if (groups < TableLayout.MAX_GROUPS) {
            rehash(di, table, groups * 2);
        } else {
            split(di, table);
        }
    }

    private void rehash(int di, long table, int newGroups) {
        int depth = TableLayout.localDepth(table);
        int oldGroups = TableLayout.groups(table);
        long fresh = TableLayout.allocate(memory, newGroups, depth);
        moveAll(table, fresh, fresh, -1);
        setRange(di, depth, fresh);
        totalSlots += (long) (newGroups - oldGroups) * TableLayout.SLOTS_PER_GROUP;
        totalTombstones -= TableLayout.tombstones(table);
        TableLayout.retire(memory, table);
    }

    private void split(int di, long table) {
        int depth = TableLayout.localDepth(table);
        if (depth == globalDepth) {
            resizeDirectory(globalDepth + 1);
            di <<= 1;
        }
        long low = TableLayout.allocate(memory, TableLayout.MAX_GROUPS, depth + 1);
        long high = TableLayout.allocate(memory, TableLayout.MAX_GROUPS, depth + 1);
        moveAll(table, low, high, 63 - depth);
        int span = 1 << (globalDepth - depth);
        int start = di & -span;
        setRange(start, depth + 1, low);
        setRange(start + span / 2, depth + 1, high);
        totalSlots += (long) TableLayout.MAX_SLOTS;
        totalTombstones -= TableLayout.tombstones(table);
        TableLayout.retire(memory, table);
    }

    /** Merges a small table with its buddy if both fit in half a full table; returns whether it did. */
    private boolean tryMerge(int di, long table) {
        int depth = TableLayout.localDepth(table);
        if (depth == 0) {
            return false;
        }
        int span = 1 << (globalDepth - depth);
        int buddyIndex = (di & -span) ^ span;
        long buddy = tableAt(buddyIndex);
        int combined = TableLayout.used(table) + TableLayout.used(buddy);
        if (TableLayout.localDepth(buddy) != depth
                || combined > TableLayout.maxLoad(TableLayout.MAX_GROUPS) / 2) {
            return false;
        }
        long merged = TableLayout.allocate(memory, groupsFor(combined), depth - 1);
        moveAll(table, merged, merged, -1);
        moveAll(buddy, merged, merged, -1);
        setRange(di, depth - 1, merged);
        totalSlots += (long) (TableLayout.groups(merged) - TableLayout.groups(table) - TableLayout.groups(buddy))
                * TableLayout.SLOTS_PER_GROUP;
        totalTombstones -= TableLayout.tombstones(table) + TableLayout.tombstones(buddy);
        TableLayout.retire(memory, table);
        TableLayout.retire(memory, buddy);
        if (depth == globalDepth) {
            halveDirectoryIfUnused();
        }
        return true;
    }

    private void halveDirectoryIfUnused() {
        int dirSize = 1 << globalDepth;
        for (int di = 0; di < dirSize; ) {
            long table = tableAt(di);
            int depth = TableLayout.localDepth(table);
            if (depth == globalDepth) {
                return;
            }
            di += 1 << (globalDepth - depth);
        }
        resizeDirectory(globalDepth - 1);
    }

    private void resizeDirectory(int newDepth) {
        long oldBytes = directoryBytes();
        long fresh = memory.allocate((long) Long.BYTES << newDepth);
        int newSize = 1 << newDepth;
        for (int i = 0; i < newSize; i++) {
            int from = newDepth > globalDepth ? i >>> 1 : i << 1;
            NativeMemory.putLong(fresh + ((long) i << 3), NativeMemory.getLong(directory + ((long) from << 3)));
        }
        memory.free(directory, oldBytes);
        directory = fresh;
        globalDepth = newDepth;
    }

    /**
     * Re-inserts every entry of {@code from} into fresh tables: into {@code high} when hash bit
     * {@code splitBit} is set (or always {@code low} when {@code splitBit < 0}).
     */
    private void moveAll(long from, long low, long high, int splitBit) {
        int groups = TableLayout.groups(from);
        int lowUsed = TableLayout.used(low);
        int highUsed = low == high ? 0 : TableLayout.used(high);
        // First touch every record's key, then hash: a tight loop of loads lets the cache misses
        // (the records are anywhere in the segments) overlap instead of queueing one by one.
        // Measured growing to 10M entries: a split took 1.2-4.7 ms with one loop.
        for (int g = 0; g < groups; g++) {
            long group = TableLayout.group(from, g);
            for (long m = TableLayout.matchFull(TableLayout.controlWord(group)); m != 0; m &= m - 1) {
                NativeMemory.touch(locator.address(TableLayout.handle(TableLayout.slot(group, TableLayout.firstMatch(m)))) + 4);
            }
        }
        for (int g = 0; g < groups; g++) {
            long group = TableLayout.group(from, g);
            for (long m = TableLayout.matchFull(TableLayout.controlWord(group)); m != 0; m &= m - 1) {
                long handle = TableLayout.handle(TableLayout.slot(group, TableLayout.firstMatch(m)));
                long hash = hashOfHandle(handle);
                boolean toHigh = splitBit >= 0 && ((hash >>> splitBit) & 1) != 0;
                long target = toHigh ? high : low;
                long slot = firstFree(target, hash);
                NativeMemory.putByte(TableLayout.controlOfSlot(slot), TableLayout.h2(hash));
                TableLayout.setHandle(slot, handle);
                if (toHigh) {
                    highUsed++;
                } else {
                    lowUsed++;
                }
            }
        }
        NativeMemory.putInt(low + TableLayout.USED, lowUsed);
        if (low != high) {
            NativeMemory.putInt(high + TableLayout.USED, highUsed);
        }
    }

    private long hashOfHandle(long handle) {
        long record = locator.address(handle);
        long key = RecordLayout.keySpan(record);
        return hash(null, record + RecordLayout.spanOffset(key), RecordLayout.spanLength(key));
    }

    /** Smallest group count whose table holds {@code entries} at no more than half its load. */
    private static int groupsFor(long entries) {
        int groups = 1;
        while (groups < TableLayout.MAX_GROUPS && entries > TableLayout.maxLoad(groups) / 2) {
            groups <<= 1;
        }
        return groups;
    }

    /** Smallest group count whose table holds {@code entries} at no more than three quarters of its load. */
    private static int tightGroupsFor(long entries) {
        int groups = 1;
        while (groups < TableLayout.MAX_GROUPS && entries > TableLayout.maxLoad(groups) * 3 / 4) {
            groups <<= 1;
        }
        return groups;
    }
}
