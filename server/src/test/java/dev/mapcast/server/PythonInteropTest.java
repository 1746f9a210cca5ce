package dev.mapcast.server;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.protobuf.ByteString;
import dev.mapcast.proto.v1.CompactRequest;
import dev.mapcast.proto.v1.DeleteMapRequest;
import dev.mapcast.proto.v1.GetRequest;
import dev.mapcast.proto.v1.GetResponse;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.MapcastGrpc.MapcastBlockingStub;
import dev.mapcast.proto.v1.SnapshotChunk;
import dev.mapcast.proto.v1.SnapshotRequest;
import dev.mapcast.proto.v1.WriteRequest;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Set;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Interoperability with a client in another language: {@code examples/python/mapcast_client.py}, on
 * Debian's python3-grpcio and python3-protobuf, against the real server on loopback. Python writes,
 * reads and sends one bad request, then watches from a snapshot; while it watches, this test writes
 * (from several threads at once) and compacts. Python checks every delta's prev_revision and digest
 * itself, and its final replica must equal what the server holds, digest included.
 *
 * <p>Not skippable: without /usr/bin/python3's grpc module or /usr/bin/protoc it fails, naming the
 * Debian package to install (.ci/run installs them).
 */
@Timeout(60)
class PythonInteropTest {

    private static final Path PYTHON = Path.of("/usr/bin/python3");
    private static final Path PROTOC = Path.of("/usr/bin/protoc");
    private static final String SCRIPT = "examples/python/mapcast_client.py";
    private static final String CONTRACT = "mapcast/v1/mapcast.proto";
    private static final Duration WAIT = Duration.ofSeconds(20);
    private static final String MAP = "interop";

    /** Python's two writes: revisions 1 and 2 of the fresh map. */
    private static final long PYTHON_REVISION = 2;
    private static final int WRITER_THREADS = 4;
    private static final int WRITES_PER_THREAD = 10;

    @TempDir
    Path work;

