package dev.mapcast.core;

/**
 * One table of the index, in one off-heap block aligned to 64 bytes: a header, then groups of one
 * cache line each: 8 control bytes and 8 slots of 7 bytes. A slot holds the entry's 56-bit handle
 * (see {@link RecordLocator}), little-endian.
 *
 * <pre>
 *   table:  0            64           128                         64 + 64g
 *           +------------+------------+------------+---- ... ----+
 *           | header     | group 0    | group 1    |             |
 *           +------------+------------+------------+---- ... ----+
 *
 *   header: 0 created epoch (long) | 8 local depth | 12 group mask | 16 used | 20 tombstones
 *           | 24 address of the allocation (long), which starts up to 63 bytes before the table
 *
 *   group:  0          8         15        22              57        64
 *           +----------+---------+---------+---- ... ------+---------+
 *           | 8 ctrl   | slot 0  | slot 1  |               | slot 7  |
 *           | bytes    | 7 bytes | 7 bytes |               | 7 bytes |
 *           +----------+---------+---------+---- ... ------+---------+
 *
 *   control byte i (byte i of the group's little-endian control word) belongs to slot i:
 *           1000 0000  EMPTY      1111 1110  DELETED (tombstone)      0hhh hhhh  FULL, 7 hash bits
 * </pre>
 *
 * Why one line per group: a lookup then costs one cache miss in the index, not two. A slot is
 * read as the 8 bytes ending at its last byte, shifted right by 8, so a read never crosses into
 * the next line; a slot pointer below is the address of that 8-byte window ({@code 7 + 7s} into
 * the group).
 *
 * <p>A directory entry is the table's address with log2 of its group count in the top bits, so a
 * lookup needs nothing from the header:
 * <pre>
 *   63    57 56                                                      0
 *   +-------+--------------------------------------------------------+
 *   | log2 g|                table address (64-byte aligned)         |
 *   +-------+--------------------------------------------------------+
 * </pre>
 *
 * {@code used + tombstones <= maxLoad(groups)}: at most 7 of every 8 slots are taken, so every probe
 * sequence reaches a group with an EMPTY byte and stops.
 */
final class TableLayout {

    static final int CREATED_EPOCH;
    static final int LOCAL_DEPTH;
    static final int GROUP_MASK;
    static final int USED;
    static final int TOMBSTONES;
    static final int ALLOCATION;
    static final int GROUPS;

    static {
        int offset = 0;
        CREATED_EPOCH = offset;
        offset += Long.BYTES;
        LOCAL_DEPTH = offset;
        offset += Integer.BYTES;
        GROUP_MASK = offset;
        offset += Integer.BYTES;
        USED = offset;
        offset += Integer.BYTES;
        TOMBSTONES = offset;
        offset += Integer.BYTES;
        ALLOCATION = offset;
        offset += Long.BYTES;
        GROUPS = 64;  // header padded to one cache line
    }

    static final int SLOTS_PER_GROUP = 8;
    static final int CONTROL_BYTES = 8;
    static final int SLOT_BYTES = 7;
    static final int GROUP_BYTES = 64;
    /** Largest handle a slot holds. */
    static final long MAX_HANDLE = (1L << (8 * SLOT_BYTES)) - 1;
    /** A table never has more groups: past that it splits in two, so a rehash stays bounded. */
    static final int MAX_GROUPS = 128;
    static final int MAX_SLOTS = MAX_GROUPS * SLOTS_PER_GROUP;

    static final byte EMPTY = (byte) 0x80;
    static final byte DELETED = (byte) 0xFE;

    private static final int SHIFT_BITS = 57;
    private static final long ADDRESS_MASK = (1L << SHIFT_BITS) - 1;
    private static final long LSB = 0x0101_0101_0101_0101L;
    private static final long MSB = 0x8080_8080_8080_8080L;
    private static final long EMPTY_WORD = LSB * (EMPTY & 0xFF);

    private TableLayout() {
    }

    // ---- directory entries ----

    static long entry(long table) {
        return table | ((long) Integer.numberOfTrailingZeros(groups(table)) << SHIFT_BITS);
    }

    static long address(long entry) {
        return entry & ADDRESS_MASK;
    }

    static int groupMask(long entry) {
        return (1 << (entry >>> SHIFT_BITS)) - 1;
    }

    // ---- addresses ----

