package dev.mapcast.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Runs of records: what the codec streams to the wire. */
class EntryCursorRunTest extends AbstractOffHeapTest {

    @ParameterizedTest
    @EnumSource(IterationOrder.class)
    void runsConcatenateToEveryRecordInOrderAndMeasuringCutsTheSameRuns(IterationOrder order) {
        long seed = testSeed("runsConcatenateToEveryRecord " + order);
        Random rnd = new Random(seed);
        OffHeapMap map = build(OffHeapMap.builder().order(order).segmentSize(4096));
        for (int i = 0; i < 20_000; i++) {
            byte[] key = Keys.bytes(Keys.random(rnd));
            if (rnd.nextInt(4) == 0) {
                map.remove(key);
            } else {
                map.put(key, Keys.randomBytes(rnd, rnd.nextInt(30) == 0 ? 5_000 : rnd.nextInt(120)));
            }
        }
        map.compact();
        for (int i = 0; i < 2_000; i++) {  // leave some dead records between live ones
            map.put(Keys.bytes(Keys.random(rnd)), Keys.randomBytes(rnd, 10));
        }
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        EntryCursor one = map.cursor();
        while (one.next()) {
            ByteBuffer record = ByteBuffer.allocate(one.recordLength());
            one.copyRecordTo(record);
            all.writeBytes(record.array());
        }
        for (int budget : new int[] {1, 100, 4096, 1 << 20}) {
            EntryCursor measure = map.cursor();
            EntryCursor copy = map.cursor();
            ByteArrayOutputStream runs = new ByteArrayOutputStream();
            long records = 0;
            while (!copy.isExhausted()) {
                long measured = measure.skipRecords(budget);
                int measuredRecords = measure.runRecords();
                ByteBuffer dst = ByteBuffer.allocateDirect((int) Math.max(measured, 1));
                long copied = copy.copyRecordsTo(dst, budget);
                assertEquals(measured, copied, "seed " + seed + ", budget " + budget);
                assertEquals(measuredRecords, copy.runRecords(), "seed " + seed + ", budget " + budget);
                assertTrue(copied <= budget || copy.runRecords() == 1, "seed " + seed + ": run over budget");
                byte[] bytes = new byte[(int) copied];
                dst.flip().get(bytes);
                runs.writeBytes(bytes);
                records += copy.runRecords();
            }
            assertTrue(measure.isExhausted());
            assertEquals(map.size(), records, "seed " + seed + ", budget " + budget);
            assertArrayEquals(all.toByteArray(), runs.toByteArray(), "seed " + seed + ", budget " + budget);
        }
    }

    @Test
    void nextAfterARunStartsAtTheRecordTheRunLeft() {
        OffHeapMap map = build(OffHeapMap.builder().order(IterationOrder.INSERTION));
        for (int i = 0; i < 10; i++) {
            map.put(Keys.bytes("k" + i), new byte[20]);
        }
        EntryCursor cursor = map.cursor();
        long bytes = cursor.skipRecords(3 * RecordLayout.recordLength(2, 20));
        assertEquals(3, cursor.runRecords());
        assertEquals(3L * RecordLayout.recordLength(2, 20), bytes);
        assertTrue(cursor.next());
        assertArrayEquals(Keys.bytes("k3"), cursor.key());
        assertFalse(cursor.isExhausted());
    }

    @Test
    void badRunArgumentsAreRefused() {
        OffHeapMap map = build(OffHeapMap.builder());
        map.put(Keys.bytes("k"), new byte[1]);
        EntryCursor cursor = map.cursor();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cursor.skipRecords(0));
        assertTrue(e.getMessage().contains("maxBytes: 0"), e.getMessage());
        assertThrows(java.nio.ReadOnlyBufferException.class,
                () -> cursor.copyRecordsTo(ByteBuffer.allocate(100).asReadOnlyBuffer(), 100));
        assertEquals(RecordLayout.recordLength(1, 1), cursor.copyRecordsTo(ByteBuffer.allocate(100), 100));
    }
}
