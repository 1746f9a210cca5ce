package dev.mapcast.server.map;

import dev.mapcast.core.OffHeapMap;
import dev.mapcast.proto.v1.Compaction;
import io.grpc.StatusRuntimeException;

/**
 * Where the order of changes comes from: the seam between the RPC layer, which hands every change
 * to the maps here, and the maps ({@link MapRegistry}), which apply each change, in that order, the
 * same way whatever gave the order. Two sources:
 * <ul>
 * <li>{@link LocalOrder}, a single server: each map's lock orders its writes and its own write-ahead
 * log makes them durable (group commit).
 * <li>{@code cluster.RaftOrder}, a Raft group: the replicated log orders the changes, and every
 * member applies them in that order, through its state machine, to a registry kept in memory.
 * </ul>
 * Why not a one-member Raft group for the single server as well: through mapcast, the project's
 * log commits about 3x the writes per second of a one-member Raft group, at about 1.5x less CPU a
 * write (BENCHMARKS.md, "One server: own log or Raft").
 *
 * <p>A refused change throws (or completes with) a {@code StatusRuntimeException} whose status
 * says why; it changed nothing.
 */
public interface ChangeOrder {

    /**
     * Where a write's outcome goes: its revision and map incarnation, or why it failed (then both
     * are 0; the exception carries the status and any trailers for the client).
     */
    interface WriteOutcome {
        void done(long revision, long incarnation, StatusRuntimeException failure);
    }

    /** Orders and applies a write; {@code outcome} is called once, on any thread. */
    void write(NormalisedWrite write, WriteOutcome outcome);

    /** Compacts a map (see {@link HostedMap#compact}). */
    Compaction compact(String map, long revision);

    /** Replaces a map's content (see {@link MapRegistry#restore}); takes ownership of {@code staged}. */
    MapRegistry.Version restore(String map, OffHeapMap staged);

    /** Deletes a map (see {@link MapRegistry#delete}). */
    MapRegistry.Version delete(String map, long expectedRevision, long expectedIncarnation);

    /**
     * Returns once this server's maps hold every change acknowledged, anywhere, before the call:
     * what a linearizable read waits for. At once on a single server.
     */
    void awaitReadable();
}
