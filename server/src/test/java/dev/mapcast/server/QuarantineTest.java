package dev.mapcast.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.codec.SnapshotFileInfo;
import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.proto.v1.CompactRequest;
import dev.mapcast.proto.v1.DeleteMapRequest;
import dev.mapcast.proto.v1.DeleteMapResponse;
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
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.server.map.Limits;
import dev.mapcast.server.map.MapRegistry;
import dev.mapcast.server.storage.Catalog;
import dev.mapcast.server.storage.DataDirectoryCheck;
import dev.mapcast.server.storage.MapStore;
import dev.mapcast.server.storage.Storage;
import dev.mapcast.server.storage.StorageException;
import dev.mapcast.server.storage.WriteAheadLog;
import dev.mapcast.testing.TestSeeds;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * A map whose files fail verification at start is quarantined, over real gRPC: the server starts
 * and serves the other maps, lists it with why, refuses every call naming it, leaves its files as
 * they are; the catalog says which maps exist, so a missing directory or log is damage, never a
 * fresh start; and the way back (check, salvage, delete, restore) works end to end.
 */
class QuarantineTest {

    @TempDir
    Path dataDir;

    private MapcastServer server;
    private ManagedChannel channel;
    private MapcastGrpc.MapcastBlockingStub stub;

    private void start() {
        server = MapcastServer.builder().port(0).dataDir(dataDir).build().start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        stub = MapcastGrpc.newBlockingStub(channel).withDeadlineAfter(20, TimeUnit.SECONDS);
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
    void everyCallNamingAQuarantinedMapIsRefusedSayingWhatToDoAndItsNameIsNotReused() throws Exception {
        start();
        for (int i = 1; i <= 3; i++) {
            write("m", "k" + i, "v" + i);
        }
        write("other", "a", "1");
        stop();
        Path log = log("m");
        flip(log, 20);
        byte[] damaged = Files.readAllBytes(log);
        start();
        String why = info("m").getDamaged();
        assertTrue(why.contains(log.toString()) && why.contains("at byte 0"), why);
        assertEquals("", info("other").getDamaged());
        assertEquals(0, info("m").getRevision());
        List<Executable> calls = List.of(
                () -> stub.get(GetRequest.newBuilder().setMap("m").setKey("k1").build()),
                () -> write("m", "k9", "v9"),
                () -> stub.compact(CompactRequest.newBuilder().setMap("m").setRevision(1).build()),
                () -> stub.snapshot(SnapshotRequest.newBuilder().setMap("m").build()).next(),
                () -> stub.watch(WatchRequest.newBuilder().setMap("m").build()).next(),
                () -> restore("m", List.of(SnapshotChunk.newBuilder().setMap("m").setLast(true).build())));
        for (Executable call : calls) {
            StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, call);
            assertEquals(Status.Code.FAILED_PRECONDITION, refused.getStatus().getCode(), refused.toString());
            String description = refused.getStatus().getDescription();
            assertTrue(description.startsWith("map \"m\" is damaged and quarantined: " + why)
                    && description.contains("mapcast data check") && description.contains("mapcast data salvage m")
                    && description.contains("mapcast map delete m") && description.contains("mapcast snapshot restore m"),
                    description);
        }
        assertEquals(2, write("other", "b", "2"), "the other map takes writes");
        stop();
        assertTrue(java.util.Arrays.equals(damaged, Files.readAllBytes(log)), "the files are left as they are");
    }

