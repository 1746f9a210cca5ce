package dev.mapcast.server;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.proto.v1.GetRequest;
import dev.mapcast.proto.v1.GetResponse;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.server.storage.MapStore;
import dev.mapcast.server.storage.WriteAheadLog;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Storage faults while serving, over real gRPC with real files: a full disk, a log that cannot be
 * written (then can again), log files removed under the server, and the disk a thousand small maps
 * take. The full-disk and unwritable-log cases run on a small ext4 file system of their own (a
 * loop mount: root only; skipped, saying why, where it cannot be mounted).
 */
class StorageFaultTest {

    @TempDir
    Path tmp;

    private Path mountPoint;
    private Path image;
    private Path dataDir;
    private MapcastServer server;
    private ManagedChannel channel;
    private MapcastGrpc.MapcastBlockingStub stub;
    /** Every acknowledged write: map/key -> value (one key per write). */
    private final Map<String, String> acknowledged = new LinkedHashMap<>();
    private final Map<String, Long> revisions = new LinkedHashMap<>();

    private PrintStream originalErr;
    private final ByteArrayOutputStream logged = new ByteArrayOutputStream();

    @BeforeEach
    void captureLog() {
        // slf4j-simple writes to System.err as it is at each line: tee it to count the server's lines.
        originalErr = System.err;
        PrintStream tee = new PrintStream(new OutputStream() {
            @Override
            public void write(int b) {
                originalErr.write(b);
                synchronized (logged) {
                    logged.write(b);
                }
            }

            @Override
            public void write(byte[] b, int off, int len) {
                originalErr.write(b, off, len);
                synchronized (logged) {
                    logged.write(b, off, len);
                }
            }
        }, true, StandardCharsets.UTF_8);
        System.setErr(tee);
    }

    @AfterEach
    void tearDown() throws Exception {
        stop();
        System.setErr(originalErr);
        if (mountPoint != null) {
            unmount();
        }
    }

    // ---- disk proportional to data ----

    @Test
    void aThousandMapsOfOneSmallEntryTakeLessThan100MiB() throws Exception {
        dataDir = tmp.resolve("data");
        start(FsyncMode.PERIODIC);  // creating a map forces its files anyway; this spares one force a map
        for (int i = 0; i < 1000; i++) {
            write("map-" + i, "k", "v" + i);
        }
        stop();
        long[] sizes = diskUse(dataDir);
        assertTrue(sizes[0] < 100L << 20, "1,000 maps take " + sizes[0] + " bytes (file sizes; expected: < 100 MiB)");
        assertTrue(sizes[1] < 100L << 20, "1,000 maps take " + sizes[1] + " bytes on disk (expected: < 100 MiB)");
        start(FsyncMode.PERIODIC);
        assertEquals("v999", get("map-999", "k").getValue().toStringUtf8());
    }

    // ---- a full disk ----

