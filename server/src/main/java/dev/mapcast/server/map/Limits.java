package dev.mapcast.server.map;

import static dev.mapcast.proto.v1.IterationOrder.ITERATION_ORDER_HASH_VALUE;
import static dev.mapcast.proto.v1.IterationOrder.ITERATION_ORDER_INSERTION_VALUE;
import static dev.mapcast.proto.v1.IterationOrder.ITERATION_ORDER_UNSPECIFIED_VALUE;

import dev.mapcast.core.IterationOrder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;

/**
 * The server's limits, set through {@link MapcastServer.Builder}. A request over a limit is refused
 * whole with a status naming the value and the limit.
 */
public record Limits(
        int maxKeyBytes,
        int maxValueBytes,
        int maxWriteBytes,
        int maxMapNameBytes,
        int maxMaps,
        long maxEntriesPerMap,
        int historyDeltas,
        long historyBytes,
        long watcherQueueBytes,
        Duration slowWatcherTimeout,
        Duration progressInterval,
        Duration watchLinger) {

    public static final Limits DEFAULTS = new Limits(
            4 * 1024,            // key: a configuration key, not a document
            1024 * 1024,         // value
            4 * 1024 * 1024,     // one Write, all puts and deletes
            256,                 // map name
            1024,                // maps per server
            10_000_000L,         // entries per map
            10_000,              // deltas kept for resuming watchers...
            16L * 1024 * 1024,   // ...and their bytes (per map: the server-wide worst case is maxMaps times this)
            8L * 1024 * 1024,    // bytes queued for one watcher before it is moved to a snapshot
            Duration.ofSeconds(30),
            Duration.ofSeconds(10),
            Duration.ofMillis(1));   // at most one write per watcher connection per millisecond

    static StatusRuntimeException invalid(String description) {
        return Status.INVALID_ARGUMENT.withDescription(description).asRuntimeException();
    }

    /**
     * The order an {@code IterationOrder} field's wire value asks for (UNSPECIFIED: the default,
     * HASH). A value the contract does not define is refused, naming {@code field} and the value:
     * protobuf keeps it as a number rather than refusing it.
     */
    public static IterationOrder iterationOrder(int value, String field) {
        return switch (value) {
            case ITERATION_ORDER_INSERTION_VALUE -> IterationOrder.INSERTION;
            case ITERATION_ORDER_HASH_VALUE, ITERATION_ORDER_UNSPECIFIED_VALUE -> IterationOrder.HASH;
            default -> throw invalid(field + ": " + value
                    + " (expected: ITERATION_ORDER_UNSPECIFIED, _HASH or _INSERTION)");
        };
    }

    /** Checks a map name: non-empty and at most {@link #maxMapNameBytes} UTF-8 bytes. */
    public void checkMapName(String name) {
        if (name.isEmpty()) {
            throw invalid("map: empty (expected: a map name)");
        }
        int bytes = Utf8.length(name);
        if (bytes > maxMapNameBytes) {
            throw invalid("map: " + bytes + " bytes (expected: at most " + maxMapNameBytes + ")");
        }
    }

    /** Checks a key's UTF-8 bytes: non-empty and at most {@link #maxKeyBytes}. */
    public void checkKey(byte[] key, String what) {
        if (key.length == 0) {
            throw invalid(what + ": empty key (expected: 1 to " + maxKeyBytes + " bytes of UTF-8)");
        }
        if (key.length > maxKeyBytes) {
            throw invalid(what + ": key " + Utf8.preview(key) + " is " + key.length + " bytes (expected: at most "
                    + maxKeyBytes + ")");
        }
    }
}
