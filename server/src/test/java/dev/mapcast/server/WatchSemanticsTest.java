package dev.mapcast.server;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.protobuf.ByteString;
import dev.mapcast.proto.v1.CompactRequest;
import dev.mapcast.proto.v1.Compaction;
import dev.mapcast.proto.v1.Delta;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.SnapshotChunk;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.proto.v1.WatchResponse;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.proto.v1.WriteResponse;
import dev.mapcast.testing.TestSeeds;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.reflection.v1.ServiceResponse;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Watch as any gRPC client sees it (generated protobuf-java stubs over Netty on loopback): resume,
 * Compaction events, progress, shutdown; plus the health and reflection services.
 */
class WatchSemanticsTest {

    private MapcastServer server;
    private ManagedChannel channel;
    private MapcastGrpc.MapcastBlockingStub stub;

    private void start(MapcastServer.Builder builder) {
        server = builder.port(0).build().start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        stub = MapcastGrpc.newBlockingStub(channel);
    }

    @AfterEach
    void stop() {
        channel.shutdownNow();
        server.close();
    }

    @Test
    void resumeGetsTheDeltasAfterItsRevisionThenLiveOnes() throws Exception {
        start(MapcastServer.builder());
        for (int i = 1; i <= 5; i++) {
            put("k" + i, "v" + i);
        }
        WatchStream watch = watch(3, false);
        watch.await(r -> r.hasDelta() && r.getDelta().getRevision() == 5);
        put("k6", "v6");
        watch.await(r -> r.hasDelta() && r.getDelta().getRevision() == 6);
        // After the missed deltas, a Progress at the revision they lead to (with the digest there).
        assertEquals(List.of("delta 4", "delta 5", "progress 5", "delta 6"), watch.kinds());
        assertEquals(digestAfterFiveWrites(), watch.events.get(2).getProgress().getDigest());
        assertEquals(3, watch.events.get(0).getDelta().getPrevRevision());
    }

    @Test
    void everyWatcherIsToldOfACompactionAndOldResumesGetCompactionThenSnapshot() throws Exception {
        start(MapcastServer.builder());
        for (int i = 1; i <= 5; i++) {
            put("k" + i, "v" + i);
        }
        // From a snapshot, up to date, and resuming through history.
        List<WatchStream> watchers = List.of(watch(0, false), watch(5, false), watch(2, false));
        // Each registered (it registers on the worker pool) before the compaction.
        watchers.get(0).await(r -> r.hasSnapshot());
        watchers.get(1).await(r -> r.hasProgress());
        watchers.get(2).await(r -> r.hasDelta() && r.getDelta().getRevision() == 5);
        Compaction c = stub.compact(CompactRequest.newBuilder().setMap("m").setRevision(4).build()).getCompaction();
        assertEquals(4, c.getCompactRevision());
        assertEquals(5, c.getRevision());
        for (WatchStream w : watchers) {
            w.await(r -> r.hasCompaction() && r.getCompaction().getCompactRevision() == 4);
        }
        WatchStream old = watch(3, false);
        old.await(r -> r.hasSnapshot() && r.getSnapshot().getLast());
        assertEquals(List.of("compaction 4", "snapshot 5"), old.kinds());
        WatchStream recent = watch(4, false);
        recent.await(r -> r.hasProgress());
        assertEquals(List.of("delta 5", "progress 5"), recent.kinds(), "history after the compact revision is kept");
    }

