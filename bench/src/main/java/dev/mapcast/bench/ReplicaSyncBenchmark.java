package dev.mapcast.bench;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.Replica;
import dev.mapcast.client.WriteBatch;
import dev.mapcast.codec.Codec;
import dev.mapcast.server.MapcastServer;
import java.time.Duration;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * A fresh replica syncing a 1M-entry map (16-byte keys, 64-byte values, 86 MB of records) from a
 * server on loopback, real gRPC over Netty (issue 4; target under 3 s). One operation: a new client
 * and replica, until the replica holds the server's revision (snapshot received, applied, size
 * and digest verified), then both closed.
 *
 * <p>Run (about 1 minute):
 * <pre>{@code
 * mvn -B -q -pl bench -am package -DskipTests
 * java -jar bench/target/benchmarks.jar ReplicaSyncBenchmark
 * }</pre>
 * On JDK 23+ add {@code -jvmArgsAppend --sun-misc-unsafe-memory-access=allow}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3)
@Measurement(iterations = 10)
@Fork(value = 1, jvmArgs = {"-Xms2g", "-Xmx2g"})
public class ReplicaSyncBenchmark {

    private static final int ENTRIES = 1_000_000;

    private MapcastServer server;
    private String target;
    private long revision;

    @Setup(Level.Trial)
    public void setUp() {
        server = MapcastServer.builder().port(0).build().start();
        target = "127.0.0.1:" + server.port();
        Random random = new Random(42);
        try (MapcastClient writer = MapcastClient.builder().target(target).build()) {
            for (int i = 0; i < ENTRIES; ) {
                WriteBatch batch = writer.write("big");
                for (int j = 0; j < 10_000 && i < ENTRIES; j++, i++) {
                    byte[] value = new byte[64];
                    random.nextBytes(value);
                    batch.put(String.format(Locale.ROOT, "key-%012d", i), value);
                }
                revision = batch.commit();
            }
        }
    }

    @Benchmark
    public long syncMillionEntries() throws InterruptedException {
        try (MapcastClient client = MapcastClient.builder().target(target).build();
             Replica<byte[], byte[]> replica = client.replica("big", Codec.bytes(), Codec.bytes())) {
            if (!replica.awaitRevision(revision, Duration.ofSeconds(60)) || replica.size() != ENTRIES) {
                throw new IllegalStateException("replica did not sync: " + replica.size() + " entries");
            }
            return replica.size();
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        server.close();
    }

}
