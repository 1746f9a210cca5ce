package dev.mapcast.client;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.StreamedWrite;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.proto.v1.WriteResponse;
import dev.mapcast.proto.v1.WriteResult;
import dev.mapcast.server.MapcastServer;
import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The SDK's writes go on one WriteStream per client: to a mapcast server, to a server of the
 * original contract without WriteStream (they become Write calls), past their deadline, across a
 * server restart and after the client is closed. Real gRPC over Netty on loopback.
 */
class SdkWriteStreamTest {

    private final List<AutoCloseable> toClose = new ArrayList<>();

    @AfterEach
    void close() throws Exception {
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
    }

    @Test
    void writesInFlightTogetherAreEachAnswered() throws Exception {
        MapcastServer server = closing(MapcastServer.builder().port(0).build().start());
        MapcastClient client = client(server.port(), Duration.ofSeconds(10));
        List<CompletableFuture<Long>> acks = new ArrayList<>();
        for (int i = 0; i < 5_000; i++) {
            acks.add(client.write("m").put("k" + i % 10, ("v" + i).getBytes()).commitAsync());
        }
        Set<Long> revisions = new TreeSet<>();
        for (CompletableFuture<Long> ack : acks) {
            revisions.add(ack.get(20, TimeUnit.SECONDS));
        }
        assertEquals(LongStream.rangeClosed(1, 5_000).boxed().collect(Collectors.toSet()), revisions);
        assertEquals(5_000, client.get("m", "k0").revision());
    }

    /** A server of the original contract answers WriteStream with UNIMPLEMENTED: the SDK uses Write. */
    @Test
    void aServerWithoutWriteStreamGetsWriteCalls() throws Exception {
        AtomicLong revision = new AtomicLong();
        AtomicInteger writeCalls = new AtomicInteger();
        Server server = serve(new MapcastGrpc.MapcastImplBase() {
            @Override
            public void write(WriteRequest request, StreamObserver<WriteResponse> response) {
                writeCalls.incrementAndGet();
                response.onNext(WriteResponse.newBuilder().setRevision(revision.incrementAndGet()).build());
                response.onCompleted();
            }
        });
        MapcastClient client = client(server.getPort(), Duration.ofSeconds(10));
        List<CompletableFuture<Long>> acks = new ArrayList<>();
        for (int i = 0; i < 20; i++) {  // sent before the stream's UNIMPLEMENTED comes back
            acks.add(client.write("m").put("k", "v".getBytes()).commitAsync());
        }
        Set<Long> revisions = new TreeSet<>();
        for (CompletableFuture<Long> ack : acks) {
            revisions.add(ack.get(10, TimeUnit.SECONDS));
        }
        assertEquals(LongStream.rangeClosed(1, 20).boxed().collect(Collectors.toSet()), revisions);
        assertEquals(21, client.put("m", "k", "v"));
        assertEquals(21, writeCalls.get(), "each write exactly once, as a Write call");
    }

    @Test
    void aWriteUnansweredPastItsDeadlineFails() throws Exception {
        AtomicInteger streams = new AtomicInteger();
        AtomicInteger received = new AtomicInteger();
        Server server = serve(new MapcastGrpc.MapcastImplBase() {
            @Override
            public StreamObserver<StreamedWrite> writeStream(StreamObserver<WriteResult> results) {
                streams.incrementAndGet();
                return new StreamObserver<>() {  // reads every write, answers none
                    @Override
                    public void onNext(StreamedWrite write) {
                        received.incrementAndGet();
                    }

                    @Override
                    public void onError(Throwable t) {
                    }

                    @Override
                    public void onCompleted() {
                    }
                };
            }
        });
        MapcastClient client = client(server.getPort(), Duration.ofMillis(300));
        long start = System.nanoTime();
        MapcastException e = assertThrows(MapcastException.class, () -> client.put("m", "k", "v"));
        long tookMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertEquals(Status.Code.DEADLINE_EXCEEDED, e.code());
        assertTrue(e.description().contains("map \"m\" within 300 ms; it may still apply"), e.description());
        assertTrue(tookMillis >= 300 && tookMillis < 10_000, "failed after " + tookMillis + " ms");
        CompletionException async = assertThrows(CompletionException.class,
                () -> client.write("m").put("k", "v".getBytes()).commitAsync().join());
        assertEquals(Status.Code.DEADLINE_EXCEEDED, ((MapcastException) async.getCause()).code());
        // The client's deadline does not wait for the server to have read the write.
        await().atMost(10, TimeUnit.SECONDS).untilAsserted(() -> assertEquals(2, received.get()));
        assertEquals(1, streams.get(), "both writes went on the one stream");
    }

    @Test
    void writesGoOnAfterTheServerRestarts() throws Exception {
        MapcastServer server = closing(MapcastServer.builder().port(0).build().start());
        MapcastClient client = client(server.port(), Duration.ofSeconds(10));
        assertEquals(1, client.put("m", "k", "1"));
        server.stop();
        // A write sent before the client has read the stream's end goes down with it ("shutting down").
        awaitWriteStreamEnded(client);
        server.start();
        assertEquals(2, client.put("m", "k", "2"), "a new stream after the old one ended");
        server.stop();
        awaitWriteStreamEnded(client);
        MapcastException down = assertThrows(MapcastException.class, () -> client.put("m", "k", "3"));
        assertEquals(Status.Code.UNAVAILABLE, down.code(), down.getMessage());
        Throwable root = down;
        while (root.getCause() != null) {
            root = root.getCause();
        }
        assertTrue(String.valueOf(root.getMessage()).contains("Connection refused"), "the reason is kept: " + root);
    }

