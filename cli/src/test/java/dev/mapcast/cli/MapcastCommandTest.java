package dev.mapcast.cli;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static dev.mapcast.cli.Processes.awaitContent;
import static dev.mapcast.cli.Processes.read;
import static org.junit.jupiter.api.Assertions.fail;

import dev.mapcast.cli.Processes.Result;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.Replica;
import dev.mapcast.client.WriteBatch;
import dev.mapcast.codec.Codec;
import dev.mapcast.codec.JsonLine;
import dev.mapcast.codec.SnapshotFileInfo;
import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.core.EntryCursor;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.core.PinnedView;
import dev.mapcast.server.MapcastServer;
import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;
import java.util.spi.ToolProvider;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.api.parallel.Execution;
import org.junit.jupiter.api.parallel.ExecutionMode;
import org.junit.jupiter.api.parallel.ResourceLock;

/**
 * The {@code mapcast} command as a user runs it: every command is a separate JVM
 * ({@code java -cp <the test's class path> dev.mapcast.cli.Main ...}) whose stdout, stderr and
 * exit code are checked, against a server in this JVM (or, for {@code serve}, in another process).
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)  // the bound of a hung test, not of a slow machine's
@Execution(ExecutionMode.CONCURRENT)  // a JVM per command: run a few at once (junit-platform.properties)
class MapcastCommandTest {

    private static MapcastServer server;
    private static MapcastClient client;
    private static String address;

    @TempDir
    static Path tmp;

    private static final AtomicInteger files = new AtomicInteger();
    private static final Set<String> CLIENT_COMMANDS = Set.of("put", "get", "del", "ls", "watch", "compact");
    /** The server takes one restore at a time: tests that restore do not overlap. */
    private static final String RESTORE = "mapcast.restore";

    /** The commands' class path: a copy of the test's, directories packed into jars (see shareClasses). */
    private static String classPath;
    /** JVM options of every command, beyond those ./mapcast uses: see shareClasses. */
    private static final List<String> jvmOptions = new ArrayList<>();

    @BeforeAll
    static void startServer() throws Exception {
        server = MapcastServer.builder().port(0).build().start();
        address = "127.0.0.1:" + server.port();
        client = MapcastClient.builder().target(address).build();
        shareClasses();
    }

    /**
     * A command's JVM spends most of its second loading some 2,000 classes of gRPC, Netty and
     * protobuf. One warm-up command records them in a class-data sharing archive
     * (-XX:ArchiveClassesAtExit, JDK 13+) that every later command maps instead: about half the
     * CPU per command. CDS takes jars only, hence the packing, and refuses a jar that changed since:
     * the copies also keep the commands away from a module another build installs meanwhile.
     * Nothing else changes: without an archive the commands run as they are.
     */
    private static void shareClasses() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("class-path"));
        List<String> entries = new ArrayList<>();
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            Path path = Path.of(entry);
            Path copy = dir.resolve(entries.size() + "-" + path.getFileName() + (Files.isDirectory(path) ? ".jar" : ""));
            if (Files.isDirectory(path)) {
                ToolProvider.findFirst("jar").orElseThrow()
                        .run(System.out, System.err, "cf", copy.toString(), "-C", path.toString(), ".");
            } else if (Files.isRegularFile(path)) {
                Files.copy(path, copy);
            } else {
                continue;
            }
            entries.add(copy.toString());
        }
        classPath = String.join(File.pathSeparator, entries);

        client.put("warm-up", "k", "v");
        Path archive = tmp.resolve("mapcast.jsa");
        jvmOptions.add("-XX:ArchiveClassesAtExit=" + archive);
        Process p = command(List.of("ls", "--server", address, "warm-up", "--values"))
                .redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(ProcessBuilder.Redirect.DISCARD)
                .start();
        // The archive's own warnings (classes it cannot hold) go nowhere: this run is not a test.
        boolean archived = p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0 && Files.exists(archive);
        p.destroyForcibly();
        jvmOptions.clear();
        if (archived) {
            jvmOptions.add("-XX:SharedArchiveFile=" + archive);
        }
    }

    @AfterAll
    static void stopServer() {
        if (client != null) {
            client.close();
        }
        if (server != null) {
            server.close();
        }
    }

    // ---- put / get / del ----

    @Test
    void putGetDelRoundTrip() throws IOException {
        // (Plain `put MAP KEY VALUE` and `get`: see serveRunsUntilSigtermThenExits0.)
        Path file = tmp.resolve("region.txt");
        Files.writeString(file, "eu-west-1", UTF_8);
        assertOk("1", mapcast("put", "--server", address, "rt", "region", "--file", file.toString()));
        client.put("rt", "owner", "alice");

        Result json = mapcast("get", "--server", address, "--json", "rt", "region");
        assertOk("{\"key\":\"region\",\"value\":\"eu-west-1\",\"mod_revision\":1,\"revision\":2}", json);

        assertOk("3", mapcast("del", "--server", address, "rt", "region", "owner", "never-there"));
        Result absent = mapcast("get", "--server", address, "rt", "region");
        assertFailed(1, "mapcast: key \"region\" not found in map \"rt\" (at revision 3)", absent);
        assertEquals("", absent.stdout());
    }

    /** Issue #26: put MAP K1 V1 K2 V2 is one write, one revision; what it cannot mean is refused. */
    @Test
    void putOfSeveralKeysIsOneAtomicWrite() {
        assertOk("1", mapcast("put", "--server", address, "multi", "region", "eu-west-1", "zone", "b"));
        assertEquals(1, client.get("multi", "region").modRevision());
        assertEquals(1, client.get("multi", "zone").modRevision(), "both keys in revision 1");
        assertEquals("b", new String(client.get("multi", "zone").value(), UTF_8));
        assertFailed(2, "mapcast: KEY 'zone' has no VALUE (expected: KEY VALUE pairs after the first)",
                mapcast("put", "--server", address, "multi", "region", "x", "zone"));
        assertFailed(2, "mapcast: key 'region' given twice (expected: each key once)",
                mapcast("put", "--server", address, "multi", "region", "x", "region", "y"));
        assertFailed(2, "mapcast: --if-absent is a condition on one key (expected: one KEY, or --if-revision for"
                + " several)", mapcast("put", "--server", address, "--if-absent", "multi", "a", "1", "b", "2"));
        assertOk("2", mapcast("put", "--server", address, "--if-revision", "1", "multi", "region", "x", "zone", "c"));
        assertEquals(2, client.get("multi", "zone").revision(), "nothing else was written");
    }

    @Test
    void binaryValuesFromStdinComeBackExactly() {
        byte[] binary = {(byte) 0xff, 0, '\n', 'x'};
        assertOk("1", mapcast(Map.of(), binary, "put", "--server", address, "bin", "k", "-"));
        Result raw = mapcast("get", "--server", address, "--raw", "bin", "k");
        assertEquals(0, raw.exitCode(), raw::toString);
        assertArrayEquals(binary, raw.stdoutBytes());
        assertOk("{\"key\":\"k\",\"value_base64\":\"/wAKeA==\",\"mod_revision\":1,\"revision\":1}",
                mapcast("get", "--server", address, "--json", "bin", "k"));
        // Human output never writes binary (it may be a terminal): base64, as ls and watch show it.
        assertOk("base64:/wAKeA==", mapcast("get", "--server", address, "bin", "k"));
    }

    // ---- failures and exit codes ----

    @Test
    void unknownMapExits1() {
        for (String[] args : List.of(
                new String[] {"get", "--server", address, "no-such-map", "k"},
                new String[] {"ls", "--server", address, "no-such-map"},
                new String[] {"del", "--server", address, "no-such-map", "k"},
                new String[] {"map", "delete", "--server", address, "no-such-map"})) {
            Result r = mapcast(args);
            assertFailed(1, "mapcast: map \"no-such-map\" does not exist", r);
        }
        assertTrue(client.listMaps().stream().noneMatch(m -> m.getName().equals("no-such-map")),
                "del did not create the map");
    }

    @Test
    void mapDeleteRemovesTheMapAndAPutCreatesItAgain() {
        client.put("doomed", "k", "v");
        client.put("doomed", "k", "w");
        assertFailed(1, "mapcast: condition failed: map \"doomed\" is at revision 2 (expected_revision: 1);"
                + " nothing was deleted", mapcast("map", "delete", "--server", address, "doomed", "--if-revision", "1"));
        assertOk("deleted map \"doomed\" at revision 2",
                mapcast("map", "delete", "--server", address, "doomed", "--if-revision", "2"));
        assertTrue(client.listMaps().stream().noneMatch(m -> m.getName().equals("doomed")));
        assertOk("1", mapcast("put", "--server", address, "doomed", "k", "again"));
        assertOk("{\"map\":\"doomed\",\"deleted\":true,\"revision\":1}",
                mapcast("map", "delete", "--server", address, "--json", "doomed"));
        assertFailed(2, "--if-revision: 0 (expected: >= 1)",
                mapcast("map", "delete", "--server", address, "doomed", "--if-revision", "0"));
    }

    @Test
    void badInputIsRefusedWith3AndTheServersReason() {
        Result r = mapcast("put", "--server", address, "bad", "", "v");
        assertFailed(3, "mapcast: refused by the server: INVALID_ARGUMENT: puts: empty key "
                + "(expected: 1 to 4096 bytes of UTF-8)", r);
        assertTrue(client.listMaps().stream().noneMatch(m -> m.getName().equals("bad")), "nothing was written");
    }

    @Test
    void failedConditionExits1AndWritesNothing() {
        long rev = client.put("cas", "k", "v1");
        Result absent = mapcast("put", "--server", address, "--if-absent", "cas", "k", "v2");
        assertFailed(1, "mapcast: condition failed: ", absent);
        Result stale = mapcast("put", "--server", address, "--if-revision", String.valueOf(rev + 5), "cas", "k", "v2");
        assertFailed(1, "mapcast: condition failed: ", stale);
        assertEquals("v1", new String(client.get("cas", "k").value(), UTF_8));

        assertOk(String.valueOf(rev + 1),
                mapcast("put", "--server", address, "--if-mod-revision", String.valueOf(rev), "cas", "k", "v2"));
        assertEquals("v2", new String(client.get("cas", "k").value(), UTF_8));
    }

    @Test
    void usageErrorsExit2WithoutTalkingToTheServer() {
        assertFailed(2, "mapcast: --if-revision: -3 (expected: >= 1)",
                mapcast("put", "--server", address, "--if-revision", "-3", "u", "k", "v"));
        assertFailed(2, "mapcast: Missing VALUE (expected: VALUE, - for stdin, or --file PATH)",
                mapcast("put", "--server", address, "u", "k"));
        assertFailed(2, "mapcast: --server: 'no-port' (expected: HOST:PORT",
                mapcast("get", "--server", "no-port", "u", "k"));
        Result noUnit = mapcast("put", "--server", address, "--timeout", "5", "u", "k", "v");
        assertEquals(2, noUnit.exitCode(), noUnit::toString);
        assertEquals(List.of("mapcast: Invalid value for option '--timeout': '5' needs a unit (expected: a positive"
                + " duration such as 5s, 5ms or 5m)", "Try 'mapcast put --help' for more information."),
                noUnit.stderr().lines().toList(), noUnit::toString);
        Result unknown = mapcast("frobnicate");
        assertFailed(2, "mapcast: Unmatched argument at index 0: 'frobnicate'", unknown);
        assertTrue(unknown.stderr().contains("Try 'mapcast --help'"), unknown::toString);
        assertTrue(client.listMaps().stream().noneMatch(m -> m.getName().equals("u")), "nothing was written");
    }

    @Test
    void serverComesFromTheOptionElseTheEnvironment() throws IOException {
        client.put("env", "k", "from-server");
        try (Socket refusing = refusingPort()) {
            String closed = "127.0.0.1:" + refusing.getLocalPort();
            // MAPCAST_SERVER alone: used.
            assertOk("from-server", mapcast(Map.of("MAPCAST_SERVER", address), null, "get", "env", "k"));
            // --server wins over it.
            assertOk("from-server",
                    mapcast(Map.of("MAPCAST_SERVER", closed), null, "get", "--server", address, "env", "k"));
        }
    }

    @Test
    void aServerListWithABadEntryIsAUsageErrorNamingIt() {
        assertFailed(2, "mapcast: --server: 'no-port' in '" + address + ",no-port' (expected: HOST:PORT",
                mapcast("put", "--server", address + ",no-port", "u", "k", "v"));
        assertFailed(2, "mapcast: " + ClientOptions.ENV + ": '' in '" + address + ",,"
                + address + "' (expected: HOST:PORT", mapcast(Map.of(ClientOptions.ENV, address + ",," + address), null,
                "get", "u", "k"));
        assertTrue(client.listMaps().stream().noneMatch(m -> m.getName().equals("u")), "nothing was written");
    }

    @Test
    void aServerListWhoseFirstMemberIsDownWorks() throws IOException {
        try (Socket refusing = refusingPort()) {
            String members = "127.0.0.1:" + refusing.getLocalPort() + "," + address;
            Result put = mapcast("put", "--server", members, "listed", "k", "v");
            assertEquals(0, put.exitCode(), put::toString);
            assertOk("v", mapcast("get", "--server", members, "listed", "k"));
            assertOk("v", mapcast(Map.of(ClientOptions.ENV, members), null, "get", "listed", "k"));
        }
        assertEquals("v", new String(client.get("listed", "k").value(), UTF_8));
    }

    @Test
    void unreachableServerExits4() throws IOException {
        try (Socket refusing = refusingPort()) {
            String closed = "127.0.0.1:" + refusing.getLocalPort();
            Result r = mapcast("put", "--server", closed, "m", "k", "v");
            assertFailed(4, "mapcast: cannot reach the server at " + closed + ": ", r);
            assertTrue(r.stderr().contains("Connection refused"), r::toString);
            assertEquals(1, r.stderr().lines().count(), r::toString);
        }
    }

    @Test
    void aHostThatDoesNotResolveIsOneLineWithoutGrpcsWarning() {
        // .invalid never resolves (RFC 2606). gRPC logs a warning with a stack trace for it through
        // java.util.logging, which once came before the command's own line.
        Result r = mapcast("get", "--server", "nosuchhost.invalid:1", "m", "k");
        assertFailed(4, "mapcast: cannot reach the server at nosuchhost.invalid:1: ", r);
        assertEquals(1, r.stderr().lines().count(), r::toString);
    }

    @Test
    void aPortThatDoesNotSpeakGrpcIsNotAMapcastServer() throws Exception {
        try (ServerSocket http = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
            Thread answering = new Thread(() -> {
                while (!http.isClosed()) {
                    try (Socket s = http.accept()) {
                        s.getInputStream().read(new byte[24]);  // the client's HTTP/2 preface, as a web server would
                        s.getOutputStream().write("HTTP/1.0 400 Bad request\r\n\r\n<html></html>".getBytes(UTF_8));
                        s.getInputStream().transferTo(OutputStream.nullOutputStream());  // until the client hangs up
                    } catch (IOException closed) {
                        return;
                    }
                }
            }, "an HTTP/1 server");
            answering.setDaemon(true);
            answering.start();
            String at = "127.0.0.1:" + http.getLocalPort();
            Result r = mapcast("get", "--server", at, "m", "k");
            assertEquals(4, r.exitCode(), r::toString);
            assertEquals(List.of("mapcast: the server at " + at + " is not a mapcast server: it does not speak gRPC"
                    + " (its answer was not HTTP/2)"), r.stderr().lines().toList(), r::toString);
        }
    }

    // ---- ls, watch, compact ----

    @Test
    void lsListsMapsAndKeysInTheMapsOrder() {
        client.write("ls-insertion").put("c", "3").put("a", "1").order(IterationOrder.INSERTION).commit();
        client.put("ls-insertion", "b", "two\nlines");
        client.put("ls-hash", "x", "1");

        Result table = mapcast("ls", "--server", address);
        assertEquals(0, table.exitCode(), table::toString);
        List<String> lines = table.lines();
        assertTrue(lines.get(0).matches("NAME +REVISION +SIZE +ORDER +COMPACT_REV +LIVE_BYTES +DEAD_BYTES +RESERVED_BYTES"),
                table::toString);
        assertTrue(lines.stream().anyMatch(l -> l.matches("ls-insertion +2 +3 +insertion +0 +\\d+ +\\d+ +\\d+")),
                table::toString);
        assertTrue(lines.stream().anyMatch(l -> l.matches("ls-hash +1 +1 +hash +0 +\\d+ +\\d+ +\\d+")), table::toString);
        // Aligned: numbers are right-aligned up to the last column, so every row is as long as the header.
        assertTrue(lines.stream().allMatch(l -> l.length() == lines.get(0).length()), table::toString);

        Result json = mapcast("ls", "--server", address, "--json");
        assertTrue(json.lines().stream().anyMatch(l -> l.matches("\\{\"name\":\"ls-insertion\",\"revision\":2,\"size\":3,"
                + "\"order\":\"insertion\",\"compact_revision\":0,\"live_bytes\":\\d+,\"dead_bytes\":\\d+,"
                + "\"reserved_bytes\":\\d+}")), json::toString);

        assertOk("c=3\na=1\nb=two\\nlines", mapcast("ls", "--server", address, "ls-insertion", "--values"));
        client.write("ls-equals").put("a=b", "c").put("x\\", "y").order(IterationOrder.INSERTION).commit();
        client.write("ls-prefix").put("db/host", "h").put("db/port", "5432").put("dbx", "no").put("web/port", "80")
                .order(IterationOrder.INSERTION).commit();
        assertOk("db/host=h\ndb/port=5432",
                mapcast("ls", "--server", address, "ls-prefix", "--values", "--prefix", "db/"));
        assertFailed(2, "mapcast: --prefix without MAP (expected: ls MAP --prefix P)",
                mapcast("ls", "--server", address, "--prefix", "db/"));
        // The first unescaped = ends the key.
        assertOk("a\\=b=c\nx\\\\=y", mapcast("ls", "--server", address, "ls-equals", "--values"));
        assertOk("{\"key\":\"c\",\"value\":\"3\"}\n{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":\"two\\nlines\"}",
                mapcast("ls", "--server", address, "ls-insertion", "--values", "--json"));
    }

    @Test
    void watchFollowsAMapThroughItsDeletionAndReCreation() throws Exception {
        client.put("reborn", "a", "1");
        Path out = file("reborn.out");
        Path err = file("reborn.err");
        Process watch = command(List.of("watch", "--server", address, "reborn", "--count", "1"))
                .redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        try {
            awaitContent(out, s -> s.lines().count() >= 2, watch, "the snapshot");
            client.deleteMap("reborn");
            awaitContent(out, s -> s.contains("map deleted"), watch, "the deletion");
            client.put("reborn", "b", "2");
            assertTrue(watch.waitFor(Processes.PATIENCE_SECONDS, TimeUnit.SECONDS),
                    "watch exits after the first write of the new map");
            assertEquals(0, watch.exitValue(), () -> "stderr: " + read(err));
            assertEquals(List.of("snapshot rev 1, 1 entry", "  a=1",
                    "map deleted at rev 1; waiting for it to be created again",
                    "resync rev 0 (recreated), 0 entries", "rev 1 put b=2"), read(out).lines().toList());
            assertEquals("", read(err));
        } finally {
            watch.destroyForcibly();
        }
    }

    @Test
    void watchPrintsTheSnapshotThenEveryChangeUntilARevision() throws Exception {
        client.write("w").put("k1", "v1").order(IterationOrder.INSERTION).commit();
        client.put("w", "k2", "v2");
        Path out = file("watch.out");
        Path err = file("watch.err");
        Process watch = command(List.of("watch", "--server", address, "w", "--json", "--until", "4"))
                .redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        try {
            // Changes made once the watcher has its snapshot must come as changes.
            awaitContent(out, s -> s.lines().count() >= 3, watch, "the snapshot");
            client.write("w").put("k3", "v3").put("k1", "v1b").commit();
            client.delete("w", "k2");
            assertTrue(watch.waitFor(Processes.PATIENCE_SECONDS, TimeUnit.SECONDS), "watch exits once at revision 4");
            assertEquals(0, watch.exitValue(), () -> "stderr: " + read(err));
            List<String> lines = read(out).lines().toList();
            assertEquals(6, lines.size(), lines::toString);
            assertEquals(List.of(
                    "{\"type\":\"resync\",\"revision\":2,\"reason\":\"initial\",\"size\":2}",
                    "{\"type\":\"snapshot\",\"revision\":2,\"key\":\"k1\",\"value\":\"v1\"}",
                    "{\"type\":\"snapshot\",\"revision\":2,\"key\":\"k2\",\"value\":\"v2\"}"),
                    lines.subList(0, 3));
            // One write, two keys: two lines of one revision, in an order the protocol leaves open.
            assertEquals(Set.of(
                    "{\"type\":\"put\",\"revision\":3,\"key\":\"k3\",\"value\":\"v3\"}",
                    "{\"type\":\"put\",\"revision\":3,\"key\":\"k1\",\"value\":\"v1b\"}"),
                    Set.copyOf(lines.subList(3, 5)));
            assertEquals("{\"type\":\"del\",\"revision\":4,\"key\":\"k2\"}", lines.get(5));
            assertEquals("", read(err));
        } finally {
            watch.destroyForcibly();
        }
        // Human output, and --count: the snapshot, then one write.
        Process human = command(List.of("watch", "--server", address, "w", "--count", "1"))
                .redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        try {
            awaitContent(out, s -> s.lines().count() >= 3, human, "the snapshot");
            client.put("w", "k4", "x\ty");
            assertTrue(human.waitFor(Processes.PATIENCE_SECONDS, TimeUnit.SECONDS), "watch exits after one write");
            assertEquals(0, human.exitValue(), () -> "stderr: " + read(err));
            assertEquals(List.of("snapshot rev 4, 2 entries", "  k1=v1b", "  k3=v3", "rev 5 put k4=x\\ty"),
                    read(out).lines().toList());
        } finally {
            human.destroyForcibly();
        }
    }

    @Test
    void compactPrintsWhatItDid() {
        client.put("cmp", "a", "1");
        client.put("cmp", "a", "2");
        client.delete("cmp", "a");
        Result r = mapcast("compact", "--server", address, "cmp", "--json");
        assertEquals(0, r.exitCode(), r::toString);
        assertTrue(r.stdout().matches("\\{\"compact_revision\":3,\"tombstones_purged\":\\d+,\"bytes_reclaimed\":\\d+,"
                + "\"revision\":3}\n"), r::toString);
        assertFailed(3, "mapcast: refused by the server: INVALID_ARGUMENT: revision: 99 "
                + "(expected: 0 or at most the revision of map \"cmp\", 3)",
                mapcast("compact", "--server", address, "cmp", "--revision", "99"));
    }

    // ---- snapshot save / inspect ----

    @Test
    void snapshotSaveThenInspectGivesTheServersEntriesAndDigest() throws Exception {
        // Over 1 MiB of entries (several chunks), INSERTION order, and the awkward values.
        WriteBatch first = client.write("snap").order(IterationOrder.INSERTION);
        try (OffHeapMap model = OffHeapMap.builder().order(IterationOrder.INSERTION).trackDigest(true).build()) {
            for (int i = 0; i < 3_000; i++) {
                String value = ("value-" + i + "-").repeat(60);
                first.put("key-" + i, value);
                model.put(("key-" + i).getBytes(UTF_8), value.getBytes(UTF_8));
            }
            first.commit();
            byte[] binary = {(byte) 0xff, 0, 'x'};
            client.put("snap", "two\nlines", "a\tb");
            model.put("two\nlines".getBytes(UTF_8), "a\tb".getBytes(UTF_8));
            long revision = client.put("snap", "binary", binary);
            model.put("binary".getBytes(UTF_8), binary);
            client.delete("snap", "key-7");
            model.remove("key-7".getBytes(UTF_8));
            revision++;

            Path saved = file("snap.snapshot");
            Result save = mapcast("snapshot", "save", "--server", address, "snap", saved.toString());
            assertEquals(0, save.exitCode(), save::toString);
            assertEquals("", save.stderr(), "no progress bar when stderr is not a terminal: " + save);
            SnapshotFileInfo info = SnapshotFiles.inspect(saved, null);
            assertTrue(info.chunks() > 1, "chunks: " + info.chunks());
            assertEquals("saved map \"snap\" at revision " + revision + " to " + saved + ": " + model.size()
                    + " entries, " + info.chunks() + " chunks, " + Files.size(saved) + " bytes, digest "
                    + String.format("%016x", model.digest()) + "\n", save.stdout());
            try (Replica<String, byte[]> replica = client.replica("snap", Codec.utf8(), Codec.bytes())) {
                assertTrue(replica.awaitRevision(revision, Duration.ofSeconds(20)));
                assertEquals(replica.digest(), info.digest(), "the server's digest");
            }

            // The same history (of the same incarnation) in a map of our own gives the same file, byte for byte.
            Path written = file("snap.written");
            assertTrue(info.incarnation() != 0, "the server's file names the map's incarnation");
            try (PinnedView view = model.pin()) {
                SnapshotFiles.write(view, "snap", revision, 0, info.incarnation(), written);
            }
            assertArrayEquals(Files.readAllBytes(written), Files.readAllBytes(saved));

            String digest = String.format("%016x", model.digest());
            String crc = String.format("%08x", info.crc32c());
            Result human = mapcast("snapshot", "inspect", saved.toString());
            assertOk(String.join("\n",
                    "file              " + saved,
                    "map               \"snap\"",
                    "revision          " + revision,
                    "order             insertion",
                    "compact_revision  0",
                    "incarnation       " + String.format("%016x", info.incarnation()),
                    "chunks            " + info.chunks(),
                    "entries           " + model.size(),
                    "bytes             " + Files.size(saved),
                    "crc32c            " + crc + " (verified)",
                    "digest            " + digest + " (verified)"), human);

            String summary = "{\"file\":\"" + saved + "\",\"map\":\"snap\",\"revision\":" + revision
                    + ",\"order\":\"insertion\",\"compact_revision\":0,\"incarnation\":\""
                    + String.format("%016x", info.incarnation()) + "\",\"chunks\":" + info.chunks() + ",\"entries\":"
                    + model.size() + ",\"bytes\":" + Files.size(saved) + ",\"crc32c\":\"" + crc + "\",\"digest\":\""
                    + digest + "\"}";
            assertOk(summary, mapcast("snapshot", "inspect", "--json", saved.toString()));

            List<String> listed = new ArrayList<>();
            List<String> listedJson = new ArrayList<>();
            EntryCursor c = model.cursor();
            while (c.next()) {
                String key = new String(c.key(), UTF_8);
                listed.add("  " + Text.oneLine(key) + "=" + Text.value(c.value()));
                listedJson.add(Text.withValue(new JsonLine().string("key", key), c.value()).toString());
            }
            assertTrue(listed.contains("  two\\nlines=a\\tb") && listed.contains("  binary=base64:/wB4"), listed::toString);
            Result entries = mapcast("snapshot", "inspect", saved.toString(), "--entries");
            assertEquals(0, entries.exitCode(), entries::toString);
            assertEquals(listed, entries.lines().subList(11, entries.lines().size()));
            Result entriesJson = mapcast("snapshot", "inspect", saved.toString(), "--entries", "--json");
            assertEquals(0, entriesJson.exitCode(), entriesJson::toString);
            assertEquals(summary, entriesJson.lines().get(0));
            assertEquals(listedJson, entriesJson.lines().subList(1, entriesJson.lines().size()));
        }
    }

    @Test
    void inspectRefusesACorruptedFileSayingWhereAndPrintsNothing() throws Exception {
        client.write("snap-bad").put("a", "1").put("b", "2".repeat(500)).put("c", "3").commit();
        Path good = file("good.snapshot");
        assertEquals(0, mapcast("snapshot", "save", "--server", address, "snap-bad", good.toString()).exitCode());
        byte[] bytes = Files.readAllBytes(good);

        byte[] flipped = bytes.clone();
        flipped[bytes.length / 2] ^= 0x10;  // inside b's value: only the CRC can tell
        Path flippedFile = Files.write(file("flipped.snapshot"), flipped);
        Result r = mapcast("snapshot", "inspect", flippedFile.toString(), "--entries");
        assertFailed(5, "mapcast: invalid snapshot file " + flippedFile + ": at byte ", r);
        assertTrue(r.stderr().matches("(?s).*at byte \\d+: CRC-32C mismatch.*"), r::toString);
        assertEquals("", r.stdout(), "no entry of a bad file is shown");

        Path truncated = Files.write(file("truncated.snapshot"), Arrays.copyOf(bytes, bytes.length - 20));
        r = mapcast("snapshot", "inspect", truncated.toString());
        assertFailed(5, "mapcast: invalid snapshot file " + truncated + ": at byte ", r);
        assertTrue(r.stderr().contains("truncated"), r::toString);
        assertEquals("", r.stdout());

        byte[] longer = Arrays.copyOf(bytes, bytes.length + 4);
        Path trailing = Files.write(file("trailing.snapshot"), longer);
        assertFailed(5, "mapcast: invalid snapshot file " + trailing + ": at byte " + bytes.length
                + ": 4 bytes after the footer", mapcast("snapshot", "inspect", trailing.toString()));

        Path notSnapshot = Files.writeString(file("text.snapshot"), "hello, world\n");
        assertFailed(5, "mapcast: invalid snapshot file " + notSnapshot + ": at byte 0: ",
                mapcast("snapshot", "inspect", notSnapshot.toString()));
        assertFailed(2, "mapcast: FILE: " + tmp.resolve("absent.snapshot") + " (expected: an existing snapshot file)",
                mapcast("snapshot", "inspect", tmp.resolve("absent.snapshot").toString()));
    }

    @Test
    @ResourceLock(RESTORE)
    void snapshotRestoreReplacesTheMapAsOneNewRevisionAndRefusesBadFiles() throws Exception {
        client.write("restore-src").put("a", "1").put("b", "2").put("c", "3").commit();
        Path saved = file("restore.snapshot");
        assertEquals(0, mapcast("snapshot", "save", "--server", address, "restore-src", saved.toString()).exitCode());
        long before = client.write("restore-dst").put("old", "x").put("a", "old").commit();

        Result r = mapcast("snapshot", "restore", "--server", address, "restore-dst", saved.toString());
        assertOk("restored map \"restore-dst\" from " + saved + ": 3 entries, now at revision " + (before + 1), r);
        assertEquals("1", new String(client.get("restore-dst", "a").value(), UTF_8));
        assertFalse(client.get("restore-dst", "old").found(), "the old content is gone");
        assertEquals(before + 1, client.get("restore-dst", "b").modRevision());
        assertOk("{\"map\":\"restore-new\",\"file\":\"" + saved + "\",\"revision\":1,\"entries\":3}",
                mapcast("snapshot", "restore", "--server", address, "--json", "restore-new", saved.toString()));

        byte[] flipped = Files.readAllBytes(saved);
        flipped[flipped.length / 2] ^= 0x10;
        Path bad = Files.write(file("restore-bad.snapshot"), flipped);
        Result refused = mapcast("snapshot", "restore", "--server", address, "restore-dst", bad.toString());
        assertFailed(5, "mapcast: invalid snapshot file " + bad + ": at byte ", refused);
        assertTrue(refused.stderr().contains("nothing restored"), refused::toString);
        assertEquals(before + 1, client.get("restore-dst", "a").revision(), "the map did not change");
        assertFailed(2, "mapcast: FILE: " + tmp.resolve("absent.snapshot") + " (expected: an existing snapshot file)",
                mapcast("snapshot", "restore", "--server", address, "m", tmp.resolve("absent.snapshot").toString()));

        client.write("restore-ordered").order(dev.mapcast.core.IterationOrder.INSERTION).put("k", "v").commit();
        Result order = mapcast("snapshot", "restore", "--server", address, "restore-ordered", saved.toString());
        assertFailed(3, "mapcast: refused by the server: map \"restore-ordered\" keeps INSERTION order; the"
                + " snapshot is in HASH order; nothing restored", order);
        assertEquals("v", new String(client.get("restore-ordered", "k").value(), UTF_8), "the map did not change");
    }

    /**
     * Issue 5's round trip at size: a 1M-entry map (16-byte keys, 64-byte values) saved, inspected
     * and restored with the commands, and the saved file read by Python's protobuf runtime (Debian's
     * python3-protobuf, code generated by protoc from the project's proto).
     */
    @Test
    @ResourceLock(RESTORE)
    @Timeout(value = 400, unit = TimeUnit.SECONDS)  // a million entries through three JVMs and Python
    void aMillionEntriesSaveInspectAndRestoreRoundTripAndPythonReadsTheFile() throws Exception {
        int entries = 1_000_000;
        java.util.Random random = new java.util.Random(5);
        for (int i = 0; i < entries; ) {
            var batch = client.write("million");
            for (int j = 0; j < 10_000; j++, i++) {
                byte[] value = new byte[64];
                random.nextBytes(value);
                batch.put(String.format("key-%012d", i), value);
            }
            batch.commit();
        }
        long digest;
        try (var replica = client.replica("million", dev.mapcast.codec.Codec.utf8(), dev.mapcast.codec.Codec.bytes())) {
            assertTrue(replica.awaitRevision(100, java.time.Duration.ofSeconds(60)));
            digest = replica.digest();
        }
        Path saved = file("million.snapshot");
        Result save = mapcast("snapshot", "save", "--server", address, "--json", "million", saved.toString());
        assertEquals(0, save.exitCode(), save::toString);
        String hexDigest = String.format("%016x", digest);
        assertTrue(save.stdout().contains("\"entries\":1000000") && save.stdout().contains(hexDigest), save::toString);

        Result inspect = mapcast("snapshot", "inspect", "--json", saved.toString());
        assertEquals(0, inspect.exitCode(), inspect::toString);
        assertTrue(inspect.stdout().contains("\"entries\":1000000") && inspect.stdout().contains(hexDigest)
                && inspect.stdout().contains("\"revision\":100"), inspect::toString);

        Path generated = Files.createDirectories(file("py"));
        Path protoRoot = Path.of("..", "proto", "src", "main", "proto").toAbsolutePath().normalize();
        String protoc = runTool(List.of("/usr/bin/protoc", "-I" + protoRoot, "--python_out=" + generated,
                "mapcast/v1/mapcast.proto"));
        assertEquals("", protoc.strip());
        String python = runTool(List.of("/usr/bin/python3", Path.of("..", "examples", "python", "read_snapshot.py")
                .toString(), generated.toString(), saved.toString(), "--summary"));
        assertTrue(python.contains("\"entry_count\": 1000000") && python.contains("\"entry_bytes\": " + 80L * entries)
                && python.contains("\"total_entries\": 1000000") && python.contains("\"map\": \"million\"")
                && python.contains("\"digest\": " + Long.toUnsignedString(digest)), python);

        Result restore = mapcast("snapshot", "restore", "--server", address, "million-copy", saved.toString());
        assertOk("restored map \"million-copy\" from " + saved + ": 1000000 entries, now at revision 1", restore);
        try (var copy = client.replica("million-copy", dev.mapcast.codec.Codec.utf8(), dev.mapcast.codec.Codec.bytes())) {
            assertTrue(copy.awaitRevision(1, java.time.Duration.ofSeconds(60)));
            assertEquals(entries, copy.size());
            assertEquals(digest, copy.digest(), "the restored map has the saved content");
        }
    }

    /** Runs a tool (protoc, python); returns its output, failing the test on a non-zero exit. */
    private static String runTool(List<String> command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), command + " did not finish");
        assertEquals(0, p.exitValue(), command + " failed (CI installs protobuf-compiler and python3-protobuf): " + out);
        return out;
    }

    @Test
    void snapshotSaveOfAnUnknownMapFailsAndWritesNothing() throws IOException {
        Path dir = Files.createDirectories(file("unknown-map"));
        Path target = dir.resolve("nothing.snapshot");
        Result r = mapcast("snapshot", "save", "--server", address, "no-such-snap", target.toString());
        assertFailed(1, "mapcast: ", r);
        assertTrue(r.stderr().contains("no-such-snap"), r::toString);
        assertEquals(1, r.stderr().lines().count(), r::toString);
        try (var files = Files.list(dir)) {
            assertEquals(List.of(), files.toList(), "no file, no temporary file");
        }
        assertFailed(2, "mapcast: FILE: " + dir.resolve("no-dir").resolve("x") + " (expected: a file in an existing directory)",
                mapcast("snapshot", "save", "--server", address, "snap", dir.resolve("no-dir").resolve("x").toString()));
        Result help = mapcast("snapshot", "save", "--help");
        assertTrue(help.exitCode() == 0 && help.stdout().startsWith("Usage: mapcast snapshot save ")
                && help.stdout().contains(" 5   invalid snapshot"), help::toString);
        Result inspectHelp = mapcast("snapshot", "inspect", "--help");
        assertTrue(inspectHelp.exitCode() == 0 && inspectHelp.stdout().contains("--entries")
                && inspectHelp.stdout().contains(" 5   invalid snapshot file"), inspectHelp::toString);
    }

    // ---- serve, help ----

    @Test
    void serveRunsUntilSigtermThenExits0() throws Exception {
        Path err = file("serve.err");
        Path data = file("serve-data");
        // Port 0: the port it bound is in its log (a port found free a moment ago may be taken by then).
        Process serve = command(List.of("serve", "--listen", "127.0.0.1:0", "--data-dir", data.toString()))
                .redirectOutput(file("serve.out").toFile()).redirectError(err.toFile()).start();
        try {
            // Netty's native transport where its library is bundled (x86-64 Linux), else NIO.
            String transport = System.getProperty("os.name").equals("Linux")
                    && System.getProperty("os.arch").equals("amd64") ? "epoll" : "nio";
            String listen = servingAddress(err, transport, "maps kept in " + data.toAbsolutePath() + " (fsync always)",
                    serve);
            assertOk("1", mapcast("put", "--server", listen, "s", "k", "v"));
            assertOk("v", mapcast("get", "--server", listen, "s", "k"));
            Result second = mapcast("serve", "--listen", "127.0.0.1:0", "--data-dir", data.toString());
            assertFailed(5, "mapcast: cannot use data directory " + data.toAbsolutePath()
                    + ": data directory " + data.toAbsolutePath() + " is in use by another mapcast server", second);

            serve.destroy();  // SIGTERM
            assertTrue(serve.waitFor(Processes.PATIENCE_SECONDS, TimeUnit.SECONDS), "serve exits on SIGTERM");
            assertEquals(0, serve.exitValue(), () -> read(err));
            String log = read(err);
            assertTrue(log.contains("mapcast stopped serving") && log.contains("mapcast closed"), log);
            assertFalse(log.contains("Exception") || log.contains("WARN") || log.contains("ERROR"), log);
        } finally {
            serve.destroyForcibly();
        }
        // Served again from the same data directory, on NIO (Netty's switch): the write is there.
        Path err2 = file("serve2.err");
        Process again = command(List.of("-Dio.netty.transport.noNative=true"),
                List.of("serve", "--listen", "127.0.0.1:0", "--data-dir", data.toString(), "--fsync", "periodic",
                        "--max-maps", "1"))
                .redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(err2.toFile()).start();
        try {
            String listen = servingAddress(err2, "nio", "maps kept in " + data.toAbsolutePath() + " (fsync periodic)",
                    again);
            assertOk("v", mapcast("get", "--server", listen, "s", "k"));
            // RESOURCE_EXHAUSTED (a map limit here; a full disk is the same status) is a refusal, exit 3,
            // never "cannot reach the server".
            assertFailed(3, "mapcast: refused by the server: RESOURCE_EXHAUSTED: cannot create map \"t\": the server"
                    + " holds 1 maps (expected: at most 1)", mapcast("put", "--server", listen, "t", "k", "v"));
        } finally {
            again.destroyForcibly();
            again.waitFor(Processes.PATIENCE_SECONDS, TimeUnit.SECONDS);
        }
    }

    @Test
    void serveRefusesABadLimitAndABusyAddress() {
        assertFailed(2, "mapcast: --max-key-bytes: 0 (expected: 1 to 65536)",
                mapcast("serve", "--in-memory", "--max-key-bytes", "0"));
        assertFailed(2, "mapcast: --in-memory and --data-dir exclude each other",
                mapcast("serve", "--in-memory", "--data-dir", "x"));
        assertFailed(2, "mapcast: Invalid value for option '--fsync': \"sometimes\" (expected: always or periodic)",
                mapcast("serve", "--in-memory", "--fsync", "sometimes"));
        Result busy = mapcast("serve", "--in-memory", "--listen", address);
        assertFailed(1, "mapcast: cannot listen on " + address + ": ", busy);
        assertTrue(busy.stderr().contains("Address already in use"), busy::toString);
    }

    @Test
    void helpListsCommandsAndExitCodes() {
        Result help = mapcast("--help");
        assertEquals(0, help.exitCode(), help::toString);
        for (String command : List.of("serve", "put", "get", "del", "ls", "watch", "compact", "snapshot", "map")) {
            assertTrue(help.stdout().contains("\n  " + command + " "), () -> command + " in " + help.stdout());
        }
        Result put = mapcast("put", "--help");
        assertEquals(0, put.exitCode(), put::toString);
        assertTrue(put.stdout().startsWith("Usage: mapcast put ") && put.stdout().contains("Exit codes:")
                && put.stdout().contains("4   server unreachable"), put::toString);
        Result version = mapcast("--version");
        assertTrue(version.exitCode() == 0 && version.stdout().startsWith("mapcast 0."), version::toString);
    }

    /** Issue #26: a bad --listen names the forms it takes; an IPv6 address is written [::1]:PORT. */
    @Test
    void serveListenFormsAndIpv6InBrackets() {
        Result bad = mapcast("serve", "--in-memory", "--listen", ":x");
        assertEquals(2, bad.exitCode(), bad::toString);
        assertEquals(List.of("mapcast: Invalid value for option '--listen': ':x' (expected: HOST:PORT, e.g. "
                + "127.0.0.1:50051, [::1]:50051 or :50051 for every interface; port 0 to 65535)",
                "Try 'mapcast serve --help' for more information."), bad.stderr().lines().toList(), bad::toString);
        Result ambiguous = mapcast("serve", "--in-memory", "--max-value-bytes", "1M");
        assertEquals(2, ambiguous.exitCode(), ambiguous::toString);
        assertEquals(List.of("mapcast: Invalid value for option '--max-value-bytes': '1M' is ambiguous (expected: 1MiB"
                + " for 1 x 2^20 bytes, or 1MB for 1 x 10^6)", "Try 'mapcast serve --help' for more information."),
                ambiguous.stderr().lines().toList(), ambiguous::toString);
        MapcastServer v6;
        try {
            v6 = MapcastServer.builder().host("::1").port(0).build().start();
        } catch (RuntimeException noIpv6) {
            org.junit.jupiter.api.Assumptions.abort("no IPv6 loopback here: " + noIpv6);
            return;
        }
        try (v6) {
            Result busy = mapcast("serve", "--in-memory", "--listen", "[::1]:" + v6.port());
            assertEquals(1, busy.exitCode(), busy::toString);
            List<String> lines = busy.stderr().lines().toList();
            // After the address: Netty's reason, which depends on the transport (epoll or NIO).
            assertTrue(lines.size() == 1 && lines.get(0).startsWith("mapcast: cannot listen on [::1]:" + v6.port() + ": ")
                    && lines.get(0).endsWith("Address already in use"), busy::toString);
        }
    }

    /** Issue #26: {@code help [COMMAND]} and {@code version} as commands, not "Did you mean: mapcast del?". */
    @Test
    void helpAndVersionAreCommandsToo() {
        Result help = mapcast("help");
        assertEquals(0, help.exitCode(), help::toString);
        assertEquals("", help.stderr(), help::toString);
        assertEquals(mapcast("--help").stdout(), help.stdout());
        assertTrue(help.stdout().contains("\n  version   ") && help.stdout().contains("\n  help      ")
                && help.stdout().contains("\nExit codes:\n"), help::toString);

        Result helpPut = mapcast("help", "put");
        assertEquals(0, helpPut.exitCode(), helpPut::toString);
        assertEquals(mapcast("put", "--help").stdout(), helpPut.stdout());
        assertTrue(helpPut.stdout().contains("4   server unreachable"), helpPut::toString);

        Result version = mapcast("version");
        assertEquals(0, version.exitCode(), version::toString);
        assertEquals("", version.stderr(), version::toString);
        assertEquals(mapcast("--version").stdout(), version.stdout());
        List<String> lines = version.lines();
        assertEquals(2, lines.size(), version::toString);
        assertTrue(lines.get(0).matches("mapcast 0\\.\\S+") && lines.get(1).startsWith("JVM: "
                + System.getProperty("java.version") + " ("), version::toString);

        Result versionHelp = mapcast("version", "--help");
        assertEquals(0, versionHelp.exitCode(), versionHelp::toString);
        assertTrue(versionHelp.stdout().startsWith("Usage: mapcast version [-h]\n")
                && versionHelp.stdout().contains("\nExit codes:\n   0   ok\n   2   usage error"), versionHelp::toString);

        Result unknown = mapcast("help", "nosuch");
        assertEquals(2, unknown.exitCode(), unknown::toString);
        assertEquals("", unknown.stdout(), unknown::toString);
        assertEquals(List.of("mapcast: Unknown subcommand 'nosuch'.", "Try 'mapcast --help' for more information."),
                unknown.stderr().lines().toList(), unknown::toString);
    }

    // ---- running the command ----

    private static Result mapcast(String... args) {
        return mapcast(Map.of(), null, args);
    }

    /** Runs {@code mapcast args} to completion, with extra environment and stdin. */
    private static Result mapcast(Map<String, String> env, byte[] stdin, String... args) {
        ProcessBuilder pb = command(List.of(args));
        pb.environment().putAll(env);
        return Processes.run(pb, file("out"), file("err"), stdin, "mapcast " + String.join(" ", args));
    }

    /** {@code java ... dev.mapcast.cli.Main args}, as ./mapcast runs it. */
    private static ProcessBuilder command(List<String> args) {
        return command(List.of(), args);
    }

    /** The command as a process, with {@code jvm} options for its JVM. */
    private static ProcessBuilder command(List<String> jvm, List<String> args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        if (Runtime.version().feature() >= 23) {
            cmd.add("--sun-misc-unsafe-memory-access=allow");  // as ./mapcast does; see the root pom
            cmd.add("--enable-native-access=ALL-UNNAMED");  // as mapcast.jar's manifest does
            // A class archive dumped with that option does not record it and reports a mismatch
            // when used; it still serves the classes.
            cmd.add("-Xlog:cds=off");
        }
        if (!args.get(0).equals("serve")) {
            // Short-lived client JVMs start faster without the optimising compiler and with the
            // simplest collector; behaviour is the same.
            cmd.addAll(List.of("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"));
        }
        cmd.addAll(jvmOptions);
        cmd.addAll(jvm);
        cmd.addAll(List.of("-cp", classPath, Main.class.getName()));
        cmd.addAll(args);
        boolean clientCommand = CLIENT_COMMANDS.contains(args.get(0))
                || args.get(0).equals("snapshot") && args.size() > 1 && args.get(1).equals("save")
                || args.get(0).equals("map");
        if (clientCommand && !args.contains("--timeout") && !args.contains("--")) {
            // A loaded build machine can take seconds to connect to a local server: not a failure here.
            cmd.addAll(List.of("--timeout", "30s"));
        }
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().remove(ClientOptions.ENV);  // the machine's own setting must not leak in
        pb.environment().put("MALLOC_MMAP_THRESHOLD_", "65536");
        return pb;
    }

    private static void assertOk(String expectedStdout, Result r) {
        assertEquals(0, r.exitCode(), r::toString);
        assertEquals(expectedStdout + "\n", r.stdout(), r::toString);
        assertEquals("", r.stderr(), r::toString);
    }

    /** The exit code, a message on stderr ("mapcast: ..." containing {@code message}), no stack trace. */
    private static void assertFailed(int exitCode, String message, Result r) {
        assertEquals(exitCode, r.exitCode(), r::toString);
        assertTrue(r.stderr().startsWith("mapcast: ") && r.stderr().contains(message), r::toString);
        assertFalse(r.stderr().contains("\tat "), r::toString);
    }

    private static Path file(String name) {
        return tmp.resolve(files.incrementAndGet() + "-" + name);
    }

    /** Waits for {@code serve}'s log to say it serves (on {@code transport}, with {@code storage}); its address. */
    private static String servingAddress(Path log, String transport, String storage, Process serve)
            throws InterruptedException {
        awaitContent(log, s -> ServingLine.in(s) != null && s.contains(storage), serve, "serving");
        ServingLine serving = ServingLine.in(read(log));
        assertEquals(transport, serving.transport(), serving.toString());
        return serving.address();
    }

    /**
     * A socket bound to a loopback port but not listening: connecting to it is refused, and while
     * it is open nothing else can take the port and answer (a port merely found free could be).
     */
    private static Socket refusingPort() throws IOException {
        Socket s = new Socket();
        s.bind(new InetSocketAddress("127.0.0.1", 0));
        return s;
    }
}
