package dev.mapcast.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@link OffHeapMap#putAll}: a batch is exactly that many puts in order (content, order, digest,
 * the count of new keys), across index growth and splits, with repeated keys inside one batch;
 * a bad span anywhere in a batch is refused before anything is put.
 */
class PutAllTest extends AbstractOffHeapTest {

    private static final int ENTRIES = 60_000;

    @ParameterizedTest(name = "{0} threadSafe={1}")
    @CsvSource({"HASH, false", "HASH, true", "INSERTION, false", "INSERTION, true"})
    void batchesEqualOnePutAtATime(IterationOrder order, boolean threadSafe) {
        long seed = testSeed("PutAllTest[" + order + " threadSafe=" + threadSafe + "]");
        Random rnd = new Random(seed);
        // Keys from a pool a third the size of the stream: many repeats, some inside one batch.
        ByteBuffer src = ByteBuffer.allocateDirect(ENTRIES * 64);
        int[] spans = new int[ENTRIES * 4];
        for (int i = 0; i < ENTRIES; i++) {
            byte[] key = ("key-" + rnd.nextInt(ENTRIES / 3)).getBytes();
            byte[] value = new byte[rnd.nextInt(24)];
            rnd.nextBytes(value);
            spans[4 * i] = src.position();
            spans[4 * i + 1] = key.length;
            src.put(key);
            spans[4 * i + 2] = src.position();
            spans[4 * i + 3] = value.length;
            src.put(value);
        }
        OffHeapMap one = build(OffHeapMap.builder().order(order).threadSafe(threadSafe).hashSeed(seed).trackDigest(true));
        OffHeapMap batched = build(OffHeapMap.builder().order(order).threadSafe(threadSafe).hashSeed(seed).trackDigest(true));
        Set<String> seen = new HashSet<>();
        for (int from = 0; from < ENTRIES; ) {
            int count = Math.min(ENTRIES - from, rnd.nextInt(5) == 0 ? rnd.nextInt(300) : rnd.nextInt(20));
            int newKeys = 0;
            for (int i = from; i < from + count; i++) {
                if (one.put(src, spans[4 * i], spans[4 * i + 1], spans[4 * i + 2], spans[4 * i + 3])) {
                    newKeys++;
                }
            }
            int[] batch = new int[count * 4 + 4 * rnd.nextInt(3)];  // sometimes longer than count needs
            System.arraycopy(spans, 4 * from, batch, 0, count * 4);
            String where = "seed=" + seed + ", batch of " + count + " from entry " + from;
            assertEquals(newKeys, batched.putAll(src, batch, count), where + ": new keys");
            assertEquals(one.size(), batched.size(), where + ": size");
            assertEquals(one.digest(), batched.digest(), where + ": digest");
            from += count;
            seen.add(where);
        }
        assertTrue(seen.size() > 100, "seed=" + seed + ": only " + seen.size() + " batches");
        assertArrayEquals(records(one), records(batched), "seed=" + seed + ": records in iteration order");
    }

    @ParameterizedTest
    @EnumSource(IterationOrder.class)
    void aBadSpanAnywhereInTheBatchChangesNothing(IterationOrder order) {
        OffHeapMap map = build(OffHeapMap.builder().order(order).maxValueLength(8).trackDigest(true));
        map.put("kept".getBytes(), "v".getBytes());
        long digest = map.digest();
        ByteBuffer src = ByteBuffer.allocate(64);
        src.put("abcdefghijklmnopqrstuvwxyz0123456789".getBytes());
        int[] spans = {0, 2, 2, 3, 5, 2, 7, 3, 10, 2, 12, 3};

        int[] tooLong = spans.clone();
        tooLong[7] = 9;
        IllegalArgumentException longValue =
                assertThrows(IllegalArgumentException.class, () -> map.putAll(src, tooLong, 3));
        assertTrue(longValue.getMessage().contains("value") && longValue.getMessage().contains("9"),
                longValue.getMessage());

        int[] outside = spans.clone();
        outside[8] = 63;
        IndexOutOfBoundsException outOfRange =
                assertThrows(IndexOutOfBoundsException.class, () -> map.putAll(src, outside, 3));
        assertTrue(outOfRange.getMessage().contains("key: index 63, length 2"), outOfRange.getMessage());

        IndexOutOfBoundsException count = assertThrows(IndexOutOfBoundsException.class,
                () -> map.putAll(src, spans, 4));
        assertTrue(count.getMessage().contains("count 4"), count.getMessage());
        assertThrows(IndexOutOfBoundsException.class, () -> map.putAll(src, spans, -1));
        assertThrows(NullPointerException.class, () -> map.putAll(src, null, 0));

        assertEquals(1, map.size());
        assertEquals(digest, map.digest());
        assertEquals(0, map.putAll(src, spans, 0));
        assertEquals(3, map.putAll(src, spans, 3));
        assertArrayEquals("cde".getBytes(), map.get("ab".getBytes()));
    }

    /** The map's records in iteration order, read through a pinned view (thread-safe maps have no live cursor). */
    private static byte[] records(OffHeapMap map) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteBuffer buffer = ByteBuffer.allocate(1 << 16);
        try (PinnedView view = map.pin()) {
            EntryCursor cursor = view.cursor();
            while (!cursor.isExhausted()) {
                buffer.clear();
                cursor.copyRecordsTo(buffer, buffer.capacity());
                out.write(buffer.array(), 0, buffer.position());
            }
        }
        return out.toByteArray();
    }
}
