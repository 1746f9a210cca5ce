package dev.mapcast.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;

/**
 * A thread-safe map shared by one writer and several readers. Every value is self-validating:
 * version, key index, a payload derived from (key, version) and a CRC, so a reader can tell a value
 * the writer really wrote for that key from torn, mixed or stale bytes. Versions only grow, so a
 * reader must never see a key's version go backwards, neither through get() nor in a view it pins
 * after.
 */
class ConcurrencyTest extends AbstractOffHeapTest {

    private static final int KEYS = 400;
    private static final long RUN_MILLIS = 3_000;
    private static final long MAX_WRITER_OPS = 5_000_000;
    private static final int READERS = 3;

    // ---- self-validating values ----

    private static byte[] keyOf(int index) {
        return ("concurrent-key-" + index).getBytes(StandardCharsets.US_ASCII);
    }

    private static int indexOf(byte[] key) {
        String s = new String(key, StandardCharsets.US_ASCII);
        if (!s.startsWith("concurrent-key-")) {
            throw new AssertionError("unknown key " + Keys.printable(Keys.string(key)));
        }
        return Integer.parseInt(s.substring("concurrent-key-".length()));
    }

    private static long mix(int key, long version) {
        long x = version * 0x9E3779B97F4A7C15L + key * 0xC2B2AE3D27D4EB4FL;
        x ^= x >>> 31;
        x *= 0xBF58476D1CE4E5B9L;
        return x ^ (x >>> 29);
    }

    /** Payload length: mostly under 200 bytes, sometimes past a 4 KiB segment. */
    private static int payloadLength(int key, long version) {
        long h = mix(key, version) >>> 1;
        return h % 50 == 0 ? 4_100 + (int) (h % 3_000) : (int) (h % 200);
    }

    /** version (8) | key index (4) | payload | CRC32 of everything before (8). */
    static byte[] encode(int key, long version) {
        int payload = payloadLength(key, version);
        ByteBuffer b = ByteBuffer.allocate(8 + 4 + payload + 8);
        b.putLong(version).putInt(key);
        long x = mix(key, version);
        for (int i = 0; i < payload; i++) {
            x = x * 6364136223846793005L + 1442695040888963407L;
            b.put((byte) (x >>> 56));
        }
        CRC32 crc = new CRC32();
        crc.update(b.array(), 0, b.position());
        b.putLong(crc.getValue());
        return b.array();
    }

    /** Checks that {@code value} is exactly what the writer writes for {@code key}; returns its version. */
    static long verify(int key, byte[] value) {
        if (value.length < 20) {
            throw new AssertionError("key " + key + ": value of " + value.length + " bytes is too short to be ours");
        }
        long version = ByteBuffer.wrap(value).getLong();
        byte[] expected = encode(key, version);
        if (!Arrays.equals(expected, value)) {
            throw new AssertionError("key " + key + ": torn or foreign value claiming version " + version + " ("
                    + value.length + " bytes, expected " + expected.length + ")");
        }
        return version;
    }

    // ---- one writer, several readers ----

    @Test
    void readersSeeOnlyWrittenValuesAndNeverGoBackInTime() throws InterruptedException {
        long seed = testSeed("readersSeeOnlyWrittenValuesAndNeverGoBackInTime");
        OffHeapMap map = build(OffHeapMap.builder().threadSafe(true).segmentSize(4096).hashSeed(seed));
        AtomicBoolean writerDone = new AtomicBoolean();
        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        CountDownLatch start = new CountDownLatch(1);
        AtomicLong writerOps = new AtomicLong();
        AtomicLong compactions = new AtomicLong();

        Thread writer = new Thread(() -> {
            try {
                start.await();
                write(map, new Random(seed), writerOps, compactions);
            } catch (Throwable t) {
                errors.add(t);
            } finally {
                writerDone.set(true);
            }
        }, "writer");
        Reader[] readers = new Reader[READERS];
        Thread[] readerThreads = new Thread[READERS];
        for (int r = 0; r < READERS; r++) {
            Reader reader = new Reader(map, seed + 1 + r, writerDone, errors, start);
            readers[r] = reader;
            readerThreads[r] = new Thread(reader, "reader-" + r);
        }
        writer.start();
        for (Thread t : readerThreads) {
            t.start();
        }
        start.countDown();
        writer.join(RUN_MILLIS + 60_000);
        writerDone.set(true);
        for (Thread t : readerThreads) {
            t.join(30_000);
        }
        String where = "seed=" + seed;
        assertFalse(writer.isAlive(), where + ": writer did not finish");
        for (Thread t : readerThreads) {
            assertFalse(t.isAlive(), where + ": " + t.getName() + " did not finish");
        }
        if (!errors.isEmpty()) {
            AssertionError failure = new AssertionError(where + ": " + errors.size() + " thread(s) failed; first: "
                    + errors.peek(), errors.peek());
            errors.stream().skip(1).forEach(failure::addSuppressed);
            throw failure;
        }
        StringBuilder summary = new StringBuilder("[mapcast] concurrency: writer ops " + writerOps.get()
                + ", compactions " + compactions.get());
        for (int r = 0; r < READERS; r++) {
            Reader reader = readers[r];
            summary.append("; reader ").append(r).append(": ").append(reader.hits).append(" hits, ")
                    .append(reader.misses).append(" misses, ").append(reader.viewEntries).append(" view entries in ")
                    .append(reader.views).append(" views");
            assertTrue(reader.hits > 0, where + ": reader " + r + " read no value");
            assertTrue(reader.views > 0 && reader.viewEntries > 0, where + ": reader " + r + " iterated no view");
        }
        System.out.println(summary);
        assertTrue(writerOps.get() > 0 && compactions.get() > 0, where);
        map.close();
    }

