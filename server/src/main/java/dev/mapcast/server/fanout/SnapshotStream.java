package dev.mapcast.server.fanout;

import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.server.map.SnapshotSender;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** One Snapshot call: chunks from a pinned view, encoded one at a time as the client takes them. */
public final class SnapshotStream {

    private static final Logger log = LoggerFactory.getLogger(SnapshotStream.class);

    private final SnapshotSender sender;
    private final ServerCallStreamObserver<Encoded> call;
    private final Executor executor;
    private final AtomicBoolean scheduled = new AtomicBoolean();
    private volatile boolean cancelled;
    private boolean done;

    public SnapshotStream(SnapshotSender sender, ServerCallStreamObserver<Encoded> call, Executor executor) {
        this.sender = sender;
        this.call = call;
        this.executor = executor;
        call.setOnCancelHandler(() -> {
            cancelled = true;
            schedule();
        });
        call.setOnReadyHandler(this::schedule);
    }

    public void start() {
        schedule();
    }

    private void schedule() {
        if (scheduled.compareAndSet(false, true)) {
            try {
                executor.execute(this::drain);
            } catch (RejectedExecutionException closing) {
                scheduled.set(false);  // the server is closing: its shutdown ends this stream
            }
        }
    }

    private void drain() {
        do {
            if (done) {
                return;
            }
            try {
                if (cancelled) {
                    finish();
                    return;
                }
                while (call.isReady() && sender.hasNext()) {
                    call.onNext(sender.next());
                }
                if (!sender.hasNext()) {
                    finish();
                    call.onCompleted();
                    return;
                }
            } catch (RuntimeException | Error e) {
                log.error("snapshot stream failed", e);
                finish();
                call.onError(Status.INTERNAL.withDescription("snapshot stream failed: " + e).asRuntimeException());
                return;
            }
            scheduled.set(false);
        } while ((cancelled || call.isReady()) && scheduled.compareAndSet(false, true));
    }

    private void finish() {
        done = true;
        sender.close();
    }
}
