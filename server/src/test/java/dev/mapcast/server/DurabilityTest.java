package dev.mapcast.server;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.proto.v1.CompactRequest;
import dev.mapcast.proto.v1.GetRequest;
import dev.mapcast.proto.v1.GetResponse;
import dev.mapcast.proto.v1.IterationOrder;
import dev.mapcast.proto.v1.ListMapsRequest;
import dev.mapcast.proto.v1.MapInfo;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.SnapshotChunk;
import dev.mapcast.proto.v1.SnapshotRequest;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.proto.v1.WatchResponse;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.server.map.HostedMap;
import dev.mapcast.server.storage.MapStore;
import dev.mapcast.server.storage.WriteAheadLog;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * The server with a data directory, restarted on it (closed, or its files damaged as a crash or a
 * disk would leave them), over real gRPC: what was acknowledged is there, in order, with its
 * mod revisions, compact revision and resumable history; a torn log end is cut (the file kept
 * aside); damage that is not a torn end quarantines the map (strict: refuses the start), naming
 * the file and byte. (Killing a real server process with SIGKILL is the cli module's
 * {@code CrashRecoveryTest}.)
 */
class DurabilityTest {

    @TempDir
    Path dataDir;

    private MapcastServer server;
    private ManagedChannel channel;
    private MapcastGrpc.MapcastBlockingStub stub;

    private void start(MapcastServer.Builder builder) {
        server = builder.port(0).dataDir(dataDir).build().start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        stub = MapcastGrpc.newBlockingStub(channel);
    }

