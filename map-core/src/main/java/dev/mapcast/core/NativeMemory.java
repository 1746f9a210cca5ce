package dev.mapcast.core;

import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.atomic.AtomicLong;
import sun.misc.Unsafe;

/**
 * Raw access to memory outside the Java heap, and the process-wide account of it.
 *
 * <p>Every off-heap byte the map holds is allocated and freed here, with {@code malloc}/{@code free}
 * underneath ({@link Unsafe#allocateMemory}), so a freed block goes back to the C allocator at once
 * instead of waiting for a garbage-collected cleaner. {@link #allocatedBytes()} is the sum of blocks
 * still held by all maps in the process; tests use it to fail on leaks.
 *
 * <p>Addresses are plain {@code long}s. Reads and writes are not bounds-checked: each caller owns a
 * layout class that says where the bytes are. Multi-byte reads are little-endian on every platform.
 */
final class NativeMemory {

    static final Unsafe UNSAFE = loadUnsafe();
    static final long BYTE_ARRAY_OFFSET = UNSAFE.arrayBaseOffset(byte[].class);
    private static final boolean BIG_ENDIAN = ByteOrder.nativeOrder() == ByteOrder.BIG_ENDIAN;
    private static final long BUFFER_ADDRESS_OFFSET = fieldOffset(java.nio.Buffer.class, "address");
    // A heap buffer's array and its offset in it, read-only buffers included (they hide them).
    private static final long BUFFER_ARRAY_OFFSET = fieldOffset(ByteBuffer.class, "hb");
    private static final long BUFFER_ARRAY_START_OFFSET = fieldOffset(ByteBuffer.class, "offset");

    private static final AtomicLong ALLOCATED_BYTES = new AtomicLong();
    private static final AtomicLong ALLOCATED_BLOCKS = new AtomicLong();

    private NativeMemory() {
    }

    /** Bytes of off-heap memory held right now by every map in this process. */
    static long allocatedBytes() {
        return ALLOCATED_BYTES.get();
    }

    /** Off-heap blocks held right now by every map in this process. */
    static long allocatedBlocks() {
        return ALLOCATED_BLOCKS.get();
    }

    /** Allocates {@code bytes} of uninitialised memory. */
    static long allocate(long bytes) {
        long address = UNSAFE.allocateMemory(bytes);
        ALLOCATED_BYTES.addAndGet(bytes);
        ALLOCATED_BLOCKS.incrementAndGet();
        return address;
    }

    /** Allocates {@code bytes} of memory filled with zeroes. */
    static long allocateZeroed(long bytes) {
        long address = allocate(bytes);
        UNSAFE.setMemory(address, bytes, (byte) 0);
        return address;
    }

    /** Frees a block from {@link #allocate}; {@code bytes} must be the size it was allocated with. */
    static void free(long address, long bytes) {
        UNSAFE.freeMemory(address);
        ALLOCATED_BYTES.addAndGet(-bytes);
        ALLOCATED_BLOCKS.decrementAndGet();
    }

    /** Never equal to a byte: a mutable field, so the compiler must keep the load compared with it. */
    private static int touchSentinel = Integer.MIN_VALUE;
    private static int touchSink;

    /** Loads the byte at {@code address} for its side effect only: bringing its cache line in. */
    static void touch(long address) {
        if (UNSAFE.getByte(address) == touchSentinel) {
            touchSink++;
        }
    }

    static byte getByte(long address) {
        return UNSAFE.getByte(address);
    }

    static void putByte(long address, byte value) {
        UNSAFE.putByte(address, value);
    }

    static int getInt(long address) {
        int v = UNSAFE.getInt(address);
        return BIG_ENDIAN ? Integer.reverseBytes(v) : v;
    }

    static void putInt(long address, int value) {
        UNSAFE.putInt(address, BIG_ENDIAN ? Integer.reverseBytes(value) : value);
    }

    static long getLong(long address) {
        long v = UNSAFE.getLong(address);
        return BIG_ENDIAN ? Long.reverseBytes(v) : v;
    }

    static void putLong(long address, long value) {
        UNSAFE.putLong(address, BIG_ENDIAN ? Long.reverseBytes(value) : value);
    }

