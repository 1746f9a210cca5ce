package dev.mapcast.server;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.proto.v1.DeleteMapRequest;
import dev.mapcast.proto.v1.DeleteMapResponse;
import dev.mapcast.proto.v1.GetRequest;
import dev.mapcast.proto.v1.GetResponse;
import dev.mapcast.proto.v1.ListMapsRequest;
import dev.mapcast.proto.v1.MapInfo;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.SnapshotChunk;
import dev.mapcast.proto.v1.SnapshotRequest;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.proto.v1.WatchResponse;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.proto.v1.WriteResponse;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * A map's whole life over real gRPC: created only by a write that puts something, deleted by
 * DeleteMap (durably, its watchers told), created again as another incarnation, and the
 * incarnation carried wherever a client learns a revision.
 */
class MapLifecycleTest {

    @TempDir
    Path dataDir;

    private MapcastServer server;
    private ManagedChannel channel;
    private MapcastGrpc.MapcastBlockingStub stub;

    private void start(MapcastServer.Builder builder) {
        server = builder.port(0).build().start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        stub = MapcastGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);
    }

    private void fresh() {
        stub = MapcastGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);
    }

    @AfterEach
    void stop() {
        if (channel != null) {
            channel.shutdownNow();
            channel = null;
        }
        if (server != null) {
            server.close();
            server = null;
        }
    }

    @Test
    void onlyAWriteThatPutsSomethingCreatesAMap() {
        start(MapcastServer.builder());
        refused(Status.Code.NOT_FOUND, "map \"nomap\" does not exist: a write that only deletes keys",
                () -> write("nomap", w -> w.addDeletes("k")));
        refused(Status.Code.NOT_FOUND, "map \"nomap\" does not exist",
                () -> write("nomap", w -> w.addDeletes("k").putExpectedModRevisions("k", 0)));
        // Put and deleted in one write: nothing is put, so nothing is created either.
        refused(Status.Code.NOT_FOUND, "map \"nomap\" does not exist",
                () -> write("nomap", w -> w.putPuts("k", bytes("v")).addDeletes("k")));
        refused(Status.Code.INVALID_ARGUMENT, "a write needs at least one put or delete (map \"nomap\"",
                () -> write("nomap", w -> { }));
        assertEquals(0, stub.listMaps(ListMapsRequest.getDefaultInstance()).getMapsCount(), "no map created");

        assertEquals(1, write("nomap", w -> w.putPuts("k", bytes("v"))).getRevision());
        assertEquals(2, write("nomap", w -> w.addDeletes("k")).getRevision(), "an existing map takes deletes");
    }

    @Test
    void everyAnswerCarriesTheIncarnationAndARecreatedMapHasAnother() {
        start(MapcastServer.builder());
        WriteResponse first = write("config", w -> w.putPuts("a", bytes("1")));
        long incarnation = first.getIncarnation();
        assertNotEquals(0, incarnation);
        assertEquals(incarnation, get("config", "a").getIncarnation());
        assertEquals(incarnation, info("config").getIncarnation());
        assertEquals(incarnation, snapshot("config").get(0).getIncarnation());

        DeleteMapResponse deleted = stub.deleteMap(DeleteMapRequest.newBuilder().setMap("config").build());
        assertEquals(1, deleted.getRevision());
        assertEquals(incarnation, deleted.getIncarnation());
        assertEquals(0, stub.listMaps(ListMapsRequest.getDefaultInstance()).getMapsCount());
        refused(Status.Code.NOT_FOUND, "map \"config\" does not exist", () -> get("config", "a"));
        refused(Status.Code.NOT_FOUND, "map \"config\" does not exist",
                () -> stub.deleteMap(DeleteMapRequest.newBuilder().setMap("config").build()));

        WriteResponse again = write("config", w -> w.putPuts("b", bytes("2")));
        assertEquals(1, again.getRevision(), "a map created again starts at revision 1");
        assertNotEquals(incarnation, again.getIncarnation());
        assertFalse(get("config", "a").getFound(), "nothing of the deleted map is left");
    }

    @Test
    void deleteConditionsRefuseAndChangeNothing() {
        start(MapcastServer.builder());
        long incarnation = write("config", w -> w.putPuts("a", bytes("1"))).getIncarnation();
        write("config", w -> w.putPuts("a", bytes("2")));
        refused(Status.Code.FAILED_PRECONDITION, "map \"config\" is at revision 2 (expected_revision: 1)",
                () -> stub.deleteMap(DeleteMapRequest.newBuilder().setMap("config").setExpectedRevision(1).build()));
        refused(Status.Code.FAILED_PRECONDITION, "(expected_incarnation: 0000000000000007)",
                () -> stub.deleteMap(DeleteMapRequest.newBuilder().setMap("config").setExpectedIncarnation(7).build()));
        refused(Status.Code.INVALID_ARGUMENT, "map: empty",
                () -> stub.deleteMap(DeleteMapRequest.newBuilder().setMap("").build()));
        assertEquals(2, info("config").getRevision());
        assertEquals(2, stub.deleteMap(DeleteMapRequest.newBuilder().setMap("config").setExpectedRevision(2)
                .setExpectedIncarnation(incarnation).build()).getRevision());
    }

    @Test
    void watchersAreToldOfADeletionAndThoseThatWaitFollowTheMapCreatedAgain() {
        start(MapcastServer.builder());
        long first = write("config", w -> w.putPuts("a", bytes("1"))).getIncarnation();
        WatchStream plain = WatchStream.start(channel, WatchRequest.newBuilder().setMap("config").build());
        WatchStream waiting = WatchStream.start(channel, WatchRequest.newBuilder().setMap("config")
                .setWaitForMap(true).build());
        plain.await(r -> r.hasSnapshot());
        waiting.await(r -> r.hasSnapshot());

        stub.deleteMap(DeleteMapRequest.newBuilder().setMap("config").build());

        Throwable ended = plain.closed.join();
        Status status = Status.fromThrowable(ended);
        assertEquals(Status.Code.NOT_FOUND, status.getCode());
        assertEquals("map \"config\" does not exist (it was deleted)", status.getDescription());
        waiting.await(r -> r.hasDeleted());
        WatchResponse deleted = waiting.events.stream().filter(WatchResponse::hasDeleted).findFirst().orElseThrow();
        assertEquals(1, deleted.getDeleted().getRevision());
        assertEquals(first, deleted.getDeleted().getIncarnation());
        assertFalse(waiting.closed.isDone(), "a waiting watcher's stream stays open");

        WriteResponse created = write("config", w -> w.putPuts("b", bytes("2")));
        write("config", w -> w.putPuts("c", bytes("3")));
        waiting.await(r -> r.hasDelta() && r.getDelta().getRevision() == 2
                || r.hasBatch() && r.getBatch().getEventsList().stream().anyMatch(e -> e.getDelta().getRevision() == 2));
        List<String> after = afterDeleted(waiting);
        assertEquals(List.of("snapshot 0", "delta 1", "delta 2"), after.subList(0, 3),
                "the empty map at revision 0, then every delta: " + waiting.kinds());
        SnapshotChunk empty = waiting.flattened().events.stream().filter(WatchResponse::hasSnapshot).reduce((a, b) -> b)
                .orElseThrow().getSnapshot();
        assertEquals(created.getIncarnation(), empty.getIncarnation());
        assertEquals(0, empty.getTotalEntries());
        assertTrue(empty.getLast());
        waiting.cancel();
    }

    /**
     * A waiting watcher that is slow to read hears every incarnation, however short: the deletion,
     * a map created, written and deleted again while the deletion was still queued, then the next
     * one. (It once skipped the short one: it re-attached only after sending what it had queued.)
     */
    @Test
    void aSlowWaitingWatcherHearsEveryIncarnationInOrder() {
        server = MapcastServer.builder().port(0).build().start();
        // A small transport window: the server's queue holds what the client does not take.
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext()
                .flowControlWindow(16 * 1024).build();
        fresh();
        long first = write("slow", w -> w.putPuts("k", bytes("v"))).getIncarnation();
        WatchStream watch = WatchStream.startTaking(channel, WatchRequest.newBuilder().setMap("slow")
                .setWaitForMap(true).build(), 1);
        watch.await(WatchResponse::hasSnapshot);
        ByteString value = ByteString.copyFrom(new byte[4096]);
        for (int i = 0; i < 64; i++) {  // 256 KiB of deltas: more than the window and Netty's buffer
            int n = i;
            write("slow", w -> w.putPuts("k" + n, value));
        }
        stub.deleteMap(DeleteMapRequest.newBuilder().setMap("slow").build());
        long second = write("slow", w -> w.putPuts("a", bytes("1"))).getIncarnation();
        write("slow", w -> w.putPuts("b", bytes("2")));
        stub.deleteMap(DeleteMapRequest.newBuilder().setMap("slow").build());
        long third = write("slow", w -> w.putPuts("c", bytes("3"))).getIncarnation();

        watch.takeAll();
        watch.await(r -> r.hasProgress() && r.getProgress().getIncarnation() == third
                || r.hasBatch() && r.getBatch().getEventsList().stream()
                        .anyMatch(e -> e.hasProgress() && e.getProgress().getIncarnation() == third));
        List<String> life = new ArrayList<>();
        for (WatchResponse r : watch.flattened().events) {
            switch (r.getEventCase()) {
                case SNAPSHOT -> life.add("snapshot " + r.getSnapshot().getRevision() + " of "
                        + name(r.getSnapshot().getIncarnation(), first, second, third));
                case DELTA -> life.add("delta " + r.getDelta().getRevision());
                case DELETED -> life.add("deleted " + r.getDeleted().getRevision() + " of "
                        + name(r.getDeleted().getIncarnation(), first, second, third));
                default -> { }
            }
        }
        List<String> expected = new ArrayList<>();
        expected.add("snapshot 1 of first");
        for (int revision = 2; revision <= 65; revision++) {
            expected.add("delta " + revision);
        }
        expected.addAll(List.of("deleted 65 of first", "snapshot 0 of second", "delta 1", "delta 2",
                "deleted 2 of second", "snapshot 0 of third", "delta 1"));
        assertEquals(expected, life);
        assertFalse(watch.closed.isDone(), "the stream stays open");
        watch.cancel();
    }

    private static String name(long incarnation, long first, long second, long third) {
        return incarnation == first ? "first" : incarnation == second ? "second" : incarnation == third ? "third"
                : Long.toHexString(incarnation);
    }

    @Test
    void aWatcherThatWaitsForAMapNeverCreatedHearsSoAndThenEveryWrite() {
        start(MapcastServer.builder());
        WatchStream waiting = WatchStream.start(channel, WatchRequest.newBuilder().setMap("later")
                .setWaitForMap(true).build());
        waiting.await(WatchResponse::hasDeleted);
        assertEquals(List.of("deleted 0"), waiting.kinds(), "told the map does not exist, once");
        Status plain = Status.fromThrowable(WatchStream.start(channel, WatchRequest.newBuilder().setMap("later")
                .build()).closed.join());
        assertEquals(Status.Code.NOT_FOUND, plain.getCode(), "without wait_for_map: " + plain);
        assertEquals("map \"later\" does not exist (a Write that puts a key creates it)", plain.getDescription());
        write("later", w -> w.putPuts("k", bytes("v")));
        waiting.await(WatchResponse::hasProgress);  // sent right after the deltas a waiting watcher is given
        assertEquals(List.of("deleted 0", "snapshot 0", "delta 1", "progress 1"), waiting.flattened().kinds().subList(0, 4));
        waiting.cancel();
    }

    @Test
    void aResumeFromAnotherIncarnationGetsASnapshotNotTheNewMapsDeltas() {
        start(MapcastServer.builder());
        long old = write("config", w -> w.putPuts("a", bytes("1"))).getIncarnation();
        write("config", w -> w.putPuts("a", bytes("2")));
        stub.deleteMap(DeleteMapRequest.newBuilder().setMap("config").build());
        for (int i = 0; i < 3; i++) {
            write("config", w -> w.putPuts("b", bytes("x")));
        }
        // A client at revision 1 of the old incarnation: the new map's delta 2 is not its next change.
        WatchStream resume = WatchStream.start(channel, WatchRequest.newBuilder().setMap("config").setAfterRevision(1)
                .setIncarnation(old).build());
        resume.await(WatchResponse::hasSnapshot);
        assertEquals("snapshot 3", resume.kinds().get(0));
        assertNotEquals(old, resume.events.get(0).getSnapshot().getIncarnation());
        resume.cancel();
        // The same incarnation resumes from history, and the Progress event carries it.
        long current = info("config").getIncarnation();
        WatchStream same = WatchStream.start(channel, WatchRequest.newBuilder().setMap("config").setAfterRevision(1)
                .setIncarnation(current).build());
        same.await(WatchResponse::hasProgress);
        assertEquals(List.of("delta 2", "delta 3", "progress 3"), same.kinds());
        assertEquals(current, same.events.get(2).getProgress().getIncarnation());
        same.cancel();
    }

    @Test
    void aDeletionIsDurableAndTheIncarnationSurvivesARestart() throws Exception {
        start(MapcastServer.builder().dataDir(dataDir));
        long kept = write("kept", w -> w.putPuts("k", bytes("v"))).getIncarnation();
        write("gone", w -> w.putPuts("k", bytes("v")));
        Path mapsDir = dataDir.resolve("maps");
        assertEquals(2, directories(mapsDir));
        stub.deleteMap(DeleteMapRequest.newBuilder().setMap("gone").build());
        assertEquals(1, directories(mapsDir), "the deleted map's files are gone");

        stop();
        start(MapcastServer.builder().dataDir(dataDir));
        List<String> names = stub.listMaps(ListMapsRequest.getDefaultInstance()).getMapsList().stream()
                .map(MapInfo::getName).toList();
        assertEquals(List.of("kept"), names);
        assertEquals(kept, info("kept").getIncarnation(), "the incarnation is on disk");
        assertEquals(kept, get("kept", "k").getIncarnation());
        long recreated = write("gone", w -> w.putPuts("k", bytes("again"))).getIncarnation();
        assertEquals(1, info("gone").getRevision());

        stop();
        start(MapcastServer.builder().dataDir(dataDir));
        assertEquals(recreated, info("gone").getIncarnation());
        assertEquals("again", get("gone", "k").getValue().toStringUtf8());
    }

    @Test
    void aMapWhoseCreatingWriteNeverReachedTheDiskWasNeverCreated() throws Exception {
        start(MapcastServer.builder().dataDir(dataDir));
        write("kept", w -> w.putPuts("k", bytes("v")));
        write("unborn", w -> w.putPuts("k", bytes("v")));
        stop();
        // As a crash after the map's directory was made but before its first record was forced
        // (that write was never acknowledged) leaves it: the revision-0 snapshot and an empty log.
        Path unborn = null;
        try (Stream<Path> dirs = Files.list(dataDir.resolve("maps"))) {
            for (Path d : dirs.toList()) {
                try (Stream<Path> files = Files.list(d)) {
                    for (Path f : files.toList()) {
                        if (f.getFileName().toString().startsWith("snapshot-")
                                && dev.mapcast.codec.SnapshotFiles.inspect(f, null).map().equals("unborn")) {
                            unborn = d;
                        }
                    }
                }
            }
        }
        assertTrue(unborn != null, "the directory of map \"unborn\"");
        try (Stream<Path> files = Files.list(unborn)) {
            for (Path log : files.filter(f -> f.getFileName().toString().startsWith("wal-")).toList()) {
                Files.write(log, new byte[0]);
            }
        }
        start(MapcastServer.builder().dataDir(dataDir));
        assertEquals(List.of("kept"), stub.listMaps(ListMapsRequest.getDefaultInstance()).getMapsList().stream()
                .map(MapInfo::getName).toList());
        assertFalse(Files.exists(unborn), "its directory is removed");
        assertEquals(1, write("unborn", w -> w.putPuts("k", bytes("again"))).getRevision());
    }

    @Test
    void anInMemoryRestartIsAnotherIncarnation() {
        start(MapcastServer.builder());
        long before = write("config", w -> w.putPuts("a", bytes("1"))).getIncarnation();
        int port = server.port();
        stop();
        start(MapcastServer.builder().port(port));
        assertNotEquals(before, write("config", w -> w.putPuts("a", bytes("1"))).getIncarnation());
    }

    @Test
    void deletingUnderConcurrentWritesLosesNoAcknowledgedWriteOfTheMapThatRemains() throws Exception {
        start(MapcastServer.builder().dataDir(dataDir));
        write("busy", w -> w.putPuts("seed", bytes("0")));
        AtomicBoolean stop = new AtomicBoolean();
        ConcurrentLinkedQueue<WriteResponse> acked = new ConcurrentLinkedQueue<>();
        ExecutorService writers = Executors.newFixedThreadPool(3);
        List<Future<?>> running = new ArrayList<>();
        for (int t = 0; t < 3; t++) {
            int writer = t;
            running.add(writers.submit(() -> {
                MapcastGrpc.MapcastBlockingStub s = MapcastGrpc.newBlockingStub(channel);
                for (int i = 0; !stop.get(); i++) {
                    int n = i;
                    acked.add(s.withDeadlineAfter(30, TimeUnit.SECONDS).write(WriteRequest.newBuilder().setMap("busy")
                            .putPuts("w" + writer, bytes(Integer.toString(n))).build()));
                }
                return null;
            }));
        }
        await().atMost(Duration.ofSeconds(30)).until(() -> acked.size() > 30);
        DeleteMapResponse deleted = stub.deleteMap(DeleteMapRequest.newBuilder().setMap("busy").build());
        int before = acked.size();
        await().atMost(Duration.ofSeconds(30)).until(() -> acked.size() > before + 30);
        stop.set(true);
        for (Future<?> f : running) {
            f.get(30, TimeUnit.SECONDS);  // no write failed: those after the delete created the map anew
        }
        writers.shutdown();

        long current = info("busy").getIncarnation();
        long newRevisions = acked.stream().filter(r -> r.getIncarnation() == current).count();
        long oldRevisions = acked.stream().filter(r -> r.getIncarnation() == deleted.getIncarnation()).count();
        assertEquals(acked.size(), newRevisions + oldRevisions, "every write belongs to one of the two incarnations");
        assertEquals(newRevisions, info("busy").getRevision(), "the map created again holds each later write once");
        assertTrue(acked.stream().filter(r -> r.getIncarnation() == deleted.getIncarnation())
                .allMatch(r -> r.getRevision() <= deleted.getRevision()), "no write applied to the deleted map after");

        stop();
        start(MapcastServer.builder().dataDir(dataDir));
        assertEquals(newRevisions, info("busy").getRevision(), "after a restart too");
        assertEquals(current, info("busy").getIncarnation());
    }

    // ---- helpers ----

    private WriteResponse write(String map, java.util.function.Consumer<WriteRequest.Builder> fill) {
        WriteRequest.Builder b = WriteRequest.newBuilder().setMap(map);
        fill.accept(b);
        fresh();
        return stub.write(b.build());
    }

    private GetResponse get(String map, String key) {
        fresh();
        return stub.get(GetRequest.newBuilder().setMap(map).setKey(key).build());
    }

    private MapInfo info(String map) {
        fresh();
        return stub.listMaps(ListMapsRequest.getDefaultInstance()).getMapsList().stream()
                .filter(m -> m.getName().equals(map)).findFirst().orElseThrow();
    }

    private List<SnapshotChunk> snapshot(String map) {
        fresh();
        List<SnapshotChunk> out = new ArrayList<>();
        Iterator<SnapshotChunk> it = stub.snapshot(SnapshotRequest.newBuilder().setMap(map).build());
        it.forEachRemaining(out::add);
        return out;
    }

    private void refused(Status.Code code, String inDescription, Executable call) {
        fresh();
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call);
        assertEquals(code, e.getStatus().getCode(), e.getStatus().toString());
        assertTrue(e.getStatus().getDescription() != null && e.getStatus().getDescription().contains(inDescription),
                "description \"" + e.getStatus().getDescription() + "\" names \"" + inDescription + "\"");
    }

    /** The flattened events after the first MapDeleted, Progress events left out. */
    private static List<String> afterDeleted(WatchStream w) {
        List<String> kinds = w.flattened().kinds();
        return kinds.subList(kinds.indexOf(kinds.stream().filter(k -> k.startsWith("deleted")).findFirst()
                .orElseThrow()) + 1, kinds.size()).stream().filter(k -> !k.startsWith("progress")).toList();
    }

    private static long directories(Path dir) throws Exception {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(Files::isDirectory).count();
        }
    }

    private static ByteString bytes(String s) {
        return ByteString.copyFromUtf8(s);
    }
}
