package dev.mapcast.codec;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import dev.mapcast.core.EntryCursor;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.proto.v1.Delta;
import dev.mapcast.proto.v1.SnapshotChunk;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The decoder against protobuf-java as the oracle: whatever protobuf-java parses, the decoder
 * applies with the same content and fields; whatever it refuses, the decoder refuses with nothing
 * applied. Valid messages come from protobuf-java and from hand-made encodings protobuf-java also
 * accepts (value before key, missing fields, unknown fields and groups, non-minimal varints, a
 * repeated key); bad ones are every truncation and seeded random mutations of them.
 */
class MessageDecoderTest {

    private static final byte[] SENTINEL_KEY = "sentinel".getBytes(StandardCharsets.UTF_8);

    @Test
    void agreesWithProtobufJavaOnValidTruncatedAndMutatedMessages() {
        long seed = TestSeeds.seed("agreesWithProtobufJava");
        Random rnd = new Random(seed);
        int accepted = 0;
        int refused = 0;
        for (int round = 0; round < 60; round++) {
            boolean delta = round % 2 == 1;
            byte[] valid = delta ? randomDelta(rnd) : randomChunk(rnd);
            int[] outcome = check(valid, delta, seed);
            assertEquals(1, outcome[0], "seed " + seed + ": a valid message was refused");
            for (int cut = 0; cut < valid.length; cut += 1 + rnd.nextInt(3)) {
                int[] o = check(java.util.Arrays.copyOf(valid, cut), delta, seed);
                accepted += o[0];
                refused += o[1];
            }
            for (int m = 0; m < 300; m++) {
                int[] o = check(mutate(valid, rnd), delta, seed);
                accepted += o[0];
                refused += o[1];
            }
        }
        System.out.println("[mapcast] mutated or cut messages: " + accepted + " accepted by both, " + refused + " refused by both");
        assertTrue(refused > 1000 && accepted > 1000, "seed " + seed + ": the fuzz should exercise both outcomes");
    }

    @Test
    void aKeyOrValueOverTheMapsLimitIsRefusedWithNothingApplied() {
        try (OffHeapMap map = OffHeapMap.builder().maxKeyLength(8).maxValueLength(16).build()) {
            map.put(SENTINEL_KEY, new byte[1]);
            byte[] chunk = SnapshotChunk.newBuilder()
                    .putEntries("ok", ByteString.copyFromUtf8("fine"))
                    .putEntries("a-key-that-is-too-long", ByteString.EMPTY).build().toByteArray();
            MalformedMessageException e = assertThrows(MalformedMessageException.class,
                    () -> MessageDecoder.applySnapshotChunk(ByteBuffer.wrap(chunk), map));
            assertTrue(e.getMessage().contains("key of 22 bytes (expected: at most 8)"), e.getMessage());
            assertEquals(1, map.size());
            byte[] delta = Delta.newBuilder().putPuts("k", ByteString.copyFrom(new byte[17])).build().toByteArray();
            e = assertThrows(MalformedMessageException.class, () -> MessageDecoder.applyDelta(ByteBuffer.wrap(delta), map));
            assertTrue(e.getMessage().contains("value of 17 bytes"), e.getMessage());
            assertEquals(1, map.size());
        }
    }

    @Test
    void aLyingLengthPrefixIsRefusedWithoutAllocating() {
        byte[] lying = {0x0A, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x07, 0x0A, 0x01, 'k'};
        try (OffHeapMap map = OffHeapMap.builder().build()) {
            MalformedMessageException e = assertThrows(MalformedMessageException.class,
                    () -> MessageDecoder.applySnapshotChunk(ByteBuffer.wrap(lying), map));
            assertEquals(1, e.offset());
            assertTrue(e.reason().contains("runs past the end"), e.reason());
            assertEquals(0, map.size());
        }
    }

