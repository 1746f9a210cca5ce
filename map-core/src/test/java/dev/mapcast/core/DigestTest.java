package dev.mapcast.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.Test;

/** XXH64 against the reference implementation, and the map's incremental digest against a recount. */
class DigestTest extends AbstractOffHeapTest {

    /** Vectors from {@code xxhsum -H1} (xxHash 0.8.1, Debian's xxhash package). */
    @ParameterizedTest
    @CsvSource({
        "'', ef46db3751d8e999",
        "a, d24ec4f1a98c6e5b",
        "abc, 44bc2cf5ad770999",
        "Nobody inspects the spammish repetition, fbcea83c8a378bf1",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefX, 27ed8202933e5bef",
    })
    void xxh64MatchesTheReferenceOnText(String text, String expectedHex) {
        byte[] bytes = text.getBytes(StandardCharsets.US_ASCII);
        assertEquals(Long.parseUnsignedLong(expectedHex, 16), Xxh64.hash(bytes, 0, bytes.length, 0), text);
    }

    /**
     * Every length path (the 32-byte stripes, 8-byte, 4-byte and 1-byte tails), over bytes
     * {@code (i * 31 + 7) & 0xFF}, vectors from {@code xxhsum -H1} on the same bytes.
     */
    @ParameterizedTest
    @CsvSource({
        "0, ef46db3751d8e999", "1, a96c7f0ce858bbb7", "3, 56e6957632a487f9", "4, c60d15b1e3ff8f04",
        "7, afbefc3d6c6f9a8e", "8, 3da5c7aa269683e0", "9, 4b17a9ba9e215c09", "15, ae2a37eb9357caa7",
        "16, a19ad429b02bc413", "31, 4a74f3a1a39ad4a1", "32, 8d57d6a4671cc43d", "33, 62c9fd21ed857664",
        "63, 5c320a0d2707057f", "64, 7bbabbc45729d17e", "100, efa0ad2d3e70c151", "257, 6ff15897658784e0",
    })
    void xxh64MatchesTheReferenceOnEveryLengthPath(int length, String expectedHex) {
        byte[] padded = new byte[length + 5];
        for (int i = 0; i < length; i++) {
            padded[3 + i] = (byte) (i * 31 + 7);
        }
        assertEquals(Long.parseUnsignedLong(expectedHex, 16), Xxh64.hash(padded, 3, length, 0), "length " + length);
        long address = NativeMemory.allocate(Math.max(1, length));
        try {
            NativeMemory.copy(padded, NativeMemory.BYTE_ARRAY_OFFSET + 3, null, address, length);
            assertEquals(Long.parseUnsignedLong(expectedHex, 16), Xxh64.hash(null, address, length, 0),
                    "length " + length + " off-heap");
        } finally {
            NativeMemory.free(address, Math.max(1, length));
        }
    }

