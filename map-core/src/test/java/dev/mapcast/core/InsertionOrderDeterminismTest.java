package dev.mapcast.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * In INSERTION order the same history gives the same entries in the same order and the same record
 * bytes, whatever the hash seed, initial capacity, segment size or compaction history. One random
 * history is applied in lockstep to differently built maps; at checkpoints every map must iterate
 * exactly as a {@link LinkedHashMap} given the same history, and the concatenation of the records
 * its cursor copies out must be byte-identical across maps (and equal the hand-built encoding).
 */
class InsertionOrderDeterminismTest extends AbstractOffHeapTest {

    private static final int HISTORY_OPS = 60_000;
    private static final int CHECK_EVERY = 7_500;

    /** How one map is built and what else happens to it while the shared history runs. */
    private record Config(String name, OffHeapMap.Builder builder, int compactEvery, int pinEvery) {
    }

    private sealed interface Op permits Put, Remove {
    }

    private record Put(byte[] key, byte[] value) implements Op {
    }

    private record Remove(byte[] key) implements Op {
    }

    @Test
    void sameHistoryIteratesIdenticallyWhateverSeedCapacitySegmentsAndCompaction() {
        long seed = testSeed("InsertionOrderDeterminismTest");
        Random rnd = new Random(seed);
        List<Op> history = history(rnd);

        List<Config> configs = List.of(
                config("seed 1, capacity 0, 64 KiB segments", 1, 0, 64 * 1024, true, 0.5, 0, 0, false),
                config("seed 2, capacity 10, 4 KiB segments", 2, 10, 4096, true, 0.5, 0, 0, false),
                config("random seed, capacity 100000, 4 KiB segments, no auto compaction", rnd.nextLong(), 100_000,
                        4096, false, 0.5, 0, 0, false),
                config("seed 3, capacity 0, 1 MiB segments, no auto compaction, compact every 997", 3, 0, 1 << 20,
                        false, 0.5, 997, 0, false),
                config("seed 4, capacity 10, 64 KiB, threshold 0.1, compact every 5003", 4, 10, 64 * 1024, true,
                        0.1, 5_003, 0, false),
                config("seed 5, capacity 100000, threshold 1.0, views pinned every 3001", 5, 100_000, 64 * 1024,
                        true, 1.0, 0, 3_001, false),
                config("seed 6, thread-safe, 4 KiB segments, compact every 2500", 6, 0, 4096, true, 0.5, 2_500, 0,
                        true),
                config("seed 7, capacity 10, 4 KiB, threshold 0.9, compact every 211, views every 1009", 7, 10, 4096,
                        true, 0.9, 211, 1_009, false));

        List<OffHeapMap> maps = new ArrayList<>();
        for (Config c : configs) {
            maps.add(build(c.builder()));
        }
        List<ArrayDeque<PinnedView>> views = new ArrayList<>();
        for (int i = 0; i < configs.size(); i++) {
            views.add(new ArrayDeque<>());
        }
        LinkedHashMap<String, byte[]> model = new LinkedHashMap<>();

        for (int i = 0; i < history.size(); i++) {
            Op op = history.get(i);
            apply(model, op);
            for (int m = 0; m < maps.size(); m++) {
                OffHeapMap map = maps.get(m);
                Config config = configs.get(m);
                if (op instanceof Put put) {
                    map.put(put.key(), put.value());
                } else {
                    map.remove(((Remove) op).key());
                }
                if (config.compactEvery() > 0 && (i + 1) % config.compactEvery() == 0) {
                    map.compact();
                }
                if (config.pinEvery() > 0 && (i + 1) % config.pinEvery() == 0) {
                    views.get(m).addLast(map.pin());
                    if (views.get(m).size() > 2) {
                        views.get(m).removeFirst().close();
                    }
                }
            }
            if ((i + 1) % CHECK_EVERY == 0 || i + 1 == history.size()) {
                checkAllAgree(seed, i + 1, configs, maps, model);
            }
        }
        for (int m = 0; m < maps.size(); m++) {
            views.get(m).forEach(PinnedView::close);
            maps.get(m).close();
        }
    }

    private static Config config(String name, long seed, long capacity, int segmentSize, boolean auto,
            double threshold, int compactEvery, int pinEvery, boolean threadSafe) {
        OffHeapMap.Builder builder = OffHeapMap.builder()
                .order(IterationOrder.INSERTION)
                .hashSeed(seed)
                .initialCapacity(capacity)
                .segmentSize(segmentSize)
                .autoCompaction(auto)
                .compactionThreshold(threshold)
                .threadSafe(threadSafe);
        return new Config(name, builder, compactEvery, pinEvery);
    }

