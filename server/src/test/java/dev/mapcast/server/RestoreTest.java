package dev.mapcast.server;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.proto.v1.GetRequest;
import dev.mapcast.proto.v1.IterationOrder;
import dev.mapcast.proto.v1.ListMapsRequest;
import dev.mapcast.proto.v1.MapInfo;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.RestoreRequest;
import dev.mapcast.proto.v1.RestoreResponse;
import dev.mapcast.proto.v1.SnapshotChunk;
import dev.mapcast.proto.v1.SnapshotRequest;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.proto.v1.WatchResponse;
import dev.mapcast.proto.v1.WriteRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Restore RPC over real gRPC with a data directory: one new revision holding exactly the
 * snapshot's content, watchers moved to a Compaction event and a snapshot, durable across a
 * restart; every bad stream refused with INVALID_ARGUMENT (FAILED_PRECONDITION for an order
 * mismatch, RESOURCE_EXHAUSTED for a count past the limit) and the map left as it was.
 */
class RestoreTest {

    @TempDir
    Path dataDir;

    private MapcastServer server;
    private ManagedChannel channel;
    private MapcastGrpc.MapcastBlockingStub stub;

    @BeforeEach
    void start() {
        server = MapcastServer.builder().port(0).dataDir(dataDir).snapshotChunkBytes(256).build().start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        stub = MapcastGrpc.newBlockingStub(channel);
    }

    @AfterEach
    void stop() {
        channel.shutdownNow();
        server.close();
    }

    @Test
    void restoreIsOneNewRevisionWatchersMoveToItAndItSurvivesARestart() throws Exception {
        for (int i = 0; i < 40; i++) {
            put("source", "key-" + i, "value-" + i);
        }
        List<SnapshotChunk> source = snapshot("source");
        assertTrue(source.size() > 3, "several chunks: " + source.size());
        for (int i = 0; i < 5; i++) {
            put("target", "old-" + i, "x");
        }
        Watch watch = new Watch();
        MapcastGrpc.newStub(channel).watch(WatchRequest.newBuilder().setMap("target").setAfterRevision(5).build(),
                watch);
        // Registered (the Progress that ends a resume) before the restore, so it is a live watcher moved.
        await().atMost(10, TimeUnit.SECONDS).until(() -> watch.events.stream().anyMatch(WatchResponse::hasProgress));

        RestoreResponse restored = restore("target", source, UnaryOperator.identity()).join();
        assertEquals(6, restored.getRevision());
        assertEquals(40, restored.getEntries());
        assertEquals(entries(source), entries(snapshot("target")));
        assertEquals(6, stub.get(GetRequest.newBuilder().setMap("target").setKey("key-7").build()).getModRevision());
        assertEquals(6, info("target").getCompactRevision());

        List<WatchResponse> events = watch.awaitSnapshot();
        WatchResponse compaction = events.get(events.size() - 2);
        assertTrue(compaction.hasCompaction(), "Compaction before the snapshot: " + events);
        assertEquals(6, events.get(events.size() - 1).getSnapshot().getRevision());

        put("target", "after", "restore");
        stop();
        start();
        assertEquals(7, info("target").getRevision());
        List<String> expected = entries(source);
        expected.add("after=restore");
        assertEquals(expected, entries(snapshot("target")));
    }

    @Test
    void aSnapshotStreamStartedBeforeARestoreEndsWithTheOldContent() {
        // More than the HTTP/2 windows hold (about 5 MB here): the server is still sending from its
        // pinned view of the old map when the restore swaps the map out (and closes what it can).
        for (int w = 0; w < 50; w++) {
            WriteRequest.Builder batch = WriteRequest.newBuilder().setMap("target");
            for (int i = 0; i < 1000; i++) {
                batch.putPuts("old-" + w + "-" + i, ByteString.copyFromUtf8("x".repeat(100)));
            }
            stub.write(batch.build());
        }
        List<String> old = entries(snapshot("target"));
        for (int i = 0; i < 10; i++) {
            put("source", "new-" + i, "y");
        }
        // Read the first chunk only: the rest is still to be sent from the pinned old map.
        Iterator<SnapshotChunk> reading = MapcastGrpc.newBlockingStub(channel)
                .snapshot(SnapshotRequest.newBuilder().setMap("target").build());
        List<SnapshotChunk> chunks = new ArrayList<>();
        chunks.add(reading.next());
        assertEquals(51, restore("target", snapshot("source"), UnaryOperator.identity()).join().getRevision());
        reading.forEachRemaining(chunks::add);
        assertEquals(old, entries(chunks), "the stream kept reading the map it pinned");
        assertEquals(50, chunks.get(chunks.size() - 1).getRevision());
        assertEquals(10, entries(snapshot("target")).size());
    }