    private void restart(MapcastServer.Builder builder) {
        stop();
        start(builder);
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
    void aRestartedServerHasEveryWriteItsOrderModRevisionsCompactRevisionAndHistory() throws Exception {
        start(MapcastServer.builder());
        for (int i = 0; i < 20; i++) {
            write("ordered", IterationOrder.ITERATION_ORDER_INSERTION, Map.of("k" + (19 - i), "v" + i), List.of());
        }
        write("ordered", IterationOrder.ITERATION_ORDER_INSERTION, Map.of("k5", "again"), List.of("k7", "absent"));
        write("odd name/ü \u00e9 " + "x".repeat(200), IterationOrder.ITERATION_ORDER_HASH, Map.of("a", "1"), List.of());
        stub.compact(CompactRequest.newBuilder().setMap("ordered").setRevision(10).build());
        write("ordered", IterationOrder.ITERATION_ORDER_INSERTION, Map.of("late", "x"), List.of());
        Content before = content("ordered");
        List<MapInfo> mapsBefore = maps();
        GetResponse k5 = get("ordered", "k5");

        restart(MapcastServer.builder());

        assertEquals(before, content("ordered"), "entries, order, revision and digest after restart");
        assertEquals(names(mapsBefore), names(maps()));
        assertEquals(10, info("ordered").getCompactRevision(), "compact_revision survives a restart");
        assertEquals(k5, get("ordered", "k5"), "value and mod_revision of k5");
        assertEquals(21, get("ordered", "k5").getModRevision());
        assertEquals("1", get("odd name/ü \u00e9 " + "x".repeat(200), "a").getValue().toStringUtf8());
        // The replayed log is history again: a watcher resumes from revision 15 without a snapshot.
        List<String> kinds = watchKinds("ordered", 15, 4);
        assertEquals(List.of("delta 16", "delta 17", "delta 18", "delta 19"), kinds);
    }

    @Test
    void snapshotsTruncateTheLogAndRecoveryReadsSnapshotPlusLog() throws Exception {
        MapcastServer.Builder small = MapcastServer.builder().snapshotLogBytes(8 * 1024);
        start(small);
        Random rnd = new Random(7);
        for (int i = 0; i < 600; i++) {
            write("m", IterationOrder.ITERATION_ORDER_INSERTION, Map.of("key-" + rnd.nextInt(150), "value-" + i),
                    rnd.nextInt(4) == 0 ? List.of("key-" + rnd.nextInt(150)) : List.of());
        }
        Content before = content("m");
        awaitFewFiles(mapDir());
        long logs = files(mapDir()).stream().filter(f -> f.startsWith("wal-")).count();
        long snapshots = files(mapDir()).stream().filter(f -> f.startsWith("snapshot-")).count();
        assertTrue(logs <= 2 && snapshots <= 2, "older logs and snapshots deleted: " + files(mapDir()));

        restart(small);
        assertEquals(before, content("m"));
        write("m", IterationOrder.ITERATION_ORDER_INSERTION, Map.of("after", "restart"), List.of());
        assertEquals(before.revision + 1, info("m").getRevision());
    }

    @Test
    void aTornLastRecordIsCutTheOriginalKeptAsideAndTheRestRecovered() throws Exception {
        for (String damage : List.of("cut short", "an unwritten sector", "garbage after the records")) {
            stop();
            for (Path p : Files.list(dataDir).collect(Collectors.toList())) {
                deleteTree(p);
            }
            start(MapcastServer.builder());
            // Values of 300 bytes: the records cross 512-byte sector boundaries.
            for (int i = 1; i <= 5; i++) {
                write("m", IterationOrder.ITERATION_ORDER_HASH, Map.of("k" + i, ("v" + i).repeat(100)), List.of());
            }
            stop();
            Path log = lastLog();
            long end = recordsEnd(log);  // preallocated zeros follow the records
            long last = records(log).get(4)[0];
            long sector = (last / WriteAheadLog.SECTOR_BYTES + 1) * WriteAheadLog.SECTOR_BYTES;
            assertTrue(sector < end, "the last record crosses a sector boundary");
            switch (damage) {
                case "cut short" -> {
                    try (FileChannel c = FileChannel.open(log, StandardOpenOption.WRITE)) {
                        c.truncate(end - 7);  // the file's new size never reached the disk
                    }
                }
                case "an unwritten sector" -> overwrite(log, sector, new byte[(int) (end - sector)]);
                default -> overwrite(log, end, new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
            }
            byte[] original = Files.readAllBytes(log);
            start(MapcastServer.builder());
            long expected = damage.startsWith("garbage") ? 5 : 4;
            long cutAt = expected == 5 ? end : last;
            assertEquals(expected, info("m").getRevision(), damage);
            assertEquals("", info("m").getDamaged(), damage);
            assertEquals(expected == 5, get("m", "k5").getFound(), damage);
            Path kept = log.resolveSibling(log.getFileName() + ".torn-" + cutAt);
            byte[] keptBytes = Files.readAllBytes(kept);
            assertTrue(keptBytes.length <= original.length && keptBytes.length > cutAt, damage);
            assertArrayEquals(java.util.Arrays.copyOf(original, keptBytes.length), keptBytes,
                    damage + ": the log as it was is kept aside");
            for (int i = keptBytes.length; i < original.length; i++) {
                assertEquals(0, original[i], damage + ": only zeros are left out of the kept file");
            }
            assertEquals(expected, content("m").revision, damage);
            // The log goes on from there, and the kept file stays through a snapshot.
            write("m", IterationOrder.ITERATION_ORDER_HASH, Map.of("k6", "v6"), List.of());
            restart(MapcastServer.builder().snapshotLogBytes(1));
            assertEquals(expected + 1, info("m").getRevision(), damage);
            write("m", IterationOrder.ITERATION_ORDER_HASH, Map.of("k7", "v7"), List.of());
            awaitFewFiles(mapDir());
            await().atMost(Duration.ofSeconds(10)).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(10))
                    .until(() -> Files.notExists(log));
            assertTrue(Files.exists(kept), damage + ": the snapshot's clean-up keeps " + kept.getFileName());
        }
    }

    @Test
    void aFlippedBitInTheLastRecordIsDamageNotATornWrite() throws Exception {
        start(MapcastServer.builder());
        write("other", IterationOrder.ITERATION_ORDER_HASH, Map.of("a", "1"), List.of());
        for (int i = 1; i <= 5; i++) {
            write("m", IterationOrder.ITERATION_ORDER_HASH, Map.of("k" + i, "v" + i), List.of());
        }
        stop();
        Path log = lastLog("m");
        flip(log, recordsEnd(log) - 3);  // acknowledged and fsynced, then a bit went bad
        byte[] damaged = Files.readAllBytes(log);
        start(MapcastServer.builder());
        long last = records(log).get(4)[0];
        String why = quarantined("m");
        assertTrue(why.contains(log.toString()) && why.contains("at byte " + last)
                && why.contains("CRC-32C") && why.contains("not torn"), why);
        assertEquals("1", get("other", "a").getValue().toStringUtf8(), "the other map is served");
        assertEquals(2, write("other", IterationOrder.ITERATION_ORDER_HASH, Map.of("b", "2"), List.of()));
        stop();
        assertArrayEquals(damaged, Files.readAllBytes(log), "the damaged log is left as it is");
        assertTrue(refusedStrictly().contains(log.getFileName() + " at byte " + last));
    }

    @Test
    void damageInsideTheLogQuarantinesTheMapNamingFileAndByte() throws Exception {
        start(MapcastServer.builder());
        for (int i = 1; i <= 5; i++) {
            write("m", IterationOrder.ITERATION_ORDER_HASH, Map.of("k" + i, "v" + i), List.of());
        }
        write("other", IterationOrder.ITERATION_ORDER_HASH, Map.of("a", "1"), List.of());
        stop();
        Path log = lastLog("m");
        flip(log, 20);  // inside the first record: valid records follow it
        byte[] damaged = Files.readAllBytes(log);
        start(MapcastServer.builder());
        String why = quarantined("m");
        assertTrue(why.contains(log.getFileName().toString()) && why.contains("at byte 0")
                && why.contains("valid record follows"), why);
        assertEquals("1", get("other", "a").getValue().toStringUtf8(), "the other map is served");
        stop();
        String refused = refusedStrictly();
        assertTrue(refused.contains("map \"m\"") && refused.contains(log.getFileName().toString())
                && refused.contains("at byte 0"), refused);
        // Nothing was changed: the file is as damaged as it was, not cut.
        assertArrayEquals(damaged, Files.readAllBytes(log));
        flip(log, 20);
        start(MapcastServer.builder());
        assertEquals(5, info("m").getRevision());
    }

    @Test
    void aDamagedSnapshotFileQuarantinesTheMapAndIsLeftAsItIs() throws Exception {
        start(MapcastServer.builder().snapshotLogBytes(1024));
        for (int i = 1; i <= 40; i++) {
            write("m", IterationOrder.ITERATION_ORDER_HASH, Map.of("k" + i, "value " + i), List.of());
        }
        write("other", IterationOrder.ITERATION_ORDER_HASH, Map.of("a", "1"), List.of());
        stop();
        Path snapshot;
        try (Stream<Path> files = Files.list(dataDir.resolve("maps").resolve(MapStore.directoryName("m")))) {
            snapshot = files.filter(f -> MapStore.named(f.getFileName().toString(), "snapshot-", ".snap")).sorted()
                    .reduce((a, b) -> b).orElseThrow();
        }
        long size = Files.size(snapshot);
        flip(snapshot, size / 2);
        byte[] damaged = Files.readAllBytes(snapshot);
        start(MapcastServer.builder());
        String why = quarantined("m");
        assertTrue(why.contains(snapshot.getFileName().toString()) && why.contains("at byte"), why);
        assertEquals("1", get("other", "a").getValue().toStringUtf8(), "the other map is served");
        stop();
        String refused = refusedStrictly();
        assertTrue(refused.contains(snapshot.getFileName().toString()) && refused.contains("at byte"), refused);
        assertArrayEquals(damaged, Files.readAllBytes(snapshot), "the damaged file is kept for the operator");
        flip(snapshot, size / 2);
        start(MapcastServer.builder());
        assertEquals(40, info("m").getRevision());
    }

    @Test
    void aMapWhoseCreationACrashInterruptedIsNotThere() throws Exception {
        start(MapcastServer.builder());
        write("kept", IterationOrder.ITERATION_ORDER_HASH, Map.of("k", "v"), List.of());
        stop();
        // What a kill during the first write of map "new" leaves: its directory half written.
        Path creating = Files.createDirectories(dataDir.resolve("maps").resolve(MapStore.CREATING + "12345"));
        Files.write(creating.resolve("modrev-00000000000000000000.snap"), new byte[] {10, 3, 1, 2});
        start(MapcastServer.builder());
        assertEquals(List.of("kept"), names(maps()));
        assertTrue(Files.notExists(creating), "the half-created directory is deleted");
        write("new", IterationOrder.ITERATION_ORDER_HASH, Map.of("a", "1"), List.of());
        restart(MapcastServer.builder());
        assertEquals(List.of("kept", "new"), names(maps()));
    }

    @Test
    void aSecondServerCannotUseTheSameDataDirectory() {
        start(MapcastServer.builder());
        UncheckedIOException e = assertThrows(UncheckedIOException.class,
                () -> MapcastServer.builder().port(0).dataDir(dataDir).build());
        assertTrue(e.getMessage().contains("in use by another mapcast server"), e.getMessage());
    }

    @Test
    void aRefusedFirstWriteLeavesNoFiles() throws Exception {
        start(MapcastServer.builder());
        assertThrows(StatusRuntimeException.class, () -> stub.write(WriteRequest.newBuilder().setMap("new")
                .setExpectedRevision(3).putPuts("k", ByteString.copyFromUtf8("v")).build()));
        assertEquals(List.of(), Files.list(dataDir.resolve("maps")).collect(Collectors.toList()));
        restart(MapcastServer.builder());
        assertEquals(List.of(), names(maps()));
    }

    @Test
    void periodicModeAlsoRecoversAfterAClose() {
        MapcastServer.Builder periodic = MapcastServer.builder().fsync(FsyncMode.PERIODIC);
        start(periodic);
        for (int i = 1; i <= 50; i++) {
            write("m", IterationOrder.ITERATION_ORDER_HASH, Map.of("k" + i, "v" + i), List.of());
        }
        Content before = content("m");
        restart(periodic);
        assertEquals(before, content("m"));
    }

    @Test
    void aLogThatAnotherFollowsIsNeverCutThoughItMayEndInPreallocatedZeros() throws Exception {
        // A crash after the log moved on to a new file (the old one forced whole first) and before
        // the snapshot that makes the old one obsolete was written: both logs are replayed.
        start(MapcastServer.builder());
        for (int i = 1; i <= 5; i++) {
            write("m", IterationOrder.ITERATION_ORDER_HASH, Map.of("k" + i, "v" + i), List.of());
        }
        stop();
        Path first = lastLog();
        Files.createFile(first.resolveSibling(MapStore.logName(6)));
        // The old log still ends in its preallocated zeros (cutting them off may not have reached the disk).
        start(MapcastServer.builder());
        assertEquals(5, info("m").getRevision());
        assertEquals(5, get("m", "k5").getModRevision());
        stop();

        // Its last record failing its CRC is damage, not a torn write: the file was forced before
        // the next one began, so that write was acknowledged.
        long size = Files.size(first);
        flip(first, recordsEnd(first) - 3);
        start(MapcastServer.builder());
        String why = quarantined("m");
        assertTrue(why.contains(first.getFileName().toString()) && why.contains("at byte ")
                && why.contains("cannot be cut"), why);
        stop();
        assertEquals(size, Files.size(first), "the damaged log is kept as it is");
        flip(first, recordsEnd(first) - 3);
        start(MapcastServer.builder());
        assertEquals(5, info("m").getRevision());
    }

    @Test
    void zerosWhereARecordShouldBeAreDamageWhenValidRecordsFollow() throws Exception {
        // Zeros also mark the end of the records (preallocation): what follows them tells the two apart.
        start(MapcastServer.builder());
        for (int i = 1; i <= 5; i++) {
            write("m", IterationOrder.ITERATION_ORDER_HASH, Map.of("k" + i, "v" + i), List.of());
        }
        stop();
        Path log = lastLog();
        long second = records(log).get(1)[0];
        overwrite(log, second, new byte[WriteAheadLog.HEADER_BYTES]);  // record 2's header reads back as zeros
        start(MapcastServer.builder());
        String why = quarantined("m");
        assertTrue(why.contains(log.getFileName().toString())
                && why.contains("at byte " + second) && why.contains("valid record follows"), why);
    }

    @Test
    void aLogMissingARecordQuarantinesTheMapNamingFileByteAndReason() throws Exception {
        // One key written three times: without the second record the third still leads to the right
        // digest, so only the revision chain shows that an acknowledged write is missing.
        start(MapcastServer.builder());
        for (int i = 1; i <= 3; i++) {
            write("m", IterationOrder.ITERATION_ORDER_HASH, Map.of("k", "v" + i), List.of());
        }
        stop();
        Path log = lastLog();
        List<long[]> records = records(log);
        int second = (int) records.get(1)[0];
        int third = (int) records.get(2)[0];
        byte[] bytes = Files.readAllBytes(log);
        byte[] without = new byte[bytes.length];
        System.arraycopy(bytes, 0, without, 0, second);
        System.arraycopy(bytes, third, without, second, bytes.length - third);
        Files.write(log, without);
        start(MapcastServer.builder());
        String why = quarantined("m");
        assertTrue(why.contains(log.getFileName().toString())
                && why.contains("at byte " + second) && why.contains("jumps from revision 1"), why);
        stop();
        assertArrayEquals(without, Files.readAllBytes(log), "nothing was cut");
    }

    @Test
    void aLoggedDeltaThatDoesNotLeadToItsDigestQuarantinesTheMap() throws Exception {
        start(MapcastServer.builder());
        for (int i = 1; i <= 3; i++) {
            write("m", IterationOrder.ITERATION_ORDER_HASH, Map.of("k" + i, "v" + i), List.of());
        }
        stop();
        // Record 2 passes its CRC (recomputed) but puts "x2" where the write put "v2": only the
        // digest the delta carries shows it.
        Path log = lastLog();
        long[] second = records(log).get(1);
        int from = (int) second[0] + WriteAheadLog.HEADER_BYTES;
        int to = from + (int) second[1];
        byte[] bytes = Files.readAllBytes(log);
        int value = indexOf(bytes, "v2".getBytes(StandardCharsets.UTF_8), from, to);
        bytes[value] = 'x';
        CRC32C crc = new CRC32C();
        crc.update(bytes, from, to - from);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putInt((int) second[0] + 4, (int) crc.getValue());
        Files.write(log, bytes);
        start(MapcastServer.builder());
        String why = quarantined("m");
        assertTrue(why.contains(log.getFileName().toString())
                && why.contains("at byte " + second[0]) && why.contains("digest"), why);
    }

    @Test
    void afterARestartHistoryStillBeginsAtTheCompactRevision() throws Exception {
        start(MapcastServer.builder());
        for (int i = 1; i <= 20; i++) {
            write("m", IterationOrder.ITERATION_ORDER_HASH, Map.of("k" + i, "v" + i), List.of());
        }
        stub.compact(CompactRequest.newBuilder().setMap("m").setRevision(10).build());
        assertEquals("COMPACTION", watchKinds("m", 5, 1).get(0), "before the restart");
        restart(MapcastServer.builder());
        assertEquals(10, info("m").getCompactRevision());
        assertEquals("COMPACTION", watchKinds("m", 5, 1).get(0), "a watcher behind the compact revision");
        assertEquals(List.of("delta 11"), watchKinds("m", 10, 1));
    }

    @Test
    void aSnapshotWithoutItsModRevisionFileIsNotUsed() throws Exception {
        start(MapcastServer.builder());
        for (int i = 1; i <= 5; i++) {
            write("m", IterationOrder.ITERATION_ORDER_HASH, Map.of("k" + i, "v" + i), List.of());
        }
        Content before = content("m");
        stop();
        // A crash while a snapshot at revision 5 was being written: the log had moved on, the
        // entries' file is there, the mod revisions' file is not (written in either order, one of
        // the two can be alone). The log still holds every change since the last whole snapshot.
        Files.createFile(lastLog().resolveSibling(MapStore.logName(6)));
        try (OffHeapMap entries = OffHeapMap.builder()
                .order(dev.mapcast.core.IterationOrder.HASH).trackDigest(true).build()) {
            for (int i = 1; i <= 5; i++) {
                entries.put(("k" + i).getBytes(StandardCharsets.UTF_8), ("v" + i).getBytes(StandardCharsets.UTF_8));
            }
            try (dev.mapcast.core.PinnedView view = entries.pin()) {
                dev.mapcast.codec.SnapshotFiles.write(view, "m", 5, 0,
                        mapDir().resolve(String.format("snapshot-%020d.snap", 5)));
            }
        }
        start(MapcastServer.builder());
        assertEquals(before, content("m"));
        for (int i = 1; i <= 5; i++) {
            assertEquals(i, get("m", "k" + i).getModRevision(), "k" + i);
        }
    }

    /**
     * A write whose log record cannot be written (no space: RESOURCE_EXHAUSTED naming the data
     * directory) changes nothing, not even the order of an
     * INSERTION-order map (a snapshot at a revision is the same bytes whenever it is taken).
     */
    @Test
    void aWriteTheLogCannotTakeIsRefusedAndChangesNothing() throws Exception {
        start(MapcastServer.builder());
        write("m", IterationOrder.ITERATION_ORDER_INSERTION, Map.of("a", "1"), List.of());
        write("m", IterationOrder.ITERATION_ORDER_INSERTION, Map.of("b", "2"), List.of());
        write("m", IterationOrder.ITERATION_ORDER_INSERTION, Map.of("d", "4"), List.of());
        Content before = content("m");
        assertEquals(List.of("a=1", "b=2", "d=4"), before.entries);
        stop();
        // The log goes on in a file that is always full (as after a rotation, the next log is empty).
        Path next = lastLog().resolveSibling(MapStore.logName(4));
        Files.createSymbolicLink(next, Path.of("/dev/full"));
        start(MapcastServer.builder());
        StatusRuntimeException refused = assertThrows(StatusRuntimeException.class,
                () -> write("m", IterationOrder.ITERATION_ORDER_INSERTION, Map.of("a", "changed", "c", "new"),
                        List.of("b")));
        assertEquals(io.grpc.Status.Code.RESOURCE_EXHAUSTED, refused.getStatus().getCode(), refused.toString());
        assertTrue(refused.getStatus().getDescription().contains("data directory " + dataDir.toAbsolutePath()),
                refused.toString());
        Content after = content("m");
        assertEquals(before.revision, after.revision);
        assertEquals(before.digest, after.digest, "nothing of the refused write is visible");
        assertEquals(before.entries, after.entries, "the same entries in the same order");
        assertEquals(1, get("m", "a").getModRevision());
        assertEquals(2, get("m", "b").getModRevision());
        assertEquals(3, info("m").getRevision());
    }

    /**
     * A write logged but not applied whole in memory (here the mod-revision map is swapped for one
     * that refuses the key after its value went in; in life, no memory left for a segment) takes
     * its map out of service: the write fails saying so, nothing reads or builds on that state (a
     * later write would log a second record for the same revision, and the server would not start
     * again), its watchers end; ListMaps and the other maps go on; a restart recovers the map from
     * its log, that write included.
     */
    @Test
    void aLoggedWriteThatCannotApplyInMemoryTakesItsMapOutOfServiceUntilARestartRecoversIt() throws Exception {
        IterationOrder hash = IterationOrder.ITERATION_ORDER_HASH;
        start(MapcastServer.builder());
        write("m", hash, Map.of("a", "1"), List.of());
        write("other", hash, Map.of("x", "1"), List.of());
        Iterator<WatchResponse> watcher = MapcastGrpc.newBlockingStub(channel)
                .withDeadlineAfter(10, java.util.concurrent.TimeUnit.SECONDS)
                .watch(WatchRequest.newBuilder().setMap("m").build());
        assertTrue(watcher.next().hasSnapshot(), "registered: its snapshot came");
        String description = writeFailingHalfway("m", "bb", "2");
        String cause = "IllegalArgumentException: ";
        assertTrue(description.startsWith("the write to map \"m\" at revision 2 could not be applied in memory ("
                + cause) && description.endsWith("); it is logged and may apply when the server restarts, and the map"
                + " serves nothing until then"), description);
        String why = description.substring(description.indexOf(cause), description.indexOf("); it is logged"));
        String outOfService = "map \"m\" is out of service: its write at revision 2 could not be applied in memory ("
                + why + "); restart the server to recover it from its log";
        List<Executable> calls = List.of(
                () -> get("m", "a"),
                () -> write("m", hash, Map.of("c", "3"), List.of()),
                () -> content("m"),
                () -> stub.compact(CompactRequest.newBuilder().setMap("m").setRevision(1).build()),
                () -> watchKinds("m", 1, 1));
        assertAllUnavailable(outOfService, calls);
        StatusRuntimeException ended = assertThrows(StatusRuntimeException.class, () -> {
            while (true) {
                watcher.next();
            }
        });
        assertEquals(io.grpc.Status.Code.UNAVAILABLE, ended.getStatus().getCode(), ended.toString());
        assertEquals(outOfService, ended.getStatus().getDescription());
        assertEquals(1, info("m").getRevision(), "listed, at its last revision applied whole");
        assertEquals(2, write("other", hash, Map.of("y", "2"), List.of()), "other maps go on");

        restart(MapcastServer.builder());
        Content recovered = content("m");
        assertEquals(2, recovered.revision);
        assertEquals(List.of("a=1", "bb=2"), recovered.entries.stream().sorted().collect(Collectors.toList()));
        assertEquals(2, get("m", "bb").getModRevision());
        assertEquals(List.of("delta 2"), watchKinds("m", 1, 1), "the logged write is history again");
        assertEquals(3, write("m", hash, Map.of("c", "3"), List.of()), "the map takes writes again");
    }

    @Test
    void aWriteThatCannotApplyToAnInMemoryMapTakesItOutOfServiceAndSaysARestartStartsItEmpty() throws Exception {
        IterationOrder hash = IterationOrder.ITERATION_ORDER_HASH;
        server = MapcastServer.builder().port(0).build().start();  // no data directory: maps in memory only
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        stub = MapcastGrpc.newBlockingStub(channel);
        write("m", hash, Map.of("a", "1"), List.of());
        write("other", hash, Map.of("x", "1"), List.of());
        String description = writeFailingHalfway("m", "bb", "2");
        String cause = "IllegalArgumentException: ";
        assertTrue(description.startsWith("the write to map \"m\" at revision 2 could not be applied in memory ("
                + cause) && description.endsWith("), and the map serves nothing until then"), description);
        assertFalse(description.contains("logged"), "nothing is logged for an in-memory map: " + description);
        String why = description.substring(description.indexOf(cause), description.indexOf("), and the map"));
        String outOfService = "map \"m\" is out of service: its write at revision 2 could not be applied in memory ("
                + why + "); restart the server (the map is kept in memory only: it starts empty)";
        assertAllUnavailable(outOfService, List.of(
                () -> get("m", "a"),
                () -> write("m", hash, Map.of("c", "3"), List.of()),
                () -> content("m")));
        assertEquals(1, info("m").getRevision(), "listed, at its last revision applied whole");
        assertEquals(2, write("other", hash, Map.of("y", "2"), List.of()), "other maps go on");
    }

    // ---- helpers ----

    /**
     * Writes {@code key = value} (a key longer than a byte) to {@code map} so that the write fails
     * halfway through its in-memory apply, as a segment allocation that runs out of memory would:
     * the map's mod-revision map is first swapped for one that refuses the key after the value
     * went in. Returns the UNAVAILABLE status's description.
     */
    private String writeFailingHalfway(String map, String key, String value) throws ReflectiveOperationException {
        HostedMap hosted = server.hosted(map);
        hosted.writeLock().lock();
        try (OffHeapMap own = swapModRevisions(hosted, OffHeapMap.builder().maxKeyLength(1).build())) {
            assertTrue(own.size() > 0, "the map's own mod revisions, freed here");
        } finally {
            hosted.writeLock().unlock();
        }
        StatusRuntimeException failed = assertThrows(StatusRuntimeException.class,
                () -> write(map, IterationOrder.ITERATION_ORDER_HASH, Map.of(key, value), List.of()));
        assertEquals(io.grpc.Status.Code.UNAVAILABLE, failed.getStatus().getCode(), failed.toString());
        return failed.getStatus().getDescription();
    }

    private static void assertAllUnavailable(String description, List<Executable> calls) {
        for (Executable call : calls) {
            StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, call);
            assertEquals(io.grpc.Status.Code.UNAVAILABLE, refused.getStatus().getCode(), refused.toString());
            assertEquals(description, refused.getStatus().getDescription());
        }
    }

