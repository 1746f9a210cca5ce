package dev.mapcast.core;

/** The order in which a map's entries are iterated, chosen per map when it is built. */
public enum IterationOrder {
    /**
     * The fastest order: records in the order they sit in memory, so runs of entries go out as
     * single memory copies. Unspecified; it changes with updates and compaction.
     */
    HASH,
    /**
     * First-insertion order: an update keeps the key's place, a remove followed by a put moves it to
     * the end. The same history gives the same order whatever the seed, capacity or compaction
     * history, so snapshots of equal histories are equal byte for byte.
     */
    INSERTION
}