    @Test
    void readsTheMessageBetweenPositionAndLimitOfADirectReadOnlyBuffer() {
        byte[] chunk = SnapshotChunk.newBuilder().putEntries("k", ByteString.copyFromUtf8("v")).setRevision(7).build().toByteArray();
        ByteBuffer direct = ByteBuffer.allocateDirect(chunk.length + 10);
        direct.position(5);
        direct.put(chunk);
        direct.position(5).limit(5 + chunk.length);
        ByteBuffer readOnly = direct.asReadOnlyBuffer();
        try (OffHeapMap map = OffHeapMap.builder().build()) {
            MessageDecoder.ChunkFields fields = MessageDecoder.applySnapshotChunk(readOnly, map);
            assertEquals(7, fields.revision());
            assertArrayEquals("v".getBytes(StandardCharsets.UTF_8), map.get("k".getBytes(StandardCharsets.UTF_8)));
            assertEquals(5, readOnly.position());
        }
    }

    /** Returns {1, 0} if both accepted the bytes (and agreed), {0, 1} if both refused them. */
    private static int[] check(byte[] bytes, boolean delta, long seed) {
        Map<String, ByteString> expected;
        Object fields;
        try {
            if (delta) {
                Delta d = Delta.parseFrom(bytes);
                expected = new HashMap<>(d.getPutsMap());
                for (String key : d.getDeletesList()) {
                    expected.remove(key);
                }
                fields = new MessageDecoder.DeltaFields(d.getRevision(), d.getPrevRevision(), d.getDigest(),
                        d.getPutsCount(), d.getDeletesCount());
            } else {
                SnapshotChunk c = SnapshotChunk.parseFrom(bytes);
                expected = new HashMap<>(c.getEntriesMap());
                fields = new MessageDecoder.ChunkFields(c.getMap(), c.getRevision(), c.getLast(), c.getTotalEntries(),
                        c.getDigest(), c.getOrderValue(), c.getCompactRevision(), c.getEntriesCount(), c.getIncarnation());
            }
        } catch (InvalidProtocolBufferException refusedByProtobuf) {
            expected = null;
            fields = null;
        }
        try (OffHeapMap map = OffHeapMap.builder().build()) {
            map.put(SENTINEL_KEY, SENTINEL_KEY);
            ByteBuffer message = ByteBuffer.wrap(bytes);
            if (expected == null) {
                MalformedMessageException e = assertThrows(MalformedMessageException.class,
                        () -> apply(message, map, delta), () -> "seed " + seed + ": protobuf-java refused " + hex(bytes));
                assertTrue(e.offset() >= 0 && e.offset() <= bytes.length, e.getMessage());
                assertEquals(1, map.size(), "seed " + seed + ": a refused message changed the map");
                assertArrayEquals(SENTINEL_KEY, map.get(SENTINEL_KEY));
                return new int[] {0, 1};
            }
            Object decoded;
            try {
                decoded = apply(message, map, delta);
            } catch (MalformedMessageException e) {
                throw new AssertionError("seed " + seed + ": protobuf-java accepted what the decoder refused ("
                        + e.getMessage() + "): " + hex(bytes), e);
            }
            // The decoder counts entry records; protobuf-java's counts are distinct keys, the last winning.
            if (decoded instanceof MessageDecoder.ChunkFields c) {
                MessageDecoder.ChunkFields e = (MessageDecoder.ChunkFields) fields;
                assertTrue(c.entries() >= e.entries(), "seed " + seed + ": entry records of " + hex(bytes));
                decoded = new MessageDecoder.ChunkFields(c.map(), c.revision(), c.last(), c.totalEntries(), c.digest(),
                        c.order(), c.compactRevision(), e.entries(), c.incarnation());
            } else {
                MessageDecoder.DeltaFields d = (MessageDecoder.DeltaFields) decoded;
                MessageDecoder.DeltaFields e = (MessageDecoder.DeltaFields) fields;
                assertTrue(d.puts() >= e.puts(), "seed " + seed + ": put records of " + hex(bytes));
                decoded = new MessageDecoder.DeltaFields(d.revision(), d.prevRevision(), d.digest(), e.puts(), d.deletes());
            }
            assertEquals(fields, decoded, "seed " + seed + ": fields of " + hex(bytes));
            if (!expected.containsKey("sentinel")) {
                map.remove(SENTINEL_KEY);
            }
            Map<String, ByteString> content = new HashMap<>();
            EntryCursor cursor = map.cursor();
            while (cursor.next()) {
                content.put(new String(cursor.key(), StandardCharsets.UTF_8), ByteString.copyFrom(cursor.value()));
            }
            if (delta && !expected.containsKey("sentinel")) {
                content.remove("sentinel");
            }
            assertEquals(expected, content, "seed " + seed + ": content of " + hex(bytes));
            return new int[] {1, 0};
        }
    }

