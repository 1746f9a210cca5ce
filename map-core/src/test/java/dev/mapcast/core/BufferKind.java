package dev.mapcast.core;

import java.nio.ByteBuffer;
import java.util.Random;

/**
 * The shapes of {@link ByteBuffer} a caller may pass: heap (whole array, or a window of a larger
 * one, sliced or not), direct, and read-only views of both. Each puts the bytes at a random
 * position so that the map must honour position and limit.
 */
enum BufferKind {
    HEAP,
    HEAP_WINDOW,
    HEAP_SLICE,
    DIRECT,
    READ_ONLY_HEAP,
    READ_ONLY_DIRECT;

    private static final BufferKind[] ALL = values();

    static BufferKind random(Random rnd) {
        return ALL[rnd.nextInt(ALL.length)];
    }

    /**
     * A buffer whose remaining bytes are {@code bytes}. Direct kinds reuse {@code directScratch}
     * (its contents are overwritten), which must hold {@code bytes.length + 64}.
     */
    ByteBuffer wrap(byte[] bytes, Random rnd, ByteBuffer directScratch) {
        int pad = rnd.nextInt(64);
        switch (this) {
            case HEAP:
                return ByteBuffer.wrap(bytes);
            case HEAP_WINDOW:
            case HEAP_SLICE: {
                byte[] larger = new byte[pad + bytes.length + rnd.nextInt(16)];
                rnd.nextBytes(larger);
                System.arraycopy(bytes, 0, larger, pad, bytes.length);
                ByteBuffer window = ByteBuffer.wrap(larger, pad, bytes.length);
                return this == HEAP_SLICE ? window.slice() : window;
            }
            case READ_ONLY_HEAP:
                return HEAP_WINDOW.wrap(bytes, rnd, directScratch).asReadOnlyBuffer();
            case DIRECT:
            case READ_ONLY_DIRECT: {
                ByteBuffer b = directScratch.clear();
                b.position(pad);
                b.put(bytes);
                b.limit(pad + bytes.length).position(pad);
                return this == DIRECT ? b : b.asReadOnlyBuffer();
            }
            default:
                throw new AssertionError(this);
        }
    }
}
