package dev.mapcast.server;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.util.concurrent.ListenableFuture;
import com.google.protobuf.ByteString;
import dev.mapcast.proto.v1.GetRequest;
import dev.mapcast.proto.v1.GetResponse;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.proto.v1.WatchResponse;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.proto.v1.WriteResponse;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The server's threads as a user sees them, over real gRPC on Netty loopback: calls run on the
 * server's own event loops, so close() must stop them, stop() and start() must serve again on
 * them, and a call that waits for a busy map must wait elsewhere, never holding up the other calls
 * of its connection.
 */
class ServerThreadsTest {

    /** Names of the threads a server starts: event loops, worker pool, ticker, storage. */
    private static final String SERVER_THREADS = "mapcast-";

    private final List<ManagedChannel> channels = new ArrayList<>();
    private MapcastServer server;

    @AfterEach
    void stop() {
        channels.forEach(ManagedChannel::shutdownNow);
        if (server != null) {
            server.close();
        }
    }

    private ManagedChannel channel() {
        ManagedChannel c = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        channels.add(c);
        return c;
    }

    @Test
    void closeStopsEveryThreadTheServerStarted() throws Exception {
        Set<Thread> before = liveServerThreads();
        server = MapcastServer.builder().port(0).build().start();
        MapcastGrpc.MapcastBlockingStub stub = MapcastGrpc.newBlockingStub(channel());
        // A write (event loop, then the pool as it creates the map), a get (pool), a watch (both).
        stub.write(put("m", "k", "v"));
        assertTrue(stub.get(GetRequest.newBuilder().setMap("m").setKey("k").build()).getFound());
        Iterator<WatchResponse> watch = stub.withDeadlineAfter(10, TimeUnit.SECONDS)
                .watch(WatchRequest.newBuilder().setMap("m").build());
        assertTrue(watch.next().hasSnapshot());
        Set<String> serving = names(newThreads(before));
        assertTrue(serving.stream().anyMatch(n -> n.startsWith("mapcast-io")), "its event loops: " + serving);
        assertTrue(serving.stream().anyMatch(n -> n.startsWith("mapcast-accept")), "its acceptor: " + serving);
        assertTrue(serving.stream().anyMatch(n -> n.startsWith("mapcast-worker")), "its pool: " + serving);

        server.close();
        awaitNoNewThreads(before);
    }

    @Test
    void stopAndStartServeAgainAndCloseStillStopsEveryThread() throws Exception {
        Set<Thread> before = liveServerThreads();
        server = MapcastServer.builder().port(0).build().start();
        int port = server.port();
        MapcastGrpc.MapcastBlockingStub first = MapcastGrpc.newBlockingStub(channel());
        assertEquals(1, first.write(put("m", "k1", "v1")).getRevision());
        server.stop();
        StatusRuntimeException refused = assertThrows(StatusRuntimeException.class,
                () -> first.withDeadlineAfter(5, TimeUnit.SECONDS).write(put("m", "k", "stopped")));
        assertEquals(Status.Code.UNAVAILABLE, refused.getStatus().getCode(), refused.toString());

        for (int restart = 1; restart <= 2; restart++) {
            server.start();
            assertEquals(port, server.port(), "the port chosen the first time");
            MapcastGrpc.MapcastBlockingStub stub = MapcastGrpc.newBlockingStub(channel())
                    .withDeadlineAfter(10, TimeUnit.SECONDS);
            // The maps were kept; writes (event loop), reads (pool) and watches (both) are served.
            assertEquals(1 + restart, stub.write(put("m", "k" + (1 + restart), "v")).getRevision());
            assertTrue(stub.get(GetRequest.newBuilder().setMap("m").setKey("k1").build()).getFound());
            WatchResponse snapshot = stub.watch(WatchRequest.newBuilder().setMap("m").build()).next();
            assertEquals(1 + restart, snapshot.getSnapshot().getRevision());
            assertEquals(1 + restart, snapshot.getSnapshot().getEntriesCount());
            server.stop();
        }
        server.close();
        awaitNoNewThreads(before);
    }

