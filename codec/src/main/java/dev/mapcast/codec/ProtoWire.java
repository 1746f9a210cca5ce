package dev.mapcast.codec;

import java.nio.ByteBuffer;

/** Protobuf wire primitives written straight into a buffer: tags, varints, fixed64, length-delimited bytes. */
final class ProtoWire {

    static final int VARINT = 0;
    static final int FIXED64 = 1;
    static final int LENGTH_DELIMITED = 2;
    static final int START_GROUP = 3;
    static final int END_GROUP = 4;
    static final int FIXED32 = 5;

    private ProtoWire() {
    }

    static int tag(int field, int wireType) {
        return (field << 3) | wireType;
    }

    /** Size of {@code value} as an unsigned varint. */
    static int varintSize(long value) {
        return value == 0 ? 1 : (63 - Long.numberOfLeadingZeros(value)) / 7 + 1;
    }

    static void putVarint(ByteBuffer dst, long value) {
        while ((value & ~0x7FL) != 0) {
            dst.put((byte) ((value & 0x7F) | 0x80));
            value >>>= 7;
        }
        dst.put((byte) value);
    }

    static void putFixed64(ByteBuffer dst, long value) {
        for (int i = 0; i < 8; i++) {
            dst.put((byte) (value >>> (8 * i)));
        }
    }

    /** Size of a varint field: tag and value. */
    static int varintFieldSize(int field, long value) {
        return varintSize(tag(field, VARINT)) + varintSize(value);
    }

    static void putVarintField(ByteBuffer dst, int field, long value) {
        putVarint(dst, tag(field, VARINT));
        putVarint(dst, value);
    }

    static int fixed64FieldSize(int field) {
        return varintSize(tag(field, FIXED64)) + Long.BYTES;
    }

    static void putFixed64Field(ByteBuffer dst, int field, long value) {
        putVarint(dst, tag(field, FIXED64));
        putFixed64(dst, value);
    }

    static int bytesFieldSize(int field, int length) {
        return varintSize(tag(field, LENGTH_DELIMITED)) + varintSize(length) + length;
    }

    static void putBytesField(ByteBuffer dst, int field, byte[] bytes) {
        putVarint(dst, tag(field, LENGTH_DELIMITED));
        putVarint(dst, bytes.length);
        dst.put(bytes);
    }
}
