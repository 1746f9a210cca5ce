package dev.mapcast.core;

/**
 * A reference to a stored record, packed into a long.
 *
 * <pre>
 *   63        56 55                   32 31                               0
 *   +-----------+-----------------------+---------------------------------+
 *   |  0 0 0 0  |    segment id + 1     |   byte offset in the segment    |
 *   +-----------+-----------------------+---------------------------------+
 * </pre>
 *
 * The segment id is stored plus one so that no reference is 0: 0 means "no record" wherever
 * references are kept (the insertion-order log uses it for holes). References fit in 56 bits, the
 * width of an index slot (see {@link TableLayout}), so a map holds at most {@link #MAX_SEGMENTS}
 * segments: 1 TiB with the default 64 KiB segments.
 */
final class RecordRef {

    static final long NONE = 0;
    static final int MAX_SEGMENTS = (1 << 24) - 1;

    private RecordRef() {
    }

    static long of(int segment, int offset) {
        return ((long) (segment + 1) << 32) | (offset & 0xFFFF_FFFFL);
    }

    static int segment(long ref) {
        return (int) (ref >>> 32) - 1;
    }

    static int offset(long ref) {
        return (int) ref;
    }
}