    /** Puts {@code replacement} in place of the map's mod revisions; returns the map's own. */
    private static OffHeapMap swapModRevisions(HostedMap map,
            OffHeapMap replacement) throws ReflectiveOperationException {
        Field field = HostedMap.class.getDeclaredField("modRevisions");
        field.setAccessible(true);
        OffHeapMap own = (OffHeapMap) field.get(map);
        field.set(map, replacement);
        return own;
    }

    private record Content(long revision, long digest, List<String> entries) {
    }

    private Content content(String map) {
        Iterator<SnapshotChunk> chunks = stub.snapshot(SnapshotRequest.newBuilder().setMap(map).build());
        List<String> entries = new ArrayList<>();
        SnapshotChunk last = null;
        while (chunks.hasNext()) {
            last = chunks.next();
            last.getEntriesMap().forEach((k, v) -> entries.add(k + "=" + v.toStringUtf8()));
        }
        return new Content(last.getRevision(), last.getDigest(), entries);
    }

    private long write(String map, IterationOrder order, Map<String, String> puts, List<String> deletes) {
        WriteRequest.Builder w = WriteRequest.newBuilder().setMap(map).setOrder(order).addAllDeletes(deletes);
        new LinkedHashMap<>(puts).forEach((k, v) -> w.putPuts(k, ByteString.copyFromUtf8(v)));
        return stub.write(w.build()).getRevision();
    }