    @Test
    void historyPurgedByItsBoundIsACompactionToo() throws Exception {
        start(MapcastServer.builder().history(8, 1 << 20));
        put("k0", "v0");
        WatchStream live = watch(0, false);
        live.await(r -> r.hasSnapshot());  // registered before the purge
        for (int i = 1; i <= 9; i++) {
            put("k" + i, "v" + i);
        }
        // The 9th delta passes the bound of 8: purged down to 6 (revisions 4 to 9), and watchers told.
        live.await(r -> r.hasCompaction());
        WatchResponse purge = live.events.stream().filter(WatchResponse::hasCompaction).findFirst().orElseThrow();
        assertEquals(3, purge.getCompaction().getCompactRevision());
        WatchStream tooOld = watch(2, false);
        tooOld.await(r -> r.hasSnapshot());
        assertEquals("compaction 3", tooOld.kinds().get(0));
        WatchStream kept = watch(3, false);
        kept.await(r -> r.hasProgress());
        assertEquals(8, kept.kinds().size(), "deltas 4 to 10, then progress 10: " + kept.kinds());
    }

    @Test
    void idleWatchersAskingForProgressGetIt() throws Exception {
        start(MapcastServer.builder().progressInterval(Duration.ofMillis(200)));
        put("k", "v");
        WatchStream withProgress = watch(1, true);
        WatchStream without = watch(1, false);
        // Both get the Progress that ends a resume; only the one that asked gets more while idle.
        withProgress.await(r -> r.hasProgress());
        without.await(r -> r.hasProgress());
        await().atMost(10, TimeUnit.SECONDS).until(() -> withProgress.kinds().size() >= 3);
        assertEquals(List.of("progress 1"), without.kinds(), "no progress unasked");
    }

    @Test
    void lingeringDeltasGoAsOneBatchOnlyToClientsThatAcceptBatches() throws Exception {
        start(MapcastServer.builder().watchLinger(Duration.ofMillis(300)));
        put("k0", "v0");
        WatchStream batching = watch(1, false, true);
        WatchStream plain = watch(1, false, false);
        batching.await(r -> r.hasProgress());
        plain.await(r -> r.hasProgress());
        for (int i = 1; i <= 10; i++) {
            put("k" + i, "v" + i);  // the first goes at once, the rest wait out the linger together
        }
        batching.await(r -> r.hasBatch());
        plain.await(r -> r.hasDelta() && r.getDelta().getRevision() == 11);
        for (WatchResponse r : batching.events) {
            if (r.hasBatch()) {
                assertTrue(r.getBatch().getEventsCount() > 1, "a batch holds several events");
            }
        }
        batching.await(r -> revisionsSeen(batching) == 10);
        assertEquals(java.util.stream.LongStream.rangeClosed(2, 11).boxed().collect(Collectors.toList()),
                allRevisions(batching), "every delta once, in order");
        assertTrue(plain.events.stream().noneMatch(WatchResponse::hasBatch), "no batch unasked: " + plain.kinds());
        assertEquals(11, plain.kinds().size(), "progress 1, then 10 deltas one by one: " + plain.kinds());
    }

    private static int revisionsSeen(WatchStream w) {
        return allRevisions(w).size();
    }

    private static List<Long> allRevisions(WatchStream w) {
        List<Long> revisions = new java.util.ArrayList<>();
        for (WatchResponse r : w.events) {
            if (r.hasDelta()) {
                revisions.add(r.getDelta().getRevision());
            }
            for (WatchResponse inner : r.getBatch().getEventsList()) {
                revisions.add(inner.getDelta().getRevision());
            }
        }
        return revisions;
    }

