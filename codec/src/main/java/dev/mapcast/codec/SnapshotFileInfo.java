package dev.mapcast.codec;

import dev.mapcast.core.IterationOrder;

/**
 * What a verified snapshot file holds: its header's fields, and what reading or writing it found.
 *
 * @param map the map's name
 * @param revision the map's revision in the snapshot
 * @param order the map's iteration order
 * @param compactRevision the map's compact revision
 * @param chunks how many {@code SnapshotChunk}s the file holds
 * @param entries how many entries (the footer's {@code total_entries}, checked)
 * @param bytes the file's size
 * @param digest the content digest (the footer's, checked against the entries)
 * @param crc32c the CRC-32C of every byte before the footer's length prefix (the footer's, checked)
 * @param incarnation the map's incarnation (the header's; 0 in files older than incarnations)
 */
public record SnapshotFileInfo(String map, long revision, IterationOrder order, long compactRevision, long chunks,
        long entries, long bytes, long digest, int crc32c, long incarnation) {
}