    @Test
    void aCataloguedMapWhoseDirectoryIsMissingIsQuarantinedNotStartedAfresh() throws Exception {
        start();
        write("m", "k", "v");
        write("other", "a", "1");
        stop();
        deleteTree(dataDir.resolve("maps").resolve(MapStore.directoryName("m")));
        start();
        String why = info("m").getDamaged();
        assertTrue(why.contains(MapStore.directoryName("m")) && why.contains("missing"), why);
        StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, () -> write("m", "k", "v2"));
        assertEquals(Status.Code.FAILED_PRECONDITION, refused.getStatus().getCode(), refused.toString());
        assertEquals(1, info("other").getRevision());
    }

    @Test
    void aMissingLogAfterTheSnapshotIsDamageNotAnEmptyMap() throws Exception {
        start();
        for (int i = 1; i <= 3; i++) {
            write("m", "k" + i, "v" + i);
        }
        stop();
        Files.delete(log("m"));
        start();
        String why = info("m").getDamaged();
        assertTrue(why.contains(MapStore.logName(1)) && why.contains("missing"), why);
    }

    @Test
    void aMapDirectoryTheCatalogDoesNotNameIsDeletedAtStart() throws Exception {
        start();
        write("m", "k", "v");
        stop();
        // What a crash leaves after a creating write was logged but before the catalog held the map
        // (that write was never acknowledged), or after a deletion took the map out of the catalog.
        Path maps = dataDir.resolve("maps");
        Path ghost = Files.createDirectories(maps.resolve(MapStore.directoryName("ghost")));
        try (Stream<Path> files = Files.list(maps.resolve(MapStore.directoryName("m")))) {
            for (Path f : files.collect(Collectors.toList())) {
                Files.copy(f, ghost.resolve(f.getFileName()));
            }
        }
        Path deleting = Files.createDirectories(maps.resolve(Storage.DELETING + "m-x"));
        start();
        assertEquals(List.of("m"), names());
        assertTrue(Files.notExists(ghost) && Files.notExists(deleting));
    }

    @Test
    void aDataDirectoryWithoutACatalogGetsOneBuiltFromItsMapDirectories() throws Exception {
        String odd = "odd name/ü %20 " + "x".repeat(100);
        start();
        write("m", "k", "v");
        write(odd, "a", "1");
        stop();
        Files.delete(dataDir.resolve(Catalog.FILE));  // as the release before catalogs left it
        start();
        assertEquals(List.of("m", odd), names());
        assertEquals(Map.of("m", MapStore.directoryName("m"), odd, MapStore.directoryName(odd)),
                Catalog.read(dataDir));
        write(odd, "b", "2");
        stop();
        start();
        assertEquals(2, info(odd).getRevision());
    }

    @Test
    void aQuarantinedMapDeletedThroughTheRegistryIsCreatedAfreshByItsNextWrite() throws Exception {
        start();
        write("m", "k1", "v1");
        write("m", "k2", "v2");
        stop();
        flip(log("m"), 20);
        java.util.concurrent.ExecutorService background = java.util.concurrent.Executors.newSingleThreadExecutor();
        try (Storage storage = Storage.open(dataDir, FsyncMode.ALWAYS, 1 << 20);
                MapRegistry registry = new MapRegistry(Limits.DEFAULTS, 1 << 20, storage, background)) {
            assertTrue(registry.damage("m").contains("at byte 0"), registry.damage("m"));
            assertFalse(registry.deleteDamaged("absent"));
            assertTrue(registry.deleteDamaged("m"));
            assertNull(registry.damage("m"));
            assertTrue(Files.notExists(dataDir.resolve("maps").resolve(MapStore.directoryName("m"))));
        } finally {
            background.shutdown();
        }
        start();
        assertEquals(List.of(), names());
        assertEquals(1, write("m", "k3", "v3"), "a new map");
        stop();
        start();
        assertEquals(1, info("m").getRevision());
        assertEquals("", info("m").getDamaged());
    }

    @Test
    void strictRefusesTheStartNamingTheMapFileAndByte() throws Exception {
        start();
        write("m", "k1", "v1");
        write("m", "k2", "v2");
        stop();
        Path log = log("m");
        flip(log, 20);
        UncheckedIOException e = assertThrows(UncheckedIOException.class,
                () -> MapcastServer.builder().port(0).dataDir(dataDir).strict(true).build());
        assertTrue(e.getMessage().startsWith("map \"m\": " + log + " at byte 0: "), e.getMessage());
    }

    /**
     * One random bit of one random record of a map's log goes bad: the server starts, serves the
     * other map and lists this one as damaged; the offline check names it, salvage writes the
     * revisions before the bad record to a snapshot file that verifies; the map deleted, that file
     * restores it. Rerun a failure with {@code -Dmapcast.seed=N}.
     */
    @Test
    void aRandomBadBitIsQuarantinedCheckedSalvagedDeletedAndRestored() throws Exception {
        long seed = TestSeeds.seed("QuarantineTest");
        Random rnd = new Random(seed);
        start();
        List<TreeMap<String, String>> model = new ArrayList<>();
        model.add(new TreeMap<>());
        for (int i = 1; i <= 30; i++) {
            TreeMap<String, String> next = new TreeMap<>(model.get(i - 1));
            String key = "k" + rnd.nextInt(12);
            String value = "v" + i + "-" + "x".repeat(rnd.nextInt(200));
            write("m", key, value);
            next.put(key, value);
            model.add(next);
        }
        write("other", "a", "1");
        stop();
        Path log = log("m");
        List<long[]> records = records(log);
        long[] record = records.get(rnd.nextInt(records.size()));
        long at = record[0] + rnd.nextInt((int) (WriteAheadLog.HEADER_BYTES + record[1]));
        int bit = rnd.nextInt(8);
        String where = "seed=" + seed + ": bit " + bit + " of byte " + at + " (record at " + record[0] + ")";
        flip(log, at, 1 << bit);
        start();
        String why = info("m").getDamaged();
        assertTrue(why.contains(log.toString()) && why.contains("at byte " + record[0]), where + ": " + why);
        assertEquals("1", stub.get(GetRequest.newBuilder().setMap("other").setKey("a").build()).getValue()
                .toStringUtf8(), where);
        StorageException held = assertThrows(StorageException.class, () -> DataDirectoryCheck.open(dataDir));
        assertTrue(held.getMessage().contains("in use by a running mapcast server"), held.getMessage());
        stop();

        Path salvaged = dataDir.resolve("m.snapshot");
        try (DataDirectoryCheck data = DataDirectoryCheck.open(dataDir)) {
            DataDirectoryCheck.Report report = data.check();
            assertFalse(report.ok(), where);
            assertEquals(List.of("m", "other"), report.maps().stream().map(DataDirectoryCheck.MapReport::name)
                    .collect(Collectors.toList()));
            String problem = report.maps().get(0).problem();
            assertTrue(problem.contains(log.toString()) && problem.contains("at byte " + record[0]),
                    where + ": the check names the file and byte as the server did: " + problem);
            assertTrue(report.maps().get(1).ok(), where);
            DataDirectoryCheck.Salvaged saved = data.salvage("m", salvaged);
            long reached = records.indexOf(record);  // revisions 1..index are in the records before it
            assertEquals(reached, saved.revision(), where);
            assertEquals(1, saved.leftOut().size(), where + ": " + saved.leftOut());
            assertNull(data.salvage("absent", salvaged.resolveSibling("absent.snapshot")));
        }
        SnapshotFileInfo inspected = SnapshotFiles.inspect(salvaged, null);
        long reached = inspected.revision();
        assertEquals(model.get((int) reached).size(), inspected.entries(), where);

        // As the README says: start the server, delete the quarantined map, restore the salvaged file.
        start();
        DeleteMapResponse deleted = stub.deleteMap(DeleteMapRequest.newBuilder().setMap("m").build());
        assertEquals(0, deleted.getRevision(), where + ": a quarantined map's revision is unknown");
        assertTrue(Files.notExists(log.getParent()), where + ": the map's files are deleted");
        assertEquals(List.of("other"), names(), where);
        StatusRuntimeException again = assertThrows(StatusRuntimeException.class,
                () -> stub.deleteMap(DeleteMapRequest.newBuilder().setMap("m").build()));
        assertEquals(Status.Code.NOT_FOUND, again.getStatus().getCode(), where);
        List<SnapshotChunk> chunks = new ArrayList<>();
        SnapshotFiles.inspect(salvaged, null, bytes -> {
            try {
                chunks.add(SnapshotChunk.parseFrom(bytes.duplicate()));
            } catch (com.google.protobuf.InvalidProtocolBufferException e) {
                throw new AssertionError(e);
            }
        });
        RestoreResponse restored = restore("m", chunks);
        assertEquals(model.get((int) reached).size(), restored.getEntries(), where);
        TreeMap<String, String> content = new TreeMap<>();
        Iterator<SnapshotChunk> snapshot = stub.snapshot(SnapshotRequest.newBuilder().setMap("m").build());
        snapshot.forEachRemaining(c -> c.getEntriesMap().forEach((k, v) -> content.put(k, v.toStringUtf8())));
        assertEquals(model.get((int) reached), content, where + ": the map as it was at revision " + reached);
    }

    // ---- helpers ----

    private long write(String map, String key, String value) {
        return stub.write(WriteRequest.newBuilder().setMap(map).setOrder(IterationOrder.ITERATION_ORDER_HASH)
                .putPuts(key, ByteString.copyFromUtf8(value)).build()).getRevision();
    }

    private RestoreResponse restore(String map, List<SnapshotChunk> chunks) throws Exception {
        FirstResponse<RestoreResponse> done = new FirstResponse<>();
        StreamObserver<RestoreRequest> out = MapcastGrpc.newStub(channel).withDeadlineAfter(20, TimeUnit.SECONDS)
                .restore(done);
        for (SnapshotChunk c : chunks) {
            out.onNext(RestoreRequest.newBuilder().setMap(map).setSnapshotChunk(c.toByteString()).build());
        }
        out.onCompleted();
        try {
            return done.get(20, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw (Exception) e.getCause();
        }
    }

    private MapInfo info(String map) {
        return stub.listMaps(ListMapsRequest.getDefaultInstance()).getMapsList().stream()
                .filter(m -> m.getName().equals(map)).findFirst().orElseThrow();
    }

    private List<String> names() {
        return stub.listMaps(ListMapsRequest.getDefaultInstance()).getMapsList().stream().map(MapInfo::getName)
                .collect(Collectors.toList());
    }

    private Path log(String map) throws IOException {
        try (Stream<Path> files = Files.list(dataDir.resolve("maps").resolve(MapStore.directoryName(map)))) {
            return files.filter(f -> MapStore.named(f.getFileName().toString(), "wal-", ".log")).sorted()
                    .reduce((a, b) -> b).orElseThrow();
        }
    }

    /** Each record of a log up to its first zero length, as {offset, payload length}. */
    private static List<long[]> records(Path log) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(log)).order(ByteOrder.LITTLE_ENDIAN);
        List<long[]> out = new ArrayList<>();
        int at = 0;
        while (bytes.limit() - at >= 8 && bytes.getInt(at) != 0) {
            out.add(new long[] {at, bytes.getInt(at)});
            at += 8 + bytes.getInt(at);
        }
        return out;
    }

    private static void flip(Path file, long at) throws IOException {
        flip(file, at, 0x10);
    }

    private static void flip(Path file, long at, int mask) throws IOException {
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(1);
            c.read(b, at);
            b.put(0, (byte) (b.get(0) ^ mask));
            c.write(b.flip(), at);
        }
    }

    private static void deleteTree(Path p) throws IOException {
        try (Stream<Path> all = Files.walk(p)) {
            for (Path f : all.sorted((a, b) -> b.getNameCount() - a.getNameCount()).collect(Collectors.toList())) {
                Files.delete(f);
            }
        }
    }
}