    /** Reads 8 bytes, little-endian, from {@code base + offset}: base is null for an absolute address. */
    static long getLong(Object base, long offset) {
        long v = UNSAFE.getLong(base, offset);
        return BIG_ENDIAN ? Long.reverseBytes(v) : v;
    }

    /** Reads 4 bytes, little-endian, as an unsigned value. */
    static long getUnsignedInt(Object base, long offset) {
        int v = UNSAFE.getInt(base, offset);
        return (BIG_ENDIAN ? Integer.reverseBytes(v) : v) & 0xFFFF_FFFFL;
    }

    static int getUnsignedByte(Object base, long offset) {
        return UNSAFE.getByte(base, offset) & 0xFF;
    }

    /** Below this many bytes a copy is done inline: cheaper than the call into the copy stub. */
    private static final int INLINE_COPY_LIMIT = 128;

    static void copy(Object srcBase, long srcOffset, Object dstBase, long dstOffset, long bytes) {
        if (bytes > INLINE_COPY_LIMIT) {
            UNSAFE.copyMemory(srcBase, srcOffset, dstBase, dstOffset, bytes);
            return;
        }
        int i = 0;
        for (; i + Long.BYTES <= bytes; i += Long.BYTES) {
            UNSAFE.putLong(dstBase, dstOffset + i, UNSAFE.getLong(srcBase, srcOffset + i));
        }
        for (; i < bytes; i++) {
            UNSAFE.putByte(dstBase, dstOffset + i, UNSAFE.getByte(srcBase, srcOffset + i));
        }
    }

    static void copy(long src, long dst, long bytes) {
        UNSAFE.copyMemory(src, dst, bytes);
    }

    static void fill(long address, long bytes, byte value) {
        UNSAFE.setMemory(address, bytes, value);
    }

    /** Whether {@code len} bytes at {@code a} equal those at {@code base + offset}. */
    static boolean equal(long a, Object base, long offset, int len) {
        int i = 0;
        for (; i + 8 <= len; i += 8) {
            if (UNSAFE.getLong(a + i) != UNSAFE.getLong(base, offset + i)) {
                return false;
            }
        }
        for (; i < len; i++) {
            if (UNSAFE.getByte(a + i) != UNSAFE.getByte(base, offset + i)) {
                return false;
            }
        }
        return true;
    }

    /**
     * The base object of a buffer's bytes for {@code getLong(Object, long)}: its array (read-only
     * heap buffers too), or null for a direct buffer.
     */
    static Object base(ByteBuffer buffer) {
        return buffer.isDirect() ? null : UNSAFE.getObject(buffer, BUFFER_ARRAY_OFFSET);
    }

    /** The offset that, with {@link #base(ByteBuffer)}, addresses {@code buffer.position()}. */
    static long offset(ByteBuffer buffer) {
        if (buffer.isDirect()) {
            return UNSAFE.getLong(buffer, BUFFER_ADDRESS_OFFSET) + buffer.position();
        }
        return BYTE_ARRAY_OFFSET + UNSAFE.getInt(buffer, BUFFER_ARRAY_START_OFFSET) + buffer.position();
    }

    /** Copies {@code length} bytes at {@code address} to {@code dst} at its position, and advances it. */
    static void copyToBuffer(long address, int length, ByteBuffer dst) {
        if (dst.isReadOnly()) {
            throw new java.nio.ReadOnlyBufferException();
        }
        if (dst.remaining() < length) {
            throw new java.nio.BufferOverflowException();
        }
        copy(null, address, base(dst), offset(dst), length);
        dst.position(dst.position() + length);
    }

    static byte[] toArray(long address, int length) {
        byte[] bytes = new byte[length];
        copy(null, address, bytes, BYTE_ARRAY_OFFSET, length);
        return bytes;
    }

    private static Unsafe loadUnsafe() {
        try {
            Field f = Unsafe.class.getDeclaredField("theUnsafe");
            f.setAccessible(true);
            return (Unsafe) f.get(null);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private static long fieldOffset(Class<?> type, String name) {
        try {
            @SuppressWarnings("deprecation") // the only way to read a direct buffer's address on JDK 17
            long offset = UNSAFE.objectFieldOffset(type.getDeclaredField(name));
            return offset;
        } catch (NoSuchFieldException e) {
            throw new ExceptionInInitializerError(e);
        }
    }
}
