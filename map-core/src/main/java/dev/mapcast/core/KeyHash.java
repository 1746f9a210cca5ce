package dev.mapcast.core;

import java.security.SecureRandom;

/**
 * The map's seeded 64-bit key hash, after wyhash (Wang Yi, public domain): 128-bit multiply-and-fold
 * mixing, 8 or 16 bytes per step. The same function reads a {@code byte[]}, a heap buffer or
 * off-heap memory through {@code (base, offset)}, so a key hashes equally wherever it lives.
 *
 * <p>Keys come from untrusted clients, so each map draws its seed from {@link SecureRandom} unless
 * the builder fixes one; without the seed an attacker cannot choose keys that collide.
 */
final class KeyHash {

    private static final long P0 = 0xa0761d6478bd642fL;
    private static final long P1 = 0xe7037ed1a0b428dbL;
    private static final long P2 = 0x8ebc6af09c88c6e3L;
    private static final SecureRandom SEEDS = new SecureRandom();

    private KeyHash() {
    }

    static long randomSeed() {
        synchronized (SEEDS) {
            return SEEDS.nextLong();
        }
    }

    static long hash(long seed, Object base, long offset, int length) {
        long s = seed ^ mix(seed ^ P0, P1);
        long a;
        long b;
        if (length <= 16) {
            if (length >= 4) {
                long quarter = (length >>> 3) << 2;
                a = (NativeMemory.getUnsignedInt(base, offset) << 32)
                        | NativeMemory.getUnsignedInt(base, offset + quarter);
                b = (NativeMemory.getUnsignedInt(base, offset + length - 4) << 32)
                        | NativeMemory.getUnsignedInt(base, offset + length - 4 - quarter);
            } else if (length > 0) {
                a = ((long) NativeMemory.getUnsignedByte(base, offset) << 16)
                        | ((long) NativeMemory.getUnsignedByte(base, offset + (length >>> 1)) << 8)
                        | NativeMemory.getUnsignedByte(base, offset + length - 1);
                b = 0;
            } else {
                a = 0;
                b = 0;
            }
        } else {
            long p = offset;
            int i = length;
            while (i > 16) {
                s = mix(NativeMemory.getLong(base, p) ^ P1, NativeMemory.getLong(base, p + 8) ^ s);
                p += 16;
                i -= 16;
            }
            a = NativeMemory.getLong(base, p + i - 16);
            b = NativeMemory.getLong(base, p + i - 8);
        }
        a ^= P1;
        b ^= s;
        long lo = a * b;
        long hi = unsignedMultiplyHigh(a, b);
        return mix(lo ^ P0 ^ length, hi ^ P1 ^ P2);
    }

    /** Multiplies to 128 bits and folds the halves together. */
    private static long mix(long a, long b) {
        return (a * b) ^ unsignedMultiplyHigh(a, b);
    }

    private static long unsignedMultiplyHigh(long a, long b) {
        // Math.unsignedMultiplyHigh arrived in JDK 18; this is its definition.
        return Math.multiplyHigh(a, b) + ((a >> 63) & b) + ((b >> 63) & a);
    }
}