    @Test
    void pythonClientFollowsJavaWritesFromASnapshotAndEndsWithTheServersContent() throws Exception {
        Path root = repositoryRoot();
        requirePythonModules();
        Path generated = generatePythonMessages(root);

        List<WriteRequest> scripted = scriptedWrites();
        long finalRevision = PYTHON_REVISION + scripted.size() + (long) WRITER_THREADS * WRITES_PER_THREAD;

        // Small chunks, so that Python assembles a snapshot from many messages.
        try (MapcastServer server = MapcastServer.builder().port(0).snapshotChunkBytes(128).build().start()) {
            ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
            try (PythonClient python = PythonClient.start(root, work, List.of(
                    "--server", "127.0.0.1:" + server.port(), "--generated", generated.toString(), "--timeout", "15",
                    "interop", MAP, "--until-revision", Long.toString(finalRevision)))) {
                MapcastBlockingStub stub = MapcastGrpc.newBlockingStub(channel);

                // Python has its snapshot: every write from here on must reach it as a delta.
                Map<String, String> snapshotLine = fields(python.awaitLine("snapshot "));
                ServerState atSnapshot = serverState(stub);
                assertEquals(PYTHON_REVISION, atSnapshot.revision(), "revision after Python's two writes");
                assertEquals(Long.toString(PYTHON_REVISION), snapshotLine.get("revision"), snapshotLine::toString);
                assertEquals(Integer.toString(atSnapshot.entries().size()), snapshotLine.get("entries"));
                assertEquals(hex(atSnapshot.digest()), snapshotLine.get("digest"), "Python's snapshot digest");
                assertTrue(Integer.parseInt(snapshotLine.get("chunks")) > 1, "a snapshot in several chunks");

                Map<String, ByteString> expected = new HashMap<>(atSnapshot.entries());
                long revision = PYTHON_REVISION;
                for (WriteRequest write : scripted) {
                    revision++;
                    assertEquals(revision, stub.write(write).getRevision(), () -> "revision of " + write);
                    apply(write, expected);
                }
                long compactedAt = revision;
                stub.compact(CompactRequest.newBuilder().setMap(MAP).build());
                List<Long> concurrentRevisions = writeConcurrently(stub, expected);
                assertEquals(LongStream.rangeClosed(compactedAt + 1, finalRevision).boxed().toList(),
                        concurrentRevisions.stream().sorted().toList(), "revisions of the concurrent writes");

                int exit = python.awaitExit();
                assertEquals(0, exit, () -> "the Python client failed (exit " + exit + ")" + python.transcript());
                List<String> out = python.lines();

                // What Python did before watching, as it reported it (it checks the answers itself too).
                assertEquals(List.of("wrote revision=1 puts=14 deletes=0", "wrote revision=2 puts=1 deletes=1"),
                        linesStartingWith(out, "wrote "));
                Map<String, String> get = fields(single(out, "get "));
                assertEquals(List.of("true", "1", "2"),
                        List.of(get.get("found"), get.get("mod_revision"), get.get("revision")), get::toString);
                String rejected = single(out, "rejected ");
                assertTrue(rejected.matches("rejected code=INVALID_ARGUMENT details=\\S.*"), rejected);

                // Every change after the snapshot arrived once, in order, and so did the compaction.
                List<Long> deltaRevisions = linesStartingWith(out, "delta ").stream()
                        .map(line -> Long.parseLong(fields(line).get("revision"))).toList();
                assertEquals(LongStream.rangeClosed(PYTHON_REVISION + 1, finalRevision).boxed().toList(),
                        deltaRevisions, "revisions of the deltas Python applied");
                assertEquals("compaction compact_revision=" + compactedAt, single(out, "compaction "));

                // Python's replica is what the server holds, which is what this test wrote on top of
                // Python's writes.
                ServerState end = serverState(stub);
                assertEquals(finalRevision, end.revision());
                assertEquals(expected, end.entries(), "the server's content");
                assertEquals(end.entries(), entriesPrinted(out), "Python's replica");
                assertEquals(Map.of("revision", Long.toString(finalRevision),
                                "entries", Integer.toString(end.entries().size()), "digest", hex(end.digest())),
                        fields(single(out, "final ")), "Python's final line");
            } finally {
                channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    /**
     * WriteStream from Python's grpc: one write per pair on one bidirectional stream, each answered
     * by its id, the bad one (an empty key) refused in place while the others apply.
     */
    @Test
    void pythonClientWritesOnOneWriteStream() throws Exception {
        Path root = repositoryRoot();
        requirePythonModules();
        Path generated = generatePythonMessages(root);
        try (MapcastServer server = MapcastServer.builder().port(0).build().start()) {
            ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
            MapcastGrpc.newBlockingStub(channel).write(write().setMap("streamed").putPuts("created", utf8("yes")).build());
            try (PythonClient python = PythonClient.start(root, work, List.of(
                    "--server", "127.0.0.1:" + server.port(), "--generated", generated.toString(), "--timeout", "15",
                    "write-stream", "streamed", "a=1", "b=2", "=bad", "c=3"))) {
                int exit = python.awaitExit();
                assertEquals(0, exit, () -> "the Python client failed (exit " + exit + ")" + python.transcript());
                Map<String, Map<String, String>> byId = new HashMap<>();
                for (String line : linesStartingWith(python.lines(), "result ")) {
                    String message = line.substring(line.indexOf(" message=") + " message=".length());
                    Map<String, String> f = fields(line.substring(0, line.indexOf(" message=")));
                    f.put("message", message);
                    byId.put(f.get("id"), f);
                }
                assertEquals(Set.of("1", "2", "3", "4"), byId.keySet(), python.lines()::toString);
                assertEquals(List.of("OK", "OK", "INVALID_ARGUMENT", "OK"), List.of("1", "2", "3", "4").stream()
                        .map(id -> byId.get(id).get("code")).toList());
                assertEquals("0", byId.get("3").get("revision"));
                assertTrue(byId.get("3").get("message").contains("empty key"), byId.get("3")::toString);
                // One revision per write that applied (1 was the map's creation), each key as its write left it.
                assertEquals(Set.of("2", "3", "4"), Set.of(byId.get("1").get("revision"), byId.get("2").get("revision"),
                        byId.get("4").get("revision")));
                MapcastBlockingStub stub = MapcastGrpc.newBlockingStub(channel);
                Map<String, String> idOfKey = Map.of("a", "1", "b", "2", "c", "4");
                Map<String, String> valueOfKey = Map.of("a", "1", "b", "2", "c", "3");
                for (String key : idOfKey.keySet()) {
                    GetResponse got = stub.get(GetRequest.newBuilder().setMap("streamed").setKey(key).build());
                    assertEquals(List.of(4L, Long.parseLong(byId.get(idOfKey.get(key)).get("revision")), valueOfKey.get(key)),
                            List.of(got.getRevision(), got.getModRevision(), got.getValue().toStringUtf8()), key);
                }
            } finally {
                channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    /**
     * Incarnations seen from Python: it follows a map that does not exist yet, through its creation
     * (incarnation A), its deletion, its re-creation (B) and a server restarted in memory (C). Its
     * revision goes back only right after a MapDeleted event or a snapshot it reports as recreated,
     * and it ends with what the server holds.
     */
    @Test
    void pythonClientFollowsAMapThroughDeletionRecreationAndAnInMemoryRestart() throws Exception {
        Path root = repositoryRoot();
        requirePythonModules();
        Path generated = generatePythonMessages(root);
        MapcastServer server = MapcastServer.builder().port(0).build().start();
        int port = server.port();
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
        try (PythonClient python = PythonClient.start(root, work, List.of(
                "--server", "127.0.0.1:" + port, "--generated", generated.toString(), "--timeout", "40",
                "lifecycle", "life", "--until-revision", "2", "--incarnations", "3"))) {
            python.awaitLine("deleted revision=0 ");  // told the map does not exist yet
            MapcastBlockingStub stub = MapcastGrpc.newBlockingStub(channel);
            long a = stub.write(lifeWrite("a", "1")).getIncarnation();
            stub.write(lifeWrite("b", "2"));
            python.awaitLine("delta revision=2 ");
            stub.deleteMap(DeleteMapRequest.newBuilder().setMap("life").build());
            assertEquals("deleted revision=2 incarnation=" + hex(a), python.awaitLine("deleted "));
            long b = stub.write(lifeWrite("c", "3")).getIncarnation();
            python.awaitLine("delta revision=1 ");

            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            server.close();
            python.awaitLine("reconnecting ");
            server = MapcastServer.builder().port(port).build().start();
            channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
            stub = MapcastGrpc.newBlockingStub(channel);
            long c = stub.write(lifeWrite("d", "4")).getIncarnation();
            stub.write(lifeWrite("e", "5"));

            int exit = python.awaitExit();
            assertEquals(0, exit, () -> "the Python client failed (exit " + exit + ")" + python.transcript());
            List<String> out = python.lines();
            List<String> incarnations = linesStartingWith(out, "snapshot ").stream()
                    .map(line -> fields(line).get("incarnation")).distinct().toList();
            assertEquals(List.of(hex(a), hex(b), hex(c)), incarnations, out::toString);
            long revision = 0;
            boolean told = false;
            for (String line : out) {
                if (line.startsWith("deleted ") || line.startsWith("recreated ")) {
                    told = true;
                } else if (line.startsWith("snapshot ") || line.startsWith("delta ")) {
                    long r = Long.parseLong(fields(line).get("revision"));
                    assertTrue(r >= revision || told, () -> "revision went back to " + r + " unannounced: " + out);
                    revision = r;
                    told = false;
                }
            }
            ServerState end = serverState(stub, "life");
            assertEquals(end.entries(), entriesPrinted(out), "Python's replica");
            assertEquals(Map.of("revision", "2", "entries", "2", "digest", hex(end.digest())),
                    fields(single(out, "final ")), "Python's final line");
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            server.close();
        }
    }

    private static WriteRequest lifeWrite(String key, String value) {
        return WriteRequest.newBuilder().setMap("life").putPuts(key, utf8(value)).build();
    }

    /**
     * Writes made after Python's snapshot, one at a time: they overwrite and delete Python's keys,
     * and carry what a hand-written encoder gets wrong (multi-byte UTF-8, two-byte varints, an
     * empty value, a write that deletes nothing).
     */
    private static List<WriteRequest> scriptedWrites() {
        byte[] allBytes = new byte[300];  // 300 > 127: the value's length needs a two-byte varint
        for (int i = 0; i < allBytes.length; i++) {
            allBytes[i] = (byte) i;
        }
        return List.of(
                write().putPuts("service/00/endpoint", utf8("10.0.0.100:9090"))
                        .putPuts("greeting/ключ-ü", utf8("привет")).build(),
                write().putPuts("blob/all-bytes", ByteString.copyFrom(allBytes))
                        .putPuts("long/" + "k".repeat(200), ByteString.EMPTY).build(),
                write().addDeletes("service/05/endpoint").addDeletes("greeting/ключ-ü").build(),
                // Deletes nothing, still a revision: Python must see an empty delta, not a gap.
                write().addDeletes("never/written").build());
    }

    /** Writer threads, each updating its own key; returns the revisions the writes got. */
    private static List<Long> writeConcurrently(MapcastBlockingStub stub, Map<String, ByteString> expected)
            throws Exception {
        ExecutorService writers = Executors.newFixedThreadPool(WRITER_THREADS);
        try {
            List<Callable<List<Long>>> tasks = new ArrayList<>();
            for (int t = 0; t < WRITER_THREADS; t++) {
                String key = "worker/" + t;
                tasks.add(() -> {
                    List<Long> revisions = new ArrayList<>();
                    for (int i = 0; i < WRITES_PER_THREAD; i++) {
                        revisions.add(stub.write(write().putPuts(key, utf8(key + " #" + i)).build()).getRevision());
                    }
                    return revisions;
                });
                expected.put(key, utf8(key + " #" + (WRITES_PER_THREAD - 1)));
            }
            List<Long> all = new ArrayList<>();
            for (Future<List<Long>> done : writers.invokeAll(tasks)) {
                all.addAll(done.get());
            }
            return all;
        } finally {
            writers.shutdownNow();
        }
    }

    private static WriteRequest.Builder write() {
        return WriteRequest.newBuilder().setMap(MAP);
    }

    private static void apply(WriteRequest write, Map<String, ByteString> content) {
        content.putAll(write.getPutsMap());
        write.getDeletesList().forEach(content::remove);
    }

    /** The map as the server holds it, read with the Java stub's Snapshot. */
    private record ServerState(long revision, Map<String, ByteString> entries, long digest) {
    }

    private static ServerState serverState(MapcastBlockingStub stub) {
        return serverState(stub, MAP);
    }

    private static ServerState serverState(MapcastBlockingStub stub, String map) {
        Map<String, ByteString> entries = new HashMap<>();
        Iterator<SnapshotChunk> chunks = stub.withDeadlineAfter(10, TimeUnit.SECONDS)
                .snapshot(SnapshotRequest.newBuilder().setMap(map).build());
        while (chunks.hasNext()) {
            SnapshotChunk chunk = chunks.next();
            entries.putAll(chunk.getEntriesMap());
            if (chunk.getLast()) {
                assertEquals(entries.size(), chunk.getTotalEntries(), "total_entries of the server's snapshot");
                return new ServerState(chunk.getRevision(), entries, chunk.getDigest());
            }
        }
        return fail("the server's snapshot ended without a last chunk");
    }

    /** Python's `entry key=HEX value=HEX` lines as a map. */
    private static Map<String, ByteString> entriesPrinted(List<String> out) {
        Map<String, ByteString> entries = new HashMap<>();
        for (String line : linesStartingWith(out, "entry ")) {
            Map<String, String> f = fields(line);
            String key = new String(HexFormat.of().parseHex(f.get("key")), UTF_8);
            ByteString previous = entries.put(key, ByteString.copyFrom(HexFormat.of().parseHex(f.get("value"))));
            assertNull(previous, () -> "key printed twice: " + key);
        }
        return entries;
    }

    /** The `name=value` fields of a line after its first word (values hold no spaces). */
    private static Map<String, String> fields(String line) {
        Map<String, String> out = new HashMap<>();
        String[] words = line.split(" ");
        for (int i = 1; i < words.length; i++) {
            int eq = words[i].indexOf('=');
            assertTrue(eq > 0, () -> "not name=value in: " + line);
            out.put(words[i].substring(0, eq), words[i].substring(eq + 1));
        }
        return out;
    }

    private static List<String> linesStartingWith(List<String> lines, String prefix) {
        return lines.stream().filter(line -> line.startsWith(prefix)).toList();
    }

    private static String single(List<String> lines, String prefix) {
        List<String> found = linesStartingWith(lines, prefix);
        assertEquals(1, found.size(), () -> "lines starting with '" + prefix + "': " + found);
        return found.get(0);
    }

    private static ByteString utf8(String s) {
        return ByteString.copyFromUtf8(s);
    }

    private static String hex(long digest) {
        return String.format("%016x", digest);
    }

    /** Surefire runs in the module directory; the example lives at the repository root. */
    private static Path repositoryRoot() {
        Path root = Path.of(System.getProperty("basedir", System.getProperty("user.dir"))).toAbsolutePath().getParent();
        assertTrue(Files.isRegularFile(root.resolve(SCRIPT)), () -> SCRIPT + " not found under " + root);
        return root;
    }

    private static void requirePythonModules() throws Exception {
        assertTrue(Files.isExecutable(PYTHON), PYTHON + " is missing: install the Debian package python3");
        String missing = run(List.of(PYTHON.toString(), "-c", String.join("\n",
                "import importlib",
                "for module, package in (('grpc', 'python3-grpcio'), ('google.protobuf', 'python3-protobuf')):",
                "    try:",
                "        importlib.import_module(module)",
                "    except ImportError:",
                "        print(package)")), null).strip();
        assertEquals("", missing, () -> PYTHON + " lacks the interop test's modules: install the Debian package(s) "
                + missing.replace('\n', ' ') + " (.ci/run installs them)");
    }

    /** protoc --python_out for the contract: the message classes (there is no Python gRPC plugin). */
    private Path generatePythonMessages(Path root) throws Exception {
        assertTrue(Files.isExecutable(PROTOC),
                PROTOC + " is missing: install the Debian package protobuf-compiler (.ci/run installs it)");
        Path out = Files.createDirectories(work.resolve("python-generated"));
        Path protoRoot = root.resolve("proto/src/main/proto");
        run(List.of(PROTOC.toString(), "--python_out=" + out, "-I", protoRoot.toString(),
                protoRoot.resolve(CONTRACT).toString()), root);
        assertTrue(Files.isRegularFile(out.resolve("mapcast/v1/mapcast_pb2.py")), "protoc wrote no mapcast_pb2.py");
        return out;
    }

    /** Runs a short command to completion; returns its output, or fails with it. */
    private static String run(List<String> command, Path directory) throws Exception {
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        if (directory != null) {
            builder.directory(directory.toFile());
        }
        Process process = builder.start();
        String output = new String(process.getInputStream().readAllBytes(), UTF_8);
        if (!process.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS)) {
            process.destroyForcibly();
            fail(command.get(0) + " did not finish: " + output);
        }
        assertEquals(0, process.exitValue(), () -> String.join(" ", command) + " failed:\n" + output);
        return output;
    }

    /** The Python client as a subprocess: stdout read line by line as it comes, stderr kept in a file. */
    private static final class PythonClient implements AutoCloseable {

        private static final String END_OF_OUTPUT = "\0end of output";

        private final Process process;
        private final Path stderr;
        private final List<String> lines = new CopyOnWriteArrayList<>();
        private final BlockingQueue<String> unread = new LinkedBlockingQueue<>();
        private final Thread reader;

        private PythonClient(Process process, Path stderr) {
            this.process = process;
            this.stderr = stderr;
            this.reader = new Thread(this::readStdout, "python-stdout");
            reader.setDaemon(true);
            reader.start();
        }

        static PythonClient start(Path root, Path work, List<String> arguments) throws IOException {
            List<String> command = new ArrayList<>(List.of(PYTHON.toString(), SCRIPT));
            command.addAll(arguments);
            Path stderr = work.resolve("python-stderr.txt");
            ProcessBuilder builder = new ProcessBuilder(command).directory(root.toFile())
                    .redirectError(stderr.toFile());
            // grpc-python honours proxy variables; a CI proxy must not sit between it and loopback.
            builder.environment().keySet().removeIf(name -> name.toLowerCase().endsWith("_proxy"));
            return new PythonClient(builder.start(), stderr);
        }

        private void readStdout() {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(process.getInputStream(), UTF_8))) {
                for (String line = in.readLine(); line != null; line = in.readLine()) {
                    lines.add(line);
                    unread.add(line);
                }
            } catch (IOException e) {
                lines.add("(reading stdout failed: " + e + ")");
            } finally {
                unread.add(END_OF_OUTPUT);
            }
        }

        /** The first line not yet looked at that starts with the prefix; fails if none comes. */
        String awaitLine(String prefix) throws InterruptedException {
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (true) {
                String line = unread.poll(deadline - System.nanoTime(), TimeUnit.NANOSECONDS);
                if (line == null) {
                    return fail("no line starting with '" + prefix + "' within " + WAIT + transcript());
                }
                if (line.equals(END_OF_OUTPUT)) {
                    unread.add(END_OF_OUTPUT);
                    return fail("the Python client ended before a line starting with '" + prefix + "'" + transcript());
                }
                if (line.startsWith(prefix)) {
                    return line;
                }
            }
        }

        /** Waits for the process and for the last of its output; returns the exit code. */
        int awaitExit() throws InterruptedException {
            if (!process.waitFor(WAIT.toMillis(), TimeUnit.MILLISECONDS)) {
                fail("the Python client still runs after " + WAIT + transcript());
            }
            reader.join(WAIT.toMillis());
            return process.exitValue();
        }

        List<String> lines() {
            return List.copyOf(lines);
        }

        /** Everything the process printed, for failure messages. */
        String transcript() {
            String err;
            try {
                err = Files.readString(stderr);
            } catch (IOException e) {
                err = "(cannot read " + stderr + ": " + e + ")";
            }
            return "\n--- python stdout ---\n" + String.join("\n", lines) + "\n--- python stderr ---\n" + err;
        }

        @Override
        public void close() {
            process.destroyForcibly();
        }
    }
}
