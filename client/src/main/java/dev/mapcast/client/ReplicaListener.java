package dev.mapcast.client;

import java.util.Map;
import java.util.Set;

/**
 * Told about a replica's changes after they are applied and visible: in revision order, one call
 * at a time, on a thread of the client's listener pool (never a network thread, so a listener may
 * call the client, even block). A slow listener delays only this replica's later notifications and
 * {@link Replica#awaitRevision} callers; the replica's state keeps following the server.
 */
public interface ReplicaListener<K, V> {

    /** One committed write, as the server normalised it. */
    default void onChange(long revision, Map<K, V> puts, Set<K> deletes) {
    }

    /**
     * The replica's whole state was replaced by a snapshot (the first sync, a resume the server's
     * history could not serve, or a resynchronisation after a gap or a digest mismatch).
     */
    default void onResync(long revision, ResyncReason reason) {
    }

    /** Why a replica took a snapshot. */
    enum ResyncReason {
        /** The first snapshot. */
        INITIAL,
        /** The server sent a snapshot (history compacted, or this replica fell behind). */
        SERVER,
        /** A delta did not follow the replica's revision. */
        GAP,
        /** The digest after a delta (or at a Progress event) did not match the server's. */
        DIGEST_MISMATCH,
        /** The server sent a message this client could not read. */
        MALFORMED,
        /** The replica started from a snapshot file (warm start), before resuming from the server. */
        SNAPSHOT_FILE
    }
}