    private static Object apply(ByteBuffer message, OffHeapMap map, boolean delta) {
        return delta ? MessageDecoder.applyDelta(message, map) : MessageDecoder.applySnapshotChunk(message, map);
    }

    private static byte[] randomChunk(Random rnd) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int entries = rnd.nextInt(6);
        List<String> keys = new ArrayList<>();
        for (int i = 0; i < entries; i++) {
            String key = rnd.nextInt(4) == 0 && !keys.isEmpty() ? keys.get(0) : randomKey(rnd);
            keys.add(key);
            writeEntry(out, 1, key, randomBytes(rnd), rnd);
        }
        if (rnd.nextBoolean()) {
            writeTag(out, 2, 2);
            byte[] name = ("map-" + rnd.nextInt(100) + "-é").getBytes(StandardCharsets.UTF_8);
            writeVarint(out, name.length, rnd);
            out.writeBytes(name);
        }
        writeScalars(out, rnd, new int[] {3, 4, 5, 7, 8}, 6);
        return out.toByteArray();
    }

    private static byte[] randomDelta(Random rnd) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int puts = rnd.nextInt(5);
        for (int i = 0; i < puts; i++) {
            writeEntry(out, 1, randomKey(rnd), randomBytes(rnd), rnd);
        }
        int deletes = rnd.nextInt(3);
        for (int i = 0; i < deletes; i++) {
            writeTag(out, 2, 2);
            byte[] key = ("gone-" + rnd.nextInt(10)).getBytes(StandardCharsets.UTF_8);
            writeVarint(out, key.length, rnd);
            out.writeBytes(key);
        }
        writeScalars(out, rnd, new int[] {3, 4}, 5);
        return out.toByteArray();
    }

    /** An entry as protobuf allows it: either field order, fields missing or repeated, unknown fields among them. */
    private static void writeEntry(ByteArrayOutputStream out, int field, String key, byte[] value, Random rnd) {
        ByteArrayOutputStream entry = new ByteArrayOutputStream();
        byte[] k = key.getBytes(StandardCharsets.UTF_8);
        boolean valueFirst = rnd.nextInt(4) == 0;
        if (valueFirst && rnd.nextInt(5) != 0) {
            writeBytesField(entry, 2, value, rnd);
        }
        if (rnd.nextInt(8) == 0) {
            writeUnknown(entry, rnd);
        }
        if (rnd.nextInt(10) != 0) {
            writeBytesField(entry, 1, k, rnd);
        }
        if (!valueFirst && rnd.nextInt(5) != 0) {
            writeBytesField(entry, 2, value, rnd);
        }
        if (rnd.nextInt(8) == 0) {
            writeUnknown(entry, rnd);
        }
        writeTag(out, field, 2);
        writeVarint(out, entry.size(), rnd);
        out.writeBytes(entry.toByteArray());
    }

    private static void writeScalars(ByteArrayOutputStream out, Random rnd, int[] varintFields, int fixed64Field) {
        for (int field : varintFields) {
            if (rnd.nextBoolean()) {
                writeTag(out, field, 0);
                writeVarint(out, rnd.nextInt(3) == 0 ? rnd.nextLong() : rnd.nextInt(1000), rnd);
            }
        }
        if (rnd.nextBoolean()) {
            writeTag(out, fixed64Field, 1);
            long v = rnd.nextLong();
            for (int i = 0; i < 8; i++) {
                out.write((int) (v >>> (8 * i)));
            }
        }
        if (rnd.nextInt(3) == 0) {
            writeUnknown(out, rnd);
        }
    }

    private static void writeUnknown(ByteArrayOutputStream out, Random rnd) {
        int field = 20 + rnd.nextInt(100);
        switch (rnd.nextInt(5)) {
            case 0 -> {
                writeTag(out, field, 0);
                writeVarint(out, rnd.nextInt(100000), rnd);
            }
            case 1 -> {
                writeTag(out, field, 1);
                out.writeBytes(new byte[8]);
            }
            case 2 -> writeBytesField(out, field, randomBytes(rnd), rnd);
            case 3 -> {
                writeTag(out, field, 5);
                out.writeBytes(new byte[4]);
            }
            default -> {
                writeTag(out, field, 3);
                writeTag(out, field + 1, 0);
                writeVarint(out, 5, rnd);
                writeTag(out, field, 4);
            }
        }
    }

    private static void writeBytesField(ByteArrayOutputStream out, int field, byte[] bytes, Random rnd) {
        writeTag(out, field, 2);
        writeVarint(out, bytes.length, rnd);
        out.writeBytes(bytes);
    }

    private static void writeTag(ByteArrayOutputStream out, int field, int wireType) {
        writeVarint(out, (field << 3) | wireType, null);
    }

    /** A varint, sometimes with redundant continuation bytes (non-minimal, as protobuf accepts). */
    private static void writeVarint(ByteArrayOutputStream out, long value, Random rnd) {
        int padding = rnd != null && rnd.nextInt(6) == 0 ? 1 + rnd.nextInt(2) : 0;
        int bytes = 0;
        while ((value & ~0x7FL) != 0 || padding > 0) {
            out.write((int) ((value & 0x7F) | 0x80));
            if ((value & ~0x7FL) == 0) {
                padding--;
            }
            value >>>= 7;
            bytes++;
            if (bytes == 9) {
                break;
            }
        }
        out.write((int) value & 0x7F);
    }

    private static String randomKey(Random rnd) {
        String[] pieces = {"a", "key", "ü", "日本", "😀", "/", "-", "0"};
        StringBuilder key = new StringBuilder();
        int n = rnd.nextInt(5);
        for (int i = 0; i < n; i++) {
            key.append(pieces[rnd.nextInt(pieces.length)]);
        }
        return key.toString();
    }

    private static byte[] randomBytes(Random rnd) {
        byte[] bytes = new byte[rnd.nextInt(4) == 0 ? 130 + rnd.nextInt(200) : rnd.nextInt(20)];
        rnd.nextBytes(bytes);
        return bytes;
    }

    private static byte[] mutate(byte[] valid, Random rnd) {
        byte[] bytes = valid.clone();
        int changes = 1 + rnd.nextInt(3);
        for (int i = 0; i < changes && bytes.length > 0; i++) {
            int at = rnd.nextInt(bytes.length);
            switch (rnd.nextInt(4)) {
                case 0 -> bytes[at] ^= (byte) (1 << rnd.nextInt(8));
                case 1 -> bytes[at] = (byte) rnd.nextInt(256);
                case 2 -> bytes[at] = (byte) (rnd.nextBoolean() ? 0xFF : 0x80);
                default -> {
                    byte[] shorter = new byte[bytes.length - 1];
                    System.arraycopy(bytes, 0, shorter, 0, at);
                    System.arraycopy(bytes, at + 1, shorter, at, bytes.length - at - 1);
                    bytes = shorter;
                }
            }
        }
        return bytes;
    }

    private static String hex(byte[] bytes) {
        StringBuilder s = new StringBuilder();
        for (byte b : bytes) {
            s.append(String.format("%02x", b));
        }
        return s.toString();
    }
}
