package dev.mapcast.bench;

import dev.mapcast.core.OffHeapMap;
import it.unimi.dsi.fastutil.bytes.ByteArrays;
import it.unimi.dsi.fastutil.objects.Object2ObjectOpenCustomHashMap;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.HashMap;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
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
 * The worst single put while a map grows from empty to 10M entries (16-byte keys, 64-byte values),
 * every put timed on its own with {@link System#nanoTime()}. The figures are the secondary results
 * ({@link PutLatencies}), in microseconds: {@code maxUs}, {@code p999Us}, {@code p99Us},
 * {@code p50Us}, plus {@code over1ms} (puts that took longer than 1 ms) and the collector's
 * {@code gcCount} and {@code gcMs} during the run. The primary score is the time to grow the whole
 * map, timers and key generation included (the figures are worked out after it).
 *
 * <p>{@code impl}, each built with default sizing, so each grows all the way:
 * <ul>
 *   <li>{@code mapcast}: {@link OffHeapMap} (fixed hash seed); it copies key and value, so they are
 *       written into two reused arrays.</li>
 *   <li>{@code hashmap}: {@code HashMap<ByteKey, byte[]>}, default capacity, so it doubles and
 *       rehashes as it goes.</li>
 *   <li>{@code fastutil}: {@code Object2ObjectOpenCustomHashMap<byte[], byte[]>} with
 *       {@link ByteArrays#HASH_STRATEGY}.</li>
 *   <li>{@code timer}: no map, the same loop with nothing between the two timer reads. Its
 *       figures are the machine's floor: a worst case near its {@code maxUs} is the scheduler's
 *       or the hypervisor's, not the map's (on a busy 2-core machine it reaches milliseconds).</li>
 * </ul>
 * The peers keep references, so each put gets fresh key and value arrays (and, for HashMap, its
 * {@link ByteKey}, hash included). They are built before the put's timer starts: only the put call
 * is timed. Keys are a counter mixed by splitmix64 (distinct by construction), values are filled
 * from the same counter.
 *
 * <p>Pauses of the garbage collector (default G1) that land inside a put count towards that put:
 * for the peers they are part of the worst case, which is what keeping entries off the heap is
 * for. A pause triggered while the untimed key and value arrays are allocated is not counted, so
 * the peers' figures are if anything flattering. Each iteration starts from an empty map after a
 * {@code System.gc()}; the one warmup iteration (full size) compiles the put path, so that the
 * measured worst case is not the interpreter's or a class's first load. The timer's own cost
 * (the pair of calls: {@code timer}'s p50, ~30 ns) is in every figure.
 *
 * <p>Run (about 3 minutes: 4 forks, each a full-size warmup and a measured run; HashMap's and
 * fastutil's ~30 s apiece. The heap limit is 12 GB; HashMap's 10M entries take ~2 GB):
 * <pre>{@code
 * mvn -B -q -pl bench -am package -DskipTests
 * java -jar bench/target/benchmarks.jar MapGrowthLatencyBenchmark
 * }</pre>
 * On JDK 23+ add {@code -jvmArgsAppend --sun-misc-unsafe-memory-access=allow}. Smaller:
 * {@code -p entries=1000000}. Keep one fork and one measurement iteration: JMH sums
 * {@code EVENTS} counters over iterations and forks ({@code -i 2} doubles every figure).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 1)
@Measurement(iterations = 1)
@Fork(value = 1, jvmArgs = {"-Xmx12g"})
public class MapGrowthLatencyBenchmark {

    static final int KEY_LENGTH = 16;
    static final int VALUE_LENGTH = 64;
    static final long SEED = 0x6d61_7063_6173_74L;
    static final long ONE_MS_NANOS = 1_000_000;

    @Param({"mapcast", "hashmap", "fastutil", "timer"})
    String impl;

    @Param({"10000000"})
    int entries;

    /** Nanoseconds of put number i; allocated once, outside any measurement. */
    private long[] latencies;

    private OffHeapMap mapcast;
    private HashMap<ByteKey, byte[]> hashMap;
    private Object2ObjectOpenCustomHashMap<byte[], byte[]> fastutil;

    private long gcCountBefore;
    private long gcMillisBefore;
    /** Set by the iteration's {@link #grow}, filled in by {@link #dropMap} (JMH reads it after that). */
    private PutLatencies figures;

    /** The latency figures, reported by JMH as secondary results. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.EVENTS)
    public static class PutLatencies {
        public double maxUs;
        public double p999Us;
        public double p99Us;
        public double p50Us;
        /** Puts slower than 1 ms. */
        public long over1ms;
        /** Collections during the iteration, and their total time (ms), as the collector's MXBeans count them. */
        public long gcCount;
        public long gcMs;

        @Setup(Level.Iteration)
        public void reset() {
            maxUs = 0;
            p999Us = 0;
            p99Us = 0;
            p50Us = 0;
            over1ms = 0;
            gcCount = 0;
            gcMs = 0;
        }
    }

    @Setup(Level.Trial)
    public void allocate() {
        latencies = new long[entries];
    }

    @Setup(Level.Iteration)
    public void emptyMap() {
        switch (impl) {
            case "mapcast":
                mapcast = OffHeapMap.builder().hashSeed(SEED).build();
                break;
            case "hashmap":
                hashMap = new HashMap<>();
                break;
            case "fastutil":
                fastutil = new Object2ObjectOpenCustomHashMap<>(ByteArrays.HASH_STRATEGY);
                break;
            case "timer":
                break;
            default:
                throw new IllegalArgumentException("impl: " + impl
                        + " (expected: mapcast, hashmap, fastutil or timer)");
        }
        Arrays.fill(latencies, 0);
        System.gc();
        gcCountBefore = gcCount();
        gcMillisBefore = gcMillis();
    }

    /** Works out the figures (sorting 10M latencies is not part of the score) and drops the map. */
    @TearDown(Level.Iteration)
    public void dropMap() {
        if (figures != null) {
            summarise(latencies, figures);
            figures = null;
        }
        if (mapcast != null) {
            mapcast.close();
        }
        mapcast = null;
        hashMap = null;
        fastutil = null;
    }

    /** Grows the map to {@code entries}, timing each put; the figures are worked out in {@link #dropMap}. */
    @Benchmark
    public long grow(PutLatencies figures) {
        long[] nanos = latencies;
        int n = entries;
        long size;
        switch (impl) {
            case "mapcast":
                size = growMapcast(mapcast, nanos, n);
                break;
            case "hashmap":
                size = growHashMap(hashMap, nanos, n);
                break;
            case "fastutil":
                size = growFastutil(fastutil, nanos, n);
                break;
            case "timer":
                size = timerOnly(nanos, n);
                break;
            default:
                throw new IllegalStateException(impl);
        }
        figures.gcCount = gcCount() - gcCountBefore;
        figures.gcMs = gcMillis() - gcMillisBefore;
        if (size != n) {
            throw new IllegalStateException("size after growing: " + size + " (expected: " + n + ")");
        }
        this.figures = figures;
        return size;
    }

    private static void summarise(long[] nanos, PutLatencies figures) {
        long over = 0;
        for (long t : nanos) {
            if (t > ONE_MS_NANOS) {
                over++;
            }
        }
        figures.over1ms = over;
        Arrays.sort(nanos);
        figures.maxUs = nanos[nanos.length - 1] / 1e3;
        figures.p999Us = percentile(nanos, 0.999) / 1e3;
        figures.p99Us = percentile(nanos, 0.99) / 1e3;
        figures.p50Us = percentile(nanos, 0.50) / 1e3;
    }

    private static long growMapcast(OffHeapMap map, long[] nanos, int n) {
        byte[] key = new byte[KEY_LENGTH];
        byte[] value = new byte[VALUE_LENGTH];
        for (int i = 0; i < n; i++) {
            ByteStrings.counterKey(i, key);
            ByteStrings.counterValue(i, value);
            long start = System.nanoTime();
            map.put(key, value);
            nanos[i] = System.nanoTime() - start;
        }
        return map.size();
    }

    private static long growHashMap(HashMap<ByteKey, byte[]> map, long[] nanos, int n) {
        for (int i = 0; i < n; i++) {
            byte[] key = new byte[KEY_LENGTH];
            ByteStrings.counterKey(i, key);
            ByteKey wrapped = new ByteKey(key);
            byte[] value = new byte[VALUE_LENGTH];
            ByteStrings.counterValue(i, value);
            long start = System.nanoTime();
            map.put(wrapped, value);
            nanos[i] = System.nanoTime() - start;
        }
        return map.size();
    }

    private static long growFastutil(Object2ObjectOpenCustomHashMap<byte[], byte[]> map, long[] nanos, int n) {
        for (int i = 0; i < n; i++) {
            byte[] key = new byte[KEY_LENGTH];
            ByteStrings.counterKey(i, key);
            byte[] value = new byte[VALUE_LENGTH];
            ByteStrings.counterValue(i, value);
            long start = System.nanoTime();
            map.put(key, value);
            nanos[i] = System.nanoTime() - start;
        }
        return map.size();
    }

    /** The same loop as mapcast's with nothing between the two timer reads: the machine's floor. */
    private static long timerOnly(long[] nanos, int n) {
        byte[] key = new byte[KEY_LENGTH];
        byte[] value = new byte[VALUE_LENGTH];
        long sink = 0;
        for (int i = 0; i < n; i++) {
            ByteStrings.counterKey(i, key);
            ByteStrings.counterValue(i, value);
            long start = System.nanoTime();
            nanos[i] = System.nanoTime() - start;
            sink += key[0] + value[0];
        }
        return sink == Long.MIN_VALUE ? -1 : n;
    }

    /** Nearest-rank percentile of sorted values. */
    private static long percentile(long[] sorted, double fraction) {
        int rank = (int) Math.ceil(fraction * sorted.length);
        return sorted[Math.max(0, rank - 1)];
    }

    private static long gcCount() {
        long count = 0;
        for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
            count += Math.max(0, gc.getCollectionCount());
        }
        return count;
    }

    private static long gcMillis() {
        long millis = 0;
        for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
            millis += Math.max(0, gc.getCollectionTime());
        }
        return millis;
    }
}
