package dev.mapcast.server.map;

import dev.mapcast.codec.EncodedMessages.Encoded;
import io.grpc.Status;

/**
 * A watch stream as a map sees it: what {@link HostedMap} and {@link MapRegistry} call on it, all
 * under their locks. The fan-out's {@code Watcher} implements it; the interface keeps the map
 * package free of the fan-out (dependencies point from the fan-out to the maps, not back).
 */
public interface Subscriber {

    /** The map it watches. */
    String mapName();

    /** Whether it waits for an absent (or deleted) map rather than ending (WatchRequest.wait_for_map). */
    boolean waitForMap();

    /** Registers with {@code map} (through {@link MapRegistry#attach}); false if the map was deleted meanwhile. */
    boolean registerWith(HostedMap map);

    /** Parked by the registry until the map is created (the client is told it does not exist, once). */
    void waitForCreation();

    /**
     * The map it waited for was created (under the registry's creation lock, right after the
     * creating write): attach to it, at once if it can (see {@link HostedMap#registerAtCreation}).
     */
    void mapCreated(HostedMap created);

    /**
     * Its map was deleted (under the registry's creation lock and the map's lock): a waiting client
     * is sent {@code notice}, any other stream ends with {@code gone}. Returns true if the registry
     * is to park it at once among the watchers waiting for the map, with the notice queued behind
     * everything it still has to send: then a map created meanwhile follows in the same stream, and
     * no incarnation, however short, is skipped.
     */
    boolean mapDeleted(Encoded notice, Status gone);

    /** What to send first; called once, under the map's lock, by {@link HostedMap#register}. */
    void begin(Encoded preface, SnapshotSender snapshot, Iterable<Encoded> history);

    /** Replaces what is pending with {@code preface} (may be null) and a snapshot. */
    void restart(Encoded preface, SnapshotSender fresh);

    /** Queues an event, under the map's lock, in revision order; {@link #sendFromCaller} sends it after. */
    void enqueue(Encoded event);

    /** Sends what is queued from the writer's thread, once the map's lock is released. */
    void sendFromCaller(long now);

    /** Moves it to a Compaction event and a fresh snapshot (the map was restored). */
    void resnapshot();

    /** Ends the stream with this status (server shutdown, slow watcher, map out of service). */
    void end(Status status);

    /** Periodic check: a progress event when idle, the end of a stream stalled too long. */
    void tick(long now, long progressIntervalNanos);

    /** Bytes queued and not yet sent. */
    long queuedBytes();
}