    private GetResponse get(String map, String key) {
        return stub.get(GetRequest.newBuilder().setMap(map).setKey(key).build());
    }

    private List<MapInfo> maps() {
        return stub.listMaps(ListMapsRequest.getDefaultInstance()).getMapsList();
    }

    private MapInfo info(String map) {
        return maps().stream().filter(m -> m.getName().equals(map)).findFirst().orElseThrow();
    }

    private static List<String> names(List<MapInfo> maps) {
        return maps.stream().map(MapInfo::getName).collect(Collectors.toList());
    }

    private List<String> watchKinds(String map, long after, int count) {
        Iterator<WatchResponse> events = MapcastGrpc.newBlockingStub(channel)
                .withDeadlineAfter(10, java.util.concurrent.TimeUnit.SECONDS)
                .watch(WatchRequest.newBuilder().setMap(map).setAfterRevision(after).build());
        List<String> kinds = new ArrayList<>();
        while (kinds.size() < count) {
            WatchResponse r = events.next();
            kinds.add(r.hasDelta() ? "delta " + r.getDelta().getRevision() : r.getEventCase().toString());
        }
        return kinds;
    }

    /**
     * Asserts that {@code map} is quarantined: listed with why (returned), and a call naming it
     * refused with FAILED_PRECONDITION saying why and what to do.
     */
    private String quarantined(String map) {
        String why = info(map).getDamaged();
        assertFalse(why.isEmpty(), map + " is listed as damaged");
        StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, () -> get(map, "k1"));
        assertEquals(io.grpc.Status.Code.FAILED_PRECONDITION, refused.getStatus().getCode(), refused.toString());
        assertTrue(refused.getStatus().getDescription().contains(why)
                && refused.getStatus().getDescription().contains("mapcast data salvage"), refused.toString());
        return why;
    }

    /** The message of a strict server's refusal to start on the data directory. */
    private String refusedStrictly() {
        UncheckedIOException e = assertThrows(UncheckedIOException.class,
                () -> MapcastServer.builder().port(0).dataDir(dataDir).strict(true).build());
        return e.getMessage();
    }

    private Path lastLog(String map) throws IOException {
        try (Stream<Path> files = Files.list(dataDir.resolve("maps").resolve(MapStore.directoryName(map)))) {
            return files.filter(f -> MapStore.named(f.getFileName().toString(), "wal-", ".log")).sorted()
                    .reduce((a, b) -> b).orElseThrow();
        }
    }

    private Path mapDir() throws IOException {
        try (Stream<Path> dirs = Files.list(dataDir.resolve("maps"))) {
            return dirs.findFirst().orElseThrow();
        }
    }

    private Path lastLog() throws IOException {
        try (Stream<Path> files = Files.list(mapDir())) {
            return files.filter(f -> MapStore.named(f.getFileName().toString(), "wal-", ".log")).sorted()
                    .reduce((a, b) -> b).orElseThrow();
        }
    }

    private static List<String> files(Path dir) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(f -> f.getFileName().toString()).sorted().collect(Collectors.toList());
        }
    }

    /** Snapshots are written in the background: waits until the last one has cleaned up. */
    private static void awaitFewFiles(Path dir) {
        await().atMost(Duration.ofSeconds(10)).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(10))
                .alias("older logs deleted")
                .until(() -> files(dir), files -> files.stream().filter(f -> f.startsWith("wal-") && f.endsWith(".log")).count() <= 2);
    }

    /** Where a log's records end: its first zero length (or the end of the file). */
    private static long recordsEnd(Path log) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(log)).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        int at = 0;
        while (bytes.limit() - at >= 8 && bytes.getInt(at) != 0) {
            at += 8 + bytes.getInt(at);
        }
        return at;
    }

    /** Each record of a log up to its first zero length, as {offset, payload length}. */
    private static List<long[]> records(Path log) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(log)).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        List<long[]> out = new ArrayList<>();
        int at = 0;
        while (bytes.limit() - at >= 8 && bytes.getInt(at) != 0) {
            out.add(new long[] {at, bytes.getInt(at)});
            at += 8 + bytes.getInt(at);
        }
        return out;
    }

    private static int indexOf(byte[] bytes, byte[] what, int from, int to) {
        for (int i = from; i + what.length <= to; i++) {
            if (java.util.Arrays.equals(bytes, i, i + what.length, what, 0, what.length)) {
                return i;
            }
        }
        throw new AssertionError("not found");
    }

    private static void overwrite(Path file, long at, byte[] bytes) throws IOException {
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.WRITE)) {
            c.write(ByteBuffer.wrap(bytes), at);
        }
    }

    private static void flip(Path file, long at) throws IOException {
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(1);
            c.read(b, at);
            b.flip();
            b.put(0, (byte) (b.get(0) ^ 0x10));
            c.write(b, at);
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