    @Test
    void xxh64RejectsARangeOutsideTheArray() {
        IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> Xxh64.hash(new byte[4], 2, 3, 0));
        assertTrue(e.getMessage().contains("offset 2, length 3"), e.getMessage());
    }

    @ParameterizedTest
    @EnumSource(IterationOrder.class)
    void incrementalDigestEqualsARecountAfterRandomWritesAndCompaction(IterationOrder order) {
        long seed = testSeed("incrementalDigestEqualsARecount " + order);
        Random rnd = new Random(seed);
        OffHeapMap map = build(OffHeapMap.builder().order(order).segmentSize(4096).trackDigest(true));
        assertEquals(0, map.digest(), "seed " + seed + ": empty map");
        Map<String, byte[]> model = new HashMap<>();
        for (int i = 0; i < 60_000; i++) {
            String key = "k" + rnd.nextInt(3_000);
            if (rnd.nextInt(3) == 0) {
                map.remove(Keys.bytes(key));
                model.remove(key);
            } else {
                byte[] value = Keys.randomBytes(rnd, rnd.nextInt(300));
                map.put(Keys.bytes(key), value);
                model.put(key, value);
            }
            if (i % 20_000 == 19_999) {
                map.compact();
            }
            if (i % 5_000 == 0) {
                assertEquals(recount(model), map.digest(), "seed " + seed + ", op " + i);
            }
        }
        assertEquals(recount(model), map.digest(), "seed " + seed + ": at the end");
        for (String key : new ArrayList<>(model.keySet())) {
            map.remove(Keys.bytes(key));
        }
        assertEquals(0, map.digest(), "seed " + seed + ": emptied map");
    }

    @Test
    void equalContentGivesEqualDigestsWhateverTheOrderOrHistory() {
        long seed = testSeed("equalContentGivesEqualDigests");
        Random rnd = new Random(seed);
        OffHeapMap hash = build(OffHeapMap.builder().trackDigest(true));
        OffHeapMap insertion = build(OffHeapMap.builder().order(IterationOrder.INSERTION).trackDigest(true));
        List<byte[]> keys = new ArrayList<>();
        for (int i = 0; i < 2_000; i++) {
            keys.add(Keys.bytes("key-" + i));
        }
        for (byte[] key : keys) {
            hash.put(key, Keys.randomBytes(rnd, 10));          // overwritten below
        }
        for (int i = keys.size() - 1; i >= 0; i--) {
            byte[] value = Keys.bytes("value-" + i);
            insertion.put(keys.get(i), value);
            hash.put(keys.get(i), value);
        }
        assertEquals(insertion.digest(), hash.digest(), "seed " + seed);
    }

    @Test
    void aPinnedViewKeepsTheDigestOfItsMoment() {
        OffHeapMap map = build(OffHeapMap.builder().trackDigest(true));
        map.put(Keys.bytes("a"), Keys.bytes("1"));
        long before = map.digest();
        try (PinnedView view = map.pin()) {
            map.put(Keys.bytes("b"), Keys.bytes("2"));
            map.remove(Keys.bytes("a"));
            assertEquals(before, view.digest());
            assertEquals(recount(Map.of("b", Keys.bytes("2"))), map.digest());
        }
    }

    /** A write's digest can be known before it applies: the map's digest is the sum of its entries' terms. */
    @Test
    void entryDigestsAreTheTermsTheDigestSums() {
        long seed = testSeed("entryDigestsAreTheTermsTheDigestSums");
        Random rnd = new Random(seed);
        OffHeapMap map = build(OffHeapMap.builder().trackDigest(true));
        OffHeapMap untracked = build(OffHeapMap.builder());
        Map<String, byte[]> model = new HashMap<>();
        for (int i = 0; i < 500; i++) {
            String key = "k" + rnd.nextInt(200) + (i % 50 == 0 ? "/long".repeat(40) : "");
            // Empty values, and lengths past one varint byte (the record's lengths take two).
            byte[] value = Keys.randomBytes(rnd, i % 7 == 0 ? 0 : i % 11 == 0 ? 300 : rnd.nextInt(30));
            long expected = map.digest() - map.entryDigest(Keys.bytes(key)) + OffHeapMap.entryDigest(Keys.bytes(key), value);
            map.put(Keys.bytes(key), value);
            untracked.put(Keys.bytes(key), value);
            model.put(key, value);
            assertEquals(expected, map.digest(), "seed " + seed + ", put " + i);
            assertEquals(OffHeapMap.entryDigest(Keys.bytes(key), value), untracked.entryDigest(Keys.bytes(key)),
                    "seed " + seed + ": the stored record's term, no tracking needed");
        }
        assertEquals(recount(model), map.digest(), "seed " + seed);
        assertEquals(0, map.entryDigest(Keys.bytes("absent")));
        String gone = model.keySet().iterator().next();
        long expected = map.digest() - map.entryDigest(Keys.bytes(gone));
        map.remove(Keys.bytes(gone));
        assertEquals(expected, map.digest(), "seed " + seed + ": a removal takes its term away");
        NullPointerException e = assertThrows(NullPointerException.class, () -> OffHeapMap.entryDigest(null, new byte[0]));
        assertTrue(e.getMessage().contains("key"), e.getMessage());
    }

    @Test
    void digestOfAMapThatDoesNotTrackItIsAnError() {
        OffHeapMap map = build(OffHeapMap.builder());
        IllegalStateException e = assertThrows(IllegalStateException.class, map::digest);
        assertTrue(e.getMessage().contains("trackDigest(true)"), e.getMessage());
        try (PinnedView view = map.pin()) {
            assertThrows(IllegalStateException.class, view::digest);
        }
    }

    /** The contract's digest computed from scratch: canonical records encoded by hand, hashed, summed. */
    private static long recount(Map<String, byte[]> model) {
        long sum = 0;
        for (Map.Entry<String, byte[]> e : model.entrySet()) {
            byte[] key = Keys.bytes(e.getKey());
            ByteArrayOutputStream canonical = new ByteArrayOutputStream();
            canonical.write(0x0A);
            canonical.writeBytes(WireRecords.varint(key.length));
            canonical.writeBytes(key);
            canonical.write(0x12);
            canonical.writeBytes(WireRecords.varint(e.getValue().length));
            canonical.writeBytes(e.getValue());
            byte[] bytes = canonical.toByteArray();
            sum += Xxh64.hash(bytes, 0, bytes.length, 0);
        }
        return sum;
    }
}
