package dev.mapcast.bench;

import com.google.protobuf.ByteString;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.Replica;
import dev.mapcast.client.WriteBatch;
import dev.mapcast.codec.Codec;
import dev.mapcast.server.MapcastServer;
import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.PutResponse;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.WatchCreateRequest;
import io.etcd.jetcd.api.WatchGrpc;
import io.etcd.jetcd.api.WatchRequest;
import io.etcd.jetcd.api.WatchResponse;
import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongConsumer;
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
 * Write-to-every-replica latency on loopback (issue 4), mapcast against etcd's watch (DESIGN.md's
 * target: a lower p99 than etcd at the same load). One server and 50 replicas, each replica with its
 * own connection (as 50 services would have), real gRPC over Netty; an open-loop writer sends 5,000
 * single-key writes per second (16-byte keys over 10,000 keys, 64-byte values) for 20 s after 40 s
 * of warm-up climbing to that rate in four steps ({@code warmupSeconds}: the JIT takes that long to
 * settle gRPC's paths; a shorter warm-up measures the compiler), then waits until every replica has
 * caught up.
 * The 10,000 keys are written once before the replicas start.
 *
 * <p>A write's latency runs from the moment it was due to be sent (so a writer that falls behind
 * its schedule counts against the result: no coordinated omission) until the last of the 50
 * replicas has made it visible. Both systems give each write a revision, one more than the last:
 * latencies are indexed by revision, from the one after the server's current revision when the
 * measured phase starts. The same latencies from when each write was actually sent are printed
 * too, with how late the writer sent them: the difference is the writer thread's own wait for a
 * CPU, which the first figures count and the second do not.
 *
 * <p>{@code impl}:
 * <ul>
 *   <li>{@code mapcast}: a {@link MapcastServer} (maps in memory only) and 50 {@link Replica}s, each
 *       with its own {@link MapcastClient}, all in this JVM; with {@code -p serverProcess=true} the
 *       server runs in a JVM of its own and its CPU is counted with this one's. Visible: the replica has applied the
 *       write to its map and its revision listener ran. Converged: every replica reached the last
 *       revision and its digest equals a fresh replica's.</li>
 *   <li>{@code etcd}: a single-member etcd 3.4 ({@code /usr/bin/etcd}, Debian's
 *       {@code etcd-server}) run as a child process by {@link EtcdServer}: loopback only, data
 *       directory on {@code /dev/shm}, so its fsyncs cost nothing (3.4 has no
 *       {@code --unsafe-no-fsync}; mapcast's server does not write to disk either), every other
 *       setting etcd's default. 50 Watch streams in this JVM, each on its own channel, each
 *       watching the benchmark's key prefix from the current revision; the writer sends Puts on one
 *       more channel, with the 10 s deadline mapcast's client uses, through grpc-java and etcd's
 *       generated classes (jetcd-grpc, not the jetcd client). Visible: the watcher received the
 *       event carrying the write's revision ({@code mod_revision}). The watchers keep no copy of
 *       the map, which favours etcd by one map update per event. Converged: every watcher's last
 *       event is the last revision, and no watch was cancelled.</li>
 * </ul>
 *
 * <p>A write that fails fails the run, for both: its latency is unknown, and leaving it out would
 * flatter the system that dropped it. mapcast's writes fail past their deadline; etcd also rejects
 * writes ({@code etcdserver: too many requests}) while its apply is more than 5,000 entries behind
 * its commit, which an overloaded machine reaches at this rate.
 *
 * <p>The figures (p50, p99, p99.9, max, writes never seen, convergence; the CPU used per write;
 * the whole machine's busy and hypervisor-stolen CPU over the measured phase, from /proc/stat; the
 * writer's acknowledgement latency) are printed by the benchmark itself; JMH's own score is only
 * the length of the run.
 *
 * <p>Run (about 40 s per {@code impl}; etcd needs {@code apt-get install -y etcd-server}):
 * <pre>{@code
 * mvn -B -q -pl bench -am package -DskipTests
 * java -jar bench/target/benchmarks.jar ReplicationLatencyBenchmark
 * }</pre>
 * One implementation: {@code -p impl=etcd}; a shorter measured phase: {@code -p seconds=3}. On
 * JDK 23+ add {@code -jvmArgsAppend --sun-misc-unsafe-memory-access=allow}.
 *
 * <p>The fork's {@code -XX:MetaspaceSize=64m} is what {@code ./mapcast} gives the server: this JVM's
 * class metadata levels off at about 21 MB, the default threshold of the JVM's first
 * metadata-triggered collection, so without it that collection (a G1 concurrent cycle, 50 to
 * 770 ms on these two cores) fell at a random point, often inside the measured phase.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 0)
@Measurement(iterations = 1)
@Fork(value = 1, jvmArgs = {"-Xms2g", "-Xmx2g", "-XX:MetaspaceSize=64m"})
public class ReplicationLatencyBenchmark {

    private static final int KEYS = 10_000;
    /** The keys all start with it; etcd's watchers watch this prefix. */
    private static final String KEY_PREFIX = "key-";
    /** How long replicas may take to catch up, after the fill and after the load. */
    private static final Duration CATCH_UP = Duration.ofSeconds(60);
    /** Deadline of each write, as {@link MapcastClient}'s default. */
    private static final Duration WRITE_DEADLINE = Duration.ofSeconds(10);

    @Param({"mapcast", "etcd"})
    String impl;

    @Param("50")
    int replicas;

    @Param("5000")
    int writesPerSecond;

    @Param("20")
    int seconds;

    /** Seconds of warm-up load, climbing to the rate: the JIT needs about 30 s to settle gRPC's paths. */
    @Param("40")
    int warmupSeconds;

    /** mapcast's watch linger in microseconds ({@code MapcastServer.Builder.watchLinger}); -1: the server's default. */
    @Param("-1")
    int lingerMicros;

    /**
     * mapcast only: the server in a JVM of its own ({@link ServerProcess}), apart from the writer
     * and the replicas, as a deployment has it and as etcd always runs; false: all in this JVM.
     */
    @Param("false")
    boolean serverProcess;

    /**
     * Prints the latency of each half second of the measured phase (p50, p99, max) with the CPU the
     * hypervisor took in it, and the latencies of the writes during whose flight it took none
     * apart from the others: shows where stalls come from.
     */
    @Param("false")
    boolean timeline;

    private Subject subject;

    /** The load phase running now; replicas report into it. */
    private volatile Phase phase;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        Random random = new Random(42);
        byte[][] keys = new byte[KEYS][];
        byte[][] values = new byte[1024][];
        for (int i = 0; i < KEYS; i++) {
            keys[i] = String.format(Locale.ROOT, KEY_PREFIX + "%012d", i).getBytes(StandardCharsets.UTF_8);
        }
        for (int i = 0; i < values.length; i++) {
            values[i] = new byte[64];
            random.nextBytes(values[i]);
        }
        subject = Subject.create(impl, lingerMicros, serverProcess);
        subject.start(keys, values, replicas, this::applied);
    }

    private void applied(long revision) {
        Phase p = phase;
        if (p != null) {
            p.applied(revision);
        }
    }

    @Benchmark
    public long writeToEveryReplica() throws Exception {
        // The harness's own first-time paths (/proc/stat, the JVM's management beans, the sampler)
        // run before warm-up: their class loading and compiling would land in the measured phase.
        StealSampler steal = timeline ? StealSampler.start() : null;
        MachineCpu.read();
        cpuNanos();
        ManagementFactory.getRuntimeMXBean().getUptime();
        // Warm-up climbs to the rate (a cold JIT cannot take it at once), then lets every replica
        // catch up. Its phases are tracked as the measured one is, so that the measured phase
        // runs code the JIT has already compiled for it.
        long warm = 0;
        for (int step = 1; step <= 4; step++) {
            warm = load(writesPerSecond * step / 4, warmupSeconds / 4).last;
        }
        subject.awaitCaughtUp(warm);
        long cpuBefore = cpuNanos();
        MachineCpu machineBefore = MachineCpu.read();
        // To line the results up with a GC log (-Xlog:gc stamps the JVM's uptime).
        System.out.printf(Locale.ROOT, "%nmeasured phase starts at JVM uptime %.3f s%n",
                ManagementFactory.getRuntimeMXBean().getUptime() / 1e3);
        Phase measured = load(writesPerSecond, seconds);
        measured.cpuNanos = cpuNanos() - cpuBefore;
        measured.machine = MachineCpu.read().since(machineBefore);
        if (steal != null) {
            measured.steal = steal.stop();
        }
        boolean converged = subject.awaitConverged(measured.last);
        phase = null;
        report(measured, converged);
        return measured.last;
    }

    /**
     * One load phase's record, by revision (offset from the phase's first): when each write was
     * due, how many replicas still have to apply it, and when the last one did.
     */
    private static final class Phase {
        final long baseRevision;
        final long[] dueAt;
        /** When the writer actually sent each write (at or after it was due). */
        final long[] sentAt;
        /** When the writer got each write's acknowledgement. */
        final long[] ackedAt;
        final AtomicIntegerArray remaining;
        final AtomicLongArray lastApplied;
        /** The last revision written, once the phase is over. */
        long last;
        /** CPU time used while it ran, by this JVM and the peer's server process. */
        long cpuNanos;
        /** The whole machine's CPU while it ran (all processes, and time the hypervisor took). */
        MachineCpu machine;
        /** With {@code timeline}: the hypervisor's take of each CPU, sampled from warm-up to the phase's end. */
        StealSampler steal;

        Phase(long baseRevision, int writes, int replicas) {
            this.baseRevision = baseRevision;
            dueAt = new long[writes];
            sentAt = new long[writes];
            ackedAt = new long[writes];
            remaining = new AtomicIntegerArray(writes);
            for (int i = 0; i < writes; i++) {
                remaining.set(i, replicas);
            }
            lastApplied = new AtomicLongArray(writes);
        }

        void acked(long revision, long due, long sent) {
            long index = revision - baseRevision;
            if (index >= 0 && index < dueAt.length) {
                dueAt[(int) index] = due;
                sentAt[(int) index] = sent;
                ackedAt[(int) index] = System.nanoTime();
            }
        }

        void applied(long revision) {
            long index = revision - baseRevision;
            if (index >= 0 && index < dueAt.length && remaining.decrementAndGet((int) index) == 0) {
                lastApplied.set((int) index, System.nanoTime());
            }
        }

        /** The latencies of the writes in [from, to) that every replica applied, from when each was due, sorted. */
        long[] latencies(int from, int to) {
            return latencies(from, to, dueAt);
        }

        /** The same from when each write was {@code start} (dueAt or sentAt). */
        long[] latencies(int from, int to, long[] start) {
            long[] out = new long[to - from];
            int n = 0;
            for (int i = from; i < to; i++) {
                long done = lastApplied.get(i);
                if (done != 0 && dueAt[i] != 0) {
                    out[n++] = done - start[i];
                }
            }
            return sorted(out, n);
        }

        /** How late the writer sent the writes in [from, to), sorted. */
        long[] sendDelays(int from, int to) {
            return sinceDue(from, to, sentAt);
        }

        /** How long the writes in [from, to) took to be acknowledged, sorted. */
        long[] ackLatencies(int from, int to) {
            return sinceDue(from, to, ackedAt);
        }

        /** {@code at[i] - dueAt[i]} for the acknowledged writes in [from, to), sorted. */
        private long[] sinceDue(int from, int to, long[] at) {
            long[] out = new long[to - from];
            int n = 0;
            for (int i = from; i < to; i++) {
                if (dueAt[i] != 0) {
                    out[n++] = at[i] - dueAt[i];
                }
            }
            return sorted(out, n);
        }

        private static long[] sorted(long[] out, int n) {
            long[] sorted = Arrays.copyOf(out, n);
            Arrays.sort(sorted);
            return sorted;
        }
    }

    private long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime() + subject.peerCpuNanos();
    }

    /** Sends {@code rate} writes a second, open loop, as a new phase; returns it once every write is acknowledged. */
    private Phase load(int rate, int forSeconds) throws Exception {
        int writes = rate * forSeconds;
        Phase p = new Phase(subject.nextRevision(), writes, replicas);
        phase = p;
        long interval = TimeUnit.SECONDS.toNanos(1) / rate;
        AtomicLong lastRevision = new AtomicLong();
        AtomicLong failures = new AtomicLong();
        AtomicReference<Throwable> firstFailure = new AtomicReference<>();
        CountDownLatch acked = new CountDownLatch(writes);
        Subject s = subject;
        int valueCount = s.valueCount();
        long start = System.nanoTime();
        for (int i = 0; i < writes; i++) {
            long due = start + i * interval;
            for (long wait; (wait = due - System.nanoTime()) > 0; ) {
                LockSupport.parkNanos(wait);
            }
            long sent = System.nanoTime();
            s.send(i % KEYS, i % valueCount, (revision, error) -> {
                if (error != null) {
                    failures.incrementAndGet();
                    firstFailure.compareAndSet(null, error);
                } else {
                    lastRevision.accumulateAndGet(revision, Math::max);
                    p.acked(revision, due, sent);
                }
                acked.countDown();
            });
        }
        acked.await(60, TimeUnit.SECONDS);
        if (failures.get() > 0) {
            throw new IllegalStateException(failures.get() + " writes failed", firstFailure.get());
        }
        p.last = lastRevision.get();
        return p;
    }

    private void report(Phase p, boolean converged) {
        int writes = (int) (p.last - p.baseRevision + 1);
        long[] sorted = p.latencies(0, writes);
        System.out.printf(Locale.ROOT, "%nreplication, %s: %d replicas, %d writes/s for %d s: %d writes, %d seen by all%n",
                impl, replicas, writesPerSecond, seconds, writes, sorted.length);
        System.out.printf(Locale.ROOT, "write to visible in every replica: p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms,"
                + " max %.3f ms; converged: %s%n", ms(sorted, 0.50), ms(sorted, 0.99), ms(sorted, 0.999),
                ms(sorted, 1), converged);
        System.out.printf(Locale.ROOT, "CPU while writing (this JVM%s): %.0f us a write, %.0f%% of %d cores%n",
                impl.equals("etcd") ? " and etcd" : serverProcess ? " and the server's" : "", p.cpuNanos / 1e3 / writes,
                100.0 * p.cpuNanos / TimeUnit.SECONDS.toNanos(seconds) / Runtime.getRuntime().availableProcessors(),
                Runtime.getRuntime().availableProcessors());
        if (p.machine != null && p.machine.total() > 0) {
            // A shared VM: time stolen by the hypervisor is time the loop could not run.
            System.out.printf(Locale.ROOT, "machine while writing: %.1f%% busy, %.1f%% stolen by the hypervisor%n",
                    100.0 * p.machine.busy() / p.machine.total(), 100.0 * p.machine.steal() / p.machine.total());
        }
        long[] fromSent = p.latencies(0, writes, p.sentAt);
        long[] late = p.sendDelays(0, writes);
        System.out.printf(Locale.ROOT, "the same from when each write was sent: p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms,"
                + " max %.3f ms (the writer sent late by p50 %.3f ms, p99 %.3f ms, max %.3f ms)%n",
                ms(fromSent, 0.50), ms(fromSent, 0.99), ms(fromSent, 0.999), ms(fromSent, 1),
                ms(late, 0.50), ms(late, 0.99), ms(late, 1));
        long[] acks = p.ackLatencies(0, writes);
        System.out.printf(Locale.ROOT, "write acknowledged to the writer: p50 %.3f ms, p99 %.3f ms, max %.3f ms%n",
                ms(acks, 0.50), ms(acks, 0.99), ms(acks, 1));
        if (timeline && p.steal != null) {
            StealSampler steal = p.steal;
            int perWindow = Math.max(1, writesPerSecond / 2);  // writes are due evenly: half a second's worth
            for (int from = 0; from < writes; from += perWindow) {
                int to = Math.min(writes, from + perWindow);
                long[] window = p.latencies(from, to);
                long windowEnd = p.dueAt[to - 1] != 0 ? p.dueAt[to - 1] : p.dueAt[from];
                System.out.printf(Locale.ROOT, "  t=%5.1f s: %5d writes, p50 %8.3f ms, p99 %8.3f ms, max %8.3f ms;"
                        + " stolen %s%n", (double) from / writesPerSecond, window.length, ms(window, 0.5),
                        ms(window, 0.99), ms(window, 1), steal.describe(p.dueAt[from], windowEnd));
            }
            // A write is "in a stolen stretch" when a sample interval overlapping its flight (due to
            // visible everywhere) saw the hypervisor take 10 ms or more of some CPU.
            long[] quiet = new long[writes];
            long[] stolen = new long[writes];
            int q = 0;
            int s = 0;
            for (int i = 0; i < writes; i++) {
                long done = p.lastApplied.get(i);
                if (done == 0 || p.dueAt[i] == 0) {
                    continue;
                }
                if (steal.tookAny(p.dueAt[i], done)) {
                    stolen[s++] = done - p.dueAt[i];
                } else {
                    quiet[q++] = done - p.dueAt[i];
                }
            }
            long[] quietSorted = Phase.sorted(quiet, q);
            long[] stolenSorted = Phase.sorted(stolen, s);
            System.out.printf(Locale.ROOT, "writes in flight while the hypervisor took no CPU (at /proc/stat's 10 ms"
                    + " resolution, %d ms samples): %d, p50 %.3f ms, p99 %.3f ms, max %.3f ms; while it took some: %d,"
                    + " p50 %.3f ms, p99 %.3f ms, max %.3f ms%n", StealSampler.INTERVAL_MILLIS, q,
                    ms(quietSorted, 0.5), ms(quietSorted, 0.99), ms(quietSorted, 1), s, ms(stolenSorted, 0.5),
                    ms(stolenSorted, 0.99), ms(stolenSorted, 1));
        }
    }

    private static double ms(long[] sorted, double quantile) {
        if (sorted.length == 0) {
            return Double.NaN;
        }
        return sorted[(int) Math.min(sorted.length - 1, Math.ceil(quantile * sorted.length) - 1)] / 1e6;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (subject != null) {
            subject.close();
        }
    }

    /** The outcome of one write: its revision, or the error (then the revision means nothing). */
    @FunctionalInterface
    interface Ack {
        void done(long revision, Throwable error);
    }

    /** One system under test: a server, a writer and {@code replicas} live copies, all on loopback. */
    abstract static class Subject implements AutoCloseable {

        static Subject create(String impl, int lingerMicros, boolean serverProcess) {
            switch (impl) {
                case "mapcast":
                    return new Mapcast(lingerMicros, serverProcess);
                case "etcd":
                    return new Etcd();
                default:
                    throw new IllegalArgumentException("impl: " + impl + " (expected: mapcast or etcd)");
            }
        }

        /**
         * Starts the server, writes {@code keys[i] = values[i % values.length]} for every key, starts
         * the copies and returns once each holds that content. From then on, each copy calls
         * {@code applied} with every revision it makes visible.
         */
        abstract void start(byte[][] keys, byte[][] values, int replicas, LongConsumer applied) throws Exception;

        /** How many values {@link #send} can choose from. */
        abstract int valueCount();

        /** Sends the single-key write {@code keys[key] = values[value]}, asynchronously. */
        abstract void send(int key, int value, Ack ack);

        /** CPU time used by the system's processes other than this JVM. */
        long peerCpuNanos() {
            return 0;
        }

        /** The revision the next write will get. */
        abstract long nextRevision() throws Exception;

        /** Waits until every copy reached {@code last}; whether they all did, and agree. */
        abstract boolean awaitConverged(long last) throws Exception;

        /**
         * Waits until every copy reached {@code last}, without {@link #awaitConverged}'s extra
         * checks (mapcast's syncs a fresh replica, which would disturb the phase after it).
         */
        abstract void awaitCaughtUp(long last) throws Exception;

        @Override
        public abstract void close();
    }

    static final class Mapcast extends Subject {
        private static final String MAP = "bench";

        private MapcastServer server;
        private MapcastClient writer;
        private final List<MapcastClient> clients = new ArrayList<>();
        private final List<Replica<byte[], byte[]>> copies = new ArrayList<>();
        private byte[][] keys;
        private byte[][] values;
        private final int lingerMicros;
        private final boolean serverProcess;
        private ServerProcess process;

        Mapcast(int lingerMicros, boolean serverProcess) {
            this.lingerMicros = lingerMicros;
            this.serverProcess = serverProcess;
        }

        @Override
        void start(byte[][] keys, byte[][] values, int replicas, LongConsumer applied) throws Exception {
            this.keys = keys;
            this.values = values;
            int port;
            if (serverProcess) {
                process = ServerProcess.start(lingerMicros);
                port = process.port();
            } else {
                server = ServerProcess.builder(lingerMicros).build().start();
                port = server.port();
            }
            String target = "127.0.0.1:" + port;
            writer = MapcastClient.builder().target(target).build();
            WriteBatch fill = writer.write(MAP);
            for (int i = 0; i < keys.length; i++) {
                fill.put(new String(keys[i], StandardCharsets.UTF_8), values[i % values.length]);
            }
            long revision = fill.commit();
            for (int i = 0; i < replicas; i++) {
                MapcastClient c = MapcastClient.builder().target(target).build();
                clients.add(c);
                Replica<byte[], byte[]> r = c.replica(MAP, Codec.bytes(), Codec.bytes());
                copies.add(r);
                r.addRevisionListener(applied);
            }
            for (Replica<byte[], byte[]> r : copies) {
                if (!r.awaitRevision(revision, CATCH_UP)) {
                    throw new IllegalStateException("replica did not sync");
                }
            }
        }

        @Override
        int valueCount() {
            return values.length;
        }

        @Override
        void send(int key, int value, Ack ack) {
            writer.write(MAP).put(new String(keys[key], StandardCharsets.UTF_8), values[value]).commitAsync()
                    .whenComplete((revision, error) -> ack.done(error == null ? revision : 0, error));
        }

        @Override
        long nextRevision() {
            return writer.get(MAP, new String(keys[0], StandardCharsets.UTF_8)).revision() + 1;
        }

        @Override
        void awaitCaughtUp(long last) throws InterruptedException {
            for (Replica<byte[], byte[]> r : copies) {
                r.awaitRevision(last, CATCH_UP);
            }
        }

        @Override
        boolean awaitConverged(long last) throws InterruptedException {
            boolean converged = true;
            for (Replica<byte[], byte[]> r : copies) {
                converged &= r.awaitRevision(last, CATCH_UP);
            }
            long digest = copies.get(0).digest();
            try (Replica<byte[], byte[]> fresh = writer.replica(MAP, Codec.bytes(), Codec.bytes())) {
                converged &= fresh.awaitRevision(last, CATCH_UP);
                for (Replica<byte[], byte[]> r : copies) {
                    converged &= r.digest() == fresh.digest() && r.revision() == last;
                }
                converged &= digest == fresh.digest();
            }
            return converged;
        }

        @Override
        public void close() {
            for (Replica<byte[], byte[]> r : copies) {
                r.close();
            }
            for (MapcastClient c : clients) {
                c.close();
            }
            if (writer != null) {
                writer.close();
            }
            if (server != null) {
                server.close();
            }
            if (process != null) {
                process.close();
            }
        }

        @Override
        long peerCpuNanos() {
            return process == null ? 0 : process.cpuTime().toNanos();
        }
    }

    static final class Etcd extends Subject {
        private static final Duration READY = Duration.ofSeconds(20);

        private EtcdServer server;
        private ManagedChannel writerChannel;
        private KVGrpc.KVStub kv;
        private final List<Watcher> watchers = new ArrayList<>();
        /** The keys and values as etcd's messages take them, converted once. */
        private ByteString[] keys;
        private ByteString[] values;

        @Override
        void start(byte[][] keys, byte[][] values, int replicas, LongConsumer applied) throws Exception {
            this.keys = Arrays.stream(keys).map(ByteString::copyFrom).toArray(ByteString[]::new);
            this.values = Arrays.stream(values).map(ByteString::copyFrom).toArray(ByteString[]::new);
            server = EtcdServer.start();
            writerChannel = server.newChannel();
            kv = KVGrpc.newStub(writerChannel);
            server.awaitReady(writerChannel, READY);
            fill();
            ByteString prefix = ByteString.copyFromUtf8(KEY_PREFIX);
            WatchRequest create = WatchRequest.newBuilder().setCreateRequest(WatchCreateRequest.newBuilder()
                    .setKey(prefix).setRangeEnd(prefixEnd(prefix))).build();
            for (int i = 0; i < replicas; i++) {
                Watcher w = new Watcher(server.newChannel(), applied);
                watchers.add(w);
                w.requests = WatchGrpc.newStub(w.channel).watch(w);
                w.requests.onNext(create);
            }
            for (Watcher w : watchers) {
                if (!w.created.await(CATCH_UP.toSeconds(), TimeUnit.SECONDS) || w.failure != null) {
                    throw new IllegalStateException("etcd watch not created: " + w.failure);
                }
            }
        }

        /** Puts every key, all in flight at once (one Put each: etcd caps a transaction at 128 operations). */
        private void fill() throws InterruptedException {
            CountDownLatch done = new CountDownLatch(keys.length);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            for (int i = 0; i < keys.length; i++) {
                send(i, i % values.length, (revision, error) -> {
                    if (error != null) {
                        failure.compareAndSet(null, error);
                    }
                    done.countDown();
                });
            }
            if (!done.await(CATCH_UP.toSeconds(), TimeUnit.SECONDS) || failure.get() != null) {
                throw new IllegalStateException("etcd fill failed", failure.get());
            }
        }

        /** The end of the range of keys that start with {@code prefix}: the prefix with its last byte plus one. */
        private static ByteString prefixEnd(ByteString prefix) {
            byte[] end = prefix.toByteArray();
            if (end[end.length - 1] == (byte) 0xff) {
                throw new IllegalArgumentException("prefix: " + prefix + " (expected: not ending with 0xff)");
            }
            end[end.length - 1]++;
            return ByteString.copyFrom(end);
        }

        @Override
        int valueCount() {
            return values.length;
        }

        @Override
        void send(int key, int value, Ack ack) {
            PutRequest put = PutRequest.newBuilder().setKey(keys[key]).setValue(values[value]).build();
            kv.withDeadlineAfter(WRITE_DEADLINE.toNanos(), TimeUnit.NANOSECONDS).put(put, new StreamObserver<>() {
                @Override
                public void onNext(PutResponse response) {
                    ack.done(response.getHeader().getRevision(), null);
                }

                @Override
                public void onError(Throwable t) {
                    ack.done(0, t);
                }

                @Override
                public void onCompleted() {
                }
            });
        }

        @Override
        long nextRevision() {
            return KVGrpc.newBlockingStub(writerChannel)
                    .withDeadlineAfter(WRITE_DEADLINE.toNanos(), TimeUnit.NANOSECONDS)
                    .range(RangeRequest.newBuilder().setKey(keys[0]).build())
                    .getHeader().getRevision() + 1;
        }

        @Override
        void awaitCaughtUp(long last) throws InterruptedException {
            awaitConverged(last);
        }

        @Override
        long peerCpuNanos() {
            return server.cpuTime().toNanos();
        }

        @Override
        boolean awaitConverged(long last) throws InterruptedException {
            long deadline = System.nanoTime() + CATCH_UP.toNanos();
            for (Watcher w : watchers) {
                while (w.seen < last && w.failure == null && System.nanoTime() - deadline < 0) {
                    Thread.sleep(1);
                }
            }
            boolean converged = true;
            for (Watcher w : watchers) {
                converged &= w.seen == last && w.failure == null;
            }
            return converged;
        }

        @Override
        public void close() {
            for (Watcher w : watchers) {
                w.close();
            }
            if (writerChannel != null) {
                shutDown(writerChannel);
            }
            if (server != null) {
                server.close();
            }
        }

        private static void shutDown(ManagedChannel channel) {
            channel.shutdownNow();
            try {
                channel.awaitTermination(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        /** One etcd watch stream on its own channel: a replica's counterpart. */
        private static final class Watcher implements StreamObserver<WatchResponse> {
            final ManagedChannel channel;
            final LongConsumer applied;
            final CountDownLatch created = new CountDownLatch(1);
            StreamObserver<WatchRequest> requests;
            /** The revision of the last event received. */
            volatile long seen;
            /** Why the watch ended, if it did. */
            volatile String failure;

            Watcher(ManagedChannel channel, LongConsumer applied) {
                this.channel = channel;
                this.applied = applied;
            }

            @Override
            public void onNext(WatchResponse response) {
                for (Event event : response.getEventsList()) {
                    long revision = event.getKv().getModRevision();
                    applied.accept(revision);
                    seen = revision;
                }
                if (response.getCanceled()) {
                    failure = "cancelled: " + response.getCancelReason();
                }
                if (response.getCreated()) {
                    created.countDown();
                }
            }

            @Override
            public void onError(Throwable t) {
                failure = String.valueOf(t);
                created.countDown();
            }

            @Override
            public void onCompleted() {
                failure = "completed by the server";
                created.countDown();
            }

            void close() {
                if (requests != null) {
                    try {
                        requests.onCompleted();
                    } catch (RuntimeException alreadyClosed) {
                        // the channel shutdown below ends it anyway
                    }
                }
                shutDown(channel);
            }
        }
    }

    /**
     * Samples each CPU's stolen time (/proc/stat, in 10 ms clock ticks) every
     * {@value #INTERVAL_MILLIS} ms on a daemon thread, so that latencies can be set against when the
     * hypervisor took a CPU. Reading /proc/stat costs tens of microseconds: well under 0.1% of a CPU.
     */
    static final class StealSampler {
        static final int INTERVAL_MILLIS = 20;
        private static final long TICK_NANOS = 10_000_000L;

        private final List<long[]> samples = new ArrayList<>();  // {nanoTime, steal of cpu0, cpu1, ...}
        private final Thread thread;
        private volatile boolean running = true;

        private StealSampler() {
            thread = new Thread(() -> {
                while (running) {
                    long[] sample = read();
                    if (sample == null) {
                        return;
                    }
                    synchronized (samples) {
                        samples.add(sample);
                    }
                    LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(INTERVAL_MILLIS));
                }
            }, "steal-sampler");
            thread.setDaemon(true);
        }

        static StealSampler start() {
            StealSampler sampler = new StealSampler();
            sampler.thread.start();
            return sampler;
        }

        StealSampler stop() throws InterruptedException {
            running = false;
            thread.join();
            return this;
        }

        private static long[] read() {
            try {
                List<String> lines = Files.readAllLines(Path.of("/proc/stat"));
                List<Long> steal = new ArrayList<>();
                for (String line : lines) {
                    if (line.startsWith("cpu") && Character.isDigit(line.charAt(3))) {
                        steal.add(Long.parseLong(line.trim().split("\\s+")[8]));
                    }
                }
                long[] sample = new long[steal.size() + 1];
                sample[0] = System.nanoTime();
                for (int i = 0; i < steal.size(); i++) {
                    sample[i + 1] = steal.get(i);
                }
                return sample;
            } catch (IOException | RuntimeException e) {
                return null;
            }
        }

        /** Whether a sample interval overlapping [from, to] saw some CPU stolen for a tick or more. */
        boolean tookAny(long from, long to) {
            synchronized (samples) {
                for (int k = firstEndingAtOrAfter(from); k < samples.size() && samples.get(k - 1)[0] <= to; k++) {
                    long[] a = samples.get(k - 1);
                    long[] b = samples.get(k);
                    for (int c = 1; c < a.length; c++) {
                        if (b[c] > a[c]) {
                            return true;
                        }
                    }
                }
            }
            return false;
        }

        /** The first k >= 1 whose interval (sample k-1 to k) ends at or after {@code time}: samples are in time order. */
        private int firstEndingAtOrAfter(long time) {
            int lo = 1;
            int hi = samples.size();
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                if (samples.get(mid)[0] < time) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            return lo;
        }

        /** The stolen time of each CPU over the sample intervals overlapping [from, to], in ms. */
        String describe(long from, long to) {
            StringBuilder out = new StringBuilder();
            synchronized (samples) {
                if (samples.isEmpty()) {
                    return "unknown";
                }
                long[] sum = new long[samples.get(0).length];
                for (int k = firstEndingAtOrAfter(from); k < samples.size() && samples.get(k - 1)[0] <= to; k++) {
                    long[] a = samples.get(k - 1);
                    long[] b = samples.get(k);
                    for (int c = 1; c < a.length; c++) {
                        sum[c] += b[c] - a[c];
                    }
                }
                for (int c = 1; c < sum.length; c++) {
                    out.append(c > 1 ? ", " : "").append("cpu").append(c - 1).append(' ')
                            .append(sum[c] * TICK_NANOS / 1_000_000).append(" ms");
                }
            }
            return out.toString();
        }
    }

    /**
     * The machine's CPU time from /proc/stat, in clock ticks: busy (user, nice, system, irq,
     * softirq), stolen by the hypervisor, and the total including idle. Zeros where there is no
     * /proc/stat.
     */
    record MachineCpu(long busy, long steal, long total) {

        static MachineCpu read() {
            try {
                String[] f = Files.readAllLines(Path.of("/proc/stat")).get(0).trim()
                        .split("\\s+");
                // cpu user nice system idle iowait irq softirq steal ...
                long[] t = new long[8];
                for (int i = 0; i < t.length; i++) {
                    t[i] = Long.parseLong(f[i + 1]);
                }
                long busy = t[0] + t[1] + t[2] + t[5] + t[6];
                return new MachineCpu(busy, t[7], busy + t[3] + t[4] + t[7]);
            } catch (IOException | RuntimeException e) {
                return new MachineCpu(0, 0, 0);
            }
        }

        MachineCpu since(MachineCpu before) {
            return new MachineCpu(busy - before.busy, steal - before.steal, total - before.total);
        }
    }
}
