package dev.mapcast.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.proto.v1.CompactRequest;
import dev.mapcast.proto.v1.Compaction;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.proto.v1.WatchResponse;
import dev.mapcast.proto.v1.WriteRequest;
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
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

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
        Watch watch = watch(3, false);
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
        List<Watch> watchers = List.of(watch(0, false), watch(5, false), watch(2, false));
        watchers.get(0).await(r -> r.hasSnapshot());
        watchers.get(2).await(r -> r.hasDelta() && r.getDelta().getRevision() == 5);
        Compaction c = stub.compact(CompactRequest.newBuilder().setMap("m").setRevision(4).build()).getCompaction();
        assertEquals(4, c.getCompactRevision());
        assertEquals(5, c.getRevision());
        for (Watch w : watchers) {
            w.await(r -> r.hasCompaction() && r.getCompaction().getCompactRevision() == 4);
        }
        Watch old = watch(3, false);
        old.await(r -> r.hasSnapshot() && r.getSnapshot().getLast());
        assertEquals(List.of("compaction 4", "snapshot 5"), old.kinds());
        Watch recent = watch(4, false);
        recent.await(r -> r.hasProgress());
        assertEquals(List.of("delta 5", "progress 5"), recent.kinds(), "history after the compact revision is kept");
    }

    @Test
    void historyPurgedByItsBoundIsACompactionToo() throws Exception {
        start(MapcastServer.builder().history(8, 1 << 20));
        put("k0", "v0");
        Watch live = watch(0, false);
        for (int i = 1; i <= 9; i++) {
            put("k" + i, "v" + i);
        }
        // The 9th delta passes the bound of 8: purged down to 6 (revisions 4 to 9), and watchers told.
        live.await(r -> r.hasCompaction());
        WatchResponse purge = live.events.stream().filter(WatchResponse::hasCompaction).findFirst().orElseThrow();
        assertEquals(3, purge.getCompaction().getCompactRevision());
        Watch tooOld = watch(2, false);
        tooOld.await(r -> r.hasSnapshot());
        assertEquals("compaction 3", tooOld.kinds().get(0));
        Watch kept = watch(3, false);
        kept.await(r -> r.hasProgress());
        assertEquals(8, kept.kinds().size(), "deltas 4 to 10, then progress 10: " + kept.kinds());
    }

    @Test
    void idleWatchersAskingForProgressGetIt() throws Exception {
        start(MapcastServer.builder().progressInterval(Duration.ofMillis(200)));
        put("k", "v");
        Watch withProgress = watch(1, true);
        Watch without = watch(1, false);
        // Both get the Progress that ends a resume; only the one that asked gets more while idle.
        withProgress.await(r -> r.hasProgress());
        without.await(r -> r.hasProgress());
        Thread.sleep(700);
        assertTrue(withProgress.kinds().size() >= 3, "idle progress: " + withProgress.kinds());
        assertEquals(List.of("progress 1"), without.kinds(), "no progress unasked");
    }

    @Test
    void lingeringDeltasGoAsOneBatchOnlyToClientsThatAcceptBatches() throws Exception {
        start(MapcastServer.builder().watchLinger(Duration.ofMillis(300)));
        put("k0", "v0");
        Watch batching = watch(1, false, true);
        Watch plain = watch(1, false, false);
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

    private static int revisionsSeen(Watch w) {
        return allRevisions(w).size();
    }

    private static List<Long> allRevisions(Watch w) {
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
    void shutdownEndsWatchStreamsWithUnavailable() throws Exception {
        start(MapcastServer.builder());
        put("k", "v");
        Watch watch = watch(0, false);
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

    private void put(String key, String value) {
        stub.write(WriteRequest.newBuilder().setMap("m").putPuts(key, ByteString.copyFromUtf8(value)).build());
    }

    private Watch watch(long after, boolean progress) {
        return watch(after, progress, false);
    }

    private Watch watch(long after, boolean progress, boolean batches) {
        Watch w = new Watch();
        MapcastGrpc.newStub(channel).watch(WatchRequest.newBuilder().setMap("m").setAfterRevision(after)
                .setProgressNotify(progress).setBatchEvents(batches).build(), w);
        return w;
    }

    /** A watch stream's events as protobuf-java parses them. */
    private static final class Watch implements StreamObserver<WatchResponse> {
        final List<WatchResponse> events = new CopyOnWriteArrayList<>();
        final CompletableFuture<Throwable> closed = new CompletableFuture<>();

        @Override
        public void onNext(WatchResponse value) {
            events.add(value);
        }

        @Override
        public void onError(Throwable t) {
            closed.complete(t);
        }

        @Override
        public void onCompleted() {
            closed.complete(null);
        }

        void await(Predicate<WatchResponse> seen) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (events.stream().noneMatch(seen)) {
                assertTrue(System.nanoTime() < deadline, "timed out; saw " + kinds());
                Thread.sleep(5);
            }
        }

        List<String> kinds() {
            return events.stream().map(r -> switch (r.getEventCase()) {
                case SNAPSHOT -> "snapshot " + r.getSnapshot().getRevision();
                case DELTA -> "delta " + r.getDelta().getRevision();
                case COMPACTION -> "compaction " + r.getCompaction().getCompactRevision();
                case PROGRESS -> "progress " + r.getProgress().getRevision();
                case BATCH -> "batch of " + r.getBatch().getEventsCount();
                default -> "?";
            }).collect(Collectors.toList());
        }
    }
}