    @Test
    void watchesCancelledAsTheyStartLeaveNoWatcherBehind() throws Exception {
        long seed = TestSeeds.seed("watchesCancelledAsTheyStartLeaveNoWatcherBehind");
        Random random = new Random(seed);
        start(MapcastServer.builder());
        put("k", "v");
        // Writes go on meanwhile: deltas are queued to watchers being registered and cancelled.
        AtomicLong revision = new AtomicLong(1);
        AtomicBoolean writing = new AtomicBoolean(true);
        CompletableFuture<Void> writer = CompletableFuture.runAsync(() -> {
            for (int i = 0; writing.get(); i++) {
                revision.set(put("w" + i % 20, "v" + i));
            }
        });
        int cancelledAtOnce = 0;
        for (int i = 0; i < 300; i++) {
            WatchStream w = watch(random.nextBoolean() ? 0 : revision.get(), false, random.nextBoolean());
            switch (random.nextInt(3)) {
                case 0 -> cancelledAtOnce++;  // often before its registration ran on the worker pool
                case 1 -> spinMicros(random.nextInt(300));  // around its registration
                default -> w.await(r -> true);  // registered: it was sent something
            }
            w.cancel();
        }
        writing.set(false);
        writer.get(10, TimeUnit.SECONDS);
        assertTrue(cancelledAtOnce > 0);
        awaitWatcherCount(0);

        // The count sees a live watcher: so 0 above meant none left (one registering late shows here).
        WatchStream live = watch(0, false);
        live.await(r -> r.hasSnapshot());
        // One cancelled as it registered may still count until its event loop's next turn; a leak stays.
        awaitWatcherCount(1);
        live.cancel();
        awaitWatcherCount(0);
    }

