package dev.mapcast.client;

import java.util.Map;
import java.util.Set;

/**
 * Told about a replica's changes after they are applied and visible: in revision order, one call
 * at a time, on a thread of the client's listener pool (never a network thread, so a listener may
 * call the client, even block). A slow listener delays only this replica's later notifications and
 * {@link Replica#awaitRevision} callers; the replica's state keeps following the server.
 *
 * <p>The contract, for one replica:
 * <ul>
 * <li>Every write the replica applies reaches {@link #onChange} exactly once, in revision order:
 * the write that created the map included, when the replica was open before it (it then gets
 * {@code onResync(0, INITIAL)} for the empty map, then {@code onChange(1, ...)}).
 * <li>When the state is replaced by a snapshot instead, {@link #onResync} says so, and the writes
 * it skipped are not told one by one. A replica's revision goes backwards only through an
 * {@code onResync} with {@link ResyncReason#RECREATED} (another incarnation of the map) or after
 * {@link #onDeleted}.
 * <li>{@link #onDeleted}: the map was deleted; the replica is empty and waits for it to be created
 * again, which it reports as {@code onResync(0, RECREATED)} and then {@code onChange} for each write.
 * </ul>
 */
public interface ReplicaListener<K, V> {

    /** One committed write, as the server normalised it. */
    default void onChange(long revision, Map<K, V> puts, Set<K> deletes) {
    }

    /**
     * The replica's whole state was replaced by a snapshot (the first sync, a resume the server's
     * history could not serve, a resynchronisation after a gap or a digest mismatch, or another
     * incarnation of the map).
     */
    default void onResync(long revision, ResyncReason reason) {
    }

    /**
     * The map was deleted at {@code revision} (DeleteMap); the replica is now empty at revision 0
     * and waits for the map to be created again.
     */
    default void onDeleted(long revision) {
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
        SNAPSHOT_FILE,
        /**
         * Another incarnation of the map: it was deleted and created again, or the server lost it (a
         * server restarted without its data, a data directory replaced). The revision may be lower
         * than the replica's was.
         */
        RECREATED
    }
}
