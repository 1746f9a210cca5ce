package dev.mapcast.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The map gives memory back: on close, on compact(), and by itself as it empties; and its memory
 * figures say what it holds.
 */
class MemoryReclaimTest extends AbstractOffHeapTest {

    private static final int ENTRIES = 200_000;

    /** A 16-byte key. */
    private static byte[] key(int i) {
        return String.format("key-%012d", i).getBytes(StandardCharsets.US_ASCII);
    }

    /** A 64-byte value derived from i. */
    private static byte[] value(int i) {
        byte[] v = new byte[64];
        long x = i * 0x9E3779B97F4A7C15L;
        for (int j = 0; j < v.length; j++) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            v[j] = (byte) x;
        }
        return v;
    }

    private static int recordLength(byte[] key, byte[] value) {
        return WireRecords.recordLength(key.length, value.length);
    }

    // ---- closing ----

    @ParameterizedTest(name = "{0} order, {1} entries, {2} views left open, threadSafe={3}")
    @CsvSource({
        "HASH, 0, 0, false",
        "INSERTION, 0, 1, true",
        "HASH, 1, 0, true",
        "INSERTION, 1, 1, false",
        "HASH, 1000, 2, false",
        "INSERTION, 1000, 2, true",
        "HASH, 50000, 3, true",
        "INSERTION, 50000, 3, false",
    })
    void closeGivesBackEveryOffHeapByte(IterationOrder order, int entries, int views, boolean threadSafe) {
        long seed = testSeed("closeGivesBackEveryOffHeapByte " + order + " " + entries);
        Random rnd = new Random(seed);
        OffHeapMap map = build(OffHeapMap.builder().order(order).threadSafe(threadSafe).segmentSize(4096)
                .hashSeed(seed));
        List<PinnedView> open = new ArrayList<>();
        for (int i = 0; i < entries; i++) {
            byte[] v = rnd.nextInt(100) == 0 ? Keys.randomBytes(rnd, 4096 + rnd.nextInt(8192)) : value(i);
            map.put(key(i), v);
            if (i % 3 == 2) {
                map.remove(key(rnd.nextInt(i)));
            }
            if (i % 5 == 4) {
                map.put(key(rnd.nextInt(i)), value(-i));
            }
            if (views > 0 && open.size() < views && rnd.nextInt(Math.max(1, entries / views)) == 0) {
                open.add(map.pin());
            }
        }
        while (open.size() < views) {
            open.add(map.pin());
        }
        if (entries > 1) {
            map.compact();
        }
        assertEquals(offHeapBytesSinceStart(), map.memoryStats().reservedBytes(),
                "seed=" + seed + ": reservedBytes vs off-heap bytes held");
        assertTrue(offHeapBytesSinceStart() > 0, "seed=" + seed + ": an open map holds some memory");

        map.close();

        assertEquals(0, offHeapBytesSinceStart(), "seed=" + seed + ": off-heap bytes held after close()");
        map.close(); // idempotent
        for (PinnedView view : open) {
            view.close(); // idempotent after the map's close
        }
        assertEquals(0, offHeapBytesSinceStart(), "seed=" + seed + ": off-heap bytes held after closing again");
    }

    // ---- compaction after deleting 99% ----

    @ParameterizedTest(name = "{0} order, segmentSize {1}")
    @CsvSource({"HASH, 65536", "INSERTION, 65536", "HASH, 4096", "INSERTION, 4096"})
    void compactedMapIsAboutAsSmallAsAFreshMapOfTheSurvivors(IterationOrder order, int segmentSize) {
        long seed = testSeed("compactedMapIsAboutAsSmallAsAFreshMapOfTheSurvivors " + order + " " + segmentSize);
        try (OffHeapMap map = build(OffHeapMap.builder().order(order).segmentSize(segmentSize).hashSeed(seed))) {
            fill(map);
            deleteAllButEveryHundredth(map, new Random(seed));
            map.compact();
            long compacted = map.memoryStats().reservedBytes();

            try (OffHeapMap fresh = build(OffHeapMap.builder().order(order).segmentSize(segmentSize)
                    .hashSeed(seed + 1))) {
                for (int i = 0; i < ENTRIES; i += 100) {
                    fresh.put(key(i), value(i));
                }
                long survivors = fresh.memoryStats().reservedBytes();
                double ratio = (double) compacted / survivors;
                System.out.printf("[mapcast] %s, segmentSize %d: 200k entries, 99%% deleted, compacted: %d "
                        + "reserved bytes; fresh map of the %d survivors: %d; ratio %.3f%n", order, segmentSize,
                        compacted, fresh.size(), survivors, ratio);
                assertEquals(map.size(), fresh.size());
                assertEquals(fresh.memoryStats().liveBytes(), map.memoryStats().liveBytes(),
                        "seed=" + seed + ": live bytes of equal contents");
                assertTrue(ratio <= 1.15, "seed=" + seed + " " + order + " segmentSize " + segmentSize + ": compacted map reserves " + compacted
                        + " bytes, " + String.format("%.3f", ratio) + "x a fresh map of the survivors (" + survivors
                        + "); expected at most 1.15x. compacted " + map.memoryStats() + "; fresh "
                        + fresh.memoryStats());
            }
        }
    }

    // ---- shrinking without compact() ----

    @ParameterizedTest
    @EnumSource(IterationOrder.class)
    void mostlyEmptyMapShrinksWithoutCompact(IterationOrder order) {
        long seed = testSeed("mostlyEmptyMapShrinksWithoutCompact " + order);
        try (OffHeapMap map = build(OffHeapMap.builder().order(order).hashSeed(seed))) {
            fill(map);
            long peak = map.memoryStats().reservedBytes();
            deleteAllButEveryHundredth(map, new Random(seed));
            MemoryStats after = map.memoryStats();
            System.out.printf("[mapcast] %s: peak %d reserved bytes with 200k entries, %d after deleting 99%% "
                    + "without compact() (%.1f%%)%n", order, peak, after.reservedBytes(),
                    100.0 * after.reservedBytes() / peak);
            assertEquals(offHeapBytesSinceStart(), after.reservedBytes(), "seed=" + seed);
            assertTrue(after.reservedBytes() < peak / 4, "seed=" + seed + " " + order + ": after deleting 99% the "
                    + "map still reserves " + after.reservedBytes() + " of its peak " + peak + " bytes; " + after);
        }
    }

    // ---- compaction figures ----

    @ParameterizedTest
    @EnumSource(IterationOrder.class)
    void compactReclaimsEveryDeadByteAndTombstone(IterationOrder order) {
        long seed = testSeed("compactReclaimsEveryDeadByteAndTombstone " + order);
        Random rnd = new Random(seed);
        try (OffHeapMap map = build(OffHeapMap.builder().order(order).hashSeed(seed).autoCompaction(false)
                .segmentSize(8192))) {
            Map<String, byte[]> model = new HashMap<>();
            List<String> keys = new ArrayList<>();
            long killed = 0;
            for (int i = 0; i < 60_000; i++) {
                int roll = rnd.nextInt(10);
                if (roll < 5 || keys.isEmpty()) {
                    String k = Keys.random(rnd);
                    byte[] v = Keys.randomBytes(rnd, rnd.nextInt(300));
                    byte[] old = model.put(k, v);
                    if (old == null) {
                        keys.add(k);
                    } else {
                        killed += WireRecords.recordLength(k.length(), old.length);
                    }
                    map.put(Keys.bytes(k), v);
                } else if (roll < 7) {
                    String k = keys.get(rnd.nextInt(keys.size()));
                    byte[] v = Keys.randomBytes(rnd, rnd.nextInt(300));
                    killed += WireRecords.recordLength(k.length(), model.put(k, v).length);
                    map.put(Keys.bytes(k), v);
                } else {
                    int at = rnd.nextInt(keys.size());
                    String k = keys.get(at);
                    Collections.swap(keys, at, keys.size() - 1);
                    keys.remove(keys.size() - 1);
                    killed += WireRecords.recordLength(k.length(), model.remove(k).length);
                    assertTrue(map.remove(Keys.bytes(k)));
                }
            }
            long live = 0;
            for (Map.Entry<String, byte[]> e : model.entrySet()) {
                live += WireRecords.recordLength(e.getKey().length(), e.getValue().length);
            }
            MemoryStats before = map.memoryStats();
            String where = "seed=" + seed + " " + order;
            assertEquals(live, before.liveBytes(), where + ": liveBytes = the sum of the live records' lengths");
            assertEquals(killed, before.deadBytes(), where + ": without auto compaction deadBytes = the sum of the "
                    + "overwritten and removed records' lengths");
            assertTrue(before.tombstones() > 0, where + ": the history should have left tombstones: " + before);

            CompactionResult result = map.compact();
            MemoryStats after = map.memoryStats();
            System.out.println("[mapcast] " + order + ": before compact " + before + ", " + result + ", after " + after);
            assertEquals(0, after.deadBytes(), where + ": deadBytes after compact()");
            assertEquals(0, after.tombstones(), where + ": tombstones after compact()");
            assertEquals(live, after.liveBytes(), where + ": liveBytes after compact()");
            assertEquals(model.size(), after.size(), where);
            assertEquals(before.deadBytes(), result.deadBytesReclaimed(), where + ": deadBytesReclaimed");
            assertEquals(before.tombstones(), result.tombstonesPurged(), where + ": tombstonesPurged");
            assertEquals(before.reservedBytes() - after.reservedBytes(), result.bytesReleased(),
                    where + ": bytesReleased");
            assertTrue(result.bytesReleased() > 0, where + ": compacting " + killed + " dead bytes released nothing");
            assertEquals(offHeapBytesSinceStart(), after.reservedBytes(), where);
            for (Map.Entry<String, byte[]> e : model.entrySet()) {
                assertArrayEquals(e.getValue(), map.get(Keys.bytes(e.getKey())), where);
            }
        }
    }

    @Test
    void memoryKeptForAPinnedViewIsFreedWhenTheViewCloses() {
        long seed = testSeed("memoryKeptForAPinnedViewIsFreedWhenTheViewCloses");
        String where = "seed=" + seed;
        try (OffHeapMap map = build(OffHeapMap.builder().hashSeed(seed).segmentSize(4096))) {
            for (int i = 0; i < 20_000; i++) {
                map.put(key(i), value(i));
            }
            PinnedView view = map.pin();
            for (int i = 0; i < 20_000; i++) {
                if (i % 10 != 0) {
                    map.remove(key(i));
                }
            }
            map.compact();
            MemoryStats pinned = map.memoryStats();
            assertEquals(0, pinned.deadBytes(), where);
            assertEquals(1, pinned.pinnedViews(), where);
            assertEquals(offHeapBytesSinceStart(), pinned.reservedBytes(), where);
            for (int i = 0; i < 20_000; i += 7) {
                assertArrayEquals(value(i), view.get(key(i)), where + ": the view still answers for key " + i);
                assertArrayEquals(i % 10 == 0 ? value(i) : null, map.get(key(i)), where);
            }

            view.close();

            MemoryStats released = map.memoryStats();
            System.out.println("[mapcast] reserved with the view open after compact(): " + pinned.reservedBytes()
                    + ", after closing it: " + released.reservedBytes());
            assertEquals(0, released.pinnedViews(), where);
            assertEquals(offHeapBytesSinceStart(), released.reservedBytes(), where);
            assertTrue(released.reservedBytes() < pinned.reservedBytes() / 2, where + ": closing the only view "
                    + "should free the segments it kept: " + pinned.reservedBytes() + " -> " + released.reservedBytes());
        }
    }

    // ---- the compaction threshold counts dead records only ----

    /** A 16-byte key and a 126-byte value: records of 149 bytes, 27 to a 4 KiB segment, 73 bytes (1.8%) unused. */
    private static byte[] value149(int i) {
        return Arrays.copyOf(value(i), 126);
    }

    /**
     * compactionThreshold is "the fraction of a segment that must be dead" before automatic
     * compaction moves its records. Inserting only makes no dead record, so nothing should move.
     * Moves are visible while a view is open: the view keeps every segment moved away from, so the
     * map with a view must not hold much more than the same map without one (the 5000 records the
     * view sees take 745 000 bytes; moving them all would show).
     */
    @ParameterizedTest(name = "compactionThreshold {0}")
    @ValueSource(doubles = {0.5, 0.01})
    void insertingOnlyMovesNoRecord(double threshold) {
        String where = "compactionThreshold=" + threshold + ", 16-byte keys, 126-byte values, 4 KiB segments";
        try (OffHeapMap viewed = build(OffHeapMap.builder().hashSeed(1).segmentSize(4096)
                .compactionThreshold(threshold));
                OffHeapMap plain = build(OffHeapMap.builder().hashSeed(1).segmentSize(4096)
                        .compactionThreshold(threshold))) {
            assertEquals(149, WireRecords.recordLength(16, 126));
            for (int i = 0; i < 5_000; i++) {
                viewed.put(key(i), value149(i));
                plain.put(key(i), value149(i));
            }
            try (PinnedView view = viewed.pin()) {
                for (int i = 5_000; i < 6_000; i++) {
                    viewed.put(key(i), value149(i));
                    plain.put(key(i), value149(i));
                }
                MemoryStats withView = viewed.memoryStats();
                MemoryStats without = plain.memoryStats();
                System.out.println("[mapcast] " + where + ": 1000 inserts after a view was pinned: "
                        + withView.reservedBytes() + " reserved bytes; the same map without the view: "
                        + without.reservedBytes());
                assertEquals(0, without.deadBytes(), where);
                assertEquals(5_000, view.size(), where);
                // The view legitimately keeps the index tables the inserts copied, and its own copies: well under 25%.
                assertTrue(withView.reservedBytes() <= without.reservedBytes() * 1.25, where + ": records of an "
                        + "insert-only map were moved (the open view keeps what they moved from): " + withView
                        + " vs the same map without a view: " + without);
            }
        }
    }

    /**
     * compact() of a map without dead records has nothing to do, and must return whatever the
     * (valid) compactionThreshold. The map is thread-safe so that, should compact() not return,
     * close() can stop it between two of its steps.
     */
    @ParameterizedTest(name = "compactionThreshold {0}")
    @ValueSource(doubles = {0.5, 0.01})
    void compactOfAMapWithoutDeadRecordsReturns(double threshold) throws InterruptedException {
        String where = "compactionThreshold=" + threshold + ", 2000 entries, 16-byte keys, 126-byte values, "
                + "4 KiB segments, autoCompaction off";
        OffHeapMap map = build(OffHeapMap.builder().hashSeed(1).segmentSize(4096).autoCompaction(false)
                .compactionThreshold(threshold).threadSafe(true));
        for (int i = 0; i < 2_000; i++) {
            map.put(key(i), value149(i));
        }
        assertEquals(0, map.memoryStats().deadBytes(), where);
        AtomicReference<Object> outcome = new AtomicReference<>();
        Thread compaction = new Thread(() -> {
            try {
                outcome.set(map.compact());
            } catch (Throwable t) {
                outcome.set(t);
            }
        }, "compaction");
        compaction.setDaemon(true);
        compaction.start();
        compaction.join(5_000);
        boolean returned = !compaction.isAlive();
        if (!returned) {
            map.close(); // its next step finds the map closed and throws
            compaction.join(10_000);
        }
        assertTrue(returned, where + ": compact() had not returned after 5 s (stopped by close(): " + outcome.get()
                + ")");
        assertTrue(outcome.get() instanceof CompactionResult, where + ": " + outcome.get());
        assertEquals(0, ((CompactionResult) outcome.get()).deadBytesReclaimed(), where);
        assertEquals(2_000, map.size(), where);
        map.close();
    }

    // ---- tombstone warning ----

    @Test
    void tombstoneWarningFiresWhenTombstonesCrossTheRatio() {
        long seed = testSeed("tombstoneWarningFiresWhenTombstonesCrossTheRatio");
        String where = "seed=" + seed;
        List<MemoryStats> warnings = new ArrayList<>();
        Thread writer = Thread.currentThread();
        try (OffHeapMap map = build(OffHeapMap.builder().hashSeed(seed).autoCompaction(false)
                .tombstoneWarningRatio(0.01)
                .onTombstoneWarning(stats -> {
                    assertSame(writer, Thread.currentThread(), "the listener runs on the writing thread");
                    warnings.add(stats);
                }))) {
            // Fill the index to a high load so that many groups are full: removes from full groups leave tombstones.
            int n = 0;
            while (n < 400 || map.memoryStats().load() < 0.8) {
                map.put(key(n), value(n));
                n++;
            }
            assertFalse(map.memoryStats().tombstoneWarning(), where);
            assertTrue(warnings.isEmpty(), where);

            boolean warned = false;
            int crossings = 0;
            Random rnd = new Random(seed);
            List<Integer> order = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                order.add(i);
            }
            Collections.shuffle(order, rnd);
            int removes = 0;
            for (int i : order.subList(0, n / 10)) {
                assertTrue(map.remove(key(i)), where);
                removes++;
                MemoryStats stats = map.memoryStats();
                if (stats.tombstoneWarning() && !warned) {
                    crossings++;
                    MemoryStats fired = warnings.get(warnings.size() - 1);
                    assertTrue(fired.tombstoneWarning(), where + ": the listener's figures show the warning: " + fired);
                    assertEquals(stats.tombstones(), fired.tombstones(), where);
                    assertTrue(fired.tombstones() > 0.01 * fired.size() / fired.load(), where + ": " + fired);
                }
                warned = stats.tombstoneWarning();
                int expected = crossings;
                int r = removes;
                assertEquals(expected, warnings.size(), () -> where + ": the listener fires once per upward crossing "
                        + "(after " + r + " removes, warning now " + stats.tombstoneWarning() + ", " + stats + ")");
            }
            assertTrue(crossings >= 1, where + ": removing 10% of a map at load 0.8 should cross a tombstone ratio "
                    + "of 0.01: " + map.memoryStats());
            System.out.println("[mapcast] tombstone warning: " + warnings.get(0));

            CompactionResult result = map.compact();
            MemoryStats after = map.memoryStats();
            assertTrue(result.tombstonesPurged() > 0, where + ": " + result);
            assertEquals(0, after.tombstones(), where);
            assertFalse(after.tombstoneWarning(), where + ": the warning clears after compact(): " + after);
            for (int i : order.subList(0, n / 10)) {
                assertNull(map.get(key(i)), where);
            }
            assertEquals(n - n / 10, map.size(), where);
        }
    }

    // ---- helpers ----

    private static void fill(OffHeapMap map) {
        for (int i = 0; i < ENTRIES; i++) {
            map.put(key(i), value(i));
        }
        assertEquals(ENTRIES, map.size());
        assertEquals((long) ENTRIES * recordLength(key(0), value(0)), map.memoryStats().liveBytes());
    }

    /** Removes every key but each hundredth, in random order. */
    private static void deleteAllButEveryHundredth(OffHeapMap map, Random rnd) {
        int[] doomed = new int[ENTRIES - ENTRIES / 100];
        int n = 0;
        for (int i = 0; i < ENTRIES; i++) {
            if (i % 100 != 0) {
                doomed[n++] = i;
            }
        }
        for (int i = doomed.length - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = doomed[i];
            doomed[i] = doomed[j];
            doomed[j] = t;
        }
        for (int i : doomed) {
            map.remove(key(i));
        }
        assertEquals(ENTRIES / 100, map.size());
    }
}
