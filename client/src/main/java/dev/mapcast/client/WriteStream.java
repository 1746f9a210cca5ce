package dev.mapcast.client;

import com.google.common.util.concurrent.MoreExecutors;
import dev.mapcast.codec.ProtocolHeaders;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.StreamedWrite;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.proto.v1.WriteResult;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * A client's writes on one long-lived WriteStream (see the proto): a write costs a message each
 * way instead of a call (its headers, stream, deadline timer and trailers on both sides). Opened by
 * the first write and again by the first write after it ends.
 *
 * <p>Each write keeps the client's deadline here, as the stream has none. When the stream ends,
 * its unanswered writes fail with its status: like a Write call cut off, such a write may or may
 * not have applied. A server without WriteStream (UNIMPLEMENTED before any result) gets Write
 * calls instead, its unanswered writes included, which it cannot have applied.
 *
 * <p>Members: the stream goes to the client's current member. A stream that ends UNAVAILABLE
 * moves the current member on; its unanswered writes are sent again on a stream to the next member
 * only when they certainly did not apply ({@link Failover#mayRetry}), at most once per member and
 * within their deadline. A write the member answers UNAVAILABLE with {@code not_applied} (it refused
 * it before proposing it) moves the current member on too, and is sent again to the next member
 * by the same rule. A write sent when the current member is no longer the stream's opens a
 * stream to it; the old one is half-closed and answers what it holds.
 *
 * <p>A stream with no write in flight for the idle timeout is half-closed (the server ends it with
 * OK), so the channel can idle; it stops being the current stream first, so a write meanwhile
 * opens a new one.
 */
final class WriteStream {

    private final MapcastClient client;
    private final Members members;
    /** Sends one write as a Write call: the fallback for servers without WriteStream. */
    private final Function<WriteRequest, CompletableFuture<Long>> unaryWrite;
    private final long idleNanos;
    private final Object lock = new Object();
    // Guarded by lock.
    private Stream stream;
    private boolean unary;
    private boolean closed;
    private long nextId;

    WriteStream(MapcastClient client, Function<WriteRequest, CompletableFuture<Long>> unaryWrite, Duration idle) {
        this.client = client;
        this.members = client.members();
        this.unaryWrite = unaryWrite;
        this.idleNanos = idle.toNanos();
    }

    /** A write waiting for its result. */
    private static final class Pending {
        final WriteRequest request;
        final CompletableFuture<Long> result = new CompletableFuture<>();
        final long deadlineAt;  // System.nanoTime()
        int tries;  // streams it was sent on
        ScheduledFuture<?> deadline;

        Pending(WriteRequest request, long deadlineAt) {
            this.request = request;
            this.deadlineAt = deadlineAt;
        }
    }

    /** Sends {@code request}; the future completes with its revision or a {@link MapcastException}. */
    CompletableFuture<Long> send(WriteRequest request) {
        Pending pending = new Pending(request, System.nanoTime() + client.deadline().toNanos());
        send(pending);
        return pending.result;
    }

    /** Sends {@code pending} on a stream to the current member; completes its result if it cannot. */
    private void send(Pending pending) {
        Status endedAtOnce;
        Stream retired = null;
        boolean asCall;
        synchronized (lock) {
            if (closed) {
                pending.result.completeExceptionally(
                        new MapcastException(Status.UNAVAILABLE.withDescription("the client is closed"), null));
                return;
            }
            asCall = unary;
            if (asCall) {
                endedAtOnce = null;
            } else {
                int member = members.current();
                if (stream != null && stream.member != member) {
                    retired = stream;
                    stream = null;
                    retired.idleCheck.cancel(false);
                }
                Stream s = stream != null ? stream : open(member);
                long id = ++nextId;
                s.pending.put(id, pending);
                pending.tries++;
                Duration timeout = client.deadline();
                pending.deadline = client.timer().schedule(() -> expire(s, id, timeout),
                        pending.deadlineAt - System.nanoTime(), TimeUnit.NANOSECONDS);
                s.lastUsedNanos = System.nanoTime();
                s.call.sendMessage(StreamedWrite.newBuilder().setId(id).setWrite(pending.request).build());
                // On a shut-down channel the call ended within start(): nothing else will answer this write.
                endedAtOnce = s.endStatus != null && s.pending.remove(id) != null ? s.endStatus : null;
            }
        }
        if (retired != null) {
            retired.call.halfClose();  // the server answers what it holds, then ends it
        }
        if (asCall) {
            complete(pending, unaryWrite.apply(pending.request));
        } else if (endedAtOnce != null) {
            pending.deadline.cancel(false);  // completed outside the lock: callers' stages run on this thread
            if (endedAtOnce.getCode() == Status.Code.UNAVAILABLE && pending.tries < members.size()
                    && System.nanoTime() < pending.deadlineAt) {
                send(pending);  // the stream ended before the write was sent (no connection): the next member
            } else {
                pending.result.completeExceptionally(MapcastException.of(endedAtOnce, endedAtOnce.getCause()));
            }
        }
    }

    /** Completes {@code pending} as {@code write} completes. */
    private static void complete(Pending pending, CompletableFuture<Long> write) {
        write.whenComplete((revision, error) -> {
            if (error == null) {
                pending.result.complete(revision);
            } else {
                pending.result.completeExceptionally(error);
            }
        });
    }

    /** Ends the stream; writes not yet answered fail. */
    void close() {
        Stream s;
        synchronized (lock) {
            closed = true;
            s = stream;
        }
        if (s != null) {
            s.call.cancel("the client is closed", null);
        }
    }

    /** Whether a stream is open for the next write (tests wait for one the server ended to be seen). */
    boolean isOpen() {
        synchronized (lock) {
            return stream != null;
        }
    }

    /** Opens a stream as the current one; with the lock held. */
    private Stream open(int member) {
        Stream s = new Stream(member, members.newCall(member, MapcastGrpc.getWriteStreamMethod(),
                CallOptions.DEFAULT.withExecutor(MoreExecutors.directExecutor())));
        stream = s;
        // Before start(): a call on a shut-down channel ends within it, and its onClose cancels this.
        long period = Math.max(idleNanos / 4, TimeUnit.MILLISECONDS.toNanos(10));
        s.idleCheck = client.timer().scheduleWithFixedDelay(() -> closeIfIdle(s), period, period, TimeUnit.NANOSECONDS);
        s.call.start(s, new Metadata());
        s.call.request(Integer.MAX_VALUE);  // results are small and handled at once: no flow control per result
        return s;
    }

    /** Half-closes {@code s} if it is still current and nothing was in flight on it for the idle timeout. */
    private void closeIfIdle(Stream s) {
        synchronized (lock) {
            if (stream != s || !s.pending.isEmpty() || System.nanoTime() - s.lastUsedNanos < idleNanos) {
                return;
            }
            stream = null;  // from here writes open a new stream; close() no longer cancels this one
            s.idleCheck.cancel(false);
        }
        s.call.halfClose();
    }

    private void expire(Stream s, long id, Duration timeout) {
        Pending p;
        synchronized (lock) {
            p = s.pending.remove(id);
        }
        if (p != null) {
            p.result.completeExceptionally(new MapcastException(Status.DEADLINE_EXCEEDED.withDescription(
                    "no result for the write to map \"" + p.request.getMap() + "\" within " + timeout.toMillis()
                            + " ms; it may still apply"), null));
        }
    }

    /** What a write refused as not applied fails with: its status with the trailer a Write call would carry. */
    private static StatusRuntimeException notAppliedCause(Status status) {
        Metadata trailers = new Metadata();
        trailers.put(ProtocolHeaders.NOT_APPLIED, ProtocolHeaders.TRUE);
        return status.asRuntimeException(trailers);
    }

    /** One WriteStream call and the writes sent on it, by id; results complete them on the network thread. */
    private final class Stream extends ClientCall.Listener<WriteResult> {
        final int member;
        final ClientCall<StreamedWrite, WriteResult> call;
        final Map<Long, Pending> pending = new HashMap<>();  // guarded by lock
        boolean answered;  // guarded by lock: a result came, so the server has WriteStream
        Status endStatus;  // guarded by lock: set when the call has ended
        long lastUsedNanos = System.nanoTime();  // guarded by lock: a write sent or answered
        ScheduledFuture<?> idleCheck;  // set by open(), under lock, before the call starts

        Stream(int member, ClientCall<StreamedWrite, WriteResult> call) {
            this.member = member;
            this.call = call;
        }

        @Override
        public void onMessage(WriteResult result) {
            Pending p;
            synchronized (lock) {
                answered = true;
                lastUsedNanos = System.nanoTime();
                p = pending.remove(result.getId());
            }
            if (p == null) {
                return;  // past its deadline
            }
            p.deadline.cancel(false);
            if (result.getCode() == 0) {
                p.result.complete(result.getRevision());
                return;
            }
            Status status = Status.fromCodeValue(result.getCode());
            status = result.getMessage().isEmpty() ? status : status.withDescription(result.getMessage());
            if (status.getCode() == Status.Code.UNAVAILABLE) {
                members.failed(member);
                if (!result.getNotApplied()) {
                    p.result.completeExceptionally(MapcastException.outcomeUnknown(status, members.target(member),
                            null));
                } else if (p.tries < members.size() && System.nanoTime() < p.deadlineAt) {
                    send(p);  // refused before it was proposed: the next member
                } else {
                    p.result.completeExceptionally(MapcastException.of(status, notAppliedCause(status)));
                }
            } else {
                p.result.completeExceptionally(MapcastException.of(status, null));
            }
        }

        @Override
        public void onClose(Status status, Metadata trailers) {
            List<Pending> unanswered;
            boolean resend;
            synchronized (lock) {
                endStatus = status;
                if (stream == this) {
                    stream = null;
                }
                resend = status.getCode() == Status.Code.UNIMPLEMENTED && !answered && !closed;
                unary |= resend;
                unanswered = new ArrayList<>(pending.values());
                pending.clear();
                idleCheck.cancel(false);
            }
            Status failure = status.isOk()
                    ? Status.UNAVAILABLE.withDescription("the write stream ended before the write was answered")
                    : status;
            boolean notApplied = false;
            if (status.getCode() == Status.Code.UNAVAILABLE) {
                members.failed(member);
                notApplied = Failover.mayRetry(Failover.Kind.WRITE, status, trailers, call);
            }
            for (Pending p : unanswered) {
                p.deadline.cancel(false);
                if (resend) {
                    complete(p, unaryWrite.apply(p.request));
                } else if (notApplied && p.tries < members.size() && System.nanoTime() < p.deadlineAt) {
                    send(p);  // to the next member
                } else if (notApplied || failure.getCode() != Status.Code.UNAVAILABLE) {
                    p.result.completeExceptionally(MapcastException.of(failure, failure.getCause()));
                } else {
                    p.result.completeExceptionally(MapcastException.outcomeUnknown(failure, members.target(member),
                            failure.getCause()));
                }
            }
        }
    }
}
