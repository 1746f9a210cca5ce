package dev.mapcast.bench;

import dev.mapcast.core.OffHeapMap;
import it.unimi.dsi.fastutil.bytes.ByteArrays;
import it.unimi.dsi.fastutil.objects.Object2ObjectOpenCustomHashMap;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
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
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;
import org.openjdk.jol.info.GraphStats;

/**
 * Memory per entry: 16-byte random keys, 64-byte random values, the same entries for every
 * implementation. The figures are the secondary results ({@link Footprint}); the primary score
 * (time to build the map and walk it) means nothing. Ratios are worked out in BENCHMARKS.md.
 *
 * <p>{@code impl}:
 * <ul>
 *   <li>{@code mapcast}: {@link OffHeapMap}; heap is its object graph, off-heap is
 *       {@code memoryStats().reservedBytes()} (segments, index, everything it allocated).</li>
 *   <li>{@code hashmap}: {@code HashMap<ByteKey, byte[]>}, the usable HashMap with byte-string
 *       keys ({@link ByteKey}: content equality, cached hash).</li>
 *   <li>{@code hashmap-identity}: {@code HashMap<byte[], byte[]>} keyed by the arrays themselves.
 *       Useless for lookups (a {@code byte[]} compares by identity), but the literal lower bound of
 *       "a HashMap with byte[] keys and values".</li>
 *   <li>{@code fastutil}: {@code Object2ObjectOpenCustomHashMap<byte[], byte[]>} with
 *       {@link ByteArrays#HASH_STRATEGY}.</li>
 * </ul>
 * Heap is measured with JOL, {@code GraphStats.parseInstance(map).totalSize()} (the same total as
 * {@code GraphLayout}'s, without keeping a record per object): every object reachable from the map
 * (table, nodes, wrappers, key and value arrays), nothing else.
 *
 * <p>{@code scenario}:
 * <ul>
 *   <li>{@code full}: 1M entries.</li>
 *   <li>{@code full100k}: the first 100k of them; mapcast's heap bytes here against {@code full}
 *       show that its heap does not grow with the number of entries.</li>
 *   <li>{@code after99pctDeleteCompacted}: 1M inserted, then 99% removed (every 100th key kept,
 *       10k survivors), then {@code compact()} for mapcast. The peers get no extra call, deleting
 *       is all their users can do: {@code HashMap} never shrinks its table (2M buckets stay),
 *       fastutil halves its arrays by itself as it empties.</li>
 *   <li>{@code freshSurvivors}: a fresh map of just those 10k survivors, the baseline for the
 *       previous scenario.</li>
 * </ul>
 * Per-entry figures divide by the entries the map holds in that scenario (1M, 100k or 10k).
 *
 * <p>Run (about 2 minutes: 16 forks, one single shot each):
 * <pre>{@code
 * mvn -B -q -pl bench -am package -DskipTests
 * java -jar bench/target/benchmarks.jar MapMemoryBenchmark
 * }</pre>
 * On JDK 23+ add {@code -jvmArgsAppend --sun-misc-unsafe-memory-access=allow}. One figure:
 * {@code -p impl=mapcast -p scenario=full}. Keep one fork and one measurement iteration:
 * JMH sums {@code EVENTS} counters over iterations and forks ({@code -i 2} doubles every figure).
 *
 * <p>JOL: the fork runs with {@code -Djdk.attach.allowAttachSelf=true}, so that JOL can attach its
 * agent to its own VM and ask {@code Instrumentation} for object sizes (without it JOL prints
 * "WARNING: Unable to get Instrumentation. Dynamic Attach failed" and computes the sizes from the
 * layout instead: on JDK 17 the totals are the same), and with
 * {@code -XX:+EnableDynamicAgentLoading}, a no-op on JDK 17 that silences the JDK 21+ warning about
 * that attach. JOL walks about 6 microseconds per object: the 1M-entry peers (3-4M objects) take
 * ~20-35 s each.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 0)
@Measurement(iterations = 1)
@Fork(value = 1, jvmArgs = {
        "-Xms4g", "-Xmx4g",
        "-Djdk.attach.allowAttachSelf=true",
        "-XX:+EnableDynamicAgentLoading"})
public class MapMemoryBenchmark {

    static final int ENTRIES = 1_000_000;
    static final int KEY_LENGTH = 16;
    static final int VALUE_LENGTH = 64;
    /** The after-delete scenarios keep every {@code SURVIVOR_STRIDE}-th key: 1% of them. */
    static final int SURVIVOR_STRIDE = 100;
    static final long SEED = 0x6d61_7063_6173_74L;

    @Param({"mapcast", "hashmap", "hashmap-identity", "fastutil"})
    String impl;

    @Param({"full", "full100k", "after99pctDeleteCompacted", "freshSurvivors"})
    String scenario;

    private byte[][] keys;
    private byte[][] values;

    /** The memory figures, reported by JMH as secondary results. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.EVENTS)
    public static class Footprint {
        /** (heap + off-heap bytes) / entries. */
        public double bytesPerEntry;
        public double heapBytesPerEntry;
        public double offHeapBytesPerEntry;
        public long heapBytes;
        /** Objects reachable from the map. */
        public long heapObjects;
        public long offHeapBytes;
        public long entries;

        @Setup(Level.Iteration)
        public void reset() {
            bytesPerEntry = 0;
            heapBytesPerEntry = 0;
            offHeapBytesPerEntry = 0;
            heapBytes = 0;
            heapObjects = 0;
            offHeapBytes = 0;
            entries = 0;
        }
    }

    @Setup(Level.Trial)
    public void setUp() {
        SplittableRandom random = new SplittableRandom(SEED);
        keys = ByteStrings.random(random, ENTRIES, KEY_LENGTH);
        values = ByteStrings.random(random, ENTRIES, VALUE_LENGTH);
    }

    @Benchmark
    public void footprint(Footprint footprint, Blackhole blackhole) {
        try (Subject map = Subject.create(impl)) {
            switch (scenario) {
                case "full":
                    fill(map, ENTRIES, 1);
                    break;
                case "full100k":
                    fill(map, ENTRIES / 10, 1);
                    break;
                case "after99pctDeleteCompacted":
                    fill(map, ENTRIES, 1);
                    for (int i = 0; i < ENTRIES; i++) {
                        if (i % SURVIVOR_STRIDE != 0) {
                            map.remove(keys[i]);
                        }
                    }
                    map.compact();
                    break;
                case "freshSurvivors":
                    fill(map, ENTRIES, SURVIVOR_STRIDE);
                    break;
                default:
                    throw new IllegalArgumentException("scenario: " + scenario
                            + " (expected: full, full100k, after99pctDeleteCompacted or freshSurvivors)");
            }
            long entries = map.size();
            GraphStats graph = GraphStats.parseInstance(map.heapRoot());
            long heap = graph.totalSize();
            long offHeap = map.offHeapBytes();
            footprint.entries = entries;
            footprint.heapBytes = heap;
            footprint.heapObjects = graph.totalCount();
            footprint.offHeapBytes = offHeap;
            footprint.heapBytesPerEntry = (double) heap / entries;
            footprint.offHeapBytesPerEntry = (double) offHeap / entries;
            footprint.bytesPerEntry = (double) (heap + offHeap) / entries;
            blackhole.consume(map.heapRoot());
        }
    }

    /** Puts keys {@code 0, stride, 2 stride, ...} below {@code count}, with their values. */
    private void fill(Subject map, int count, int stride) {
        for (int i = 0; i < count; i += stride) {
            map.put(keys[i], values[i]);
        }
        long expected = (count + stride - 1) / stride;
        if (map.size() != expected) {
            throw new IllegalStateException("size after fill: " + map.size() + " (expected: " + expected + ")");
        }
    }

    /** One implementation: the peers keep the key and value arrays they are given. */
    abstract static class Subject implements AutoCloseable {

        static Subject create(String impl) {
            switch (impl) {
                case "mapcast":
                    return new Mapcast();
                case "hashmap":
                    return new JavaMap<ByteKey>(new HashMap<>(), ByteKey::new);
                case "hashmap-identity":
                    return new JavaMap<byte[]>(new HashMap<>(), key -> key);
                case "fastutil":
                    return new JavaMap<byte[]>(new Object2ObjectOpenCustomHashMap<>(ByteArrays.HASH_STRATEGY), key -> key);
                default:
                    throw new IllegalArgumentException("impl: " + impl
                            + " (expected: mapcast, hashmap, hashmap-identity or fastutil)");
            }
        }

        abstract void put(byte[] key, byte[] value);

        /** Removes the key; {@code key} is the instance that was put (identity keys need it). */
        abstract void remove(byte[] key);

        /** Reclaims what the map can reclaim on demand; nothing for the peers. */
        void compact() {
        }

        abstract long size();

        /** The object whose reachable graph is the map's heap footprint. */
        abstract Object heapRoot();

        long offHeapBytes() {
            return 0;
        }

        @Override
        public void close() {
        }
    }

    static final class Mapcast extends Subject {
        private final OffHeapMap map = OffHeapMap.builder().hashSeed(SEED).build();

        @Override
        void put(byte[] key, byte[] value) {
            map.put(key, value);
        }

        @Override
        void remove(byte[] key) {
            map.remove(key);
        }

        @Override
        void compact() {
            map.compact();
        }

        @Override
        long size() {
            return map.size();
        }

        @Override
        Object heapRoot() {
            return map;
        }

        @Override
        long offHeapBytes() {
            return map.memoryStats().reservedBytes();
        }

        @Override
        public void close() {
            map.close();
        }
    }

    /** A peer that is a {@code java.util.Map}; {@code keyOf} turns the caller's array into its key. */
    static final class JavaMap<K> extends Subject {
        private final Map<K, byte[]> map;
        private final Function<byte[], K> keyOf;

        JavaMap(Map<K, byte[]> map, Function<byte[], K> keyOf) {
            this.map = map;
            this.keyOf = keyOf;
        }

        @Override
        void put(byte[] key, byte[] value) {
            map.put(keyOf.apply(key), value);
        }

        @Override
        void remove(byte[] key) {
            map.remove(keyOf.apply(key));
        }

        @Override
        long size() {
            return map.size();
        }

        @Override
        Object heapRoot() {
            return map;
        }
    }
}
