package dev.mapcast.bench;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.Replica;
import dev.mapcast.client.WriteBatch;
import dev.mapcast.codec.Codec;
import dev.mapcast.server.MapcastServer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.LockSupport;
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
 * Write-to-every-replica latency on loopback (issue 4): one server, 50 replicas (each with its
 * own client and connection, as 50 services would have), all in this JVM on real gRPC over Netty;
 * an open-loop writer sends 5,000 single-key writes per second (16-byte keys over 10,000 keys,
 * 64-byte values) for 20 s after 5 s of the same load as warm-up.
 *
 * <p>A write's latency runs from the moment it was due to be sent (so a writer that falls behind
 * its schedule counts against the result: no coordinated omission) until the last of the 50
 * replicas has applied it and made it visible (its revision listener ran). After the load the run
 * waits for every replica to reach the last revision and compares their digests with a fresh
 * replica's.
 *
 * <p>The figures (p50, p99, p99.9, max, writes never seen, convergence) are printed by the
 * benchmark itself; JMH's own score is only the length of the run.
 *
 * <p>Run (about 40 s):
 * <pre>{@code
 * mvn -B -q -pl bench -am package -DskipTests
 * java -jar bench/target/benchmarks.jar ReplicationLatencyBenchmark
 * }</pre>
 * On JDK 23+ add {@code -jvmArgsAppend --sun-misc-unsafe-memory-access=allow}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 0)
@Measurement(iterations = 1)
@Fork(value = 1, jvmArgsAppend = {"-Xms2g", "-Xmx2g"})
public class ReplicationLatencyBenchmark {

    private static final int KEYS = 10_000;
    private static final int WARMUP_SECONDS = 5;

    @Param("50")
    int replicas;

    @Param("5000")
    int writesPerSecond;

    @Param("20")
    int seconds;

    private MapcastServer server;
    private MapcastClient writer;
    private final List<MapcastClient> clients = new ArrayList<>();
    private final List<Replica<byte[], byte[]>> copies = new ArrayList<>();
    private byte[][] keys;
    private byte[][] values;

