package dev.mapcast.core;

/**
 * One table of the index, in one off-heap block aligned to 64 bytes: a header, the control words of
 * all groups back to back, then the slots of all groups, one group's 8 slots per cache line.
 * A slot holds the entry's handle (see {@link RecordLocator}).
 *
 * <pre>
 *   0                 64                    64 + 8g (rounded up to 64)       + 64g
 *   +-----------------+----------+----------+----+--------------+---- ... ----+
 *   | header          | ctrl  g0 | ctrl  g1 | .. | slots of g0  | slots g1 .. |
 *   | (see below)     | 8 bytes  | 8 bytes  |    | 8 x 8 bytes  |             |
 *   +-----------------+----------+----------+----+--------------+---- ... ----+
 *
 *   header: 0 created epoch (long) | 8 local depth | 12 group mask | 16 used | 20 tombstones
 *           | 24 address of the allocation (long), which starts up to 63 bytes before the table
 *
 *   control byte (byte i of a group's little-endian control word belongs to slot i):
 *           1000 0000  EMPTY      1111 1110  DELETED (tombstone)      0hhh hhhh  FULL, 7 hash bits
 * </pre>
 *
 * Why split control words from slots (as Abseil does): a lookup reads one control word, from an
 * array one ninth of the table's size that stays in cache, and then one slot line.
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
    static final int CONTROLS;

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
        CONTROLS = 64;  // header padded to one cache line
    }

    static final int SLOTS_PER_GROUP = 8;
    static final int CONTROL_BYTES = 8;
    static final int SLOT_BYTES = Long.BYTES;
    static final int GROUP_SLOT_BYTES = SLOTS_PER_GROUP * SLOT_BYTES;
    static final int CACHE_LINE = 64;
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

    static long slotsOffset(int groups) {
        return CONTROLS + (((long) groups * CONTROL_BYTES + CACHE_LINE - 1) & -CACHE_LINE);
    }

    /** Bytes allocated for a table of {@code groups}, alignment slack included. */
    static long bytes(int groups) {
        return slotsOffset(groups) + (long) groups * GROUP_SLOT_BYTES + CACHE_LINE - 1;
    }

    static long control(long table, int g) {
        return table + CONTROLS + (long) g * CONTROL_BYTES;
    }

    static long slot(long table, int groups, int g, int s) {
        return table + slotsOffset(groups) + (long) g * GROUP_SLOT_BYTES + (long) s * SLOT_BYTES;
    }

    /** The control byte's address for the slot at {@code slotAddress}. */
    static long controlOfSlot(long table, int groups, long slotAddress) {
        long index = (slotAddress - table - slotsOffset(groups)) / SLOT_BYTES;
        return table + CONTROLS + index;  // slot index g*8+s is also the control byte's index
    }

    // ---- control words ----

    static long controlWord(long table, int g) {
        return NativeMemory.getLong(control(table, g));
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
        long table = (allocation + CACHE_LINE - 1) & -CACHE_LINE;
        NativeMemory.putLong(table + CREATED_EPOCH, memory.epoch());
        NativeMemory.putInt(table + LOCAL_DEPTH, localDepth);
        NativeMemory.putInt(table + GROUP_MASK, groups - 1);
        NativeMemory.putInt(table + USED, 0);
        NativeMemory.putInt(table + TOMBSTONES, 0);
        NativeMemory.putLong(table + ALLOCATION, allocation);
        for (int g = 0; g < groups; g++) {
            NativeMemory.putLong(control(table, g), EMPTY_WORD);
        }
        return table;
    }

    /** A copy of {@code table}, stamped with the current epoch. */
    static long copy(MapMemory memory, long table) {
        int groups = groups(table);
        long allocation = memory.allocate(bytes(groups));
        long copy = (allocation + CACHE_LINE - 1) & -CACHE_LINE;
        NativeMemory.copy(table, copy, bytes(groups) - (CACHE_LINE - 1));
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
