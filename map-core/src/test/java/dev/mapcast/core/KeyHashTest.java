package dev.mapcast.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import java.util.function.IntFunction;
import java.util.function.LongUnaryOperator;
import org.junit.jupiter.api.Test;

/** The seeded key hash: independent of where the bytes live, dependent on the seed, well spread. */
class KeyHashTest extends AbstractOffHeapTest {

    private static long hashOfArray(long seed, byte[] key) {
        return KeyHash.hash(seed, key, NativeMemory.BYTE_ARRAY_OFFSET, key.length);
    }

    private static long hashOfBuffer(long seed, ByteBuffer buffer) {
        return KeyHash.hash(seed, NativeMemory.base(buffer), NativeMemory.offset(buffer), buffer.remaining());
    }

    @Test
    void sameBytesHashTheSameWhereverTheyLive() {
        long seed = testSeed("sameBytesHashTheSameWhereverTheyLive");
        Random rnd = new Random(seed);
        ByteBuffer direct = ByteBuffer.allocateDirect(256 + 64);
        for (int length = 0; length <= 200; length++) {
            for (int trial = 0; trial < 5; trial++) {
                byte[] key = Keys.randomBytes(rnd, length);
                long hashSeed = rnd.nextLong();
                long expected = hashOfArray(hashSeed, key);
                String where = "seed=" + seed + " length=" + length + " trial=" + trial;

                int pad = 1 + rnd.nextInt(31);
                byte[] padded = Keys.randomBytes(rnd, pad + length + rnd.nextInt(16));
                System.arraycopy(key, 0, padded, pad, length);
                assertEquals(expected, KeyHash.hash(hashSeed, padded, NativeMemory.BYTE_ARRAY_OFFSET + pad, length),
                        where + ": byte[] at offset " + pad);
                assertEquals(expected, hashOfBuffer(hashSeed, ByteBuffer.wrap(padded, pad, length)),
                        where + ": heap buffer at position " + pad);
                assertEquals(expected, hashOfBuffer(hashSeed, ByteBuffer.wrap(padded, pad, length).slice()),
                        where + ": sliced heap buffer");
                direct.clear().position(pad);
                direct.put(key).flip().position(pad);
                assertEquals(expected, hashOfBuffer(hashSeed, direct), where + ": direct buffer at position " + pad);
                assertEquals(expected, hashOfArray(hashSeed, key.clone()), where + ": recomputed");
            }
        }
    }

    @Test
    void differentSeedsGiveDifferentHashes() {
        long seed = testSeed("differentSeedsGiveDifferentHashes");
        Random rnd = new Random(seed);
        for (int i = 0; i < 2_000; i++) {
            byte[] key = Keys.randomBytes(rnd, rnd.nextInt(60));
            long a = rnd.nextLong();
            long b = a ^ (1L << rnd.nextInt(64)); // even a one-bit change of seed
            assertNotEquals(hashOfArray(a, key), hashOfArray(b, key),
                    "seed=" + seed + ": key of " + key.length + " bytes hashes the same under seeds " + a + " and " + b);
        }
        // Across many keys, the hashes under two seeds are unrelated: about half the bits differ.
        long bitsDiffering = 0;
        int keys = 10_000;
        for (int i = 0; i < keys; i++) {
            byte[] key = ("key-" + i).getBytes(StandardCharsets.US_ASCII);
            bitsDiffering += Long.bitCount(hashOfArray(1, key) ^ hashOfArray(2, key));
        }
        double mean = (double) bitsDiffering / keys;
        assertTrue(mean > 30 && mean < 34, "seed=" + seed + ": mean differing bits between seeds 1 and 2: " + mean);
        // Random per-map seeds by default.
        Set<Long> seeds = new HashSet<>();
        for (int i = 0; i < 100; i++) {
            seeds.add(KeyHash.randomSeed());
        }
        assertTrue(seeds.size() > 95, "random seeds repeat: " + seeds.size() + " distinct of 100");
    }

    @Test
    void sequentialKeysSpreadOverTopAndLowBits() {
        long seed = testSeed("sequentialKeysSpreadOverTopAndLowBits");
        long[] hashSeeds = {0, 1, seed};
        IntFunction<byte[]> littleEndianLong = i -> ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
                .putLong(i).array();
        IntFunction<byte[]> decimal = i -> ("key-" + i).getBytes(StandardCharsets.US_ASCII);
        IntFunction<byte[]> long24 = i -> String.format("tenant/%08d/config-x", i).getBytes(StandardCharsets.US_ASCII);
        IntFunction<byte[]> tiny = i -> new byte[] {(byte) i, (byte) (i >>> 8), (byte) (i >>> 16)};
        String[] names = {"8-byte little-endian counters", "\"key-N\"", "24-byte paths", "3-byte counters"};
        IntFunction<?>[] families = {littleEndianLong, decimal, long24, tiny};
        for (long hashSeed : hashSeeds) {
            for (int f = 0; f < families.length; f++) {
                @SuppressWarnings("unchecked")
                IntFunction<byte[]> keys = (IntFunction<byte[]>) families[f];
                String where = "seed=" + seed + " hashSeed=" + hashSeed + " keys=" + names[f];
                checkUniform(hashSeed, keys, h -> h >>> 56, 256, where + ", top 8 bits (directory)");
                checkUniform(hashSeed, keys, h -> h & 0x7F, 128, where + ", low 7 bits (control byte)");
                checkUniform(hashSeed, keys, h -> (h >>> 7) & 0x7F, 128, where + ", bits 7..13 (group)");
            }
        }
    }

    /**
     * 100 000 keys into {@code buckets}: chi-square under twice its degrees of freedom (a random
     * function stays below that with probability about 1 - 1e-10), and no bucket below half or
     * above one and a half times its share.
     */
    private static void checkUniform(long hashSeed, IntFunction<byte[]> keys, LongUnaryOperator bucketOf,
            int buckets, String where) {
        int n = 100_000;
        long[] counts = new long[buckets];
        for (int i = 0; i < n; i++) {
            counts[(int) bucketOf.applyAsLong(hashOfArray(hashSeed, keys.apply(i)))]++;
        }
        double expected = (double) n / buckets;
        double chi2 = 0;
        long min = Long.MAX_VALUE;
        long max = 0;
        for (long c : counts) {
            chi2 += (c - expected) * (c - expected) / expected;
            min = Math.min(min, c);
            max = Math.max(max, c);
        }
        int df = buckets - 1;
        assertTrue(chi2 < 2.0 * df, where + ": chi-square " + chi2 + " with " + df + " degrees of freedom");
        assertTrue(min > expected / 2 && max < expected * 1.5,
                where + ": bucket counts from " + min + " to " + max + ", expected about " + expected);
    }
}