    @Test
    void aClosedClientRefusesWrites() throws Exception {
        MapcastServer server = closing(MapcastServer.builder().port(0).build().start());
        MapcastClient client = client(server.port(), Duration.ofSeconds(10));
        assertEquals(1, client.put("m", "k", "1"));
        client.close();
        MapcastException e = assertThrows(MapcastException.class, () -> client.put("m", "k", "2"));
        assertEquals(Status.Code.UNAVAILABLE, e.code());
        assertTrue(e.description().contains("the client is closed"), e.description());
    }

    /** A channel of the caller's that is shut down: the write fails at once, not at its deadline. */
    @Test
    void aWriteOnAShutDownChannelFailsAtOnce() throws Exception {
        MapcastServer server = closing(MapcastServer.builder().port(0).build().start());
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        channel.shutdownNow();
        MapcastClient client = closing(MapcastClient.builder().channel(channel).deadline(Duration.ofSeconds(30)).build());
        long start = System.nanoTime();
        MapcastException e = assertThrows(MapcastException.class, () -> client.put("m", "k", "v"));
        assertEquals(Status.Code.UNAVAILABLE, e.code(), e.getMessage());
        long tookMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertTrue(tookMillis < 10_000, "failed after " + tookMillis + " ms");
    }

    /**
     * A write stream with nothing in flight for its idle timeout is closed, so a channel that only
     * wrote goes idle (gRPC's idle timer counts open calls); the next write opens a new stream.
     */
    @Test
    void anIdleWriteStreamIsClosedSoTheChannelCanIdle() throws Exception {
        MapcastServer server = closing(MapcastServer.builder().port(0).build().start());
        ManagedChannel idling = closingChannel(server.port());
        MapcastClient client = closing(MapcastClient.builder().channel(idling)
                .writeStreamIdleTimeout(Duration.ofMillis(200)).build());
        ManagedChannel held = closingChannel(server.port());
        MapcastClient keeping = closing(MapcastClient.builder().channel(held)
                .writeStreamIdleTimeout(Duration.ofHours(1)).build());
        assertEquals(1, client.put("m", "k", "1"));
        assertEquals(2, keeping.put("m", "k", "2"));
        await().atMost(10, TimeUnit.SECONDS).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(50))
                .untilAsserted(() -> assertEquals(ConnectivityState.IDLE, idling.getState(false),
                        "the channel idles once its write stream closed"));
        assertEquals(ConnectivityState.READY, held.getState(false), "an open write stream keeps its channel busy");
        assertEquals(3, client.put("m", "k", "3"), "a write after the idle close opens a new stream");
    }

    /** The idle timeout counts from the last write answered: a slow write is not cut off by it. */
    @Test
    void aWriteInFlightLongerThanTheIdleTimeoutIsAnswered() throws Exception {
        Server server = serve(new MapcastGrpc.MapcastImplBase() {
            @Override
            public StreamObserver<StreamedWrite> writeStream(StreamObserver<WriteResult> results) {
                return new StreamObserver<>() {  // answers each write 500 ms after it came
                    @Override
                    public void onNext(StreamedWrite write) {
                        CompletableFuture.delayedExecutor(500, TimeUnit.MILLISECONDS).execute(() -> {
                            synchronized (results) {
                                results.onNext(WriteResult.newBuilder().setId(write.getId()).setRevision(7).build());
                            }
                        });
                    }

                    @Override
                    public void onError(Throwable t) {
                    }

                    @Override
                    public void onCompleted() {
                        results.onCompleted();
                    }
                };
            }
        });
        MapcastClient client = closing(MapcastClient.builder().target("127.0.0.1:" + server.getPort())
                .writeStreamIdleTimeout(Duration.ofMillis(50)).build());
        assertEquals(7, client.put("m", "k", "v"));
        assertEquals(7, client.put("m", "k", "v"), "and the next write too");
    }

    // ---- helpers ----

    private ManagedChannel closingChannel(int port) {
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext()
                .idleTimeout(1, TimeUnit.SECONDS).build();
        toClose.add(() -> channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        return channel;
    }

    static void awaitWriteStreamEnded(MapcastClient client) {
        await().atMost(10, TimeUnit.SECONDS).until(() -> !client.writeStreamOpen());
    }

    private MapcastClient client(int port, Duration deadline) {
        return closing(MapcastClient.builder().target("127.0.0.1:" + port).deadline(deadline).build());
    }

    private Server serve(MapcastGrpc.MapcastImplBase service) throws IOException {
        Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0)).addService(service).build()
                .start();
        toClose.add(() -> server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        return server;
    }

    private <T extends AutoCloseable> T closing(T resource) {
        toClose.add(resource);
        return resource;
    }
}