    @Test
    void oneRestoreAtATimeAndACancelledOneFreesItsSlot() throws InterruptedException {
        for (int i = 0; i < 30; i++) {
            put("source", "key-" + i, "value-" + i);
        }
        List<SnapshotChunk> chunks = snapshot("source");
        // The first restore has sent one chunk and is still going; a second one is refused (after
        // its second of waiting) while it holds the slot. The two race for it: the second sends a
        // malformed chunk, so when it wins it fails at once and the first takes the slot after it;
        // should the first be refused all the same, it is started again.
        FirstResponse<RestoreResponse> first = null;
        StreamObserver<RestoreRequest> firstOut = null;
        RestoreRequest garbage = RestoreRequest.newBuilder().setMap("b")
                .setSnapshotChunk(ByteString.copyFrom(new byte[] {(byte) 0xFF, (byte) 0xFF})).build();
        Status second = null;
        for (int attempt = 0; attempt < 500 && second == null; attempt++) {
            if (first == null || first.isDone()) {
                first = new FirstResponse<>();
                firstOut = restoreStarted("a", chunks.get(0), first);
            }
            FirstResponse<RestoreResponse> b = new FirstResponse<>();
            StreamObserver<RestoreRequest> bOut = MapcastGrpc.newStub(channel).restore(b);
            bOut.onNext(garbage);
            bOut.onCompleted();
            Status s = Status.fromThrowable(b.handle((ok, e) -> e).join());
            if (s.getCode() == Status.Code.RESOURCE_EXHAUSTED) {
                second = s;
            } else {
                assertEquals(Status.Code.INVALID_ARGUMENT, s.getCode(), s.toString());
            }
        }
        assertTrue(second != null && second.getDescription().contains("another restore is in progress"),
                String.valueOf(second));
        for (SnapshotChunk c : chunks.subList(1, chunks.size())) {
            firstOut.onNext(RestoreRequest.newBuilder().setMap("a").setSnapshotChunk(c.toByteString()).build());
        }
        firstOut.onCompleted();
        assertEquals(30, first.join().getEntries());

        // A restore the client cancels half way gives its slot back, and one that arrived meanwhile
        // waits for that (up to a second) rather than being refused; so does one retried right after.
        StreamObserver<RestoreRequest> cancelled = restoreStarted("c", chunks.get(0), new FirstResponse<>());
        Thread.sleep(200);  // "c" holds the slot by now
        CompletableFuture<RestoreResponse> waiting = restore("d", chunks, UnaryOperator.identity());
        Thread.sleep(200);  // and "d" is waiting for it
        cancelled.onError(Status.CANCELLED.withDescription("changed my mind").asRuntimeException());
        assertEquals(30, waiting.join().getEntries());
        restoreStarted("e", chunks.get(0), new FirstResponse<>())
                .onError(Status.CANCELLED.withDescription("changed my mind").asRuntimeException());
        assertEquals(30, restore("d", chunks, UnaryOperator.identity()).join().getEntries());
        assertEquals(List.of("a", "d", "source"), stub.listMaps(ListMapsRequest.getDefaultInstance())
                .getMapsList().stream().map(MapInfo::getName).toList());
    }

    @Test
    void aRestoreCreatesAnAbsentMapInTheSnapshotsOrder() {
        for (int i = 0; i < 10; i++) {
            write("ordered", IterationOrder.ITERATION_ORDER_INSERTION, "k" + (9 - i), "v");
        }
        RestoreResponse r = restore("copy", snapshot("ordered"), UnaryOperator.identity()).join();
        assertEquals(1, r.getRevision());
        assertEquals(entries(snapshot("ordered")), entries(snapshot("copy")));
        assertEquals(IterationOrder.ITERATION_ORDER_INSERTION, info("copy").getOrder());
    }

