package dev.mapcast.bench;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.WriteBatch;
import dev.mapcast.server.FsyncMode;
import dev.mapcast.server.MapcastServer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Issue 5's storage figures for a 1M-entry map (16-byte keys, 64-byte values, 86 MB of records),
 * data directory on the machine's disk ({@code java.io.tmpdir}), fsync always:
 * <ul>
 *   <li>{@code save}: {@link MapcastClient#saveSnapshot} of the map to a file (what
 *       {@code mapcast snapshot save} does): Snapshot RPC on loopback, verified, fsync'd, renamed.</li>
 *   <li>{@code restore}: {@link MapcastClient#restoreSnapshot} of that file into another map (what
 *       {@code mapcast snapshot restore} does): file verified while streamed, staged and checked by
 *       the server, written as the map's snapshot (fsync'd), swapped in.</li>
 *   <li>{@code recover}: building a server on the data directory (the map's latest snapshot, 1M
 *       entries, plus 100k single-key writes in its log, replayed and digest-checked), then closing
 *       it. The files are in the page cache after the first operation: this is recovery's CPU cost,
 *       not the disk's read speed.</li>
 * </ul>
 *
 * <pre>{@code
 * mvn -B -q -pl bench -am package -DskipTests
 * java -jar bench/target/benchmarks.jar StorageBenchmark
 * }</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2)
@Measurement(iterations = 7)
@Fork(value = 1, jvmArgs = {"-Xms2g", "-Xmx2g"})
public class StorageBenchmark {

    private static final int ENTRIES = 1_000_000;
    private static final int LOGGED_WRITES = 100_000;

    @Param({"save", "restore", "recover"})
    String op;

    private Path dir;
    private Path dataDir;
    private Path file;
    private MapcastServer server;
    private MapcastClient client;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        dir = Files.createTempDirectory("mapcast-storage-bench");
        dataDir = dir.resolve("data");
        file = dir.resolve("big.snapshot");
        Random random = new Random(42);
        // Filled with a small snapshot threshold, so the map's snapshot holds the fill...
        try (MapcastServer s = MapcastServer.builder().port(0).dataDir(dataDir).snapshotLogBytes(1 << 20).build()
                .start(); MapcastClient c = MapcastClient.builder().target("127.0.0.1:" + s.port()).build()) {
            for (int i = 0; i < ENTRIES; ) {
                WriteBatch batch = c.write("big");
                for (int j = 0; j < 10_000 && i < ENTRIES; j++, i++) {
                    byte[] value = new byte[64];
                    random.nextBytes(value);
                    batch.put(String.format("key-%012d", i), value);
                }
                batch.commit();
            }
        }
        // ...then 100k single-key writes that stay in its log (acknowledged without waiting for each
        // fsync, to keep the set-up short: the log on disk is the same once the server has closed).
        server = MapcastServer.builder().port(0).dataDir(dataDir).snapshotLogBytes(1L << 40)
                .fsync(op.equals("recover") ? FsyncMode.PERIODIC : FsyncMode.ALWAYS).build().start();
        client = MapcastClient.builder().target("127.0.0.1:" + server.port()).build();
        if (op.equals("recover")) {
            byte[] value = new byte[64];
            for (int i = 0; i < LOGGED_WRITES; i++) {
                random.nextBytes(value);
                client.put("big", String.format("key-%012d", random.nextInt(ENTRIES)), value);
            }
            client.close();
            server.close();
            server = null;
        } else {
            client.saveSnapshot("big", file);
        }
    }

    @Benchmark
    public long run() throws IOException {
        switch (op) {
            case "save":
                return client.saveSnapshot("big", file).entries();
            case "restore":
                return client.restoreSnapshot("copy", file).entries();
            case "recover":
                try (MapcastServer recovered = MapcastServer.builder().port(0).dataDir(dataDir).build()) {
                    return recovered.hashCode();
                }
            default:
                throw new IllegalArgumentException("op: " + op + " (expected: save, restore or recover)");
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        if (server != null) {
            client.close();
            server.close();
        }
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path f : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(f);
            }
        }
    }
}
