package dev.mapcast.core;

/**
 * The layout of one stored entry: exactly one element of a protobuf {@code map<string, bytes>} field
 * number 1, so that a run of records is, byte for byte, the encoding of that field.
 *
 * <pre>
 *   0      1            1+a    2+a          2+a+b     2+a+b+k  3+a+b+k      3+a+b+k+c
 *   +------+------------+------+------------+---------+--------+------------+---------+
 *   | 0x0A | varint(n)  | 0x0A | varint(k)  |   key   |  0x12  | varint(v)  |  value  |
 *   +------+------------+------+------------+---------+--------+------------+---------+
 *   field 1, length-    entry    key length   k bytes   entry    value length v bytes
 *   delimited           field 1                         field 2
 *
 *   n = 1 + b + k + 1 + c + v      (the entry body; a, b, c are the varints' sizes)
 * </pre>
 *
 * Records are canonical: both entry fields are always present, varints are the shortest, the key
 * comes first. They are immutable once written. A record is addressed by its first byte; a span
 * inside a record is packed into a long as {@code offsetFromRecordStart << 32 | length}.
 */
final class RecordLayout {

    static final byte ENTRY_TAG = 0x0A;  // field 1, wire type 2
    static final byte KEY_TAG = 0x0A;    // entry field 1 (key), wire type 2
    static final byte VALUE_TAG = 0x12;  // entry field 2 (value), wire type 2

    /** Smallest possible record: empty key and value. */
    static final int MIN_RECORD_LENGTH = 6;

    private RecordLayout() {
    }

    static int varintSize(int value) {
        // value is never negative here: lengths are checked against limits below 2^31.
        return value < (1 << 7) ? 1 : value < (1 << 14) ? 2 : value < (1 << 21) ? 3 : value < (1 << 28) ? 4 : 5;
    }

    /** Length of the entry body: what follows the outer tag and its length varint. */
    static int bodyLength(int keyLength, int valueLength) {
        return 2 + varintSize(keyLength) + keyLength + varintSize(valueLength) + valueLength;
    }

    /** Length of the whole record. */
    static int recordLength(int keyLength, int valueLength) {
        int body = bodyLength(keyLength, valueLength);
        return 1 + varintSize(body) + body;
    }

    /** Writes a canonical record at {@code address}; returns its length. */
    static int write(long address, Object keyBase, long keyOffset, int keyLength,
            Object valueBase, long valueOffset, int valueLength) {
        long p = address;
        NativeMemory.putByte(p++, ENTRY_TAG);
        p = writeVarint(p, bodyLength(keyLength, valueLength));
        NativeMemory.putByte(p++, KEY_TAG);
        p = writeVarint(p, keyLength);
        NativeMemory.copy(keyBase, keyOffset, null, p, keyLength);
        p += keyLength;
        NativeMemory.putByte(p++, VALUE_TAG);
        p = writeVarint(p, valueLength);
        NativeMemory.copy(valueBase, valueOffset, null, p, valueLength);
        p += valueLength;
        return (int) (p - address);
    }

    /** The canonical entry body of {@code key} and {@code value} in an array of its own: what the digest hashes. */
    static byte[] body(byte[] key, byte[] value) {
        byte[] out = new byte[bodyLength(key.length, value.length)];
        int p = 0;
        out[p++] = KEY_TAG;
        p = writeVarint(out, p, key.length);
        System.arraycopy(key, 0, out, p, key.length);
        p += key.length;
        out[p++] = VALUE_TAG;
        p = writeVarint(out, p, value.length);
        System.arraycopy(value, 0, out, p, value.length);
        return out;
    }

    /** Total length of the record at {@code address}. */
    static int length(long address) {
        long body = readVarint(address + 1);
        return 1 + spanOffset(body) + spanLength(body);
    }

    /**
     * The entry body of the record at {@code address} (everything after the outer tag and length),
     * as a packed span: the contract's canonical record, which the digest hashes.
     */
    static long bodySpan(long address) {
        long body = readVarint(address + 1);
        return span(1 + spanOffset(body), spanLength(body));
    }

    /** The key of the record at {@code address}, as a packed span. */
    static long keySpan(long address) {
        // Fast path: the entry and key lengths are one-byte varints (records under 128 bytes).
        int head = NativeMemory.getInt(address);  // tag, entry length, key tag, key length
        if ((head & 0x8000_8000) == 0) {
            return span(4, head >>> 24);
        }
        int keyTag = 1 + spanOffset(readVarint(address + 1));
        long k = readVarint(address + keyTag + 1);
        return span(keyTag + 1 + spanOffset(k), spanLength(k));
    }

    /** The value of the record at {@code address}, as a packed span. */
    static long valueSpan(long address) {
        long key = keySpan(address);
        int valueTag = spanOffset(key) + spanLength(key);
        int valueLength = NativeMemory.getByte(address + valueTag + 1);
        if (valueLength >= 0) {
            return span(valueTag + 2, valueLength);
        }
        long v = readVarint(address + valueTag + 1);
        return span(valueTag + 1 + spanOffset(v), spanLength(v));
    }

    static long span(int offset, int length) {
        return ((long) offset << 32) | (length & 0xFFFF_FFFFL);
    }

    static int spanOffset(long span) {
        return (int) (span >>> 32);
    }

    static int spanLength(long span) {
        return (int) span;
    }

    /** Reads the varint at {@code address}, returned as a span: offset = its size, length = its value. */
    private static long readVarint(long address) {
        int b = NativeMemory.getByte(address);
        if (b >= 0) {
            return span(1, b);
        }
        int value = b & 0x7F;
        int size = 1;
        int shift = 7;
        do {
            b = NativeMemory.getByte(address + size++);
            value |= (b & 0x7F) << shift;
            shift += 7;
        } while (b < 0);
        return span(size, value);
    }

    private static int writeVarint(byte[] out, int p, int value) {
        while ((value & ~0x7F) != 0) {
            out[p++] = (byte) ((value & 0x7F) | 0x80);
            value >>>= 7;
        }
        out[p++] = (byte) value;
        return p;
    }

    private static long writeVarint(long p, int value) {
        while ((value & ~0x7F) != 0) {
            NativeMemory.putByte(p++, (byte) ((value & 0x7F) | 0x80));
            value >>>= 7;
        }
        NativeMemory.putByte(p++, (byte) value);
        return p;
    }
}
