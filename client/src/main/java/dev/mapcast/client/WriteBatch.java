package dev.mapcast.client;

import com.google.protobuf.ByteString;
import dev.mapcast.proto.v1.IterationOrder;
import dev.mapcast.proto.v1.WriteRequest;
import java.nio.charset.StandardCharsets;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;

/**
 * One atomic Write to one map: puts, deletes and conditions, committed as exactly one new revision
 * or not at all. Made by {@link MapcastClient#write(String)}; not thread-safe; commit once.
 *
 * <pre>{@code
 * long revision = client.write("config")
 *         .put("region", "eu-west-1")
 *         .delete("legacy-flag")
 *         .ifModRevision("region", lastSeen)   // compare-and-set on one key
 *         .commit();
 * }</pre>
 *
 * <p>The server normalises a batch: a key put twice keeps its last value, and a key both put and
 * deleted is deleted (deletes apply after puts).
 */
public final class WriteBatch {

    private final MapcastClient client;
    private final WriteRequest.Builder request;

    WriteBatch(MapcastClient client, String map) {
        this.client = client;
        this.request = WriteRequest.newBuilder().setMap(Objects.requireNonNull(map, "map"));
    }

    public WriteBatch put(String key, byte[] value) {
        request.putPuts(Objects.requireNonNull(key, "key"), ByteString.copyFrom(Objects.requireNonNull(value, "value")));
        return this;
    }

    /** Puts a string value, as UTF-8. */
    public WriteBatch put(String key, String value) {
        return put(key, Objects.requireNonNull(value, "value").getBytes(StandardCharsets.UTF_8));
    }

    public WriteBatch delete(String key) {
        request.addDeletes(Objects.requireNonNull(key, "key"));
        return this;
    }

    /** Applies only while the map is at {@code revision} (the map-level compare-and-set). */
    public WriteBatch ifRevision(long revision) {
        if (revision < 1) {
            throw new IllegalArgumentException("revision: " + revision + " (expected: >= 1; use no condition for any)");
        }
        request.setExpectedRevision(revision);
        return this;
    }

    /** Applies only if {@code key} was last written at {@code modRevision}. */
    public WriteBatch ifModRevision(String key, long modRevision) {
        if (modRevision < 1) {
            throw new IllegalArgumentException("modRevision: " + modRevision + " (expected: >= 1; use ifAbsent)");
        }
        request.putExpectedModRevisions(Objects.requireNonNull(key, "key"), modRevision);
        return this;
    }

    /** Applies only if {@code key} is absent. */
    public WriteBatch ifAbsent(String key) {
        request.putExpectedModRevisions(Objects.requireNonNull(key, "key"), 0);
        return this;
    }

    /** The iteration order of the map if this write creates it (default HASH). */
    public WriteBatch order(dev.mapcast.core.IterationOrder order) {
        request.setOrder(order == dev.mapcast.core.IterationOrder.INSERTION
                ? IterationOrder.ITERATION_ORDER_INSERTION : IterationOrder.ITERATION_ORDER_HASH);
        return this;
    }

    /**
     * Commits and waits; returns the revision created.
     *
     * @throws ConditionFailedException if a condition did not hold (nothing was written)
     * @throws MapcastException if the server refused the write or could not be reached
     */
    public long commit() {
        return client.commit(request.build());
    }

    /**
     * Commits without waiting; the future completes with the revision or a {@link MapcastException}.
     * It completes on the client's network thread (no thread hand-off per write): stages added
     * with {@code thenApply}, {@code whenComplete} and the like run there, so keep them short and
     * never block in them; use the {@code ...Async(fn, executor)} forms for anything longer.
     */
    public CompletableFuture<Long> commitAsync() {
        return client.commitAsync(request.build());
    }
}
