package dev.mapcast.client;

/** Told after each chunk of a snapshot saved by {@link MapcastClient#saveSnapshot}, on the caller's thread. */
@FunctionalInterface
public interface SnapshotProgress {

    /**
     * @param entries entries written so far
     * @param totalEntries the map's entry count as the server announced it (0 if not yet known)
     * @param bytes bytes written so far
     */
    void onChunk(long entries, long totalEntries, long bytes);
}
