package dev.mapcast.server.auth;

import com.google.protobuf.MessageLite;
import dev.mapcast.proto.v1.IterationOrder;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.server.map.ChangeOrder;
import dev.mapcast.server.map.HostedMap;
import dev.mapcast.server.map.Limits;
import dev.mapcast.server.map.MapRegistry;
import dev.mapcast.server.map.NormalisedWrite;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.function.Function;

/**
 * Where users, roles and token hashes live: the reserved map {@value #MAP}, written through the
 * same {@link ChangeOrder} as every map. So they are durable, replicated by the Raft log in a
 * cluster, and every member derives the same {@link AuthState} at the same revision. Clients
 * cannot name the map: every name starting with {@value #RESERVED_PREFIX} is the server's.
 *
 * <p>A change is read-modify-write: computed from the state at the map's current revision and
 * written on the condition that the map is still at that revision (retried when another change
 * came first).
 */
public final class AuthStore {

    public static final String RESERVED_PREFIX = "__mapcast/";
    public static final String MAP = RESERVED_PREFIX + "auth";
    private static final int ATTEMPTS = 10;

    private final MapRegistry maps;
    private final ChangeOrder order;
    private final Limits limits;
    private volatile AuthState cached = AuthState.EMPTY;
    private volatile HostedMap cachedMap;

    public AuthStore(MapRegistry maps, ChangeOrder order, Limits limits) {
        this.maps = maps;
        this.order = order;
        this.limits = limits;
    }

    /** The state as of the auth map's latest revision applied here. Cheap when nothing changed. */
    AuthState current() {
        HostedMap map = maps.find(MAP);
        AuthState state = cached;
        if (map == cachedMap && (map == null || map.head().revision() == state.revision)) {
            return state;
        }
        synchronized (this) {
            if (map == null) {
                cached = AuthState.EMPTY;
            } else {
                HostedMap.Contents contents = map.contents();
                cached = AuthState.of(contents.revision(), contents.entries());
            }
            cachedMap = map;
            return cached;
        }
    }

    /** The state after every change acknowledged anywhere before the call (a linearizable read). */
    AuthState latest() {
        order.awaitReadable();
        return current();
    }

    /** What a change computed: its puts and deletes of auth-map records, and what to answer. */
    static final class Edit<T> {
        final Map<String, MessageLite> puts = new LinkedHashMap<>();
        final List<String> deletes = new ArrayList<>();
        T result;

        Edit<T> put(String key, MessageLite record) {
            puts.put(key, record);
            return this;
        }

        Edit<T> delete(String key) {
            deletes.add(key);
            return this;
        }

        Edit<T> answer(T result) {
            this.result = result;
            return this;
        }

        /** The keys it touches, for the audit log. */
        List<String> keys() {
            List<String> keys = new ArrayList<>(puts.keySet());
            keys.addAll(deletes);
            return keys;
        }
    }

    /** A committed change: its answer, the auth map's revision after it, the keys it touched. */
    record Applied<T>(T result, long revision, List<String> keys) {
    }

    /**
     * Computes a change from the latest state and writes it if the state has not changed meanwhile;
     * {@code change} may throw a status (NOT_FOUND, ALREADY_EXISTS...) to refuse. An edit that
     * changes nothing is not written (revision 0).
     */
    <T> Applied<T> update(Function<AuthState, Edit<T>> change) {
        for (int attempt = 1; ; attempt++) {
            AuthState state = latest();
            Edit<T> edit = change.apply(state);
            if (edit.puts.isEmpty() && edit.deletes.isEmpty()) {
                return new Applied<>(edit.result, 0, List.of());
            }
            WriteRequest.Builder request = WriteRequest.newBuilder().setMap(MAP)
                    .setOrder(IterationOrder.ITERATION_ORDER_INSERTION).addAllDeletes(edit.deletes);
            edit.puts.forEach((key, record) -> request.putPuts(key, record.toByteString()));
            if (state.revision == 0) {  // no map yet: the condition is that the keys are still absent
                for (String key : edit.keys()) {
                    request.putExpectedModRevisions(key, 0);
                }
            } else {
                request.setExpectedRevision(state.revision);
            }
            try {
                long revision = write(request.build());
                return new Applied<>(edit.result, revision, edit.keys());
            } catch (StatusRuntimeException e) {
                if (e.getStatus().getCode() != Status.Code.FAILED_PRECONDITION) {
                    throw e;
                }
                if (attempt == ATTEMPTS) {
                    throw Status.ABORTED.withDescription("users and roles changed under " + ATTEMPTS + " attempts"
                            + " of this change in a row; nothing was changed, try again").asRuntimeException();
                }
            }
        }
    }

    private long write(WriteRequest request) {
        CompletableFuture<Long> done = new CompletableFuture<>();
        order.write(NormalisedWrite.of(request, limits), (revision, incarnation, failure) -> {
            if (failure == null) {
                done.complete(revision);
            } else {
                done.completeExceptionally(failure);
            }
        });
        try {
            return done.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof StatusRuntimeException s) {
                throw s;
            }
            throw Status.INTERNAL.withDescription("auth change failed: " + e.getCause()).withCause(e.getCause())
                    .asRuntimeException();
        }
    }

    /** Whether {@code map} is one of the server's own, which no client call may name. */
    public static boolean isReserved(String map) {
        return map.startsWith(RESERVED_PREFIX);
    }
}