    /**
     * While a map's lock is held (by a long write or a restore), a Write, a Get and a Watch of that
     * map wait for it; on the same connection, a Write to another map is answered all the same. A
     * call that waited on the event loop would hold up everything after it on its connection.
     */
    @Test
    void callsWaitingForABusyMapDoNotHoldUpAnotherMapOnTheSameConnection() throws Exception {
        server = MapcastServer.builder().port(0).build().start();
        // Callbacks in the order the connection delivers them: a response the server sent first
        // is seen first.
        ManagedChannel connection = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext()
                .directExecutor().build();
        channels.add(connection);
        MapcastGrpc.MapcastFutureStub calls = MapcastGrpc.newFutureStub(connection);
        MapcastGrpc.MapcastBlockingStub stub = MapcastGrpc.newBlockingStub(connection);
        stub.write(put("busy", "k", "v"));
        stub.write(put("other", "k", "v"));

        ReentrantReadWriteLock.WriteLock busy = server.hosted("busy").writeLock();
        busy.lock();
        ListenableFuture<WriteResponse> write;
        ListenableFuture<GetResponse> get;
        WatchStream watch;
        try {
            write = calls.write(put("busy", "k", "waited"));
            get = calls.get(GetRequest.newBuilder().setMap("busy").setKey("k").build());
            watch = WatchStream.start(connection, WatchRequest.newBuilder().setMap("busy").build());
            assertEquals(2, calls.write(put("other", "k", "answered")).get(10, TimeUnit.SECONDS).getRevision());
            Thread.sleep(100);  // time enough to be answered, were they not waiting
            String stillWaiting = ((write.isDone() ? "" : " write") + (get.isDone() ? "" : " get")
                    + (watch.events.isEmpty() ? " watch" : "")).trim();
            assertEquals("write get watch", stillWaiting,
                    "the busy map's calls waiting when the other map's write was answered");
        } finally {
            busy.unlock();
        }
        assertEquals(2, write.get(10, TimeUnit.SECONDS).getRevision());
        assertTrue(get.get(10, TimeUnit.SECONDS).getFound());
        watch.await(r -> r.hasSnapshot() && r.getSnapshot().getLast());
        watch.cancel();
    }

    /**
     * A write still waiting on the worker pool when the server closes (its client gave up on it)
     * is answered while its connection's loop still runs: closing logs no error. Before, the loops
     * were shut down first and Netty logged "Failed to submit a listener notification task".
     */
    @Test
    void closingWhileAWriteWaitsOnThePoolLogsNoError() throws Exception {
        server = MapcastServer.builder().port(0).build().start();
        MapcastGrpc.MapcastBlockingStub stub = MapcastGrpc.newBlockingStub(channel());
        stub.write(put("busy", "k", "v"));
        ReentrantReadWriteLock.WriteLock busy = server.hosted("busy").writeLock();
        PrintStream err = System.err;
        ByteArrayOutputStream logged = new ByteArrayOutputStream();
        Thread closer = new Thread(server::close, "closer");
        busy.lock();
        try {
            StatusRuntimeException late = assertThrows(StatusRuntimeException.class,
                    () -> stub.withDeadlineAfter(200, TimeUnit.MILLISECONDS).write(put("busy", "k", "late")));
            assertEquals(Status.Code.DEADLINE_EXCEEDED, late.getStatus().getCode(), late.toString());
            System.setErr(new PrintStream(logged, true, StandardCharsets.UTF_8));
            closer.start();
            // close() has stopped serving and waits for the pool, where the write waits for the lock.
            await().atMost(10, TimeUnit.SECONDS).until(() -> Arrays.stream(closer.getStackTrace())
                    .anyMatch(f -> f.getClassName().equals(ThreadPoolExecutor.class.getName())
                            && f.getMethodName().equals("awaitTermination")));
        } finally {
            busy.unlock();
        }
        try {
            closer.join(TimeUnit.SECONDS.toMillis(10));
            assertTrue(!closer.isAlive(), "close() returned");
        } finally {
            System.setErr(err);
            err.print(logged.toString(StandardCharsets.UTF_8));
        }
        String log = logged.toString(StandardCharsets.UTF_8);
        assertTrue(log.contains("mapcast closed"), "captured the close's log:\n" + log);
        assertTrue(!log.contains("ERROR") && !log.contains("Exception"), "closing logged an error:\n" + log);
    }

    // ---- helpers ----

    private static WriteRequest put(String map, String key, String value) {
        return WriteRequest.newBuilder().setMap(map).putPuts(key, ByteString.copyFromUtf8(value)).build();
    }

    private static Set<Thread> liveServerThreads() {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.isAlive() && t.getName().startsWith(SERVER_THREADS))
                .collect(Collectors.toSet());
    }

    private static Set<Thread> newThreads(Set<Thread> before) {
        Set<Thread> now = liveServerThreads();
        now.removeAll(before);
        return now;
    }

    private static Set<String> names(Set<Thread> threads) {
        return threads.stream().map(t -> t.getName() + " (" + t.getState() + ")").collect(Collectors.toSet());
    }

    /** Threads end shortly after their executor says it terminated: polled, not expected at once. */
    private static void awaitNoNewThreads(Set<Thread> before) {
        await().atMost(5, TimeUnit.SECONDS).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(10))
                .untilAsserted(() -> {
                    Set<Thread> left = newThreads(before);
                    assertTrue(left.isEmpty(), () -> "still running after close: " + names(left));
                });
    }
}
