package dev.mapcast.client;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.codec.EncodedMethods;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.server.MapcastServer;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** A watcher that stops reading costs the server bounded memory, and is ended after a bounded time. */
class SlowWatcherTest {

    private static final long QUEUE_BOUND = 256 * 1024;

    @Test
    void stalledWatcherStaysWithinItsQueueBoundAndIsEnded() throws Exception {
        try (MapcastServer server = MapcastServer.builder().port(0)
                .watcherQueue(QUEUE_BOUND, Duration.ofSeconds(2)).build().start();
             MapcastClient writer = MapcastClient.builder().target("127.0.0.1:" + server.port()).build()) {
            writer.put("config", "k", "v");
            ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
            try {
                CompletableFuture<Status> closed = new CompletableFuture<>();
                AtomicLong received = new AtomicLong();
                ClientCall<WatchRequest, Encoded> call = stalledWatch(channel, received, closed);

                // 16 MiB of changes, 64x the watcher's bound.
                byte[] value = new byte[16 * 1024];
                long maxQueued = 0;
                for (int i = 0; i < 1024; i++) {
                    writer.put("config", "key-" + (i % 64), value);
                    maxQueued = Math.max(maxQueued, server.queuedWatcherBytes());
                }
                assertTrue(maxQueued <= QUEUE_BOUND, "queued " + maxQueued + " bytes (bound " + QUEUE_BOUND + ")");
                assertEquals(1, received.get(), "the client took only what it asked for");

                // It took nothing for longer than the slow-watcher timeout: ended with RESOURCE_EXHAUSTED.
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
                while (server.watcherCount() > 0 && System.nanoTime() < deadline) {
                    writer.put("config", "tick", value);
                    Thread.sleep(100);
                }
                assertEquals(0, server.watcherCount(), "the stalled watcher was ended");
                call.request(Integer.MAX_VALUE);  // read what was in flight, then the status
                Status status = closed.get(10, TimeUnit.SECONDS);
                assertEquals(Status.Code.RESOURCE_EXHAUSTED, status.getCode(), status.toString());
                assertTrue(status.getDescription().contains("config"), status.getDescription());
            } finally {
                channel.shutdownNow();
            }
        }
    }

    @Test
    void watcherThatStopsReadingIsEndedEvenWhenNothingMoreIsWritten() throws Exception {
        try (MapcastServer server = MapcastServer.builder().port(0)
                .watcherQueue(QUEUE_BOUND, Duration.ofSeconds(2)).build().start();
             MapcastClient writer = MapcastClient.builder().target("127.0.0.1:" + server.port()).build()) {
            writer.put("config", "k", "v");
            ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext()
                    .flowControlWindow(64 * 1024).build();
            try {
                CompletableFuture<Status> closed = new CompletableFuture<>();
                ClientCall<WatchRequest, Encoded> call = stalledWatch(channel, new AtomicLong(), closed);
                // 128 KiB of changes: more than the HTTP/2 window, less than the queue bound. Then silence.
                byte[] value = new byte[8 * 1024];
                for (int i = 0; i < 16; i++) {
                    writer.put("config", "key-" + i, value);
                }
                await().atMost(15, TimeUnit.SECONDS).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(100))
                        .untilAsserted(() -> assertEquals(0, server.watcherCount(),
                                "ended by the periodic check, with no write to trigger it"));
                call.request(Integer.MAX_VALUE);
                Status status = closed.get(10, TimeUnit.SECONDS);
                assertEquals(Status.Code.RESOURCE_EXHAUSTED, status.getCode(), status.toString());
                assertTrue(status.getDescription().contains("took nothing"), status.getDescription());
            } finally {
                channel.shutdownNow();
            }
        }
    }

    @Test
    void replicaOnASlowLinkIsMovedToASnapshotAndConverges() throws Exception {
        try (MapcastServer server = MapcastServer.builder().port(0)
                .watcherQueue(64 * 1024, Duration.ofSeconds(30)).build().start();
             MapcastClient writer = MapcastClient.builder().target("127.0.0.1:" + server.port()).build();
             LoopbackProxy slowLink = new LoopbackProxy(server.port(), 512 * 1024)) {
            writer.put("config", "k", "v");
            // A small HTTP/2 window, so that what the replica has not taken stays on the server's side.
            ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", slowLink.port()).usePlaintext()
                    .flowControlWindow(64 * 1024).build();
            java.util.List<ReplicaListener.ResyncReason> resyncs = new java.util.concurrent.CopyOnWriteArrayList<>();
            try (MapcastClient client = MapcastClient.builder().channel(channel).build();
                 Replica<String, byte[]> slow = client.replica("config", dev.mapcast.codec.Codec.utf8(),
                         dev.mapcast.codec.Codec.bytes(), new ReplicaListener<>() {
                             @Override
                             public void onResync(long revision, ReplicaListener.ResyncReason reason) {
                                 resyncs.add(reason);
                             }
                         })) {
                assertTrue(slow.awaitRevision(1, Duration.ofSeconds(10)));
                // 4 MB of changes, 8 s of this link; the 100 keys' latest values are 400 KB.
                byte[] value = new byte[4 * 1024];
                long last = 0;
                for (int i = 0; i < 1000; i++) {
                    last = writer.put("config", "key-" + (i % 100), value);
                }
                assertTrue(slow.awaitRevision(last, Duration.ofSeconds(60)), "at " + slow.revision());
                assertEquals(101, slow.size());
                assertTrue(resyncs.contains(ReplicaListener.ResyncReason.SERVER),
                        "fell behind by more than its queue: moved to a fresh snapshot " + resyncs);
                assertEquals(0, slow.stats().gaps());
                try (Replica<String, byte[]> fresh = writer.replica("config", dev.mapcast.codec.Codec.utf8(),
                        dev.mapcast.codec.Codec.bytes())) {
                    assertTrue(fresh.awaitRevision(last, Duration.ofSeconds(10)));
                    assertEquals(fresh.digest(), slow.digest(), "the same content as a fresh replica");
                }
            } finally {
                channel.shutdownNow();
            }
        }
    }

    /**
     * A Watch of "config" that takes the snapshot's one chunk and then asks for nothing more;
     * returns once it has the snapshot, so that the writes after it queue as deltas (a write
     * before the watch registered would be in the snapshot instead, one message already handed to
     * gRPC: nothing left waiting for the slow-watcher check to see).
     */
    private static ClientCall<WatchRequest, Encoded> stalledWatch(ManagedChannel channel, AtomicLong received,
            CompletableFuture<Status> closed) throws InterruptedException {
        ClientCall<WatchRequest, Encoded> call = channel.newCall(EncodedMethods.watch(), CallOptions.DEFAULT);
        call.start(new ClientCall.Listener<>() {
            @Override
            public void onMessage(Encoded message) {
                received.incrementAndGet();
                message.received().close();
            }

            @Override
            public void onClose(Status status, Metadata trailers) {
                closed.complete(status);
            }
        }, new Metadata());
        call.sendMessage(WatchRequest.newBuilder().setMap("config").build());
        call.halfClose();
        call.request(1);
        await().atMost(10, TimeUnit.SECONDS).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(5))
                .untilAsserted(() -> assertTrue(received.get() != 0,
                        () -> "no snapshot within 10 s; closed: " + closed.getNow(null)));
        return call;
    }
}
