package dev.mapcast.core;

/**
 * A map's memory figures at one moment; cheap to take.
 *
 * @param size live entries
 * @param reservedBytes off-heap bytes the map holds in all: segments, bitmaps, index, order log,
 *     pinned views' copies and blocks kept for pinned views
 * @param liveBytes bytes of live records (each is one encoded map entry)
 * @param deadBytes bytes of overwritten or removed records not yet reclaimed by compaction
 * @param tombstones deleted index slots not yet purged
 * @param load live entries per index slot
 * @param segments record segments held
 * @param pinnedViews pinned views open
 * @param indexBytes off-heap bytes of the index: directory and tables
 * @param segmentBytes off-heap bytes of record segments, their live bitmaps and the segment table
 * @param orderLogBytes off-heap bytes of the insertion-order log (0 in HASH order); what
 *     {@code reservedBytes} holds beyond these three is kept for, or copied by, pinned views
 * @param tombstoneWarningRatio tombstones per index slot above which {@link #tombstoneWarning()} is set
 * @param tombstoneWarning whether tombstones have built up past the warning ratio
 */
public record MemoryStats(long size, long reservedBytes, long liveBytes, long deadBytes, long tombstones,
        double load, int segments, int pinnedViews, long indexBytes, long segmentBytes, long orderLogBytes,
        double tombstoneWarningRatio, boolean tombstoneWarning) {
}
