package dev.mapcast.core;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The protobuf wire format of one {@code map<string, bytes>} entry in field 1, written out by hand
 * from the protobuf encoding rules, independently of {@link RecordLayout}:
 * {@code 0x0A varint(n) 0x0A varint(klen) key 0x12 varint(vlen) value}, where n is the length of
 * what follows varint(n). Map entries always carry both fields, as protobuf-java writes them.
 */
final class WireRecords {

    private WireRecords() {
    }

    /** Base-128 varint, least significant group first, high bit set on all but the last byte. */
    static byte[] varint(int value) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(5);
        long v = value & 0xFFFF_FFFFL;
        while (v >= 0x80) {
            out.write((int) (v & 0x7F) | 0x80);
            v >>>= 7;
        }
        out.write((int) v);
        return out.toByteArray();
    }

    static byte[] record(byte[] key, byte[] value) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        body.write(0x0A);
        body.writeBytes(varint(key.length));
        body.writeBytes(key);
        body.write(0x12);
        body.writeBytes(varint(value.length));
        body.writeBytes(value);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(0x0A);
        out.writeBytes(varint(body.size()));
        out.writeBytes(body.toByteArray());
        return out.toByteArray();
    }

    static int recordLength(int keyLength, int valueLength) {
        int body = 1 + varint(keyLength).length + keyLength + 1 + varint(valueLength).length + valueLength;
        return 1 + varint(body).length + body;
    }

    /** The concatenated records of {@code entries}, in their iteration order. */
    static byte[] records(Map<byte[], byte[]> entries) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        entries.forEach((k, v) -> out.writeBytes(record(k, v)));
        return out.toByteArray();
    }

    /**
     * Decodes a run of field-1 map entries as a protobuf parser would (accepting either field
     * order and missing fields); fails on anything else. Keys in order of appearance.
     */
    static LinkedHashMap<String, byte[]> decode(byte[] run) {
        LinkedHashMap<String, byte[]> entries = new LinkedHashMap<>();
        ByteBuffer in = ByteBuffer.wrap(run);
        while (in.hasRemaining()) {
            int tag = readVarint(in);
            if (tag != 0x0A) {
                throw new IllegalArgumentException("expected tag 0x0A at " + (in.position() - 1) + ", got " + tag);
            }
            int length = readVarint(in);
            ByteBuffer body = in.slice();
            body.limit(length);
            in.position(in.position() + length);
            byte[] key = new byte[0];
            byte[] value = new byte[0];
            while (body.hasRemaining()) {
                int field = readVarint(body);
                byte[] bytes = new byte[readVarint(body)];
                body.get(bytes);
                if (field == 0x0A) {
                    key = bytes;
                } else if (field == 0x12) {
                    value = bytes;
                } else {
                    throw new IllegalArgumentException("unexpected entry field tag " + field);
                }
            }
            entries.put(Keys.string(key), value);
        }
        return entries;
    }

    private static int readVarint(ByteBuffer in) {
        int value = 0;
        for (int shift = 0; ; shift += 7) {
            int b = in.get();
            value |= (b & 0x7F) << shift;
            if (b >= 0) {
                return value;
            }
        }
    }
}
