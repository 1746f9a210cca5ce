package dev.mapcast.bench;

import dev.mapcast.core.OffHeapMap;
import it.unimi.dsi.fastutil.bytes.ByteArrays;
import it.unimi.dsi.fastutil.objects.Object2ObjectOpenCustomHashMap;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Keys chosen by an attacker to collide: 16,384 keys of 28 bytes, each a run of 14 two-byte blocks
 * "Aa" or "BB", which all have one {@code Arrays.hashCode} (31 x 'A' + 'a' = 31 x 'B' + 'B'): the
 * classic attack on an unseeded polynomial hash, the one {@code java.util.HashMap} over byte keys
 * and fastutil's {@code ByteArrays.HASH_STRATEGY} use. mapcast's map hashes with a per-map random
 * seed (wyhash; {@code KeyHash}), so no key set can be built to collide without the seed. Against
 * {@code keys=random}: random 28-byte keys, the same count, in the same run.
 *
 * <ul>
 *   <li>{@code fill}: a new map, every key put once (time per put).</li>
 *   <li>{@code get}: a hit, keys visited in a shuffled order (time per get).</li>
 * </ul>
 *
 * <pre>{@code
 * java -jar bench/target/benchmarks.jar AdversarialKeysBenchmark -f 3
 * }</pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgs = {"-Xms1g", "-Xmx1g"})
public class AdversarialKeysBenchmark {

    static final int BLOCKS = 14;
    static final int KEYS = 1 << BLOCKS;

    @Param({"mapcast", "hashmap", "fastutil"})
    public String impl;

    @Param({"random", "colliding"})
    public String keys;

    private byte[][] keySet;
    private byte[][] lookups;
    private final byte[] value = new byte[16];
    private OffHeapMap mapcast;
    private HashMap<ByteKey, byte[]> hashMap;
    private Object2ObjectOpenCustomHashMap<byte[], byte[]> fastutil;
    private int cursor;

    @Setup
    public void setup() {
        keySet = keys.equals("colliding") ? colliding() : random(new Random(42));
        List<byte[]> shuffled = new ArrayList<>();
        for (byte[] k : keySet) {
            shuffled.add(k.clone());  // not the stored instances: no identity shortcut
        }
        Collections.shuffle(shuffled, new Random(7));
        lookups = shuffled.toArray(new byte[0][]);
        fill();
    }

    /** The 2^14 keys of 14 blocks "Aa" or "BB": one Arrays.hashCode for all. */
    static byte[][] colliding() {
        byte[][] out = new byte[KEYS][];
        for (int i = 0; i < KEYS; i++) {
            byte[] k = new byte[2 * BLOCKS];
            for (int b = 0; b < BLOCKS; b++) {
                boolean aa = (i >>> b & 1) == 0;
                k[2 * b] = (byte) (aa ? 'A' : 'B');
                k[2 * b + 1] = (byte) (aa ? 'a' : 'B');
            }
            out[i] = k;
        }
        return out;
    }

    static byte[][] random(Random rnd) {
        byte[][] out = new byte[KEYS][2 * BLOCKS];
        for (byte[] k : out) {
            rnd.nextBytes(k);
        }
        return out;
    }

    @Benchmark
    @OperationsPerInvocation(KEYS)
    public Object fill() {
        switch (impl) {
            case "mapcast" -> {
                if (mapcast != null) {
                    mapcast.close();
                }
                mapcast = OffHeapMap.builder().build();  // a random seed, as the server's maps
                for (byte[] k : keySet) {
                    mapcast.put(k, value);
                }
                return mapcast;
            }
            case "hashmap" -> {
                hashMap = new HashMap<>();
                for (byte[] k : keySet) {
                    hashMap.put(new ByteKey(k), value);
                }
                return hashMap;
            }
            default -> {
                fastutil = new Object2ObjectOpenCustomHashMap<>(ByteArrays.HASH_STRATEGY);
                for (byte[] k : keySet) {
                    fastutil.put(k, value);
                }
                return fastutil;
            }
        }
    }

    @Benchmark
    public Object get() {
        byte[] k = lookups[cursor];
        cursor = (cursor + 1) & (KEYS - 1);
        return switch (impl) {
            case "mapcast" -> mapcast.get(k);
            case "hashmap" -> hashMap.get(new ByteKey(k));
            default -> fastutil.get(k);
        };
    }
}
