package dev.mapcast.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A seeded random history of operations, run against every map variant and checked step by step
 * against {@link HashMap} (HASH order: content) or {@link LinkedHashMap} (INSERTION order: content
 * and order; both keep an updated key's place and move a removed-then-put key to the end).
 *
 * <p>The live key count moves in waves (grow to thousands or tens of thousands, shrink to near
 * zero, again), so index growth, splits, merges and shrinks, segment compaction and order-log
 * compaction all happen many times. Pinned views taken at random moments are checked much later
 * against a copy of the model taken at the same moment.
 *
 * <p>Rerun a failure with {@code -Dmapcast.seed=N}; {@code -Dmapcast.modelOps=N} sets the
 * operations per variant (default 200 000).
 */
class OffHeapMapModelTest extends AbstractOffHeapTest {

    private static final int OPS_PER_VARIANT = Integer.getInteger("mapcast.modelOps", 200_000);
    private static final int MAX_OPEN_VIEWS = 3;
    private static final int STATS_EVERY = 499;
    private static final int ITERATION_EVERY = 25_000;

    record Variant(IterationOrder order, boolean threadSafe, int segmentSize, boolean autoCompaction) {
        @Override
        public String toString() {
            return order + (threadSafe ? " threadSafe" : " singleWriter") + " segmentSize=" + segmentSize
                    + (autoCompaction ? " autoCompaction" : " manualCompaction");
        }
    }

    static Stream<Variant> variants() {
        List<Variant> variants = new ArrayList<>();
        for (IterationOrder order : IterationOrder.values()) {
            for (boolean threadSafe : new boolean[] {false, true}) {
                for (int segmentSize : new int[] {4096, 64 * 1024}) {
                    for (boolean auto : new boolean[] {true, false}) {
                        variants.add(new Variant(order, threadSafe, segmentSize, auto));
                    }
                }
            }
        }
        return variants.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void randomHistoryMatchesModel(Variant variant) {
        long seed = testSeed("OffHeapMapModelTest[" + variant + "]");
        long before = NativeMemory.allocatedBytes();
        new Run(variant, seed).execute(OPS_PER_VARIANT);
        assertEquals(before, NativeMemory.allocatedBytes(),
                "seed=" + seed + " variant=[" + variant + "]: off-heap bytes after the map and its views were closed");
    }

    /** One variant's history: the map, the model, the open views and what they must show. */
    private final class Run {
        private final Variant variant;
        private final long seed;
        private final Random rnd;
        private final OffHeapMap map;
        private final boolean insertion;
        private final Map<String, byte[]> model;
        private final KeyBag live = new KeyBag();
        private final ArrayDeque<String> removed = new ArrayDeque<>();
        private long modelLiveBytes;
        private final List<PinnedCheck> views = new ArrayList<>();

        private final ByteBuffer keyScratch = ByteBuffer.allocateDirect(40 + 64);
        private final ByteBuffer valueScratch;
        private final ByteBuffer dstScratch;

        private long op;
        private int waveTarget;
        private boolean growing = true;
        private int waves;
        private static final int RECENT = 8;
        private long recorded;
        private final long[] recentOps = new long[RECENT];
        private final String[] recentKinds = new String[RECENT];
        private final String[] recentKeys = new String[RECENT];
        private final int[] recentLengths = new int[RECENT];
        private final Supplier<String> where = this::where;

        Run(Variant variant, long seed) {
            this.variant = variant;
            this.seed = seed;
            this.rnd = new Random(seed);
            this.insertion = variant.order() == IterationOrder.INSERTION;
            this.model = insertion ? new LinkedHashMap<>() : new HashMap<>();
            this.map = build(OffHeapMap.builder()
                    .order(variant.order())
                    .threadSafe(variant.threadSafe())
                    .segmentSize(variant.segmentSize())
                    .autoCompaction(variant.autoCompaction())
                    .hashSeed(seed * 0x9E3779B97F4A7C15L));
            int largest = 2 * variant.segmentSize() + 64;
            this.valueScratch = ByteBuffer.allocateDirect(largest);
            this.dstScratch = ByteBuffer.allocateDirect(largest);
            this.waveTarget = nextPeak();
        }

        void execute(int ops) {
            for (op = 0; op < ops; op++) {
                step();
                assertEquals(model.size(), map.size(), where);
                if (op % STATS_EVERY == 0) {
                    checkStats();
                }
                if (op % ITERATION_EVERY == 0) {
                    checkMapIteration();
                }
                checkDueViews();
            }
            checkMapIteration();
            checkStats();
            for (PinnedCheck view : views) {
                checkView(view);
            }
            finish();
        }

        // ---- the history ----

        private void step() {
            if (growing && model.size() >= waveTarget) {
                turn(false);
            } else if (!growing && model.size() <= waveTarget) {
                turn(true);
            }
            int roll = rnd.nextInt(100);
            if (model.isEmpty() && roll < 70) {
                roll = 0;
            }
            if (growing) {
                if (roll < 58) {
                    putNew();
                } else if (roll < 68) {
                    putUpdate();
                } else if (roll < 74) {
                    removePresent();
                } else if (roll < 77) {
                    removeAbsent();
                } else if (roll < 93) {
                    readPresent();
                } else {
                    readAbsent();
                }
            } else {
                if (roll < 8) {
                    putNew();
                } else if (roll < 18) {
                    putUpdate();
                } else if (roll < 74) {
                    removePresent();
                } else if (roll < 77) {
                    removeAbsent();
                } else if (roll < 93) {
                    readPresent();
                } else {
                    readAbsent();
                }
            }
            if (rnd.nextInt(20_000) == 0) {
                compact();
            }
            if (views.size() < MAX_OPEN_VIEWS && rnd.nextInt(7_000) == 0) {
                pin();
            }
        }

        /** At the top or bottom of a wave: sometimes compact or look at everything, then turn. */
        private void turn(boolean grow) {
            waves++;
            if (rnd.nextBoolean()) {
                compact();
            }
            if (rnd.nextInt(3) == 0) {
                checkMapIteration();
            }
            growing = grow;
            waveTarget = grow ? nextPeak() : rnd.nextInt(30);
        }

        private int nextPeak() {
            return rnd.nextInt(5) == 0 ? 8_000 + rnd.nextInt(22_000) : 300 + rnd.nextInt(6_000);
        }

        private void putNew() {
            String key = freshKey();
            byte[] value = randomValue();
            record("put-new", key, value.length);
            assertTrue(put(key, value), () -> "put of a new key returned false; " + where());
            modelPut(key, value);
        }

        private void putUpdate() {
            if (model.isEmpty()) {
                putNew();
                return;
            }
            String key = live.random(rnd);
            byte[] value = randomValue();
            record("put-update", key, value.length);
            assertFalse(put(key, value), () -> "put of a present key returned true; " + where());
            modelPut(key, value);
        }

        private void removePresent() {
            if (model.isEmpty()) {
                removeAbsent();
                return;
            }
            String key = live.random(rnd);
            record("remove", key, -1);
            assertTrue(remove(key), () -> "remove of a present key returned false; " + where());
            modelRemove(key);
        }

        private void removeAbsent() {
            String key = absentKey();
            record("remove-absent", key, -1);
            assertFalse(remove(key), () -> "remove of an absent key returned true; " + where());
        }

        private void readPresent() {
            if (model.isEmpty()) {
                readAbsent();
                return;
            }
            String key = live.random(rnd);
            record("read", key, -1);
            checkRead(key, model.get(key));
        }

        private void readAbsent() {
            String key = absentKey();
            record("read-absent", key, -1);
            checkRead(key, null);
        }

        private void compact() {
            record("compact", "", -1);
            MemoryStats before = map.memoryStats();
            CompactionResult result = map.compact();
            MemoryStats after = map.memoryStats();
            assertEquals(0, after.deadBytes(), () -> "dead bytes after compact(); " + where());
            assertEquals(0, after.tombstones(), () -> "tombstones after compact(); " + where());
            assertEquals(modelLiveBytes, after.liveBytes(), () -> "live bytes after compact(); " + where());
            assertEquals(model.size(), after.size(), where);
            assertEquals(before.tombstones(), result.tombstonesPurged(), () -> "tombstonesPurged; " + where());
            assertEquals(before.deadBytes(), result.deadBytesReclaimed(), () -> "deadBytesReclaimed; " + where());
            assertEquals(Math.max(0, before.reservedBytes() - after.reservedBytes()), result.bytesReleased(),
                    () -> "bytesReleased; " + where());
            if (model.size() < 3_000) {
                checkMapIteration();
            }
        }

        private void pin() {
            record("pin", "", -1);
            PinnedView view = map.pin();
            Map<String, byte[]> copy = insertion ? new LinkedHashMap<>(model) : new HashMap<>(model);
            views.add(new PinnedCheck(view, copy, op, op + 2_000 + rnd.nextInt(40_000)));
        }

        // ---- calls in their random forms ----

        private boolean put(String key, byte[] value) {
            byte[] k = Keys.bytes(key);
            if (rnd.nextInt(4) != 0) {
                return map.put(k, value);
            }
            ByteBuffer kb = BufferKind.random(rnd).wrap(k, rnd, keyScratch);
            ByteBuffer vb = BufferKind.random(rnd).wrap(value, rnd, valueScratch);
            int kp = kb.position();
            int kl = kb.limit();
            int vp = vb.position();
            int vl = vb.limit();
            boolean inserted = map.put(kb, vb);
            assertEquals(kp, kb.position(), () -> "put moved the key buffer's position; " + where());
            assertEquals(kl, kb.limit(), where);
            assertEquals(vp, vb.position(), () -> "put moved the value buffer's position; " + where());
            assertEquals(vl, vb.limit(), where);
            return inserted;
        }

        private boolean remove(String key) {
            byte[] k = Keys.bytes(key);
            if (rnd.nextInt(4) != 0) {
                return map.remove(k);
            }
            ByteBuffer kb = BufferKind.random(rnd).wrap(k, rnd, keyScratch);
            int kp = kb.position();
            boolean removedIt = map.remove(kb);
            assertEquals(kp, kb.position(), () -> "remove moved the key buffer's position; " + where());
            return removedIt;
        }

        /** Reads {@code key} in one of the read forms; {@code expected} null means absent. */
        private void checkRead(String key, byte[] expected) {
            byte[] k = Keys.bytes(key);
            switch (rnd.nextInt(7)) {
                case 0:
                case 1:
                    assertArrayEquals(expected, map.get(k), () -> "get(byte[]); " + where());
                    break;
                case 2: {
                    ByteBuffer kb = BufferKind.random(rnd).wrap(k, rnd, keyScratch);
                    int kp = kb.position();
                    assertArrayEquals(expected, map.get(kb), () -> "get(ByteBuffer); " + where());
                    assertEquals(kp, kb.position(), () -> "get moved the key buffer's position; " + where());
                    break;
                }
                case 3:
                    assertEquals(expected != null, map.containsKey(k), () -> "containsKey(byte[]); " + where());
                    break;
                case 4: {
                    ByteBuffer kb = BufferKind.random(rnd).wrap(k, rnd, keyScratch);
                    assertEquals(expected != null, map.containsKey(kb), () -> "containsKey(ByteBuffer); " + where());
                    break;
                }
                default:
                    checkGetInto(k, expected, rnd.nextBoolean());
                    break;
            }
        }

        private void checkGetInto(byte[] key, byte[] expected, boolean direct) {
            int length = expected == null ? 0 : expected.length;
            int pad = rnd.nextInt(32);
            ByteBuffer dst = direct ? dstScratch.clear() : ByteBuffer.allocate(pad + length + rnd.nextInt(8));
            dst.position(pad);
            int limit = dst.limit();
            int got = map.getInto(key, dst);
            if (expected == null) {
                assertEquals(-1, got, () -> "getInto of an absent key; " + where());
                assertEquals(pad, dst.position(), () -> "getInto of an absent key moved dst; " + where());
                return;
            }
            assertEquals(expected.length, got, () -> "getInto length; " + where());
            assertEquals(pad + expected.length, dst.position(), () -> "getInto did not advance dst by the length; " + where());
            assertEquals(limit, dst.limit(), where);
            byte[] copied = new byte[expected.length];
            dst.position(pad);
            dst.get(copied);
            assertArrayEquals(expected, copied, () -> "getInto bytes; " + where());
        }

        // ---- the model ----

        private void modelPut(String key, byte[] value) {
            byte[] old = model.put(key, value);
            if (old == null) {
                live.add(key);
            } else {
                modelLiveBytes -= WireRecords.recordLength(key.length(), old.length);
            }
            modelLiveBytes += WireRecords.recordLength(key.length(), value.length);
        }

        private void modelRemove(String key) {
            byte[] old = model.remove(key);
            live.remove(key);
            modelLiveBytes -= WireRecords.recordLength(key.length(), old.length);
            if (removed.size() == 1_000) {
                removed.removeFirst();
            }
            removed.addLast(key);
        }

        /** A key not in the model: often a removed one (a re-put goes to the end in INSERTION order). */
        private String freshKey() {
            if (!removed.isEmpty() && rnd.nextInt(4) == 0) {
                String key = rnd.nextBoolean() ? removed.pollLast() : removed.pollFirst();
                if (!model.containsKey(key)) {
                    return key;
                }
            }
            return absentKey();
        }

        private String absentKey() {
            while (true) {
                String key = Keys.random(rnd);
                if (!model.containsKey(key)) {
                    return key;
                }
            }
        }

        private byte[] randomValue() {
            int roll = rnd.nextInt(2_500);
            int length;
            if (roll == 0) {
                length = variant.segmentSize() + 1 + rnd.nextInt(variant.segmentSize());
            } else if (roll < 50) {
                length = 0;
            } else {
                length = rnd.nextInt(201);
            }
            return Keys.randomBytes(rnd, length);
        }

        // ---- checks ----

        private void checkStats() {
            MemoryStats stats = map.memoryStats();
            assertEquals(model.size(), stats.size(), () -> "memoryStats().size(); " + where());
            assertEquals(modelLiveBytes, stats.liveBytes(), () -> "memoryStats().liveBytes(); " + where());
            assertEquals(views.size(), stats.pinnedViews(), () -> "memoryStats().pinnedViews(); " + where());
            assertEquals(offHeapBytesSinceStart(), stats.reservedBytes(),
                    () -> "memoryStats().reservedBytes() vs off-heap bytes actually held; " + where());
            assertTrue(stats.deadBytes() >= 0 && stats.tombstones() >= 0, () -> stats + "; " + where());
            assertTrue(stats.reservedBytes() >= stats.liveBytes() + stats.deadBytes(), () -> stats + "; " + where());
        }

        private void checkMapIteration() {
            int viewsBefore = map.memoryStats().pinnedViews();
            checkEntries(map.iterator(), model, "map.iterator()");
            assertEquals(viewsBefore, map.memoryStats().pinnedViews(),
                    () -> "a finished iteration left a pinned view open; " + where());
            if (!variant.threadSafe()) {
                checkCursor(map.cursor(), model, "map.cursor()");
            }
        }

        private void checkDueViews() {
            for (int i = 0; i < views.size(); i++) {
                PinnedCheck view = views.get(i);
                if (op < view.checkAt) {
                    continue;
                }
                checkView(view);
                if (rnd.nextInt(4) != 0) {
                    view.view.close();
                    assertThrows(IllegalStateException.class, view.view::size,
                            () -> "size() of a closed view; " + where());
                    views.remove(i--);
                } else {
                    view.checkAt = op + 5_000 + rnd.nextInt(40_000);
                }
            }
        }

        private void checkView(PinnedCheck check) {
            PinnedView view = check.view;
            Map<String, byte[]> expected = check.snapshot;
            Supplier<String> at = () -> "view pinned at op#" + check.pinnedAt + " with " + expected.size()
                    + " entries; " + where();
            assertEquals(expected.size(), view.size(), at);
            for (Map.Entry<String, byte[]> e : expected.entrySet()) {
                byte[] k = Keys.bytes(e.getKey());
                byte[] got = rnd.nextInt(4) == 0
                        ? view.get(BufferKind.random(rnd).wrap(k, rnd, keyScratch)) : view.get(k);
                if (!Arrays.equals(e.getValue(), got)) {
                    fail("view.get(" + Keys.printable(e.getKey()) + "): expected " + describe(e.getValue())
                            + " but was " + describe(got) + "; " + at.get());
                }
            }
            int absentChecked = 0;
            for (String key : model.keySet()) {
                if (absentChecked == 200) {
                    break;
                }
                if (!expected.containsKey(key)) {
                    absentChecked++;
                    assertNull(view.get(Keys.bytes(key)), () -> "view.get of a key put after the pin: "
                            + Keys.printable(key) + "; " + at.get());
                    assertFalse(view.containsKey(Keys.bytes(key)), at);
                }
            }
            for (int i = 0; i < 50; i++) {
                String key = Keys.random(rnd);
                if (!expected.containsKey(key)) {
                    assertNull(view.get(Keys.bytes(key)), () -> "view.get of an absent key " + Keys.printable(key)
                            + "; " + at.get());
                }
            }
            checkEntries(view.iterator(), expected, "view pinned at op#" + check.pinnedAt + ", iterator()");
            checkCursor(view.cursor(), expected, "view pinned at op#" + check.pinnedAt + ", cursor()");
        }

        /** The iteration holds exactly {@code expected}; in the same order for INSERTION. */
        private void checkEntries(Iterator<Map.Entry<byte[], byte[]>> entries, Map<String, byte[]> expected,
                String what) {
            if (insertion) {
                Iterator<Map.Entry<String, byte[]>> want = expected.entrySet().iterator();
                long i = 0;
                while (want.hasNext()) {
                    Map.Entry<String, byte[]> w = want.next();
                    long at = i++;
                    assertTrue(entries.hasNext(), () -> what + " ended after " + at + " of " + expected.size()
                            + " entries; " + where());
                    Map.Entry<byte[], byte[]> e = entries.next();
                    String key = Keys.string(e.getKey());
                    if (!key.equals(w.getKey()) || !Arrays.equals(w.getValue(), e.getValue())) {
                        fail(what + " entry #" + at + ": expected " + Keys.printable(w.getKey()) + "="
                                + describe(w.getValue()) + " but was " + Keys.printable(key) + "="
                                + describe(e.getValue()) + "; " + where());
                    }
                }
                assertFalse(entries.hasNext(), () -> what + " has more than the " + expected.size()
                        + " expected entries; " + where());
                return;
            }
            Map<String, byte[]> seen = new HashMap<>(expected.size() * 2);
            while (entries.hasNext()) {
                Map.Entry<byte[], byte[]> e = entries.next();
                String key = Keys.string(e.getKey());
                assertNull(seen.put(key, e.getValue()), () -> what + " returned " + Keys.printable(key)
                        + " twice; " + where());
                byte[] want = expected.get(key);
                if (!Arrays.equals(want, e.getValue())) {
                    fail(what + " entry " + Keys.printable(key) + ": expected " + describe(want) + " but was "
                            + describe(e.getValue()) + "; " + where());
                }
            }
            assertEquals(expected.size(), seen.size(), () -> what + " entry count; " + where());
        }

        /** Like {@link #checkEntries}, through a cursor, also checking each entry's record bytes. */
        private void checkCursor(EntryCursor cursor, Map<String, byte[]> expected, String what) {
            List<Map.Entry<byte[], byte[]>> entries = new ArrayList<>(expected.size());
            ByteBuffer record = ByteBuffer.allocate(4096);
            while (cursor.next()) {
                byte[] key = cursor.key();
                byte[] value = cursor.value();
                assertEquals(key.length, cursor.keyLength(), where);
                assertEquals(value.length, cursor.valueLength(), where);
                int length = cursor.recordLength();
                assertEquals(WireRecords.recordLength(key.length, value.length), length,
                        () -> what + " recordLength of " + Keys.printable(Keys.string(key)) + "; " + where());
                if (record.capacity() < length) {
                    record = ByteBuffer.allocate(length);
                }
                record.clear();
                cursor.copyRecordTo(record);
                assertEquals(length, record.position(), where);
                byte[] bytes = Arrays.copyOf(record.array(), length);
                assertArrayEquals(WireRecords.record(key, value), bytes,
                        () -> what + " record bytes of " + Keys.printable(Keys.string(key)) + "; " + where());
                entries.add(Map.entry(key, value));
            }
            assertFalse(cursor.next(), () -> what + ": next() after the end; " + where());
            checkEntries(entries.iterator(), expected, what);
        }

        private void finish() {
            boolean closeViewsFirst = rnd.nextBoolean();
            if (closeViewsFirst) {
                for (PinnedCheck view : views) {
                    view.view.close();
                }
                assertEquals(0, map.memoryStats().pinnedViews(), where);
            }
            map.close();
            for (PinnedCheck view : views) {
                assertThrows(IllegalStateException.class, view.view::size,
                        () -> "size() of a view after its map was closed; " + where());
                view.view.close(); // idempotent, also after the map's close
            }
            System.out.println("[mapcast] OffHeapMapModelTest[" + variant + "]: " + op + " operations, " + waves
                    + " wave turns, seed=" + seed);
        }

        // ---- messages ----

        private void record(String kind, String key, int valueLength) {
            int s = (int) (recorded++ % RECENT);
            recentOps[s] = op;
            recentKinds[s] = kind;
            recentKeys[s] = key;
            recentLengths[s] = valueLength;
        }

        private String where() {
            StringBuilder b = new StringBuilder("seed=").append(seed).append(" variant=[").append(variant)
                    .append("] op#").append(op).append(" size=").append(model.size()).append(" recent ops:");
            for (long i = Math.max(0, recorded - RECENT); i < recorded; i++) {
                int s = (int) (i % RECENT);
                b.append(" #").append(recentOps[s]).append(' ').append(recentKinds[s]);
                if (!recentKeys[s].isEmpty()) {
                    b.append(' ').append(Keys.printable(recentKeys[s]));
                }
                if (recentLengths[s] >= 0) {
                    b.append(" value[").append(recentLengths[s]).append(']');
                }
            }
            return b.toString();
        }
    }

    private static String describe(byte[] value) {
        if (value == null) {
            return "null";
        }
        return "byte[" + value.length + "]" + (value.length <= 16 ? Arrays.toString(value) : "");
    }

    /** A pinned view and the copy of the model taken when it was pinned. */
    private static final class PinnedCheck {
        final PinnedView view;
        final Map<String, byte[]> snapshot;
        final long pinnedAt;
        long checkAt;

        PinnedCheck(PinnedView view, Map<String, byte[]> snapshot, long pinnedAt, long checkAt) {
            this.view = view;
            this.snapshot = snapshot;
            this.pinnedAt = pinnedAt;
            this.checkAt = checkAt;
        }
    }

    /** The model's live keys with O(1) random choice. */
    private static final class KeyBag {
        private final ArrayList<String> keys = new ArrayList<>();
        private final HashMap<String, Integer> positions = new HashMap<>();

        void add(String key) {
            positions.put(key, keys.size());
            keys.add(key);
        }

        void remove(String key) {
            int at = positions.remove(key);
            String last = keys.remove(keys.size() - 1);
            if (at < keys.size()) {
                keys.set(at, last);
                positions.put(last, at);
            }
        }

        String random(Random rnd) {
            return keys.get(rnd.nextInt(keys.size()));
        }
    }
}
