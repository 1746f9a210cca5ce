package dev.mapcast.testing;

import io.grpc.BindableService;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.HandlerRegistry;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerMethodDefinition;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.NettyServerBuilder;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

/**
 * A gRPC server on loopback in front of a real one: it records each call's method and
 * {@code authorization} header, asks a {@link Gate} whether to let the call through (else ends it
 * with the gate's status, as a server with {@code --auth} would), and forwards it, messages and
 * trailers as they are, streams included. Services of its own (a stand-in for one the server does
 * not have yet) answer their methods instead of the server.
 *
 * <p>For tests of what a client sends and how it takes a refusal, without a server that checks
 * credentials. Messages are forwarded without flow control: for small test traffic only.
 */
public final class GatedProxy implements AutoCloseable {

    /** The header a client's token travels in. */
    public static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

    /** What the proxy saw of one call: its method's full name and its authorization header (null: none). */
    public record Call(String method, String authorization) {
    }

    /**
     * What a server with --auth answers a call without credentials (as the contract words it): a
     * gate's answer for a null authorization.
     */
    public static final Status NO_CREDENTIALS = Status.UNAUTHENTICATED.withDescription("no credentials: send a bearer"
            + " token (--token, $MAPCAST_TOKEN) or a client certificate");

    /** Whether a call goes through: {@link Status#OK}, or the status to end it with. */
    @FunctionalInterface
    public interface Gate {
        /** {@code authorization}: the call's header, as {@code "Bearer <secret>"}; null if it has none. */
        Status check(String fullMethodName, String authorization);
    }

    private static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(byte[] value) {
            return new ByteArrayInputStream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
            try {
                return stream.readAllBytes();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    };

    private final ManagedChannel backend;
    private final Server server;
    private final List<Call> calls = new CopyOnWriteArrayList<>();

    private GatedProxy(String backendTarget, Gate gate, BindableService... services) throws IOException {
        this.backend = NettyChannelBuilder.forTarget(backendTarget).usePlaintext().build();
        NettyServerBuilder b = NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))
                .fallbackHandlerRegistry(new Forwarding())
                .intercept(new ServerInterceptor() {
                    @Override
                    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                            ServerCallHandler<Q, R> next) {
                        String method = call.getMethodDescriptor().getFullMethodName();
                        String authorization = headers.get(AUTHORIZATION);
                        calls.add(new Call(method, authorization));
                        Status verdict = gate.check(method, authorization);
                        if (!verdict.isOk()) {
                            call.close(verdict, new Metadata());
                            return new ServerCall.Listener<>() {
                            };
                        }
                        return next.startCall(call, headers);
                    }
                });
        for (BindableService s : services) {
            b.addService(s);
        }
        this.server = b.build().start();
    }

    /** A proxy to the server at {@code backendTarget} (plaintext), serving {@code services} itself. */
    public static GatedProxy start(String backendTarget, Gate gate, BindableService... services) throws IOException {
        return new GatedProxy(backendTarget, gate, services);
    }

    /** Where clients connect: {@code 127.0.0.1:PORT}. */
    public String target() {
        return InetAddress.getLoopbackAddress().getHostAddress() + ":" + server.getPort();
    }

    /** Every call that reached the proxy so far, in order of arrival. */
    public List<Call> calls() {
        return List.copyOf(calls);
    }

    @Override
    public void close() throws InterruptedException {
        server.shutdownNow();
        backend.shutdownNow();
        server.awaitTermination(10, TimeUnit.SECONDS);
        backend.awaitTermination(10, TimeUnit.SECONDS);
    }

    /** Any method no service of the proxy's has: forwarded to the server as bytes. */
    private final class Forwarding extends HandlerRegistry {
        @Override
        public ServerMethodDefinition<?, ?> lookupMethod(String fullMethodName, String authority) {
            MethodDescriptor<byte[], byte[]> method = MethodDescriptor.newBuilder(BYTES, BYTES)
                    .setFullMethodName(fullMethodName).setType(MethodDescriptor.MethodType.UNKNOWN).build();
            return ServerMethodDefinition.create(method, this::forward);
        }

        /** One call, both ways; every step under the call's lock (neither side's call is thread-safe). */
        private ServerCall.Listener<byte[]> forward(ServerCall<byte[], byte[]> in, Metadata headers) {
            Object lock = new Object();
            ClientCall<byte[], byte[]> out = backend.newCall(in.getMethodDescriptor(), CallOptions.DEFAULT);
            Metadata forwarded = new Metadata();
            forwarded.merge(headers);
            synchronized (lock) {
                out.start(new ClientCall.Listener<>() {
                    private boolean headersSent;

                    @Override
                    public void onHeaders(Metadata answer) {
                        synchronized (lock) {
                            headersSent = true;
                            in.sendHeaders(answer);
                        }
                    }

                    @Override
                    public void onMessage(byte[] message) {
                        synchronized (lock) {
                            if (!headersSent) {
                                headersSent = true;
                                in.sendHeaders(new Metadata());
                            }
                            in.sendMessage(message);
                        }
                    }

                    @Override
                    public void onClose(Status status, Metadata trailers) {
                        synchronized (lock) {
                            if (!in.isCancelled()) {
                                in.close(status, trailers);
                            }
                        }
                    }
                }, forwarded);
                out.request(Integer.MAX_VALUE);
                in.request(Integer.MAX_VALUE);
            }
            return new ServerCall.Listener<>() {
                @Override
                public void onMessage(byte[] message) {
                    synchronized (lock) {
                        out.sendMessage(message);
                    }
                }

                @Override
                public void onHalfClose() {
                    synchronized (lock) {
                        out.halfClose();
                    }
                }

                @Override
                public void onCancel() {
                    synchronized (lock) {
                        out.cancel("the client cancelled the call", null);
                    }
                }
            };
        }
    }
}