    /** Bytes allocated for a table of {@code groups}, alignment slack included. */
    static long bytes(int groups) {
        return GROUPS + (long) groups * GROUP_BYTES + GROUP_BYTES - 1;
    }

    static long group(long table, int g) {
        return table + GROUPS + ((long) g << 6);
    }

    /** The pointer of slot {@code s} of the group at {@code group}. */
    static long slot(long group, int s) {
        return group + CONTROL_BYTES - 1 + (long) s * SLOT_BYTES;
    }

    static long handle(long slot) {
        return NativeMemory.getLong(slot) >>> 8;
    }

    static void setHandle(long slot, long handle) {
        NativeMemory.putLong(slot, (NativeMemory.getLong(slot) & 0xFF) | (handle << 8));
    }

    /** The control byte's address for a slot pointer. */
    static long controlOfSlot(long slot) {
        long group = slot & -GROUP_BYTES;
        return group + (slot - group - (CONTROL_BYTES - 1)) / SLOT_BYTES;
    }

    // ---- control words ----

    static long controlWord(long group) {
        return NativeMemory.getLong(group);
    }

    static byte h2(long hash) {
        return (byte) (hash & 0x7F);
    }

    /** Bytes equal to {@code h2} get their top bit set; a few false positives on FULL bytes are possible. */
    static long matchH2(long controlWord, byte h2) {
        long x = controlWord ^ (LSB * h2);
        return (x - LSB) & ~x & MSB;
    }

    static long matchEmpty(long controlWord) {
        return controlWord & ~(controlWord << 6) & MSB;
    }

    static long matchEmptyOrDeleted(long controlWord) {
        return controlWord & MSB;
    }

    static long matchFull(long controlWord) {
        return ~controlWord & MSB;
    }

    /** Slot index of the lowest set match bit. */
    static int firstMatch(long match) {
        return Long.numberOfTrailingZeros(match) >>> 3;
    }

    // ---- tables ----

    /** Allocates an empty table of {@code groups}, stamped with the current epoch. */
    static long allocate(MapMemory memory, int groups, int localDepth) {
        long allocation = memory.allocate(bytes(groups));
        long table = (allocation + GROUP_BYTES - 1) & -GROUP_BYTES;
        NativeMemory.putLong(table + CREATED_EPOCH, memory.epoch());
        NativeMemory.putInt(table + LOCAL_DEPTH, localDepth);
        NativeMemory.putInt(table + GROUP_MASK, groups - 1);
        NativeMemory.putInt(table + USED, 0);
        NativeMemory.putInt(table + TOMBSTONES, 0);
        NativeMemory.putLong(table + ALLOCATION, allocation);
        for (int g = 0; g < groups; g++) {
            NativeMemory.putLong(group(table, g), EMPTY_WORD);
        }
        return table;
    }

    /** A copy of {@code table}, stamped with the current epoch. */
    static long copy(MapMemory memory, long table) {
        int groups = groups(table);
        long allocation = memory.allocate(bytes(groups));
        long copy = (allocation + GROUP_BYTES - 1) & -GROUP_BYTES;
        NativeMemory.copy(table, copy, GROUPS + (long) groups * GROUP_BYTES);
        NativeMemory.putLong(copy + CREATED_EPOCH, memory.epoch());
        NativeMemory.putLong(copy + ALLOCATION, allocation);
        return copy;
    }

    static void free(MapMemory memory, long table) {
        memory.free(allocation(table), bytes(groups(table)));
    }

    static void retire(MapMemory memory, long table) {
        memory.retire(allocation(table), bytes(groups(table)), createdEpoch(table));
    }

    static int groups(long table) {
        return NativeMemory.getInt(table + GROUP_MASK) + 1;
    }

    static int localDepth(long table) {
        return NativeMemory.getInt(table + LOCAL_DEPTH);
    }

    static int used(long table) {
        return NativeMemory.getInt(table + USED);
    }

    static int tombstones(long table) {
        return NativeMemory.getInt(table + TOMBSTONES);
    }

    static long createdEpoch(long table) {
        return NativeMemory.getLong(table + CREATED_EPOCH);
    }

    private static long allocation(long table) {
        return NativeMemory.getLong(table + ALLOCATION);
    }

    /** Largest number of slots that may be taken (by entries or tombstones) in a table of {@code groups}. */
    static int maxLoad(int groups) {
        return groups * 7;
    }
}
