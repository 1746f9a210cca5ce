package dev.mapcast.bench;

import com.google.protobuf.ByteString;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.proto.v1.ClusterStatusRequest;
import dev.mapcast.proto.v1.ClusterStatusResponse;
import dev.mapcast.proto.v1.Delta;
import dev.mapcast.proto.v1.MapcastClusterGrpc;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.WatchResponse;
import dev.mapcast.proto.v1.WriteRequest;
import io.etcd.jetcd.api.Event;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.MaintenanceGrpc;
import io.etcd.jetcd.api.PutRequest;
import io.etcd.jetcd.api.RangeRequest;
import io.etcd.jetcd.api.StatusRequest;
import io.etcd.jetcd.api.StatusResponse;
import io.etcd.jetcd.api.WatchCreateRequest;
import io.etcd.jetcd.api.WatchGrpc;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;
import java.util.function.LongConsumer;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * mapcast's cluster against a three-member etcd (issue 19, Performance), and mapcast's single
 * server against a one-member Raft group. Every system runs as child processes on loopback with
 * its data on the machine's disk ({@code /var/tmp}, not tmpfs) and fsync on: mapcast members are
 * {@code mapcast serve} JVMs started from this jar ({@code dev.mapcast.cli.Main serve}, the JVM
 * options of {@code ./mapcast} plus a 1 GiB heap), etcd members Debian's {@code /usr/bin/etcd} 3.4
 * with {@code --initial-cluster-state new}, both at their default election timeouts (mapcast
 * 300-600 ms, etcd 1,000 ms with 100 ms heartbeats). One Java client style drives both: the
 * generated async gRPC stubs (mapcast's {@code Write}, etcd's {@code KV.Put}; jetcd-grpc's classes),
 * channels with the direct executor, 16-character keys and 64-byte values.
 *
 * <p>A plain {@code main}, not JMH: each measurement starts and kills whole clusters, and a
 * failover is an event timed once per kill, not an operation JMH can repeat; systems alternate
 * within one run so that their ratios come from the same minutes of this shared machine.
 *
 * <ul>
 *   <li>{@code throughput}: 16 writes in flight to the leader (each answer sends the next), writes
 *       per second over {@code seconds} after {@code warmup}; mapcast also through the SDK's
 *       WriteStream ({@code MapcastClient.write(...).commitAsync()}, 16 in flight; {@code stream=false}
 *       skips it). The members' CPU over the measured seconds, per write, is printed too.</li>
 *   <li>{@code latency}: an open-loop writer to the leader at {@code rate} writes/s, one watcher on
 *       a follower (mapcast: a {@code Watch} stream; etcd: a prefix watch); latency from when a
 *       write was due until the watcher received it (the value carries the write's number).</li>
 *   <li>{@code failover}: the same open-loop writer, with channels to every member; a write that
 *       fails is sent again 10 ms later to the next member, and the writer moves there. Each
 *       round SIGKILLs the leader: time from the kill to the first acknowledgement of a write first
 *       sent after the process is gone (a write sent before may be answered after, which timed
 *       nothing: runs of 1 ms); writes that failed at least once; then the member is restarted on
 *       its data directory.</li>
 * </ul>
 *
 * <p>Systems: {@code mapcast} (three members), {@code etcd} (three members), {@code single}
 * ({@code mapcast serve}, its own log, fsync always), {@code raft1} ({@code mapcast serve
 * --node-id a --cluster a=...}, a one-member Raft group).
 *
 * <pre>{@code
 * mvn -B -q -pl bench -am package -DskipTests
 * B="java -cp bench/target/benchmarks.jar dev.mapcast.bench.ClusterWriteBenchmark"
 * $B throughput systems=mapcast,etcd rounds=5
 * $B latency systems=mapcast,etcd rounds=3 rate=1000
 * $B failover systems=mapcast,etcd kills=10 rate=1000
 * $B throughput systems=single,raft1 rounds=5
 * $B throughput systems=mapcast,mapcast/f4 variant.f4="-Dx=y" rounds=5   # members of mapcast/f4 get -Dx=y
 * $B failover systems=mapcast,mapcast/old variant.old="-cp /tmp/old-benchmarks.jar"   # another build's code
 * $B throughput systems=single,single/auth variant.auth="--auth" rounds=5   # "--" options go to serve
 * java -Dmapcast.bench.keep=true -cp ...   # keeps the members' data directories and logs
 * }</pre>
 */
public final class ClusterWriteBenchmark {

    private static final String MAP = "bench";
    private static final String LOOPBACK = "127.0.0.1";
    private static final long CALL_DEADLINE_MS = 10_000;

    private final Map<String, String> options;

    private ClusterWriteBenchmark(Map<String, String> options) {
        this.options = options;
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            System.err.println("usage: ClusterWriteBenchmark throughput|latency|failover [systems=mapcast,etcd] [rounds=N]"
                    + " [seconds=N] [warmup=N] [rate=N] [kills=N] [inflight=N]");
            System.exit(2);
        }
        Map<String, String> options = new LinkedHashMap<>();
        for (int i = 1; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq < 0) {
                throw new IllegalArgumentException("option: " + args[i] + " (expected: name=value)");
            }
            options.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        ClusterWriteBenchmark b = new ClusterWriteBenchmark(options);
        System.out.printf(Locale.ROOT, "%s %s, JDK %s, load %s%n", args[0], options, Runtime.version(), loadAverage());
        switch (args[0]) {
            case "throughput" -> b.throughputRounds();
            case "latency" -> b.latencyRounds();
            case "failover" -> b.failoverRounds();
            default -> throw new IllegalArgumentException("mode: " + args[0] + " (expected: throughput, latency or failover)");
        }
        System.exit(0);
    }

    private int intOption(String name, int dflt) {
        return Integer.parseInt(options.getOrDefault(name, Integer.toString(dflt)));
    }

    private List<String> systems() {
        return List.of(options.getOrDefault("systems", "mapcast,etcd").split(","));
    }

    /** The systems in round {@code r}'s order: alternating which goes first. */
    private List<String> order(int r) {
        List<String> s = new ArrayList<>(systems());
        if (r % 2 == 1) {
            java.util.Collections.reverse(s);
        }
        return s;
    }

    // ---------------------------------------------------------------- throughput

    private void throughputRounds() throws Exception {
        int rounds = intOption("rounds", 3);
        int warmup = intOption("warmup", 5);
        int seconds = intOption("seconds", 10);
        int inFlight = intOption("inflight", 16);
        Map<String, List<Double>> results = new LinkedHashMap<>();
        for (int r = 0; r < rounds; r++) {
            for (String system : order(r)) {
                try (Members m = Members.of(system, options)) {
                    m.start();
                    int leader = m.leader();
                    String load = loadAverage();
                    Rate unary = closedLoop(inFlight, warmup, seconds, m,
                            (key, value, done) -> m.put(leader, key, value, done));
                    record(results, system + " unary", unary.perSecond);
                    System.out.printf(Locale.ROOT, "round %d %-8s unary : %,8.0f writes/s, %d failed, servers' CPU %.3f ms a"
                            + " write%s, load %s -> %s%n", r + 1, system, unary.perSecond, unary.failed,
                            unary.cpuNanos / 1e6 / Math.max(1, unary.total), unary.perEntry(), load, loadAverage());
                    if (m instanceof MapcastMembers mm && !options.getOrDefault("stream", "true").equals("false")) {
                        load = loadAverage();
                        MapcastClient.Builder b = MapcastClient.builder().target(mm.clientAddress(leader));
                        try (MapcastClient sdk = (mm.token == null ? b : b.token(mm.token)).build()) {
                            Rate stream = closedLoop(inFlight, warmup, seconds, m, (key, value, done) -> sdk.write(MAP)
                                    .put(key, value).commitAsync().whenComplete((rev, e) -> done.done(e)));
                            record(results, system + " stream", stream.perSecond);
                            System.out.printf(Locale.ROOT, "round %d %-8s stream: %,8.0f writes/s, %d failed, servers' CPU %.3f"
                                    + " ms a write%s, load %s -> %s%n", r + 1, system, stream.perSecond, stream.failed,
                                    stream.cpuNanos / 1e6 / Math.max(1, stream.total), stream.perEntry(), load, loadAverage());
                        }
                    }
                }
            }
        }
        summary(results, "writes/s");
    }

    interface Done {
        void done(Throwable failure);
    }

    interface AsyncWrite {
        void write(String key, byte[] value, Done done);
    }

    /**
     * Writes per second and in all over the measured seconds, writes failed, the servers' CPU and
     * the log entries the leader committed (-1: not known) over the measured seconds.
     */
    record Rate(double perSecond, long total, long failed, long cpuNanos, long entries) {

        String perEntry() {
            return entries <= 0 ? "" : String.format(Locale.ROOT, ", %.1f writes a log entry", (double) total / entries);
        }
    }

    /** {@code inFlight} writes always outstanding; writes/s counted over {@code seconds} after {@code warmup}. */
    private static Rate closedLoop(int inFlight, int warmup, int seconds, Members m, AsyncWrite writer)
            throws InterruptedException {
        AtomicLong acked = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        AtomicBoolean stop = new AtomicBoolean();
        AtomicInteger outstanding = new AtomicInteger();
        byte[][] values = values();
        for (int s = 0; s < inFlight; s++) {
            String prefix = String.format(Locale.ROOT, "w%02d-", s);
            new Object() {
                int next;

                void send() {
                    if (stop.get()) {
                        return;
                    }
                    int i = next++;
                    outstanding.incrementAndGet();
                    writer.write(prefix + String.format(Locale.ROOT, "%011d", i & 1023), values[i & 255], e -> {
                        outstanding.decrementAndGet();
                        (e == null ? acked : failed).incrementAndGet();
                        send();
                    });
                }
            }.send();
        }
        Thread.sleep(warmup * 1000L);
        long cpu0 = m.cpuNanos();
        long e0 = m.committedIndex();
        long a0 = acked.get();
        long t0 = System.nanoTime();
        Thread.sleep(seconds * 1000L);
        long a1 = acked.get();
        long t1 = System.nanoTime();
        long cpu = m.cpuNanos() - cpu0;
        long e1 = m.committedIndex();
        stop.set(true);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
        while (outstanding.get() > 0 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        return new Rate((a1 - a0) / ((t1 - t0) / 1e9), a1 - a0, failed.get(), cpu, e0 < 0 || e1 < 0 ? -1 : e1 - e0);
    }

    // ---------------------------------------------------------------- latency

    private void latencyRounds() throws Exception {
        int rounds = intOption("rounds", 3);
        int warmup = intOption("warmup", 10);
        int seconds = intOption("seconds", 20);
        int rate = intOption("rate", 1000);
        Map<String, List<Double>> p50s = new LinkedHashMap<>();
        Map<String, List<Double>> p99s = new LinkedHashMap<>();
        for (int r = 0; r < rounds; r++) {
            for (String system : order(r)) {
                try (Members m = Members.of(system, options)) {
                    m.start();
                    int leader = m.leader();
                    int follower = (leader + 1) % m.size();
                    String load = loadAverage();
                    int total = (warmup + seconds) * rate;
                    long[] due = new long[total];
                    long[] seen = new long[total];
                    AtomicLong failed = new AtomicLong();
                    m.put(leader, "lat-first", new byte[64], e -> { });  // the map exists before the watch
                    Thread.sleep(500);
                    try (AutoCloseable watch = m.watch(follower, seq -> {
                        if (seq >= 0 && seq < total && seen[(int) seq] == 0) {
                            seen[(int) seq] = System.nanoTime();
                        }
                    })) {
                        Thread.sleep(1000);
                        Random random = new Random(7);
                        long start = System.nanoTime() + 1_000_000;
                        long period = 1_000_000_000L / rate;
                        for (int i = 0; i < total; i++) {
                            long when = start + i * period;
                            long wait;
                            while ((wait = when - System.nanoTime()) > 0) {
                                LockSupport.parkNanos(wait);
                            }
                            due[i] = when;
                            byte[] value = new byte[64];
                            random.nextBytes(value);
                            ByteBuffer.wrap(value).putLong(i);
                            m.put(leader, String.format(Locale.ROOT, "lat-%012d", i % 10_000), value, e -> {
                                if (e != null) {
                                    failed.incrementAndGet();
                                }
                            });
                        }
                        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
                        while (seen[total - 1] == 0 && System.nanoTime() < deadline) {
                            Thread.sleep(10);
                        }
                        Thread.sleep(200);
                    }
                    int from = warmup * rate;
                    long[] lat = new long[total - from];
                    int n = 0;
                    int missing = 0;
                    for (int i = from; i < total; i++) {
                        if (seen[i] == 0) {
                            missing++;
                        } else {
                            lat[n++] = seen[i] - due[i];
                        }
                    }
                    lat = Arrays.copyOf(lat, n);
                    Arrays.sort(lat);
                    double p50 = pct(lat, 0.50);
                    double p99 = pct(lat, 0.99);
                    record(p50s, system, p50);
                    record(p99s, system, p99);
                    System.out.printf(Locale.ROOT, "round %d %-8s %d writes/s, watcher on a follower: p50 %.2f ms, p99 %.2f ms,"
                            + " p99.9 %.2f ms, max %.2f ms; %d not seen, %d writes failed; load %s -> %s%n", r + 1, system,
                            rate, p50, p99, pct(lat, 0.999), pct(lat, 1.0), missing, failed.get(), load, loadAverage());
                }
            }
        }
        summary(p50s, "p50 ms");
        summary(p99s, "p99 ms");
    }

    private static double pct(long[] sorted, double q) {
        if (sorted.length == 0) {
            return Double.NaN;
        }
        int i = (int) Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
        return sorted[i] / 1e6;
    }

    // ---------------------------------------------------------------- failover

    private void failoverRounds() throws Exception {
        int kills = intOption("kills", 10);
        int rate = intOption("rate", 1000);
        Map<String, List<Double>> times = new LinkedHashMap<>();
        Map<String, List<Double>> failures = new LinkedHashMap<>();
        for (String system : systems()) {
            try (Members m = Members.of(system, options)) {
                m.start();
                FailoverWriter w = new FailoverWriter(m, m.leader(), rate);
                w.start();
                try {
                    for (int k = 0; k < kills; k++) {
                        Thread.sleep(3000);
                        String load = loadAverage();
                        int leader = m.leader();
                        long failedBefore = w.failedWrites.get();
                        long attemptsBefore = w.failedAttempts.get();
                        int inFlight = w.outstanding.get();
                        w.firstAckAfter.set(0);
                        long killed = System.nanoTime();
                        java.time.Instant killedAt = java.time.Instant.now();  // to find it in the members' logs
                        m.kill(leader);
                        w.ackAfter = System.nanoTime();
                        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                        while (w.firstAckAfter.get() == 0 && System.nanoTime() < deadline) {
                            Thread.sleep(1);
                        }
                        double seconds = w.firstAckAfter.get() == 0 ? Double.NaN : (w.firstAckAfter.get() - killed) / 1e9;
                        // Writes stuck on a member may fail only at its own timeout (etcd: 7 s) or the call's deadline.
                        Thread.sleep(CALL_DEADLINE_MS + 1000);
                        long failedWrites = w.failedWrites.get() - failedBefore;
                        record(times, system, seconds);
                        record(failures, system, failedWrites);
                        System.out.printf(Locale.ROOT, "kill %2d %-8s leader %s at %s: next acknowledged write after %.3f s;"
                                + " %d writes failed at least once (%d failed calls; %d in flight at the kill); load %s%n", k + 1,
                                system, m.id(leader), killedAt, seconds, failedWrites, w.failedAttempts.get() - attemptsBefore,
                                inFlight, load);
                        m.restart(leader);
                    }
                } finally {
                    w.stop();
                }
                System.out.printf(Locale.ROOT, "%s: %d writes sent, %d acknowledged, %d failed at least once%n", system,
                        w.sent.get(), w.acked.get(), w.failedWrites.get());
            }
        }
        summary(times, "seconds from the kill to the next acknowledged write");
        summary(failures, "writes that failed at least once, per kill");
        for (String s : systems()) {
            List<Double> t = new ArrayList<>(times.get(s));
            t.sort(null);
            System.out.printf(Locale.ROOT, "%-8s failover max %.3f s%n", s, t.get(t.size() - 1));
        }
    }

    /** An open-loop writer at a fixed rate that moves to the next member when a write fails there. */
    private static final class FailoverWriter {
        final Members m;
        final int rate;
        final AtomicLong sent = new AtomicLong();
        final AtomicLong acked = new AtomicLong();
        final AtomicLong failedWrites = new AtomicLong();
        final AtomicLong failedAttempts = new AtomicLong();
        final AtomicInteger outstanding = new AtomicInteger();
        final AtomicLong firstAckAfter = new AtomicLong();
        volatile long ackAfter = Long.MAX_VALUE;
        volatile int current;
        volatile boolean stopped;
        final ScheduledExecutorService retries = Executors.newSingleThreadScheduledExecutor();
        final byte[][] values = values();
        Thread thread;

        FailoverWriter(Members m, int first, int rate) {
            this.m = m;
            this.current = first;
            this.rate = rate;
        }

        void start() {
            thread = new Thread(() -> {
                long start = System.nanoTime();
                long period = 1_000_000_000L / rate;
                for (long i = 0; !stopped; i++) {
                    long when = start + i * period;
                    long wait;
                    while ((wait = when - System.nanoTime()) > 0) {
                        LockSupport.parkNanos(wait);
                    }
                    sent.incrementAndGet();
                    outstanding.incrementAndGet();
                    send(String.format(Locale.ROOT, "fo-%013d", i % 10_000), values[(int) (i & 255)], new boolean[1],
                            System.nanoTime());
                }
            }, "failover-writer");
            thread.start();
        }

        /** {@code firstSent}: when the write was first sent (a retry keeps it). */
        void send(String key, byte[] value, boolean[] failedOnce, long firstSent) {
            int member = current;
            m.put(member, key, value, e -> {
                if (e == null) {
                    outstanding.decrementAndGet();
                    acked.incrementAndGet();
                    if (firstSent - ackAfter > 0) {  // one sent before the kill may be answered after it
                        firstAckAfter.compareAndSet(0, System.nanoTime());
                    }
                    return;
                }
                failedAttempts.incrementAndGet();
                if (!failedOnce[0]) {
                    failedOnce[0] = true;
                    failedWrites.incrementAndGet();
                }
                if (current == member) {
                    current = (member + 1) % m.size();
                }
                if (stopped) {
                    outstanding.decrementAndGet();
                    return;
                }
                retries.schedule(() -> send(key, value, failedOnce, firstSent), 10, TimeUnit.MILLISECONDS);
            });
        }

        void stop() throws InterruptedException {
            stopped = true;
            thread.join();
            retries.shutdown();
            retries.awaitTermination(15, TimeUnit.SECONDS);
        }
    }

    // ---------------------------------------------------------------- results

    private static void record(Map<String, List<Double>> results, String key, double value) {
        results.computeIfAbsent(key, k -> new ArrayList<>()).add(value);
    }

    private static double median(List<Double> values) {
        List<Double> s = new ArrayList<>(values);
        s.sort(null);
        int n = s.size();
        return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
    }

    private static void summary(Map<String, List<Double>> results, String unit) {
        System.out.printf(Locale.ROOT, "%nmedians (%s):%n", unit);
        String first = null;
        for (Map.Entry<String, List<Double>> e : results.entrySet()) {
            double med = median(e.getValue());
            String runs = e.getValue().stream().map(v -> String.format(Locale.ROOT, "%.3f", v))
                    .collect(Collectors.joining(" "));
            String ratio = "";
            if (first == null) {
                first = e.getKey();
            } else {
                ratio = String.format(Locale.ROOT, ", / %s: %.2fx", first, med / median(results.get(first)));
            }
            System.out.printf(Locale.ROOT, "  %-16s %,12.3f (runs: %s)%s%n", e.getKey(), med, runs, ratio);
        }
    }

    static String loadAverage() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).split(" ");
            return f[0] + "/" + f[1];
        } catch (IOException e) {
            return "?";
        }
    }

    private static byte[][] values() {
        Random random = new Random(42);
        byte[][] values = new byte[256][64];
        for (byte[] v : values) {
            random.nextBytes(v);
        }
        return values;
    }

    // ---------------------------------------------------------------- systems

    /** The members of one system under test, each a child process with its own data directory on disk. */
    abstract static class Members implements AutoCloseable {
        final Path dir;
        final List<Member> members = new ArrayList<>();
        final List<ManagedChannel> channels = new ArrayList<>();
        /** The bearer token every call sends once set (a mapcast system started with --auth). */
        volatile String token;

        static final class Member {
            final String id;
            final int clientPort;
            final int peerPort;
            final Path dataDir;
            List<String> command;
            Process process;
            int launches;

            Member(String id, int clientPort, int peerPort, Path dataDir) {
                this.id = id;
                this.clientPort = clientPort;
                this.peerPort = peerPort;
                this.dataDir = dataDir;
            }

            Path log() {
                return dataDir.resolveSibling(id + "-" + launches + ".log");
            }
        }

        Members(String name, int size) throws IOException {
            this.dir = Files.createTempDirectory(Path.of("/var/tmp"), "mapcast-cluster-bench-" + name + "-");
            int[] ports = EtcdServer.freePorts(2 * size);
            for (int i = 0; i < size; i++) {
                members.add(new Member(idOf(i), ports[2 * i], ports[2 * i + 1], dir.resolve(idOf(i))));
            }
            for (Member m : members) {
                channels.add(NettyChannelBuilder.forAddress(LOOPBACK, m.clientPort).usePlaintext().directExecutor()
                        .intercept(new ClientInterceptor() {
                            @Override
                            public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method,
                                    CallOptions options, Channel next) {
                                String t = token;
                                return t == null ? next.newCall(method, options) : new ForwardingClientCall
                                        .SimpleForwardingClientCall<>(next.newCall(method, options)) {
                                    @Override
                                    public void start(Listener<R> listener, Metadata headers) {
                                        headers.put(AUTHORIZATION, "Bearer " + t);
                                        super.start(listener, headers);
                                    }
                                };
                            }
                        }).build());
            }
        }

        /**
         * {@code system}, or {@code system/variant}: a mapcast system whose members get the JVM
         * options of {@code variant.<variant>=...} (space-separated; those starting with "--" go to
         * serve), to compare settings in one run. With --auth the calls send root's token.
         */
        static Members of(String system, Map<String, String> options) throws IOException {
            int slash = system.indexOf('/');
            List<String> jvm = slash < 0 ? List.of() : List.of(options.getOrDefault("variant." + system.substring(slash + 1),
                    "").trim().split(" +"));
            String base = slash < 0 ? system : system.substring(0, slash);
            String name = system.replace('/', '_');
            return switch (base) {
                case "mapcast" -> new MapcastMembers(name, 3, true, jvm);
                case "raft1" -> new MapcastMembers(name, 1, true, jvm);
                case "single" -> new MapcastMembers(name, 1, false, jvm);
                case "etcd" -> new EtcdMembers(3);
                default -> throw new IllegalArgumentException("system: " + system
                        + " (expected: mapcast, etcd, single or raft1)");
            };
        }

        abstract String idOf(int i);

        abstract List<String> command(Member m);

        /** Waits until {@code m} answers. */
        abstract void awaitReady(Member m) throws Exception;

        /** The leader's index as member {@code i} knows it (-1: none); throws if {@code i} does not answer. */
        abstract int leaderSeenBy(int i);

        /** The leader's index, as the live members say; waits up to a minute for one. */
        int leader() throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (System.nanoTime() < deadline) {
                for (int i = 0; i < size(); i++) {
                    if (!members.get(i).process.isAlive()) {
                        continue;
                    }
                    try {
                        int leader = leaderSeenBy(i);
                        if (leader >= 0 && members.get(leader).process.isAlive()) {
                            return leader;
                        }
                    } catch (StatusRuntimeException e) {
                        // not answering (yet): ask the next
                    }
                }
                Thread.sleep(50);
            }
            throw new IllegalStateException("no leader within 60 s");
        }

        abstract void put(int member, String key, byte[] value, Done done);

        /** Watches the benchmark's keys on {@code member}: every write seen gives the number in its value's first 8 bytes. */
        abstract AutoCloseable watch(int member, LongConsumer seq);

        int size() {
            return members.size();
        }

        String id(int i) {
            return members.get(i).id;
        }

        void start() throws Exception {
            for (Member m : members) {
                launch(m);
            }
            for (Member m : members) {
                awaitReady(m);
            }
            int leader = leader();
            // The first write may wait for the leader to be ready (its first entry committed).
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (true) {
                Throwable[] failure = new Throwable[1];
                java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
                put(leader, "probe", new byte[64], e -> {
                    failure[0] = e;
                    done.countDown();
                });
                done.await();
                if (failure[0] == null) {
                    return;
                }
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("no write succeeded within 60 s: " + failure[0]);
                }
                Thread.sleep(100);
                leader = leader();
            }
        }

        void launch(Member m) throws IOException {
            m.launches++;
            Files.createDirectories(dir);
            ProcessBuilder pb = new ProcessBuilder(command(m)).redirectErrorStream(true)
                    .redirectOutput(m.log().toFile());
            pb.environment().put("MALLOC_MMAP_THRESHOLD_", "65536");
            m.process = pb.start();
        }

        void kill(int i) throws InterruptedException {
            Member m = members.get(i);
            m.process.destroyForcibly();
            m.process.waitFor(60, TimeUnit.SECONDS);
        }

        void restart(int i) throws Exception {
            Member m = members.get(i);
            launch(m);
            channels.get(i).resetConnectBackoff();
            awaitReady(m);
        }

        long cpuNanos() {
            long sum = 0;
            for (Member m : members) {
                if (m.process != null && m.process.isAlive()) {
                    sum += m.process.info().totalCpuDuration().orElse(Duration.ZERO).toNanos();
                }
            }
            return sum;
        }

        /** The commit index of the group's log, as the leader says (-1: not a Raft group, or not known). */
        long committedIndex() {
            return -1;
        }

        String tail(Member m) {
            try {
                List<String> lines = Files.readAllLines(m.log());
                return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
            } catch (IOException e) {
                return "(no log: " + e + ")";
            }
        }

        @Override
        public void close() throws Exception {
            for (ManagedChannel c : channels) {
                c.shutdownNow();
            }
            for (Member m : members) {
                if (m.process != null) {
                    m.process.destroy();
                }
            }
            for (Member m : members) {
                if (m.process != null && !m.process.waitFor(15, TimeUnit.SECONDS)) {
                    m.process.destroyForcibly().waitFor(15, TimeUnit.SECONDS);
                }
            }
            if (Boolean.getBoolean("mapcast.bench.keep")) {
                System.out.println("kept (members' data and logs): " + dir);
                return;
            }
            try (Stream<Path> files = Files.walk(dir)) {
                for (Path p : (Iterable<Path>) files.sorted(Comparator.reverseOrder())::iterator) {
                    Files.delete(p);
                }
            }
        }
    }

    /** {@code mapcast serve} members: a cluster ({@code cluster}) or the single server with its own log. */
    static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

    static final class MapcastMembers extends Members {
        private final boolean cluster;
        private final List<String> jvmOptions;
        /** A variant's options starting with "--" (say --auth) go to serve; the others to the JVM. */
        private final List<String> serveOptions;

        MapcastMembers(String name, int size, boolean cluster, List<String> options) throws IOException {
            super(name, size);
            this.cluster = cluster;
            this.jvmOptions = options.stream().filter(o -> !o.isEmpty() && !o.startsWith("--")).toList();
            this.serveOptions = options.stream().filter(o -> o.startsWith("--")).toList();
        }

        /** With --auth: root's token, once a member has written it. */
        private void findToken() throws IOException {
            if (token != null || !serveOptions.contains("--auth")) {
                return;
            }
            for (Member m : members) {
                Path file = m.dataDir.resolve("root.token");
                if (Files.exists(file) && !Files.readString(file).isBlank()) {
                    token = Files.readString(file).strip();
                }
            }
        }

        @Override
        String idOf(int i) {
            return "m" + (i + 1);
        }

        String clientAddress(int i) {
            return LOOPBACK + ":" + members.get(i).clientPort;
        }

        @Override
        List<String> command(Member m) {
            String java = ProcessHandle.current().info().command().orElse("java");
            List<String> cmd = new ArrayList<>(List.of(java, "-Xms1g", "-Xmx1g", "-XX:MetaspaceSize=64m"));
            if (Runtime.version().feature() >= 23) {
                cmd.add("--sun-misc-unsafe-memory-access=allow");
            }
            // A variant's "-cp JAR" runs another build's members (today's code against a change, in one run).
            String classPath = System.getProperty("java.class.path");
            for (int i = 0; i < jvmOptions.size(); i++) {
                if (jvmOptions.get(i).equals("-cp") && i + 1 < jvmOptions.size()) {
                    classPath = jvmOptions.get(++i);
                } else {
                    cmd.add(jvmOptions.get(i));
                }
            }
            cmd.addAll(List.of("-cp", classPath, "dev.mapcast.cli.Main", "serve",
                    "--listen", LOOPBACK + ":" + m.clientPort, "--data-dir", m.dataDir.toString()));
            cmd.addAll(serveOptions);
            if (cluster) {
                cmd.addAll(List.of("--node-id", m.id, "--cluster", members.stream()
                        .map(x -> x.id + "=" + LOOPBACK + ":" + x.peerPort).collect(Collectors.joining(","))));
            }
            return cmd;
        }

        @Override
        void awaitReady(Member m) throws Exception {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            String marker = "mapcast serving on " + LOOPBACK + ":" + m.clientPort;
            while (!(Files.exists(m.log()) && Files.readString(m.log()).contains(marker))) {
                if (!m.process.isAlive() || System.nanoTime() > deadline) {
                    throw new IllegalStateException("member " + m.id + " did not start:\n" + tail(m));
                }
                Thread.sleep(50);
            }
            findToken();
        }

        @Override
        int leaderSeenBy(int i) {
            if (!cluster) {
                return 0;
            }
            try {
                findToken();
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
            String leader = MapcastClusterGrpc.newBlockingStub(channels.get(i)).withDeadlineAfter(2, TimeUnit.SECONDS)
                    .status(ClusterStatusRequest.getDefaultInstance()).getLeader();
            for (int j = 0; j < size(); j++) {
                if (members.get(j).id.equals(leader)) {
                    return j;
                }
            }
            return -1;
        }

        @Override
        long committedIndex() {
            if (!cluster) {
                return -1;
            }
            try {
                int leader = leader();
                ClusterStatusResponse status = MapcastClusterGrpc.newBlockingStub(channels.get(leader))
                        .withDeadlineAfter(2, TimeUnit.SECONDS).status(ClusterStatusRequest.getDefaultInstance());
                return status.getMembersList().stream().filter(s -> s.getId().equals(id(leader)))
                        .mapToLong(s -> s.getCommitIndex()).findFirst().orElse(-1);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return -1;
            } catch (StatusRuntimeException e) {
                return -1;
            }
        }

        @Override
        void put(int member, String key, byte[] value, Done done) {
            MapcastGrpc.newStub(channels.get(member)).withDeadlineAfter(CALL_DEADLINE_MS, TimeUnit.MILLISECONDS)
                    .write(WriteRequest.newBuilder().setMap(MAP).putPuts(key, ByteString.copyFrom(value)).build(),
                            completion(done));
        }

        @Override
        AutoCloseable watch(int member, LongConsumer seq) {
            Consumer<Delta> delta = d -> d.getPutsMap().values().forEach(v -> {
                if (v.size() >= 8) {
                    seq.accept(v.asReadOnlyByteBuffer().getLong());
                }
            });
            io.grpc.Context.CancellableContext context = io.grpc.Context.current().withCancellation();
            context.run(() -> MapcastGrpc.newStub(channels.get(member)).watch(
                    dev.mapcast.proto.v1.WatchRequest.newBuilder().setMap(MAP).build(), events((WatchResponse r) -> {
                        if (r.hasDelta()) {
                            delta.accept(r.getDelta());
                        } else if (r.hasBatch()) {
                            r.getBatch().getEventsList().forEach(e -> {
                                if (e.hasDelta()) {
                                    delta.accept(e.getDelta());
                                }
                            });
                        }
                    })));
            return () -> context.cancel(null);
        }
    }

    /** Debian's etcd 3.4, as many members, WAL fsync on (etcd 3.4 cannot turn it off). */
    static final class EtcdMembers extends Members {
        private static final ByteString PREFIX = ByteString.copyFromUtf8(MAP + "/");
        private final String token = "bench-" + Long.toHexString(System.nanoTime());

        EtcdMembers(int size) throws IOException {
            super("etcd", size);
            if (!Files.isExecutable(EtcdServer.BINARY)) {
                throw new IllegalStateException(EtcdServer.BINARY + ": not found (expected: etcd 3.4; install Debian's"
                        + " etcd-server: apt-get install -y etcd-server)");
            }
        }

        @Override
        String idOf(int i) {
            return "e" + (i + 1);
        }

        @Override
        List<String> command(Member m) {
            String client = "http://" + LOOPBACK + ":" + m.clientPort;
            String peer = "http://" + LOOPBACK + ":" + m.peerPort;
            return List.of(EtcdServer.BINARY.toString(), "--name", m.id, "--data-dir", m.dataDir.toString(),
                    "--listen-client-urls", client, "--advertise-client-urls", client,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", members.stream().map(x -> x.id + "=http://" + LOOPBACK + ":" + x.peerPort)
                            .collect(Collectors.joining(",")),
                    "--initial-cluster-state", "new", "--initial-cluster-token", token,
                    "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn");
        }

        @Override
        void awaitReady(Member m) throws Exception {
            int i = members.indexOf(m);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
            RangeRequest probe = RangeRequest.newBuilder().setKey(ByteString.copyFromUtf8("ready?")).build();
            while (true) {
                if (!m.process.isAlive() || System.nanoTime() > deadline) {
                    throw new IllegalStateException("etcd member " + m.id + " did not start:\n" + tail(m));
                }
                try {
                    KVGrpc.newBlockingStub(channels.get(i)).withDeadlineAfter(1, TimeUnit.SECONDS).range(probe);
                    return;
                } catch (StatusRuntimeException e) {
                    Thread.sleep(100);
                    channels.get(i).resetConnectBackoff();
                }
            }
        }

        @Override
        int leaderSeenBy(int i) {
            StatusResponse s = MaintenanceGrpc.newBlockingStub(channels.get(i)).withDeadlineAfter(2, TimeUnit.SECONDS)
                    .status(StatusRequest.getDefaultInstance());
            return s.getLeader() != 0 && s.getLeader() == s.getHeader().getMemberId() ? i : -1;
        }

        @Override
        void put(int member, String key, byte[] value, Done done) {
            KVGrpc.newStub(channels.get(member)).withDeadlineAfter(CALL_DEADLINE_MS, TimeUnit.MILLISECONDS)
                    .put(PutRequest.newBuilder().setKey(PREFIX.concat(ByteString.copyFromUtf8(key)))
                            .setValue(ByteString.copyFrom(value)).build(), completion(done));
        }

        @Override
        AutoCloseable watch(int member, LongConsumer seq) {
            io.grpc.Context.CancellableContext context = io.grpc.Context.current().withCancellation();
            byte[] end = PREFIX.toByteArray();
            end[end.length - 1]++;
            io.etcd.jetcd.api.WatchRequest create = io.etcd.jetcd.api.WatchRequest.newBuilder().setCreateRequest(
                    WatchCreateRequest.newBuilder().setKey(PREFIX).setRangeEnd(ByteString.copyFrom(end))).build();
            context.run(() -> WatchGrpc.newStub(channels.get(member)).watch(
                    events((io.etcd.jetcd.api.WatchResponse r) -> {
                        for (Event e : r.getEventsList()) {
                            ByteString v = e.getKv().getValue();
                            if (v.size() >= 8) {
                                seq.accept(v.asReadOnlyByteBuffer().getLong());
                            }
                        }
                    })).onNext(create));
            return () -> context.cancel(null);
        }
    }

    /** A watch stream's observer: each response to {@code onNext}; the end of the stream is ignored (the benchmark counts what it saw). */
    static <T> StreamObserver<T> events(Consumer<T> onNext) {
        return new StreamObserver<>() {
            @Override
            public void onNext(T response) {
                onNext.accept(response);
            }

            @Override
            public void onError(Throwable t) {
            }

            @Override
            public void onCompleted() {
            }
        };
    }

    /** A unary call's observer that tells {@code done} how it ended. */
    static <T> StreamObserver<T> completion(Done done) {
        return new StreamObserver<>() {
            @Override
            public void onNext(T response) {
            }

            @Override
            public void onError(Throwable t) {
                done.done(t);
            }

            @Override
            public void onCompleted() {
                done.done(null);
            }
        };
    }
}
