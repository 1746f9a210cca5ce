package dev.mapcast.client;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.MoreExecutors;
import dev.mapcast.codec.ProtocolHeaders;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.Deadline;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.stub.ClientCalls;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

/**
 * Unary calls across the {@link Members}, failing over on UNAVAILABLE by the rules stated in
 * {@link MapcastClient}'s javadoc: a read goes to the next member; a write only when it certainly
 * did not apply (the server said so, or it never left this client). Each member is tried at most
 * once per call, all within the call's one deadline.
 */
final class Failover {

    /** Whether a call may run twice. */
    enum Kind {
        /** Changes nothing: safe to send again. */
        READ,
        /** Changes the map: sent again only when it certainly did not apply. */
        WRITE
    }

    private final Members members;
    private final Duration deadline;

    Failover(Members members, Duration deadline) {
        this.members = members;
        this.deadline = deadline;
    }

    /**
     * Whether a call that ended with {@code status} may be sent to the next member. A write only
     * when the server said it refused it before proposing it, or when the call never reached a
     * connection (no remote address: it failed waiting for one, so no byte of it was sent).
     */
    static boolean mayRetry(Kind kind, Status status, Metadata trailers, ClientCall<?, ?> call) {
        return status.getCode() == Status.Code.UNAVAILABLE
                && (kind == Kind.READ || ProtocolHeaders.notApplied(trailers) || neverSent(call));
    }

    /** Whether {@code call}, ended, never had a connection: nothing of it reached a server. */
    static boolean neverSent(ClientCall<?, ?> call) {
        return call.getAttributes().get(Grpc.TRANSPORT_ATTR_REMOTE_ADDR) == null;
    }

    /** The call, failing over; throws a {@link MapcastException} from the calling thread. */
    <Q, R> R blocking(MethodDescriptor<Q, R> method, Q request, Kind kind) {
        try {
            return async(method, request, kind).get();
        } catch (ExecutionException e) {
            MapcastException failure = (MapcastException) e.getCause();
            throw MapcastException.of(failure.status(), failure);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MapcastException(Status.CANCELLED.withDescription("interrupted while waiting for "
                    + method.getBareMethodName() + (kind == Kind.WRITE ? "; it may still apply" : "")), e);
        }
    }

    /** The call, failing over; the future completes on a network thread, failed with a {@link MapcastException}. */
    <Q, R> CompletableFuture<R> async(MethodDescriptor<Q, R> method, Q request, Kind kind) {
        CompletableFuture<R> out = new CompletableFuture<>();
        attempt(method, request, kind, Deadline.after(deadline.toNanos(), TimeUnit.NANOSECONDS), members.current(),
                1, out);
        return out;
    }

    private <Q, R> void attempt(MethodDescriptor<Q, R> method, Q request, Kind kind, Deadline until, int member,
            int tries, CompletableFuture<R> out) {
        ClientCall<Q, R> call = members.newCall(member, method,
                CallOptions.DEFAULT.withDeadline(until).withExecutor(MoreExecutors.directExecutor()));
        Futures.addCallback(ClientCalls.futureUnaryCall(call, request), new FutureCallback<R>() {
            @Override
            public void onSuccess(R result) {
                out.complete(result);
            }

            @Override
            public void onFailure(Throwable t) {
                Status status = Status.fromThrowable(t);
                if (status.getCode() != Status.Code.UNAVAILABLE) {
                    out.completeExceptionally(MapcastException.of(t));
                    return;
                }
                members.failed(member);
                boolean retry = mayRetry(kind, status, Status.trailersFromThrowable(t), call);
                if (retry && tries < members.size() && !until.isExpired()) {
                    attempt(method, request, kind, until, (member + 1) % members.size(), tries + 1, out);
                } else if (retry) {
                    out.completeExceptionally(MapcastException.of(t));
                } else {
                    out.completeExceptionally(MapcastException.outcomeUnknown(status, members.target(member), t));
                }
            }
        }, MoreExecutors.directExecutor());
    }
}