    /** The writer: new versions, deletes and re-puts, compactions, and views of its own. */
    private static void write(OffHeapMap map, Random rnd, AtomicLong ops, AtomicLong compactions) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(RUN_MILLIS);
        long version = 0;
        Map<Integer, Long> current = new HashMap<>();
        ArrayDeque<PinnedView> views = new ArrayDeque<>();
        ArrayDeque<Map<Integer, Long>> viewContents = new ArrayDeque<>();
        for (long n = 0; n < MAX_WRITER_OPS; n++) {
            if ((n & 255) == 0 && System.nanoTime() >= deadline) {
                break;
            }
            int key = rnd.nextInt(KEYS);
            if (rnd.nextInt(8) == 0) {
                boolean wasThere = current.remove(key) != null;
                assertEquals(wasThere, map.remove(keyOf(key)));
            } else {
                version++;
                boolean isNew = current.put(key, version) == null;
                assertEquals(isNew, map.put(keyOf(key), encode(key, version)));
            }
            if (n % 20_000 == 19_999) {
                map.compact();
                compactions.incrementAndGet();
            }
            if (n % 5_000 == 0) {
                views.addLast(map.pin());
                viewContents.addLast(new HashMap<>(current));
                if (views.size() > 2) {
                    checkWriterView(views.removeFirst(), viewContents.removeFirst());
                }
            }
            ops.incrementAndGet();
        }
        while (!views.isEmpty()) {
            checkWriterView(views.removeFirst(), viewContents.removeFirst());
        }
    }

    /** A view the writer pinned a while ago holds exactly the versions of that moment. */
    private static void checkWriterView(PinnedView view, Map<Integer, Long> expected) {
        try (view) {
            assertEquals(expected.size(), view.size());
            int seen = 0;
            for (Map.Entry<byte[], byte[]> e : view) {
                int key = indexOf(e.getKey());
                assertEquals(expected.get(key), verify(key, e.getValue()), "version of key " + key + " in the view");
                seen++;
            }
            assertEquals(expected.size(), seen);
        }
    }

    /** A reader: random gets in every form, plus views it pins and iterates. */
    private static final class Reader implements Runnable {
        private final OffHeapMap map;
        private final long seed;
        private final AtomicBoolean writerDone;
        private final ConcurrentLinkedQueue<Throwable> errors;
        private final CountDownLatch start;
        private final long[] lastSeen = new long[KEYS];
        long hits;
        long misses;
        long views;
        long viewEntries;

        Reader(OffHeapMap map, long seed, AtomicBoolean writerDone, ConcurrentLinkedQueue<Throwable> errors,
                CountDownLatch start) {
            this.map = map;
            this.seed = seed;
            this.writerDone = writerDone;
            this.errors = errors;
            this.start = start;
        }

        @Override
        public void run() {
            Random rnd = new Random(seed);
            ByteBuffer direct = ByteBuffer.allocateDirect(8 * 1024);
            try {
                start.await();
                long n = 0;
                while (!writerDone.get() || n < 1_000) {
                    n++;
                    if (n % 2_000 == 0) {
                        readView(rnd.nextBoolean());
                        continue;
                    }
                    int key = rnd.nextInt(KEYS);
                    byte[] value;
                    switch (rnd.nextInt(3)) {
                        case 0:
                            value = map.get(keyOf(key));
                            break;
                        case 1:
                            value = map.get(ByteBuffer.wrap(keyOf(key)));
                            break;
                        default: {
                            direct.clear();
                            int length = map.getInto(keyOf(key), direct);
                            value = length < 0 ? null : Arrays.copyOf(directBytes(direct), length);
                            break;
                        }
                    }
                    if (value == null) {
                        misses++;
                        continue;
                    }
                    saw(key, verify(key, value), "get");
                    hits++;
                }
            } catch (Throwable t) {
                errors.add(new AssertionError(Thread.currentThread().getName() + " (seed " + seed + ") failed", t));
            }
        }

        /** A pinned view, or the map's own iterator (which pins one), entry by entry. */
        private void readView(boolean explicitPin) {
            Map<Integer, Long> versions = new HashMap<>();
            if (explicitPin) {
                try (PinnedView view = map.pin()) {
                    for (Map.Entry<byte[], byte[]> e : view) {
                        int key = indexOf(e.getKey());
                        long version = verify(key, e.getValue());
                        assertNull(versions.put(key, version), "key " + key + " twice in one view");
                        assertArrayEquals(e.getValue(), view.get(e.getKey()), "view.get vs the view's iteration");
                    }
                    assertEquals(view.size(), versions.size(), "view.size() vs the entries it iterates");
                }
            } else {
                for (Map.Entry<byte[], byte[]> e : map) {
                    int key = indexOf(e.getKey());
                    assertNull(versions.put(key, verify(key, e.getValue())), "key " + key + " twice in one iteration");
                }
            }
            for (Map.Entry<Integer, Long> e : versions.entrySet()) {
                saw(e.getKey(), e.getValue(), explicitPin ? "a view pinned later" : "a later map iteration");
            }
            views++;
            viewEntries += versions.size();
        }

        private void saw(int key, long version, String how) {
            if (version < lastSeen[key]) {
                throw new AssertionError("key " + key + ": " + how + " returned version " + version
                        + " after version " + lastSeen[key] + " was seen");
            }
            lastSeen[key] = version;
        }

        private static byte[] directBytes(ByteBuffer direct) {
            ByteBuffer copy = direct.duplicate().flip();
            byte[] bytes = new byte[copy.remaining()];
            copy.get(bytes);
            return bytes;
        }
    }

    // ---- a view read on another thread while the writer goes on ----

    @Test
    void viewOfAThreadSafeMapIsReadableFromAnotherThreadWhileTheWriterContinues() throws InterruptedException {
        long seed = testSeed("viewOfAThreadSafeMapIsReadableFromAnotherThreadWhileTheWriterContinues");
        String where = "seed=" + seed;
        Random rnd = new Random(seed);
        OffHeapMap map = build(OffHeapMap.builder().threadSafe(true).order(IterationOrder.INSERTION)
                .segmentSize(4096).hashSeed(seed));
        Map<Integer, Long> current = new HashMap<>();
        long version = 0;
        for (int i = 0; i < 5_000; i++) {
            int key = rnd.nextInt(KEYS);
            version++;
            current.put(key, version);
            map.put(keyOf(key), encode(key, version));
        }
        PinnedView view = map.pin();
        Map<Integer, Long> snapshot = new HashMap<>(current);
        List<Integer> order = new ArrayList<>();
        for (Map.Entry<byte[], byte[]> e : view) {
            order.add(indexOf(e.getKey()));
        }

        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        AtomicLong rounds = new AtomicLong();
        CountDownLatch written = new CountDownLatch(1);  // the reads overlap writes however threads are scheduled
        Thread reader = new Thread(() -> {
            try {
                written.await();
                for (int round = 0; round < 30; round++) {
                    assertEquals(snapshot.size(), view.size());
                    for (int key = 0; key < KEYS; key++) {
                        byte[] value = view.get(keyOf(key));
                        Long want = snapshot.get(key);
                        if (want == null) {
                            assertNull(value, "key " + key + " was absent when the view was pinned");
                        } else {
                            assertEquals(want, verify(key, value), "version of key " + key + " in the view");
                        }
                    }
                    List<Integer> iterated = new ArrayList<>();
                    EntryCursor cursor = view.cursor();
                    while (cursor.next()) {
                        int key = indexOf(cursor.key());
                        assertEquals(snapshot.get(key), verify(key, cursor.value()));
                        iterated.add(key);
                    }
                    assertEquals(order, iterated, "the view's insertion order changed while the writer wrote");
                    rounds.incrementAndGet();
                }
            } catch (Throwable t) {
                errors.add(t);
            }
        }, "view-reader");
        reader.start();
        long writes = 0;
        while (reader.isAlive() && writes < 3_000_000) {
            int key = rnd.nextInt(KEYS);
            if (rnd.nextInt(4) == 0) {
                map.remove(keyOf(key));
                current.remove(key);
            } else {
                version++;
                current.put(key, version);
                map.put(keyOf(key), encode(key, version));
            }
            written.countDown();
            if (++writes % 1_000 == 0) {
                map.compact();
            }
        }
        reader.join(60_000);
        assertFalse(reader.isAlive(), where + ": the view reader did not finish");
        if (!errors.isEmpty()) {
            throw new AssertionError(where + ": the view reader failed after " + rounds.get() + " rounds and "
                    + writes + " concurrent writes", errors.peek());
        }
        System.out.println("[mapcast] view read " + rounds.get() + " times on another thread during " + writes
                + " writes");
        assertEquals(30, rounds.get(), where);
        assertTrue(writes > 0, where + ": the writer wrote nothing while the view was read");
        view.close();
        assertEquals(current.size(), map.size(), where);
        for (Map.Entry<Integer, Long> e : current.entrySet()) {
            assertEquals(e.getValue(), verify(e.getKey(), map.get(keyOf(e.getKey()))), where);
        }
        map.close();
    }
}