    /** Waves of puts (new keys, updates, re-puts of removed keys) and removes. */
    private static List<Op> history(Random rnd) {
        List<Op> ops = new ArrayList<>(HISTORY_OPS);
        List<String> live = new ArrayList<>();
        ArrayDeque<String> removed = new ArrayDeque<>();
        Set<String> present = new HashSet<>();
        int target = 3_000;
        boolean growing = true;
        while (ops.size() < HISTORY_OPS) {
            if (growing && live.size() >= target) {
                growing = false;
                target = rnd.nextInt(50);
            } else if (!growing && live.size() <= target) {
                growing = true;
                target = 500 + rnd.nextInt(rnd.nextInt(4) == 0 ? 12_000 : 4_000);
            }
            int roll = rnd.nextInt(100);
            int putNew = growing ? 60 : 10;
            int update = putNew + 15;
            if (live.isEmpty() || roll < putNew) {
                String key = null;
                if (!removed.isEmpty() && rnd.nextInt(3) == 0) {
                    key = removed.pollFirst();
                }
                while (key == null || present.contains(key)) {
                    key = Keys.random(rnd);
                }
                present.add(key);
                live.add(key);
                ops.add(new Put(Keys.bytes(key), value(rnd)));
            } else if (roll < update) {
                ops.add(new Put(Keys.bytes(live.get(rnd.nextInt(live.size()))), value(rnd)));
            } else {
                int at = rnd.nextInt(live.size());
                String key = live.get(at);
                live.set(at, live.get(live.size() - 1));
                live.remove(live.size() - 1);
                present.remove(key);
                removed.addLast(key);
                ops.add(new Remove(Keys.bytes(key)));
            }
        }
        return ops;
    }

    private static byte[] value(Random rnd) {
        int length = rnd.nextInt(500) == 0 ? 5_000 + rnd.nextInt(70_000) : rnd.nextInt(201);
        return Keys.randomBytes(rnd, length);
    }

    private static void apply(Map<String, byte[]> model, Op op) {
        if (op instanceof Put put) {
            model.put(Keys.string(put.key()), put.value());
        } else {
            model.remove(Keys.string(((Remove) op).key()));
        }
    }

    private static void checkAllAgree(long seed, int ops, List<Config> configs, List<OffHeapMap> maps,
            LinkedHashMap<String, byte[]> model) {
        Map<byte[], byte[]> modelEntries = new LinkedHashMap<>();
        model.forEach((k, v) -> modelEntries.put(Keys.bytes(k), v));
        byte[] expected = WireRecords.records(modelEntries);
        List<String> expectedKeys = new ArrayList<>(model.keySet());
        for (int m = 0; m < maps.size(); m++) {
            OffHeapMap map = maps.get(m);
            String where = "seed=" + seed + " after " + ops + " ops, map [" + configs.get(m).name() + "]";
            assertEquals(model.size(), map.size(), where);

            List<String> keys = new ArrayList<>(model.size());
            int i = 0;
            for (Map.Entry<byte[], byte[]> e : map) {
                String key = Keys.string(e.getKey());
                keys.add(key);
                if (i < expectedKeys.size() && key.equals(expectedKeys.get(i))
                        && !Arrays.equals(model.get(key), e.getValue())) {
                    fail(where + ": value of " + Keys.printable(key) + " differs from the model's");
                }
                i++;
            }
            if (!keys.equals(expectedKeys)) {
                fail(where + ": iteration order differs from first-insertion order at entry #"
                        + firstDifference(keys, expectedKeys) + " (" + keys.size() + " vs " + expectedKeys.size()
                        + " keys)");
            }

            byte[] records = map.isThreadSafe() ? recordsOfPin(map) : records(map.cursor());
            assertEquals(expected.length, records.length, where + ": length of the concatenated records");
            assertArrayEquals(expected, records, where + ": concatenated record bytes");
        }
    }

    private static byte[] recordsOfPin(OffHeapMap map) {
        try (PinnedView view = map.pin()) {
            return records(view.cursor());
        }
    }

    private static byte[] records(EntryCursor cursor) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteBuffer buffer = ByteBuffer.allocate(1 << 17);
        while (cursor.next()) {
            if (buffer.remaining() < cursor.recordLength()) {
                out.write(buffer.array(), 0, buffer.position());
                buffer.clear();
                if (buffer.capacity() < cursor.recordLength()) {
                    buffer = ByteBuffer.allocate(cursor.recordLength());
                }
            }
            cursor.copyRecordTo(buffer);
        }
        out.write(buffer.array(), 0, buffer.position());
        return out.toByteArray();
    }

    private static int firstDifference(List<String> a, List<String> b) {
        int i = 0;
        while (i < a.size() && i < b.size() && a.get(i).equals(b.get(i))) {
            i++;
        }
        return i;
    }
}