    @Test
    void everyBadStreamIsRefusedAndChangesNothing() {
        for (int i = 0; i < 30; i++) {
            put("source", "key-" + i, "value-" + i);
        }
        List<SnapshotChunk> good = snapshot("source");
        put("target", "kept", "yes");
        List<String> before = entries(snapshot("target"));

        assertRefused(Status.Code.INVALID_ARGUMENT, "not marked last",
                restore("target", good.subList(0, good.size() - 1), UnaryOperator.identity()));
        assertRefused(Status.Code.INVALID_ARGUMENT, "of revision",
                restore("target", good, c -> c.getLast() ? c.toBuilder().setRevision(99).build() : c));
        assertRefused(Status.Code.INVALID_ARGUMENT, "digest",
                restore("target", good, c -> c.toBuilder().putEntries("key-0", ByteString.copyFromUtf8("forged")).build()));
        assertRefused(Status.Code.INVALID_ARGUMENT, "entries; the last chunk says",
                restore("target", good, c -> c.getLast() ? c.toBuilder().setTotalEntries(3).build() : c));
        assertRefused(Status.Code.INVALID_ARGUMENT, "restore refused, nothing changed: no chunk received",
                restore("target", List.of(), c -> c));
        assertRefused(Status.Code.INVALID_ARGUMENT, "empty key",
                restore("target", List.of(SnapshotChunk.newBuilder().putEntries("", ByteString.EMPTY).setLast(true)
                        .setTotalEntries(1).setDigest(emptyKeyDigest()).build()), c -> c));
        for (int i = 0; i < 3; i++) {
            write("ordered", IterationOrder.ITERATION_ORDER_INSERTION, "k" + i, "v");
        }
        assertRefused(Status.Code.FAILED_PRECONDITION, "order", restore("target", snapshot("ordered"), c -> c));

        assertEquals(before, entries(snapshot("target")));
        assertEquals(1, info("target").getRevision());
        assertEquals(List.of("ordered", "source", "target"), stub.listMaps(ListMapsRequest.getDefaultInstance())
                .getMapsList().stream().map(MapInfo::getName).toList(), "no map created by a refused restore");
    }

    @Test
    void anUndefinedOrderOrACountPastTheLimitIsRefusedAndChangesNothing() {
        for (int i = 0; i < 3; i++) {
            put("source", "key-" + i, "value-" + i);
        }
        List<SnapshotChunk> good = snapshot("source");
        put("target", "kept", "yes");
        List<String> before = entries(snapshot("target"));
        MapInfo targetBefore = info("target");

        for (String map : List.of("target", "absent")) {
            // An order the contract does not define, refused as a Write's is (not taken for HASH).
            assertRefused(Status.Code.INVALID_ARGUMENT, "restore of map \"" + map + "\" refused, nothing changed:"
                    + " chunk 1: order: 7 (expected: ITERATION_ORDER_UNSPECIFIED, _HASH or _INSERTION)",
                    restore(map, good, c -> c.toBuilder().setOrderValue(7).build()));
            // A count no map may hold (the default limit is 10,000,000), refused before anything is
            // reserved for it; total_entries is a uint64.
            assertRefused(Status.Code.RESOURCE_EXHAUSTED, "chunk 1: total_entries: 9223372036854775807 (expected:"
                    + " at most 10000000, the limit of entries per map)",
                    restore(map, good, c -> c.toBuilder().setTotalEntries(Long.MAX_VALUE).build()));
            assertRefused(Status.Code.RESOURCE_EXHAUSTED, "chunk 1: total_entries: 18446744073709551615 (expected:"
                    + " at most 10000000",
                    restore(map, good, c -> c.toBuilder().setTotalEntries(-1).build()));
        }

        assertEquals(before, entries(snapshot("target")));
        assertEquals(targetBefore, info("target"), "revision, size and bytes as before");
        assertEquals(List.of("source", "target"), stub.listMaps(ListMapsRequest.getDefaultInstance())
                .getMapsList().stream().map(MapInfo::getName).toList(), "no map created by a refused restore");
    }

    @Test
    void aCountWithinTheLimitIsAHintTheReservationDoesNotFollowFar() {
        put("source", "a", "x".repeat(200));
        put("source", "b", "y".repeat(200));
        List<SnapshotChunk> source = snapshot("source");
        assertEquals(2, source.size(), "one entry a chunk");
        // Chunk 1 claims the limit per map: sized for that, the map would reserve about 256 MiB of index.
        RestoreResponse r = restore("copy", source,
                c -> c == source.get(0) ? c.toBuilder().setTotalEntries(10_000_000).build() : c).join();
        assertEquals(2, r.getEntries());
        assertEquals(entries(source), entries(snapshot("copy")));
        long reserved = info("copy").getReservedBytes();
        assertTrue(reserved < 16 << 20, "the restored map reserves " + reserved + " bytes");
    }

    @Test
    void aWatcherResumingFromBeforeARestoreGetsACompactionThenTheRestoredMap() {
        for (int i = 0; i < 10; i++) {
            put("source", "key-" + i, "value-" + i);
        }
        List<SnapshotChunk> source = snapshot("source");
        for (int i = 0; i < 5; i++) {
            put("target", "old-" + i, "x");
        }
        assertEquals(6, restore("target", source, UnaryOperator.identity()).join().getRevision());

        // Its deltas 4 and 5 changed a map that is gone: they must not be what it resumes with.
        Iterator<WatchResponse> events = MapcastGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                .watch(WatchRequest.newBuilder().setMap("target").setAfterRevision(3).build());
        WatchResponse first = events.next();
        assertTrue(first.hasCompaction(), "a Compaction event first: " + first);
        assertEquals(6, first.getCompaction().getCompactRevision());
        List<SnapshotChunk> chunks = new ArrayList<>();
        do {
            WatchResponse next = events.next();
            assertTrue(next.hasSnapshot(), "then a snapshot: " + next);
            chunks.add(next.getSnapshot());
        } while (!chunks.get(chunks.size() - 1).getLast());
        assertEquals(6, chunks.get(0).getRevision());
        assertEquals(entries(source), entries(chunks));
    }

