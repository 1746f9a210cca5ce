package dev.mapcast.core;

/**
 * XXH64 (Yann Collet's xxHash, 64-bit), the hash of the contract's digest (see {@code Delta.digest}
 * in mapcast.proto): the map digest is the sum, modulo 2^64, of XXH64 with seed 0 over every live
 * entry's canonical record, which is exactly a stored record's body (see {@link RecordLayout}).
 *
 * <p>Public because clients in every module (and any language) compute the same digest; the
 * reference vectors of {@code xxhsum -H1} are in the tests.
 */
public final class Xxh64 {

    private static final long P1 = 0x9E3779B185EBCA87L;
    private static final long P2 = 0xC2B2AE3D27D4EB4FL;
    private static final long P3 = 0x165667B19E3779F9L;
    private static final long P4 = 0x85EBCA77C2B2AE63L;
    private static final long P5 = 0x27D4EB2F165667C5L;

    private Xxh64() {
    }

    /** XXH64 of {@code bytes[offset, offset + length)} with {@code seed}. */
    public static long hash(byte[] bytes, int offset, int length, long seed) {
        if (offset < 0 || length < 0 || offset > bytes.length - length) {
            throw new IndexOutOfBoundsException("offset " + offset + ", length " + length
                    + " (expected: within an array of " + bytes.length + ")");
        }
        return hash(bytes, NativeMemory.BYTE_ARRAY_OFFSET + offset, length, seed);
    }

    /** XXH64 of {@code length} bytes at {@code base + offset} (base null: an absolute address). */
    static long hash(Object base, long offset, int length, long seed) {
        long p = offset;
        long end = offset + length;
        long h;
        if (length >= 32) {
            long v1 = seed + P1 + P2;
            long v2 = seed + P2;
            long v3 = seed;
            long v4 = seed - P1;
            long limit = end - 32;
            do {
                v1 = round(v1, NativeMemory.getLong(base, p));
                v2 = round(v2, NativeMemory.getLong(base, p + 8));
                v3 = round(v3, NativeMemory.getLong(base, p + 16));
                v4 = round(v4, NativeMemory.getLong(base, p + 24));
                p += 32;
            } while (p <= limit);
            h = Long.rotateLeft(v1, 1) + Long.rotateLeft(v2, 7) + Long.rotateLeft(v3, 12) + Long.rotateLeft(v4, 18);
            h = merge(h, v1);
            h = merge(h, v2);
            h = merge(h, v3);
            h = merge(h, v4);
        } else {
            h = seed + P5;
        }
        h += length;
        for (; p + 8 <= end; p += 8) {
            h ^= round(0, NativeMemory.getLong(base, p));
            h = Long.rotateLeft(h, 27) * P1 + P4;
        }
        if (p + 4 <= end) {
            h ^= NativeMemory.getUnsignedInt(base, p) * P1;
            h = Long.rotateLeft(h, 23) * P2 + P3;
            p += 4;
        }
        for (; p < end; p++) {
            h ^= NativeMemory.getUnsignedByte(base, p) * P5;
            h = Long.rotateLeft(h, 11) * P1;
        }
        h ^= h >>> 33;
        h *= P2;
        h ^= h >>> 29;
        h *= P3;
        h ^= h >>> 32;
        return h;
    }

    private static long round(long acc, long input) {
        acc += input * P2;
        acc = Long.rotateLeft(acc, 31);
        return acc * P1;
    }

    private static long merge(long acc, long value) {
        acc ^= round(0, value);
        return acc * P1 + P4;
    }
}