    /** Per revision (offset from the first measured one): replicas still to apply it, and when the last did. */
    private volatile AtomicIntegerArray remaining;
    private volatile AtomicLongArray lastApplied;
    private volatile long baseRevision = Long.MAX_VALUE;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        server = MapcastServer.builder().port(0).build().start();
        String target = "127.0.0.1:" + server.port();
        writer = MapcastClient.builder().target(target).build();
        Random random = new Random(42);
        keys = new byte[KEYS][];
        values = new byte[1024][];
        for (int i = 0; i < KEYS; i++) {
            keys[i] = String.format(Locale.ROOT, "key-%012d", i).getBytes(java.nio.charset.StandardCharsets.UTF_8);
        }
        for (int i = 0; i < values.length; i++) {
            values[i] = new byte[64];
            random.nextBytes(values[i]);
        }
        WriteBatch fill = writer.write("bench");
        for (int i = 0; i < KEYS; i++) {
            fill.put(new String(keys[i], java.nio.charset.StandardCharsets.UTF_8), values[i % values.length]);
        }
        long revision = fill.commit();
        for (int i = 0; i < replicas; i++) {
            MapcastClient c = MapcastClient.builder().target(target).build();
            clients.add(c);
            Replica<byte[], byte[]> r = c.replica("bench", Codec.bytes(), Codec.bytes());
            copies.add(r);
            r.addRevisionListener(this::applied);
        }
        for (Replica<byte[], byte[]> r : copies) {
            if (!r.awaitRevision(revision, Duration.ofSeconds(60))) {
                throw new IllegalStateException("replica did not sync");
            }
        }
    }

    private void applied(long revision) {
        long index = revision - baseRevision;
        AtomicIntegerArray left = remaining;
        if (left != null && index >= 0 && index < left.length() && left.decrementAndGet((int) index) == 0) {
            lastApplied.set((int) index, System.nanoTime());
        }
    }

    @Benchmark
    public long writeToEveryReplica() throws Exception {
        load(WARMUP_SECONDS, null);
        int writes = writesPerSecond * seconds;
        remaining = new AtomicIntegerArray(writes + 1);
        for (int i = 0; i <= writes; i++) {
            remaining.set(i, replicas);
        }
        lastApplied = new AtomicLongArray(writes + 1);
        long[] dueAt = new long[writes + 1];
        baseRevision = writer.get("bench", "key-000000000000").revision() + 1;
        long last = load(seconds, dueAt);

        boolean converged = true;
        for (Replica<byte[], byte[]> r : copies) {
            converged &= r.awaitRevision(last, Duration.ofSeconds(60));
        }
        long digest = copies.get(0).digest();
        try (Replica<byte[], byte[]> fresh = writer.replica("bench", Codec.bytes(), Codec.bytes())) {
            converged &= fresh.awaitRevision(last, Duration.ofSeconds(60));
            for (Replica<byte[], byte[]> r : copies) {
                converged &= r.digest() == fresh.digest() && r.revision() == last;
            }
            converged &= digest == fresh.digest();
        }
        report(dueAt, (int) (last - baseRevision + 1), converged);
        baseRevision = Long.MAX_VALUE;
        remaining = null;
        return last;
    }

    /** Sends writesPerSecond writes a second, open loop; records each revision's due time; returns the last revision. */
    private long load(int forSeconds, long[] dueAt) throws Exception {
        int writes = writesPerSecond * forSeconds;
        long interval = TimeUnit.SECONDS.toNanos(1) / writesPerSecond;
        AtomicLong lastRevision = new AtomicLong();
        AtomicLong failures = new AtomicLong();
        java.util.concurrent.CountDownLatch acked = new java.util.concurrent.CountDownLatch(writes);
        long start = System.nanoTime();
        for (int i = 0; i < writes; i++) {
            long due = start + i * interval;
            for (long wait; (wait = due - System.nanoTime()) > 0; ) {
                LockSupport.parkNanos(wait);
            }
            writer.write("bench").put(new String(keys[i % KEYS], java.nio.charset.StandardCharsets.UTF_8),
                    values[i % values.length]).commitAsync().whenComplete((revision, error) -> {
                        if (error != null) {
                            failures.incrementAndGet();
                        } else {
                            lastRevision.accumulateAndGet(revision, Math::max);
                            long index = revision - baseRevision;
                            if (dueAt != null && index >= 0 && index < dueAt.length) {
                                dueAt[(int) index] = due;
                            }
                        }
                        acked.countDown();
                    });
        }
        acked.await(60, TimeUnit.SECONDS);
        if (failures.get() > 0) {
            throw new IllegalStateException(failures.get() + " writes failed");
        }
        return lastRevision.get();
    }

    private void report(long[] dueAt, int writes, boolean converged) {
        long[] latencies = new long[writes];
        int seen = 0;
        for (int i = 0; i < writes; i++) {
            long done = lastApplied.get(i);
            if (done != 0 && dueAt[i] != 0) {
                latencies[seen++] = done - dueAt[i];
            }
        }
        long[] sorted = Arrays.copyOf(latencies, seen);
        Arrays.sort(sorted);
        System.out.printf(Locale.ROOT, "%nreplication: %d replicas, %d writes/s for %d s: %d writes, %d seen by all%n",
                replicas, writesPerSecond, seconds, writes, seen);
        System.out.printf(Locale.ROOT, "write to visible in every replica: p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms,"
                + " max %.3f ms; converged: %s%n", ms(sorted, 0.50), ms(sorted, 0.99), ms(sorted, 0.999),
                sorted.length == 0 ? 0 : sorted[sorted.length - 1] / 1e6, converged);
    }

    private static double ms(long[] sorted, double quantile) {
        if (sorted.length == 0) {
            return Double.NaN;
        }
        return sorted[(int) Math.min(sorted.length - 1, Math.ceil(quantile * sorted.length) - 1)] / 1e6;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (Replica<byte[], byte[]> r : copies) {
            r.close();
        }
        for (MapcastClient c : clients) {
            c.close();
        }
        writer.close();
        server.close();
    }
}
