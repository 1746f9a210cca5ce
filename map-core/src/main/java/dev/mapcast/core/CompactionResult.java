package dev.mapcast.core;

/**
 * What one on-demand compaction reclaimed.
 *
 * @param tombstonesPurged index tombstones removed
 * @param deadBytesReclaimed bytes of dead records whose memory was reclaimed
 * @param bytesReleased off-heap bytes the map gave back (segments, tables, log chunks)
 */
public record CompactionResult(long tombstonesPurged, long deadBytesReclaimed, long bytesReleased) {
}
