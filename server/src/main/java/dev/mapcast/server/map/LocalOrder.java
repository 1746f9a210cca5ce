package dev.mapcast.server.map;

import dev.mapcast.core.OffHeapMap;
import dev.mapcast.proto.v1.Compaction;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The order of a single server: a change is applied as it arrives, each map's lock ordering its
 * writes and its write-ahead log making them durable before they are acknowledged.
 */
public final class LocalOrder implements ChangeOrder {

    private static final Logger log = LoggerFactory.getLogger(LocalOrder.class);

    private final MapRegistry maps;
    private final Executor pool;

    /** {@code pool}: where a write that has to wait (a busy lock, a log to force) waits. */
    public LocalOrder(MapRegistry maps, Executor pool) {
        this.maps = maps;
        this.pool = pool;
    }

    /**
     * Commits the write on the calling thread (an event loop) when that cannot wait (see {@link
     * MapRegistry#tryWrite}), else on the pool.
     */
    @Override
    public void write(NormalisedWrite write, WriteOutcome outcome) {
        long revision;
        try {
            revision = maps.tryWrite(write);
        } catch (RuntimeException | Error e) {
            outcome.done(0, 0, statusOf(e));
            return;
        }
        if (revision != MapRegistry.WOULD_WAIT) {
            outcome.done(revision, write.incarnation, null);
            return;
        }
        try {
            pool.execute(() -> {
                long committed;
                try {
                    committed = maps.write(write);
                } catch (RuntimeException | Error e) {
                    outcome.done(0, 0, statusOf(e));
                    return;
                }
                outcome.done(committed, write.incarnation, null);
            });
        } catch (RejectedExecutionException closing) {
            outcome.done(0, 0, MapRegistry.SHUTTING_DOWN.asRuntimeException());
        }
    }

    @Override
    public Compaction compact(String map, long revision) {
        return maps.existing(map).compact(revision);
    }

    @Override
    public MapRegistry.Version restore(String map, OffHeapMap staged) {
        return maps.restore(map, staged, 0);
    }

    @Override
    public MapRegistry.Version delete(String map, long expectedRevision, long expectedIncarnation) {
        return maps.delete(map, expectedRevision, expectedIncarnation);
    }

    @Override
    public void awaitReadable() {
        // one server: what it acknowledged, it holds
    }

    /** The status a failed change answers with; a bug (not a status) is logged and INTERNAL. */
    static StatusRuntimeException statusOf(Throwable e) {
        if (e instanceof StatusRuntimeException s) {
            return s;
        }
        log.error("write failed", e);
        return Status.INTERNAL.withDescription("write failed: " + e).withCause(e).asRuntimeException();
    }
}
