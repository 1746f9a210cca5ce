package dev.mapcast.server.rpc;

import com.google.common.util.concurrent.MoreExecutors;
import dev.mapcast.server.map.MapRegistry;
import io.grpc.Context;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;

/**
 * Runs a call's handler and each of its callbacks on the server's worker pool, one at a time and in
 * order, for calls that may wait on a lock or a disk: the server's transport runs callbacks on its
 * event loops ({@link ServerEventLoops}), which must not wait. This is what gRPC does for every
 * call when a server has an executor; mapcast pays that hand-off only where it is needed.
 */
final class OffloadedCallHandler<Q, R> implements ServerCallHandler<Q, R> {

    private final ServerCallHandler<Q, R> handler;
    private final Executor pool;

    OffloadedCallHandler(ServerCallHandler<Q, R> handler, Executor pool) {
        this.handler = handler;
        this.pool = pool;
    }

    @Override
    public ServerCall.Listener<Q> startCall(ServerCall<Q, R> call, Metadata headers) {
        Forwarding<Q> listener = new Forwarding<>(MoreExecutors.newSequentialExecutor(pool));
        try {
            // The call's Context (its caller, with --auth) goes with each callback to the pool.
            listener.serial.execute(Context.current().wrap((Runnable) () -> listener.delegate = handler.startCall(call,
                    headers)));
        } catch (RejectedExecutionException closing) {
            call.close(MapRegistry.SHUTTING_DOWN, new Metadata());
            return new ServerCall.Listener<>() { };
        }
        return listener;
    }

    /** Hands each callback to the call's sequential executor; the handler's listener runs there. */
    private static final class Forwarding<Q> extends ServerCall.Listener<Q> {
        final Executor serial;
        /** Set by the first task on {@code serial}; read only by later ones. */
        ServerCall.Listener<Q> delegate;

        Forwarding(Executor serial) {
            this.serial = serial;
        }

        @Override
        public void onMessage(Q message) {
            run(() -> delegate.onMessage(message));
        }

        @Override
        public void onHalfClose() {
            run(() -> delegate.onHalfClose());
        }

        @Override
        public void onCancel() {
            run(() -> delegate.onCancel());
        }

        @Override
        public void onComplete() {
            run(() -> delegate.onComplete());
        }

        @Override
        public void onReady() {
            run(() -> delegate.onReady());
        }

        private void run(Runnable callback) {
            try {
                serial.execute(Context.current().wrap(callback));
            } catch (RejectedExecutionException closing) {
                // the server is closing: its shutdown ends this call
            }
        }
    }
}
