package dev.mapcast.bench;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.SplittableRandom;

/** The benchmarks' keys and values: seeded random byte strings, copies of them, and cheap counters. */
final class ByteStrings {

    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    private static final long GOLDEN_GAMMA = 0x9e3779b97f4a7c15L;

    private ByteStrings() {
    }

    /** {@code count} arrays of {@code length} random bytes. */
    static byte[][] random(SplittableRandom random, int count, int length) {
        byte[][] arrays = new byte[count][length];
        for (byte[] array : arrays) {
            random.nextBytes(array);
        }
        return arrays;
    }

    /** A random permutation of {@code 0..count-1} (Fisher-Yates). */
    static int[] shuffledIndexes(SplittableRandom random, int count) {
        int[] order = new int[count];
        for (int i = 0; i < count; i++) {
            order[i] = i;
        }
        for (int i = count - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        return order;
    }

    /** Fresh copies of {@code source[order[i]]}: equal content, never the same instances. */
    static byte[][] copies(byte[][] source, int[] order) {
        byte[][] copies = new byte[order.length][];
        for (int i = 0; i < order.length; i++) {
            copies[i] = source[order[i]].clone();
        }
        return copies;
    }

    /** Fresh copies of {@code source}, in the same order. */
    static byte[][] copies(byte[][] source) {
        byte[][] copies = new byte[source.length][];
        for (int i = 0; i < source.length; i++) {
            copies[i] = source[i].clone();
        }
        return copies;
    }

    /**
     * Writes key number {@code n} into a 16-byte array: two splitmix64 outputs. The first is a
     * bijection of {@code n}, so distinct counters give distinct keys.
     */
    static void counterKey(long n, byte[] key) {
        LONGS.set(key, 0, mix(n * GOLDEN_GAMMA));
        LONGS.set(key, 8, mix((n ^ 0x5555_5555_5555_5555L) * GOLDEN_GAMMA));
    }

    /** Fills a value array (a multiple of 8 bytes long) from counter {@code n}. */
    static void counterValue(long n, byte[] value) {
        long z = n * GOLDEN_GAMMA;
        for (int i = 0; i < value.length; i += Long.BYTES) {
            z += GOLDEN_GAMMA;
            LONGS.set(value, i, z);
        }
    }

    /** The splitmix64 finaliser: a bijection on longs. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }
}
