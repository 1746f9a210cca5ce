package dev.mapcast.core;

/**
 * The segment table: one 64-byte entry per segment id, in one off-heap array, so that a pinned view
 * takes the whole table with one copy. Segment data blocks hold records back to back from offset 0
 * (see {@link RecordLayout}); each has a live bitmap beside it.
 *
 * <pre>
 *   entry, 64 bytes                          live bitmap, one bit per 6 data bytes
 *   0        8        16       24            bit (offset / 6) is set while the record
 *   +--------+--------+--------+--------+    starting at that offset is live; records are
 *   | data   | data   | bitmap | bitmap |    at least {@value RecordLayout#MIN_RECORD_LENGTH}
 *   | addr   | epoch  | addr   | epoch  |    bytes long, so no two starts share a bit
 *   +--------+--------+--------+--------+
 *   32   36   40   44   48   52   56   60   64
 *   +----+----+----+----+----+----+----+----+
 *   |cap |used|live|dead|link|flag|recs| -- |   int fields; data addr 0 marks a free id
 *   +----+----+----+----+----+----+----+----+
 * </pre>
 *
 * {@code used} is the append position; {@code 0 <= live + dead <= used <= cap}; {@code recs} counts
 * the live records, so a reader can take a segment with {@code live == used} whole. {@code link} chains
 * the segments queued for compaction. The epochs are the blocks' copy-on-write stamps (see
 * {@link MapMemory}).
 */
final class SegmentLayout {

    static final int DATA_ADDRESS;
    static final int DATA_EPOCH;
    static final int BITMAP_ADDRESS;
    static final int BITMAP_EPOCH;
    static final int CAPACITY;
    static final int USED;
    static final int LIVE_BYTES;
    static final int DEAD_BYTES;
    static final int LINK;
    static final int FLAGS;
    static final int LIVE_RECORDS;
    static final int ENTRY_BYTES;

    static {
        int offset = 0;
        DATA_ADDRESS = offset;
        offset += Long.BYTES;
        DATA_EPOCH = offset;
        offset += Long.BYTES;
        BITMAP_ADDRESS = offset;
        offset += Long.BYTES;
        BITMAP_EPOCH = offset;
        offset += Long.BYTES;
        CAPACITY = offset;
        offset += Integer.BYTES;
        USED = offset;
        offset += Integer.BYTES;
        LIVE_BYTES = offset;
        offset += Integer.BYTES;
        DEAD_BYTES = offset;
        offset += Integer.BYTES;
        LINK = offset;
        offset += Integer.BYTES;
        FLAGS = offset;
        offset += Integer.BYTES;
        LIVE_RECORDS = offset;
        offset += Integer.BYTES;
        ENTRY_BYTES = offset + Integer.BYTES;  // padded to 64
    }

    /** Flag: the segment is in the compaction queue. */
    static final int FLAG_QUEUED = 1;
    /** Flag: the segment no longer takes appends. */
    static final int FLAG_SEALED = 2;

    /** Data bytes covered by one bit of the live bitmap: two record starts are at least this far apart. */
    static final int BYTES_PER_BIT = RecordLayout.MIN_RECORD_LENGTH;

    /** No segment: ends the compaction queue. */
    static final int NO_SEGMENT = -1;

    private SegmentLayout() {
    }

    static long entry(long table, int id) {
        return table + (long) id * ENTRY_BYTES;
    }

    /** Bitmap size for a segment of {@code capacity} data bytes, in whole longs. */
    static long bitmapBytes(int capacity) {
        long bits = (capacity + BYTES_PER_BIT - 1) / BYTES_PER_BIT;
        return ((bits + 63) >>> 6) << 3;
    }

    static boolean isLive(long bitmap, int offset) {
        int bit = offset / BYTES_PER_BIT;
        return (NativeMemory.getLong(bitmap + ((bit >>> 6) << 3)) & (1L << bit)) != 0;
    }

    static void setLive(long bitmap, int offset, boolean live) {
        int bit = offset / BYTES_PER_BIT;
        long word = bitmap + ((bit >>> 6) << 3);
        long v = NativeMemory.getLong(word);
        NativeMemory.putLong(word, live ? v | (1L << bit) : v & ~(1L << bit));
    }
}