    @Test
    void aFullDiskRefusesWritesNamingTheDataDirectoryAndTakesThemAgainOnceThereIsRoom() throws Exception {
        mount();
        start(FsyncMode.ALWAYS);
        for (int i = 0; i < 5; i++) {
            write("m", "k" + i, "v" + i);
        }
        Path filler = mountPoint.resolve("filler");
        fill(filler);
        // The log's preallocated zeros may still take a few writes; then it needs room the disk lacks.
        String value = "x".repeat(8 * 1024);
        StatusRuntimeException refused = null;
        for (int i = 0; i < 1000 && refused == null; i++) {
            try {
                write("m", "big" + i, value);
            } catch (StatusRuntimeException e) {
                refused = e;
            }
        }
        assertTrue(refused != null, "no write was refused on a full disk");
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, refused.getStatus().getCode(), refused.toString());
        String description = refused.getStatus().getDescription();
        assertTrue(description.contains("map \"m\"") && description.contains("data directory " + dataDir)
                && description.matches(".*needs \\d+ bytes.*"), description);
        long revision = revisions.get("m");
        StatusRuntimeException again = assertThrows(StatusRuntimeException.class, () -> write("m", "more", value));
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, again.getStatus().getCode(), again.toString());
        assertEquals(revision, get("m", "k0").getRevision(), "a refused write changes nothing");
        assertEquals(1, count("WARN", "no space left in data directory"), "one WARN line for the episode");

        Files.delete(filler);
        write("m", "after", value);  // no restart
        assertEquals(revision + 1, revisions.get("m"));
        assertEquals(1, count("INFO", "takes writes again"), "one INFO line ends the episode");
        assertEquals(1, count("WARN", "no space left in data directory"));

        restart(FsyncMode.ALWAYS);
        assertEveryAcknowledgedWritePresent();
    }

    // ---- a log that cannot be written, then can again ----

    @Test
    void anUnwritableLogRefusesWritesNamingItsFirstCauseAndTheMapRecoversByItself() throws Exception {
        mount();
        start(FsyncMode.ALWAYS);
        for (int i = 0; i < 5; i++) {
            write("m", "k" + i, "v" + i);
        }
        write("other", "k", "v");
        Path log = onlyLog("m");
        // The kernel refuses writes to an immutable file even through a descriptor opened before.
        // (A remount read-only is refused while the log is open for writing, and ext4's
        // errors=remount-ro cannot be undone without unmounting: see the next test.)
        chattr("+i", log);
        StatusRuntimeException first = assertThrows(StatusRuntimeException.class, () -> write("m", "lost", "x"));
        assertEquals(Status.Code.UNAVAILABLE, first.getStatus().getCode(), first.toString());
        assertTrue(first.getStatus().getDescription().contains("first failure: ")
                && first.getStatus().getDescription().contains("Operation not permitted"), first.toString());
        StatusRuntimeException second = assertThrows(StatusRuntimeException.class, () -> write("m", "lost2", "x"));
        assertTrue(second.getStatus().getDescription().contains("first failure: ")
                && second.getStatus().getDescription().contains("Operation not permitted"), second.toString());
        assertEquals("v4", get("m", "k4").getValue().toStringUtf8(), "reads go on");
        write("other", "k2", "v2");  // other maps go on
        // Retries every second fail quietly: still one ERROR line.
        await().during(Duration.ofMillis(2500)).atMost(Duration.ofSeconds(10))
                .until(() -> count("ERROR", "its write-ahead log") == 1);

        chattr("-i", log);
        await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(100))
                .until(() -> tryWrite("m", "back", "again"));
        assertEquals(1, count("INFO", "is written again"));
        assertEquals(1, count("ERROR", "its write-ahead log"));
        write("m", "later", "y");

        restart(FsyncMode.ALWAYS);
        assertEveryAcknowledgedWritePresent();
        assertFalse(get("m", "lost").getFound(), "a refused write is not there");
    }

    /**
     * An ext4 error with errors=remount-ro makes the whole file system read-only; Linux keeps it so
     * until it is unmounted, so the map stays refusing writes (naming the first cause) and a
     * restart on the mounted-again file system has every acknowledged write.
     */
    @Test
    void aFileSystemTurnedReadOnlyByAnErrorRefusesWritesAndLosesNothingAcknowledged() throws Exception {
        mount();
        start(FsyncMode.ALWAYS);
        for (int i = 0; i < 5; i++) {
            write("m", "k" + i, "v" + i);
        }
        Path trigger = Path.of("/sys/fs/ext4", loopDevice().getFileName().toString(), "trigger_fs_error");
        Assumptions.assumeTrue(Files.isWritable(trigger), "no " + trigger + " to inject an ext4 error");
        Files.writeString(trigger, "mapcast StorageFaultTest");
        StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, () -> write("m", "lost", "x"));
        assertEquals(Status.Code.UNAVAILABLE, refused.getStatus().getCode(), refused.toString());
        assertTrue(refused.getStatus().getDescription().contains("Read-only file system"), refused.toString());
        StatusRuntimeException later = assertThrows(StatusRuntimeException.class, () -> write("m", "lost2", "x"));
        assertTrue(later.getStatus().getDescription().contains("first failure: ")
                && later.getStatus().getDescription().contains("Read-only file system"), later.toString());
        await().during(Duration.ofMillis(1500)).atMost(Duration.ofSeconds(10))
                .until(() -> count("ERROR", "its write-ahead log") == 1);

        stop();
        remount();
        start(FsyncMode.ALWAYS);
        assertEveryAcknowledgedWritePresent();
        assertFalse(get("m", "lost").getFound());
    }

    /**
     * The log itself: records appended but not yet forced when it fails are written again from
     * memory when it is reopened (whatever the file held meanwhile), and a reopen that finds an
     * acknowledged record changed on disk is refused for good.
     */
    @Test
    void aReopenedLogIsWrittenAgainFromMemoryAndRefusedIfAcknowledgedRecordsChanged() throws Exception {
        mount();
        Files.createDirectories(dataDir);
        Path file = dataDir.resolve(MapStore.logName(1));
        try (WriteAheadLog wal = new WriteAheadLog(file, FsyncMode.ALWAYS, 0)) {
            wal.awaitDurable(wal.append(utf8("one")));
            wal.append(utf8("two"));
            wal.append(utf8("three"));  // both unforced: a failure now leaves them in doubt
            chattr("+i", file);
            assertThrows(WriteAheadLog.Failed.class, () -> wal.append(utf8("refused")));
            assertTrue(wal.failing());
            assertFalse(wal.reopen(), "the file is still immutable");
            chattr("-i", file);
            overwrite(file, WriteAheadLog.HEADER_BYTES + 3 + WriteAheadLog.HEADER_BYTES, "XXX");  // "two" lost
            assertTrue(wal.reopen());
            assertFalse(wal.failing());
            wal.awaitDurable(wal.append(utf8("four")));
        }
        List<String> records = new java.util.ArrayList<>();
        WriteAheadLog.Replayed r = WriteAheadLog.replay(file, 1 << 20, false,
                b -> records.add(StandardCharsets.UTF_8.decode(b).toString()));
        assertEquals(List.of("one", "two", "three", "four"), records);

        try (WriteAheadLog wal = new WriteAheadLog(file, FsyncMode.ALWAYS, r.validBytes())) {
            chattr("+i", file);
            assertThrows(WriteAheadLog.Failed.class, () -> wal.append(utf8("refused")));
            chattr("-i", file);
            overwrite(file, WriteAheadLog.HEADER_BYTES, "ONE");  // an acknowledged record changed on disk
            WriteAheadLog.Lost lost = assertThrows(WriteAheadLog.Lost.class, wal::reopen);
            assertTrue(lost.getMessage().contains("acknowledged writes were lost"), lost.getMessage());
            assertThrows(WriteAheadLog.Lost.class, wal::reopen);
            assertThrows(WriteAheadLog.Failed.class, () -> wal.append(utf8("refused")));
        }
    }

    private static ByteBuffer utf8(String s) {
        return ByteBuffer.wrap(s.getBytes(StandardCharsets.UTF_8));
    }

    private static void overwrite(Path file, long at, String bytes) throws IOException {
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.WRITE)) {
            c.write(utf8(bytes), at);
            c.force(true);
        }
    }

    // ---- files removed under the server ----

    @Test
    void aLogRemovedRenamedOrWhoseDirectoryIsRemovedTakesItsMapOutOfServiceAndLosesNothingAcknowledged()
            throws Exception {
        dataDir = tmp.resolve("data");
        start(FsyncMode.ALWAYS);
        for (String map : List.of("deleted", "renamed", "dirgone", "fine")) {
            for (int i = 0; i < 3; i++) {
                write(map, "k" + i, map + i);
            }
        }
        Path deleted = onlyLog("deleted");
        Path renamed = onlyLog("renamed");
        Path dirGone = onlyLog("dirgone").getParent();
        Files.delete(deleted);
        Files.move(renamed, renamed.resolveSibling(renamed.getFileName() + ".moved"));
        deleteTree(dirGone);
        for (String map : List.of("deleted", "renamed", "dirgone")) {
            StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, () -> write(map, "lost", "x"));
            assertEquals(Status.Code.UNAVAILABLE, refused.getStatus().getCode(), refused.toString());
            assertTrue(refused.getStatus().getDescription().contains("was removed or renamed"), refused.toString());
            StatusRuntimeException get = assertThrows(StatusRuntimeException.class, () -> get(map, "k0"));
            assertEquals(Status.Code.UNAVAILABLE, get.getStatus().getCode(), get.toString());
            String description = get.getStatus().getDescription();
            assertTrue(description.contains("map \"" + map + "\" is out of service")
                    && description.contains("wal-") && description.contains("restart the server"), description);
            assertEquals(1, count("ERROR", "map \"" + map + "\""), "one ERROR line for map " + map);
        }
        write("fine", "k3", "fine3");

        restart(FsyncMode.ALWAYS);
        acknowledged.keySet().removeIf(k -> k.startsWith("dirgone/"));
        revisions.remove("dirgone");
        assertEveryAcknowledgedWritePresent();
        assertFalse(get("deleted", "lost").getFound());
        // Its directory is gone: the catalog still names the map, so it is quarantined as damaged
        // (its acknowledged writes are lost with the directory), never served as an empty map.
        StatusRuntimeException missing = assertThrows(StatusRuntimeException.class, () -> get("dirgone", "k0"));
        assertEquals(Status.Code.FAILED_PRECONDITION, missing.getStatus().getCode(), missing.toString());
        assertTrue(missing.getStatus().getDescription().contains("the catalog holds the map but its directory is gone"),
                missing.toString());
    }

    // ---- the server ----

    private void start(FsyncMode mode) {
        server = MapcastServer.builder().port(0).dataDir(dataDir).fsync(mode).build().start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        stub = MapcastGrpc.newBlockingStub(channel);
    }

    private void restart(FsyncMode mode) {
        stop();
        start(mode);
    }

    private void stop() {
        if (channel != null) {
            channel.shutdownNow();
            channel = null;
        }
        if (server != null) {
            server.close();
            server = null;
        }
    }

    /** One key put; recorded once acknowledged. */
    private void write(String map, String key, String value) {
        long revision = stub.withDeadlineAfter(30, TimeUnit.SECONDS).write(WriteRequest.newBuilder().setMap(map)
                .putPuts(key, ByteString.copyFromUtf8(value)).build()).getRevision();
        acknowledged.put(map + "/" + key, value);
        revisions.put(map, revision);
    }

    private boolean tryWrite(String map, String key, String value) {
        try {
            write(map, key, value);
            return true;
        } catch (StatusRuntimeException e) {
            return false;
        }
    }

    private GetResponse get(String map, String key) {
        return stub.withDeadlineAfter(30, TimeUnit.SECONDS)
                .get(GetRequest.newBuilder().setMap(map).setKey(key).build());
    }

    private void assertEveryAcknowledgedWritePresent() {
        for (Map.Entry<String, String> w : acknowledged.entrySet()) {
            String[] mapKey = w.getKey().split("/", 2);
            GetResponse r = get(mapKey[0], mapKey[1]);
            assertTrue(r.getFound(), "acknowledged write " + w.getKey() + " is missing after a restart");
            assertEquals(w.getValue(), r.getValue().toStringUtf8(), w.getKey());
        }
        for (Map.Entry<String, Long> r : revisions.entrySet()) {
            assertEquals(r.getValue(), get(r.getKey(), "any").getRevision(), "revision of map " + r.getKey());
        }
    }

    /** Lines the server logged at {@code level} that contain {@code text}. */
    private long count(String level, String text) {
        String all;
        synchronized (logged) {
            all = logged.toString(StandardCharsets.UTF_8);
        }
        return all.lines().filter(l -> l.contains(" " + level + " ") && l.contains(text)).count();
    }

    private Path onlyLog(String map) throws IOException {
        Path dir = dataDir.resolve("maps").resolve(MapStore.directoryName(map));
        try (Stream<Path> files = Files.list(dir)) {
            List<Path> logs = files.filter(f -> f.getFileName().toString().startsWith("wal-")).toList();
            assertEquals(1, logs.size(), "logs of map " + map + ": " + logs);
            return logs.get(0);
        }
    }

    /** {file sizes, allocated bytes (du)} of every file under {@code dir}. */
    private static long[] diskUse(Path dir) throws IOException, InterruptedException {
        long sizes;
        try (Stream<Path> files = Files.walk(dir)) {
            sizes = files.filter(Files::isRegularFile).mapToLong(f -> f.toFile().length()).sum();
        }
        String du = run("du", "-s", "-B1", dir.toString()).trim();
        return new long[] {sizes, Long.parseLong(du.split("\\s+")[0])};
    }

    private static void deleteTree(Path dir) throws IOException {
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    // ---- a small ext4 file system ----

    /** Mounts a fresh 8 MiB ext4 file system (no blocks reserved for root) and puts the data directory on it. */
    private void mount() throws Exception {
        String why = null;
        if (!System.getProperty("os.name").startsWith("Linux")) {
            why = "not Linux";
        } else if (!"0".equals(run("id", "-u").trim())) {
            why = "not root (loop mounts need it)";
        }
        if (why == null) {
            image = tmp.resolve("fs.img");
            Path point = tmp.resolve("mnt");
            Files.createDirectories(point);
            try (FileChannel c = FileChannel.open(image, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                c.truncate(0);
                c.write(ByteBuffer.allocate(1), 8L * 1024 * 1024 - 1);
            }
            Result mkfs = exec("mkfs.ext4", "-q", "-F", "-m", "0", image.toString());
            Result mounted = mkfs.code == 0
                    ? exec("mount", "-o", "loop,errors=remount-ro", image.toString(), point.toString()) : mkfs;
            if (mounted.code == 0) {
                mountPoint = point;
            } else {
                why = "cannot make or mount an ext4 file system on a loop device: " + mounted.output.trim();
            }
        }
        if (why != null) {
            System.out.println("StorageFaultTest: skipped: " + why);
        }
        Assumptions.assumeTrue(why == null, why);
        dataDir = mountPoint.resolve("data");
    }

    /** Unmounts and mounts the image again (what it takes to write to it after an ext4 error). */
    private void remount() throws Exception {
        Path point = mountPoint;
        unmount();
        Result mounted = exec("mount", "-o", "loop,errors=remount-ro", image.toString(), point.toString());
        assertEquals(0, mounted.code, mounted.output);
        mountPoint = point;
    }

    private void unmount() throws Exception {
        Path point = mountPoint;
        mountPoint = null;
        // Replay maps the tail of a log (nextValidRecord) and the mapping lives until collected:
        // the file system is busy until then.
        boolean unmounted;
        try {
            await().atMost(Duration.ofSeconds(20)).pollInterval(Duration.ofMillis(200)).until(() -> {
                System.gc();
                return exec("umount", point.toString()).code == 0;
            });
            unmounted = true;
        } catch (org.awaitility.core.ConditionTimeoutException e) {
            unmounted = false;
        }
        if (!unmounted) {
            System.out.println("StorageFaultTest: " + point + " still busy after 20 s; unmounting lazily");
            exec("umount", "-l", point.toString());
        }
        // mount -o loop sets autoclear, but a lazy unmount may leave the device: detach what is left.
        for (String line : exec("losetup", "-j", image.toString()).output.split("\n")) {
            int colon = line.indexOf(':');
            if (colon > 0 && line.startsWith("/dev/")) {
                exec("losetup", "-d", line.substring(0, colon));
            }
        }
    }

    private Path loopDevice() throws Exception {
        return Path.of(exec("findmnt", "-n", "-o", "SOURCE", mountPoint.toString()).output.trim());
    }

    /** Writes {@code file} until the file system has no byte left. */
    private static void fill(Path file) throws IOException {
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (int chunk = 1 << 20; chunk > 0; chunk /= 2) {
                ByteBuffer bytes = ByteBuffer.allocate(chunk);
                try {
                    while (true) {
                        bytes.clear();
                        while (bytes.hasRemaining()) {
                            c.write(bytes);
                        }
                    }
                } catch (IOException full) {
                    assertTrue(WriteAheadLog.isNoSpace(full, file, 1), full.toString());
                }
            }
            c.force(true);
        }
    }

    private static void chattr(String flag, Path file) throws Exception {
        Result r = exec("chattr", flag, file.toString());
        assertEquals(0, r.code, "chattr " + flag + " " + file + ": " + r.output);
    }

    private record Result(int code, String output) {
    }

    private static Result exec(String... command) throws IOException, InterruptedException {
        Process p;
        try {
            p = new ProcessBuilder(command).redirectErrorStream(true).start();
        } catch (IOException e) {
            return new Result(-1, command[0] + ": " + e.getMessage());
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            return new Result(-1, String.join(" ", command) + ": no answer in 60 s");
        }
        return new Result(p.exitValue(), out);
    }

    private static String run(String... command) throws IOException, InterruptedException {
        Result r = exec(command);
        assertEquals(0, r.code, String.join(" ", command) + ": " + r.output);
        return r.output;
    }
}
