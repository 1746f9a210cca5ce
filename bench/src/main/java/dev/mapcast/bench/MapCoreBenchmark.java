package dev.mapcast.bench;

import dev.mapcast.core.OffHeapMap;
import it.unimi.dsi.fastutil.bytes.ByteArrays;
import it.unimi.dsi.fastutil.objects.Object2ObjectOpenCustomHashMap;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import net.openhft.chronicle.map.ChronicleMap;
import net.openhft.chronicle.map.ExternalMapQueryContext;
import net.openhft.chronicle.map.MapEntry;
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
import org.openjdk.jmh.infra.BenchmarkParams;

/**
 * get / put / remove on a map of 1M entries (16-byte random keys, 64-byte random values), mapcast
 * against the peers named in DESIGN.md ("Measured targets"), one implementation per {@code impl}:
 * <ul>
 *   <li>{@code mapcast}: {@link OffHeapMap} (HASH order, fixed hash seed); {@code get} returns a
 *       fresh copy of the value, as its API does.</li>
 *   <li>{@code mapcast-into}: the same map, but {@code getHit}/{@code getMiss} use
 *       {@link OffHeapMap#getInto} into one reused direct buffer (zero-copy, no allocation). Its
 *       {@code putUpdate} and {@code churn} are exactly {@code mapcast}'s.</li>
 *   <li>{@code hashmap}: {@code java.util.HashMap<ByteKey, byte[]>}, {@link ByteKey} being the
 *       minimal content-equality wrapper (final array, hash cached). The caller holds a
 *       {@code byte[]}, so each operation wraps it ({@code new ByteKey(key)}: the hash is computed
 *       per operation, as for every other implementation).</li>
 *   <li>{@code fastutil}: {@code Object2ObjectOpenCustomHashMap<byte[], byte[]>} with
 *       {@link ByteArrays#HASH_STRATEGY}.</li>
 *   <li>{@code chronicle}: Chronicle Map 3 ({@code ChronicleMap<byte[], byte[]>}, average key 16 B,
 *       average value 64 B, sized for 1.2M entries); {@code get} returns a fresh copy. Writes go
 *       through its query context, so that, like the others, they do not materialise the previous
 *       value ({@code ChronicleMap.put}/{@code remove} would return a deserialised copy).</li>
 * </ul>
 *
 * <p>Fairness: every map is filled with the same entries and built with default sizing. The keys
 * the benchmark methods pass are separate {@code byte[]} copies of the stored keys (never the
 * instances the peers hold, so no identity shortcut in {@code Arrays.equals}), built in setup and
 * visited in a pre-shuffled order by a cursor: no random number is drawn in the measured path.
 * {@code putUpdate} stores, round-robin, one of 64 pre-allocated values: the peers store the
 * reference, mapcast copies the 64 bytes, which is the honest comparison. {@code churn} puts a key
 * not in the map and removes the oldest one, so the size stays 1M: the keys form a ring of 2M, the
 * map holding a sliding window of 1M of them.
 *
 * <p>Run (about 7 minutes: 20 forks of ~20 s each):
 * <pre>{@code
 * mvn -B -q -pl bench -am package -DskipTests
 * java -jar bench/target/benchmarks.jar MapCoreBenchmark
 * }</pre>
 * On JDK 23+ add {@code -jvmArgsAppend --sun-misc-unsafe-memory-access=allow} (map-core uses
 * {@code sun.misc.Unsafe}; JMH cannot add an argument only on some JDKs). One implementation:
 * {@code -p impl=mapcast}; allocation per operation: {@code -prof gc}; shorter:
 * {@code -f 1 -wi 1 -i 1 -w 1s -r 1s}. {@code -f}, {@code -wi}, {@code -i}, {@code -w}, {@code -r}
 * override the annotations as usual.
 *
 * <p>The fork's arguments open JDK internals to Chronicle Map (which compiles code at run time and
 * reads private fields) and turn off its usage analytics; they change nothing for the others.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgs = {
        "-Xms4g", "-Xmx4g",
        "-Dchronicle.analytics.disable=true",
        "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
        "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED",
        "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
        "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
        "--add-opens=java.base/java.lang=ALL-UNNAMED",
        "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED"})
public class MapCoreBenchmark {

    static final int ENTRIES = 1_000_000;
    static final int KEY_LENGTH = 16;
    static final int VALUE_LENGTH = 64;
    static final int UPDATE_VALUES = 64;
    static final long SEED = 0x6d61_7063_6173_74L;

    @Param({"mapcast", "mapcast-into", "hashmap", "fastutil", "chronicle"})
    String impl;

    private Subject subject;

    /** Copies of the stored keys, shuffled. */
    private byte[][] hitKeys;
    /** Keys never inserted. */
    private byte[][] missKeys;
    /** Values for updates (mask {@code UPDATE_VALUES - 1}). */
    private byte[][] updateValues;
    /** The churn ring, two copies: the put side's keys (stored by the peers) and the remove side's. */
    private byte[][] ringPutKeys;
    private byte[][] ringRemoveKeys;

    private int hitCursor;
    private int missCursor;
    private int valueCursor;
    private int churnCursor;

    @Setup(Level.Trial)
    public void setUp(BenchmarkParams params) {
        boolean churn = params.getBenchmark().endsWith(".churn");
        SplittableRandom random = new SplittableRandom(SEED);
        byte[][] keys = ByteStrings.random(random, ENTRIES, KEY_LENGTH);
        byte[][] values = ByteStrings.random(random, ENTRIES, VALUE_LENGTH);
        updateValues = ByteStrings.random(random, UPDATE_VALUES, VALUE_LENGTH);
        hitKeys = ByteStrings.copies(keys, ByteStrings.shuffledIndexes(random, ENTRIES));
        missKeys = ByteStrings.random(random, ENTRIES, KEY_LENGTH);

        subject = Subject.create(impl);
        for (int i = 0; i < ENTRIES; i++) {
            subject.put(keys[i], values[i]);
        }
        // 128-bit random keys do not collide in practice; check rather than assume.
        if (subject.size() != ENTRIES) {
            throw new IllegalStateException("size after fill: " + subject.size() + " (expected: " + ENTRIES + ")");
        }
        for (int i = 0; i < ENTRIES; i++) {
            if (subject.get(hitKeys[i]) == null || subject.get(missKeys[i]) != null) {
                throw new IllegalStateException("key " + i + ": hit missing or miss present");
            }
        }

        if (churn) {
            byte[][] ring = new byte[2 * ENTRIES][];
            System.arraycopy(keys, 0, ring, 0, ENTRIES);
            byte[][] fresh = ByteStrings.random(random, ENTRIES, KEY_LENGTH);
            System.arraycopy(fresh, 0, ring, ENTRIES, ENTRIES);
            ringPutKeys = ByteStrings.copies(ring);
            ringRemoveKeys = ByteStrings.copies(ring);
            // The map holds ring[churnCursor .. churnCursor + ENTRIES) (mod ring length).
            churnCursor = 0;
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        subject.close();
    }

    /** Looks up a present key; returns the value (mapcast-into: the filled buffer). */
    @Benchmark
    public Object getHit() {
        int i = hitCursor;
        hitCursor = i + 1 == ENTRIES ? 0 : i + 1;
        return subject.get(hitKeys[i]);
    }

    /** Looks up a key that was never inserted. */
    @Benchmark
    public Object getMiss() {
        int i = missCursor;
        missCursor = i + 1 == ENTRIES ? 0 : i + 1;
        return subject.get(missKeys[i]);
    }

    /** Replaces the value of a present key. */
    @Benchmark
    public Object putUpdate() {
        int i = hitCursor;
        hitCursor = i + 1 == ENTRIES ? 0 : i + 1;
        int v = valueCursor;
        valueCursor = (v + 1) & (UPDATE_VALUES - 1);
        return subject.put(hitKeys[i], updateValues[v]);
    }

    /** Inserts a new key and removes the oldest one: one put and one remove, size stays 1M. */
    @Benchmark
    public Object churn() {
        int out = churnCursor;
        int in = out + ENTRIES;
        int ring = 2 * ENTRIES;
        if (in >= ring) {
            in -= ring;
        }
        churnCursor = out + 1 == ring ? 0 : out + 1;
        int v = valueCursor;
        valueCursor = (v + 1) & (UPDATE_VALUES - 1);
        subject.put(ringPutKeys[in], updateValues[v]);
        return subject.remove(ringRemoveKeys[out]);
    }

    /**
     * One implementation under test. Each fork instantiates exactly one subclass, so the calls
     * from the benchmark methods are monomorphic and inlined.
     */
    abstract static class Subject implements AutoCloseable {

        static Subject create(String impl) {
            switch (impl) {
                case "mapcast":
                    return new Mapcast();
                case "mapcast-into":
                    return new MapcastInto();
                case "hashmap":
                    return new JdkHashMap();
                case "fastutil":
                    return new Fastutil();
                case "chronicle":
                    return new Chronicle();
                default:
                    throw new IllegalArgumentException("impl: " + impl
                            + " (expected: mapcast, mapcast-into, hashmap, fastutil or chronicle)");
            }
        }

        /** The value, or null when absent. */
        abstract Object get(byte[] key);

        abstract Object put(byte[] key, byte[] value);

        abstract Object remove(byte[] key);

        abstract long size();

        @Override
        public void close() {
        }
    }

    static class Mapcast extends Subject {
        final OffHeapMap map = OffHeapMap.builder().hashSeed(SEED).build();

        @Override
        Object get(byte[] key) {
            return map.get(key);
        }

        @Override
        Object put(byte[] key, byte[] value) {
            return map.put(key, value) ? Boolean.TRUE : Boolean.FALSE;
        }

        @Override
        Object remove(byte[] key) {
            return map.remove(key) ? Boolean.TRUE : Boolean.FALSE;
        }

        @Override
        long size() {
            return map.size();
        }

        @Override
        public void close() {
            map.close();
        }
    }

    static final class MapcastInto extends Mapcast {
        private final ByteBuffer into = ByteBuffer.allocateDirect(VALUE_LENGTH);

        /** The buffer holding the value, or null when absent: the value itself is never an array. */
        @Override
        Object get(byte[] key) {
            ByteBuffer dst = into;
            dst.clear();
            return map.getInto(key, dst) < 0 ? null : dst;
        }
    }

    static final class JdkHashMap extends Subject {
        private final Map<ByteKey, byte[]> map = new HashMap<>();

        @Override
        Object get(byte[] key) {
            return map.get(new ByteKey(key));
        }

        @Override
        Object put(byte[] key, byte[] value) {
            return map.put(new ByteKey(key), value);
        }

        @Override
        Object remove(byte[] key) {
            return map.remove(new ByteKey(key));
        }

        @Override
        long size() {
            return map.size();
        }
    }

    static final class Fastutil extends Subject {
        private final Object2ObjectOpenCustomHashMap<byte[], byte[]> map =
                new Object2ObjectOpenCustomHashMap<>(ByteArrays.HASH_STRATEGY);

        @Override
        Object get(byte[] key) {
            return map.get(key);
        }

        @Override
        Object put(byte[] key, byte[] value) {
            return map.put(key, value);
        }

        @Override
        Object remove(byte[] key) {
            return map.remove(key);
        }

        @Override
        long size() {
            return map.size();
        }
    }

    static final class Chronicle extends Subject {
        private final ChronicleMap<byte[], byte[]> map = ChronicleMap.of(byte[].class, byte[].class)
                .averageKeySize(KEY_LENGTH)
                .averageValueSize(VALUE_LENGTH)
                .entries(ENTRIES * 6L / 5)
                .create();

        @Override
        Object get(byte[] key) {
            return map.get(key);
        }

        /** Chronicle's documented garbage-free put: replace or insert in a query context. */
        @Override
        Object put(byte[] key, byte[] value) {
            try (ExternalMapQueryContext<byte[], byte[], ?> c = map.queryContext(key)) {
                c.updateLock().lock();
                MapEntry<byte[], byte[]> entry = c.entry();
                if (entry != null) {
                    c.replaceValue(entry, c.wrapValueAsData(value));
                    return Boolean.FALSE;
                }
                c.insert(c.absentEntry(), c.wrapValueAsData(value));
                return Boolean.TRUE;
            }
        }

        @Override
        Object remove(byte[] key) {
            try (ExternalMapQueryContext<byte[], byte[], ?> c = map.queryContext(key)) {
                c.updateLock().lock();
                MapEntry<byte[], byte[]> entry = c.entry();
                if (entry == null) {
                    return Boolean.FALSE;
                }
                c.remove(entry);
                return Boolean.TRUE;
            }
        }

        @Override
        long size() {
            return map.longSize();
        }

        @Override
        public void close() {
            map.close();
        }
    }
}