    /** Also with no linger: then every delta schedules a send at once, racing the drain in progress. */
    @ParameterizedTest(name = "linger {0} ms")
    @ValueSource(ints = {1, 0})
    void watchersStartedWhileTheMapIsWrittenGetEveryDeltaOnce(int lingerMillis) throws Exception {
        long seed = TestSeeds.seed("watchersStartedWhileTheMapIsWrittenGetEveryDeltaOnce(" + lingerMillis + ")");
        Random random = new Random(seed);
        start(MapcastServer.builder().watchLinger(Duration.ofMillis(lingerMillis)));
        // Watchers on three connections, writers on two more: every event loop has some of each.
        List<ManagedChannel> channels = List.of(channel, newChannel(), newChannel());
        List<ManagedChannel> writerChannels = List.of(newChannel(), newChannel());
        try {
            ConcurrentSkipListMap<Long, WriteRequest> byRevision = new ConcurrentSkipListMap<>();
            WriteRequest first = WriteRequest.newBuilder().setMap("m").putPuts("k0", ByteString.copyFromUtf8("v0"))
                    .build();
            byRevision.put(stub.write(first).getRevision(), first);
            int writesEach = 300;
            List<CompletableFuture<Void>> writers = new ArrayList<>();
            for (int c = 0; c < writerChannels.size(); c++) {
                writers.add(writeAsync(writerChannels.get(c), writesEach, new Random(seed + 1 + c), byRevision));
            }
            // Started as the writes go: from a snapshot, or resuming from a revision already written.
            List<WatchStream> watchers = new ArrayList<>();
            List<Long> afters = new ArrayList<>();
            for (int i = 0; i < 60; i++) {
                long after = random.nextBoolean() ? 0 : byRevision.lastKey();
                afters.add(after);
                watchers.add(watch(channels.get(i % channels.size()), after, false, random.nextBoolean()));
                spinMicros(random.nextInt(1000));
            }
            for (CompletableFuture<Void> w : writers) {
                w.get(30, TimeUnit.SECONDS);
            }
            long last = byRevision.lastKey();
            assertEquals(1 + writerChannels.size() * writesEach, last);
            assertEquals(last, byRevision.size(), "one write per revision");
            for (int i = 0; i < watchers.size(); i++) {
                WatchStream w = watchers.get(i);
                long after = afters.get(i);
                String which = "watcher " + i + " (after " + after + ")";
                Callable<Replay> replayed = () -> Replay.of(after, contentAt(byRevision, after), w.events);
                await().atMost(10, TimeUnit.SECONDS).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(5))
                        .untilAsserted(() -> assertEquals(last, replayed.call().revision,
                                () -> which + ": " + w.kinds()));
                Replay replay = replayed.call();
                assertEquals(List.of(), replay.errors, which);
                assertEquals(last, replay.revision, which + ": " + w.kinds());
                assertEquals(contentAt(byRevision, last), replay.content, which);
                assertEquals(after == 0 ? 1 : 0, replay.snapshots, which + ": " + w.kinds());
            }
            assertEquals(watchers.size(), server.watcherCount());
        } finally {
            for (ManagedChannel c : channels.subList(1, channels.size())) {
                c.shutdownNow();
            }
            writerChannels.forEach(ManagedChannel::shutdownNow);
        }
    }

    /**
     * Sends {@code writes} random writes (a put or a delete of one of 40 keys), up to 16 in flight,
     * and records each by the revision it was given.
     */
    private static CompletableFuture<Void> writeAsync(ManagedChannel on, int writes, Random random,
            Map<Long, WriteRequest> byRevision) {
        MapcastGrpc.MapcastFutureStub writer = MapcastGrpc.newFutureStub(on);
        return CompletableFuture.runAsync(() -> {
            Semaphore inFlight = new Semaphore(16);
            List<ListenableFuture<WriteResponse>> acks = new ArrayList<>();
            for (int i = 0; i < writes; i++) {
                WriteRequest.Builder request = WriteRequest.newBuilder().setMap("m");
                String key = "k" + random.nextInt(40);
                if (random.nextInt(4) == 0) {
                    request.addDeletes(key);
                } else {
                    request.putPuts(key, ByteString.copyFromUtf8("v" + random.nextInt(1_000_000)));
                }
                WriteRequest sent = request.build();
                inFlight.acquireUninterruptibly();
                ListenableFuture<WriteResponse> ack = writer.write(sent);
                ack.addListener(inFlight::release, Runnable::run);
                // Recorded in the chain the join waits for: allAsList counts an input done as soon as
                // it is, which can be before a listener added to it has run.
                acks.add(Futures.transform(ack, r -> {
                    byRevision.put(r.getRevision(), sent);
                    return r;
                }, Runnable::run));
            }
            Futures.getUnchecked(Futures.allAsList(acks));
        });
    }

    /** The content after the writes up to {@code revision}, replayed in revision order. */
    private static Map<String, String> contentAt(ConcurrentSkipListMap<Long, WriteRequest> byRevision, long revision) {
        Map<String, String> content = new HashMap<>();
        for (WriteRequest w : byRevision.headMap(revision, true).values()) {
            w.getPutsMap().forEach((k, v) -> content.put(k, v.toStringUtf8()));
            w.getDeletesList().forEach(content::remove);
        }
        return content;
    }

    /**
     * A watch stream replayed as a client applies it: the content and revision it reaches, how many
     * snapshots it began, and each gap, repeat or revision out of place.
     */
    private static final class Replay {
        final Map<String, String> content;
        final List<String> errors = new ArrayList<>();
        /** Where the client is: -1 until a snapshot when it watches from 0. */
        long revision;
        int snapshots;
        private boolean inSnapshot;

        private Replay(long after, Map<String, String> contentThere) {
            this.revision = after == 0 ? -1 : after;
            this.content = new HashMap<>(contentThere);
        }

        /** The stream of a watch from {@code after}, which the client held {@code contentThere} at. */
        static Replay of(long after, Map<String, String> contentThere, List<WatchResponse> events) {
            Replay r = new Replay(after, contentThere);
            for (WatchResponse e : events) {
                r.apply(e);
            }
            return r;
        }

        private void apply(WatchResponse e) {
            if (!e.hasSnapshot()) {
                inSnapshot = false;
            }
            switch (e.getEventCase()) {
                case SNAPSHOT -> {
                    SnapshotChunk c = e.getSnapshot();
                    if (!inSnapshot) {
                        snapshots++;
                        content.clear();
                        revision = c.getRevision();
                    }
                    c.getEntriesMap().forEach((k, v) -> content.put(k, v.toStringUtf8()));
                    inSnapshot = !c.getLast();
                }
                case DELTA -> {
                    Delta d = e.getDelta();
                    if (d.getPrevRevision() != revision || d.getRevision() != revision + 1) {
                        errors.add("delta " + d.getPrevRevision() + " -> " + d.getRevision() + " at revision "
                                + revision);
                    }
                    d.getPutsMap().forEach((k, v) -> content.put(k, v.toStringUtf8()));
                    d.getDeletesList().forEach(content::remove);
                    revision = d.getRevision();
                }
                case PROGRESS -> {
                    if (e.getProgress().getRevision() != revision) {
                        errors.add("progress " + e.getProgress().getRevision() + " at revision " + revision);
                    }
                    revision = e.getProgress().getRevision();
                }
                case BATCH -> e.getBatch().getEventsList().forEach(this::apply);
                default -> errors.add("unexpected " + e.getEventCase());
            }
        }
    }

    private ManagedChannel newChannel() {
        return NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    }

    private void awaitWatcherCount(int expected) {
        await().atMost(10, TimeUnit.SECONDS).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(5))
                .untilAsserted(() -> assertEquals(expected, server.watcherCount(), "watchers left"));
    }

    private static void spinMicros(long micros) {
        long until = System.nanoTime() + micros * 1000;
        while (System.nanoTime() < until) {
            Thread.onSpinWait();
        }
    }

    @Test
    void shutdownEndsWatchStreamsWithUnavailable() throws Exception {
        start(MapcastServer.builder());
        put("k", "v");
        WatchStream watch = watch(0, false);
        watch.await(r -> r.hasSnapshot());
        server.close();
        Status status = Status.fromThrowable(watch.closed.get(10, TimeUnit.SECONDS));
        assertEquals(Status.Code.UNAVAILABLE, status.getCode());
        assertTrue(status.getDescription().contains("shutting down"), status.toString());
    }

    @Test
    void healthAndReflection() throws Exception {
        start(MapcastServer.builder());
        HealthCheckResponse health = HealthGrpc.newBlockingStub(channel)
                .check(HealthCheckRequest.newBuilder().setService("mapcast.v1.Mapcast").build());
        assertEquals(HealthCheckResponse.ServingStatus.SERVING, health.getStatus());

        FirstResponse<ServerReflectionResponse> answer = new FirstResponse<>();
        StreamObserver<ServerReflectionRequest> requests = ServerReflectionGrpc.newStub(channel)
                .serverReflectionInfo(answer);
        requests.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
        List<String> services = answer.get(10, TimeUnit.SECONDS).getListServicesResponse().getServiceList().stream()
                .map(ServiceResponse::getName).collect(Collectors.toList());
        requests.onCompleted();
        assertTrue(services.contains("mapcast.v1.Mapcast"), services.toString());
        assertTrue(services.contains("grpc.health.v1.Health"), services.toString());
    }

    /** The contract's digest of {k1: v1 .. k5: v5}. */
    private static long digestAfterFiveWrites() {
        try (dev.mapcast.core.OffHeapMap map = dev.mapcast.core.OffHeapMap.builder().trackDigest(true).build()) {
            for (int i = 1; i <= 5; i++) {
                map.put(("k" + i).getBytes(java.nio.charset.StandardCharsets.UTF_8),
                        ("v" + i).getBytes(java.nio.charset.StandardCharsets.UTF_8));
            }
            return map.digest();
        }
    }

    private long put(String key, String value) {
        return stub.write(WriteRequest.newBuilder().setMap("m").putPuts(key, ByteString.copyFromUtf8(value)).build())
                .getRevision();
    }

    private WatchStream watch(long after, boolean progress) {
        return watch(after, progress, false);
    }

    private WatchStream watch(long after, boolean progress, boolean batches) {
        return watch(channel, after, progress, batches);
    }

    private static WatchStream watch(ManagedChannel on, long after, boolean progress, boolean batches) {
        return WatchStream.start(on, WatchRequest.newBuilder().setMap("m").setAfterRevision(after)
                .setProgressNotify(progress).setBatchEvents(batches).build());
    }
}