    // ---- helpers ----

    private static long emptyKeyDigest() {
        try (dev.mapcast.core.OffHeapMap m = dev.mapcast.core.OffHeapMap.builder().trackDigest(true).build()) {
            m.put(new byte[0], new byte[0]);
            return m.digest();
        }
    }

    private static void assertRefused(Status.Code code, String why, CompletableFuture<RestoreResponse> call) {
        Throwable t = call.handle((r, e) -> e).join();
        assertTrue(t != null, "refused: " + why);
        Status s = Status.fromThrowable(t);
        assertEquals(code, s.getCode(), s.toString());
        assertTrue(s.getDescription().contains(why), s.getDescription());
    }

    /** A restore that has sent its first chunk and goes on as the caller says. */
    private StreamObserver<RestoreRequest> restoreStarted(String map, SnapshotChunk first,
            StreamObserver<RestoreResponse> response) {
        StreamObserver<RestoreRequest> out = MapcastGrpc.newStub(channel).restore(response);
        out.onNext(RestoreRequest.newBuilder().setMap(map).setSnapshotChunk(first.toByteString()).build());
        return out;
    }

    private CompletableFuture<RestoreResponse> restore(String map, List<SnapshotChunk> chunks,
            UnaryOperator<SnapshotChunk> change) {
        FirstResponse<RestoreResponse> done = new FirstResponse<>();
        StreamObserver<RestoreRequest> out = MapcastGrpc.newStub(channel).withDeadlineAfter(20, TimeUnit.SECONDS)
                .restore(done);
        for (SnapshotChunk c : chunks) {
            out.onNext(RestoreRequest.newBuilder().setMap(map).setSnapshotChunk(change.apply(c).toByteString()).build());
        }
        out.onCompleted();
        return done;
    }

    private List<SnapshotChunk> snapshot(String map) {
        List<SnapshotChunk> out = new ArrayList<>();
        Iterator<SnapshotChunk> it = stub.snapshot(SnapshotRequest.newBuilder().setMap(map).build());
        it.forEachRemaining(out::add);
        return out;
    }

    private static List<String> entries(List<SnapshotChunk> chunks) {
        List<String> out = new ArrayList<>();
        for (SnapshotChunk c : chunks) {
            c.getEntriesMap().forEach((k, v) -> out.add(k + "=" + v.toStringUtf8()));
        }
        return out;
    }

    private MapInfo info(String map) {
        return stub.listMaps(ListMapsRequest.getDefaultInstance()).getMapsList().stream()
                .filter(m -> m.getName().equals(map)).findFirst().orElseThrow();
    }

    private void put(String map, String key, String value) {
        write(map, IterationOrder.ITERATION_ORDER_HASH, key, value);
    }

    private void write(String map, IterationOrder order, String key, String value) {
        stub.write(WriteRequest.newBuilder().setMap(map).setOrder(order).putPuts(key, ByteString.copyFromUtf8(value))
                .build());
    }

    private static final class Watch implements StreamObserver<WatchResponse> {
        final List<WatchResponse> events = new java.util.concurrent.CopyOnWriteArrayList<>();

        @Override
        public void onNext(WatchResponse value) {
            events.add(value);
        }

        @Override
        public void onError(Throwable t) {
        }

        @Override
        public void onCompleted() {
        }

        List<WatchResponse> awaitSnapshot() {
            await().atMost(10, TimeUnit.SECONDS).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(10))
                    .untilAsserted(() -> assertTrue(
                            events.stream().anyMatch(e -> e.hasSnapshot() && e.getSnapshot().getLast()),
                            () -> "no snapshot; saw " + events));
            // Up to the first chunk of the snapshot: Compaction is just before it.
            int first = 0;
            while (!events.get(first).hasSnapshot()) {
                first++;
            }
            List<WatchResponse> upTo = new ArrayList<>(events.subList(0, first));
            WatchResponse lastChunk = events.stream().filter(e -> e.hasSnapshot() && e.getSnapshot().getLast())
                    .findFirst().orElseThrow();
            upTo.add(lastChunk);
            return upTo;
        }
    }
}
