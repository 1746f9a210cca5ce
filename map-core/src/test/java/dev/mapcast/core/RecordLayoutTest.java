package dev.mapcast.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A stored record is, byte for byte, one protobuf {@code map<string, bytes>} entry in field 1:
 * {@code 0x0A varint(n) 0x0A varint(klen) key 0x12 varint(vlen) value}, with shortest varints.
 * Expected bytes are built by hand ({@link WireRecords}), and spelled out literally for two cases.
 */
class RecordLayoutTest extends AbstractOffHeapTest {

    private static byte[] filled(int length, int salt) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (i * 31 + salt);
        }
        return b;
    }

    /** The single record of a map holding only key -> value, copied out through the cursor. */
    private byte[] storedRecord(byte[] key, byte[] value, boolean direct) {
        try (OffHeapMap map = build(OffHeapMap.builder().maxValueLength(4 << 20))) {
            map.put(key, value);
            EntryCursor cursor = map.cursor();
            assertTrue(cursor.next());
            int length = cursor.recordLength();
            ByteBuffer dst = direct ? ByteBuffer.allocateDirect(length + 7) : ByteBuffer.allocate(length + 7);
            dst.position(3);
            cursor.copyRecordTo(dst);
            assertEquals(3 + length, dst.position(), "copyRecordTo advances dst by the record length");
            assertArrayEquals(key, cursor.key());
            assertArrayEquals(value, cursor.value());
            assertEquals(key.length, cursor.keyLength());
            assertEquals(value.length, cursor.valueLength());
            assertFalse(cursor.next());
            byte[] record = new byte[length];
            dst.position(3);
            dst.get(record);
            return record;
        }
    }

    @ParameterizedTest(name = "key {0} bytes, value {1} bytes")
    @CsvSource({
        "1, 0",
        "0, 0",
        "3, 3",
        "1, 122",      // body 127: one-byte varint
        "1, 123",      // body 128: two-byte varint
        "127, 0",      // key length 127: one-byte varint
        "128, 0",      // key length 128: two-byte varint
        "16, 64",
        "200, 20000",  // two-byte key varint, three-byte value and body varints
        "40, 16383",   // value length 16383: two bytes; body needs three
        "40, 16384",   // value length 16384: three bytes
        "300, 2100000", // value and body past 2^21: four-byte varints
        "65536, 1"      // the longest key a map accepts
    })
    void recordIsTheProtobufMapEntry(int keyLength, int valueLength) {
        byte[] key = filled(keyLength, 7);
        byte[] value = filled(valueLength, 11);
        byte[] expected = WireRecords.record(key, value);
        assertArrayEquals(expected, storedRecord(key, value, false), "record via a heap buffer");
        assertArrayEquals(expected, storedRecord(key, value, true), "record via a direct buffer");
        assertEquals(expected.length, WireRecords.recordLength(keyLength, valueLength));
    }

    @Test
    void smallRecordSpelledOut() {
        byte[] record = storedRecord(bytes("a"), bytes("bc"), false);
        assertArrayEquals(new byte[] {0x0A, 0x07, 0x0A, 0x01, 'a', 0x12, 0x02, 'b', 'c'}, record);
        byte[] empty = storedRecord(bytes("k"), new byte[0], false);
        assertArrayEquals(new byte[] {0x0A, 0x05, 0x0A, 0x01, 'k', 0x12, 0x00}, empty,
                "an empty value is still written, as protobuf writes map entries");
    }

    @Test
    void multiByteVarintsSpelledOut() {
        byte[] key = filled(200, 1);
        byte[] value = filled(20_000, 2);
        byte[] record = storedRecord(key, value, true);
        // n = 1 + 2 + 200 + 1 + 3 + 20000 = 20207 = 0b1_0011101_1101111 -> EF 9D 01
        // 200 = 0b1_1001000 -> C8 01;  20000 = 0b1_0011100_0100000 -> A0 9C 01
        byte[] head = {0x0A, (byte) 0xEF, (byte) 0x9D, 0x01, 0x0A, (byte) 0xC8, 0x01};
        assertArrayEquals(head, Arrays.copyOfRange(record, 0, head.length));
        assertArrayEquals(key, Arrays.copyOfRange(record, 7, 207));
        assertArrayEquals(new byte[] {0x12, (byte) 0xA0, (byte) 0x9C, 0x01}, Arrays.copyOfRange(record, 207, 211));
        assertArrayEquals(value, Arrays.copyOfRange(record, 211, record.length));
        assertEquals(211 + 20_000, record.length);
    }

    /** A whole map's records, concatenated, decode as the map (in INSERTION order, in order). */
    @Test
    void concatenatedRecordsAreTheEncodedMapField() {
        long seed = testSeed("concatenatedRecordsAreTheEncodedMapField");
        Random rnd = new Random(seed);
        try (OffHeapMap map = build(OffHeapMap.builder().order(IterationOrder.INSERTION).segmentSize(4096)
                .hashSeed(seed))) {
            LinkedHashMap<String, byte[]> model = new LinkedHashMap<>();
            for (int i = 0; i < 3_000; i++) {
                String key = Keys.random(rnd);
                int length = rnd.nextInt(100) == 0 ? 5_000 + rnd.nextInt(20_000) : rnd.nextInt(150);
                byte[] value = Keys.randomBytes(rnd, length);
                model.put(key, value);
                map.put(Keys.bytes(key), value);
                if (rnd.nextInt(4) == 0) {
                    String gone = new ArrayList<>(model.keySet()).get(rnd.nextInt(model.size()));
                    model.remove(gone);
                    map.remove(Keys.bytes(gone));
                }
            }
            map.compact();
            Map<byte[], byte[]> entries = new LinkedHashMap<>();
            model.forEach((k, v) -> entries.put(Keys.bytes(k), v));
            byte[] expected = WireRecords.records(entries);

            ByteArrayOutputStream out = new ByteArrayOutputStream();
            EntryCursor cursor = map.cursor();
            while (cursor.next()) {
                ByteBuffer one = ByteBuffer.allocate(cursor.recordLength());
                cursor.copyRecordTo(one);
                out.writeBytes(one.array());
            }
            byte[] stored = out.toByteArray();
            assertArrayEquals(expected, stored, "seed=" + seed + ": concatenated records");

            LinkedHashMap<String, byte[]> decoded = WireRecords.decode(stored);
            assertEquals(List.copyOf(model.keySet()), List.copyOf(decoded.keySet()), "seed=" + seed);
            model.forEach((k, v) -> assertArrayEquals(v, decoded.get(k), "seed=" + seed + " key " + Keys.printable(k)));
        }
    }

    /**
     * Records of exactly the segment size share a segment with nothing; one byte more and they get
     * a segment of their own. Either way they read back, update, move and go away intact.
     */
    @Test
    void recordsAroundTheSegmentSizeBoundary() {
        int segmentSize = 4096;
        try (OffHeapMap map = build(OffHeapMap.builder().order(IterationOrder.INSERTION).segmentSize(segmentSize)
                .hashSeed(42))) {
            LinkedHashMap<String, byte[]> model = new LinkedHashMap<>();
            int n = 0;
            for (int delta = -3; delta <= 3; delta++) {
                for (int copy = 0; copy < 3; copy++) {
                    String key = String.format("boundary%+d/%d", delta, copy);
                    byte[] value = valueForRecordLength(key.length(), segmentSize + delta, n++);
                    assertEquals(segmentSize + delta, WireRecords.recordLength(key.length(), value.length));
                    model.put(key, value);
                    map.put(Keys.bytes(key), value);
                    map.put(bytes("small" + n), filled(10, n));
                    model.put("small" + n, filled(10, n));
                }
            }
            checkSameAs(model, map, "after inserting");
            for (String key : List.copyOf(model.keySet())) {
                if (key.endsWith("/1")) {
                    byte[] value = valueForRecordLength(key.length(), segmentSize + 1, n++);
                    model.put(key, value);
                    map.put(Keys.bytes(key), value);
                } else if (key.endsWith("/2")) {
                    model.remove(key);
                    assertTrue(map.remove(Keys.bytes(key)));
                }
            }
            checkSameAs(model, map, "after updates and removes");
            map.compact();
            checkSameAs(model, map, "after compact()");
            assertEquals(0, map.memoryStats().deadBytes());
        }
    }

    /** A value that makes the record of a {@code keyLength}-byte key exactly {@code recordLength} bytes. */
    private static byte[] valueForRecordLength(int keyLength, int recordLength, int salt) {
        for (int v = recordLength; v >= 0; v--) {
            if (WireRecords.recordLength(keyLength, v) == recordLength) {
                return filled(v, salt);
            }
        }
        throw new AssertionError("no value length gives a record of " + recordLength + " bytes");
    }

    private static void checkSameAs(LinkedHashMap<String, byte[]> model, OffHeapMap map, String when) {
        assertEquals(model.size(), map.size(), when);
        List<String> keys = new ArrayList<>();
        EntryCursor cursor = map.cursor();
        while (cursor.next()) {
            String key = Keys.string(cursor.key());
            keys.add(key);
            assertArrayEquals(model.get(key), cursor.value(), when + ": " + key);
            ByteBuffer record = ByteBuffer.allocate(cursor.recordLength());
            cursor.copyRecordTo(record);
            assertArrayEquals(WireRecords.record(cursor.key(), cursor.value()), record.array(), when + ": " + key);
        }
        assertEquals(List.copyOf(model.keySet()), keys, when + ": order");
        model.forEach((k, v) -> assertArrayEquals(v, map.get(Keys.bytes(k)), when + ": get " + k));
    }

    @Test
    void updatedAndRelocatedRecordsStayCanonical() {
        try (OffHeapMap map = build(OffHeapMap.builder().segmentSize(4096).compactionThreshold(0.1))) {
            byte[] key = bytes("the-key");
            for (int round = 0; round < 200; round++) {
                byte[] value = filled(round * 37 % 300, round);
                map.put(key, value);
                for (int i = 0; i < 20; i++) {
                    map.put(bytes("filler" + i), filled(150, i + round));
                }
                if (round % 50 == 49) {
                    map.compact();
                }
                EntryCursor cursor = map.cursor();
                boolean found = false;
                while (cursor.next()) {
                    ByteBuffer record = ByteBuffer.allocate(cursor.recordLength());
                    cursor.copyRecordTo(record);
                    assertArrayEquals(WireRecords.record(cursor.key(), cursor.value()), record.array(),
                            "round " + round);
                    if (Arrays.equals(key, cursor.key())) {
                        assertArrayEquals(value, cursor.value(), "round " + round);
                        found = true;
                    }
                }
                assertTrue(found, "round " + round);
            }
        }
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }
}
