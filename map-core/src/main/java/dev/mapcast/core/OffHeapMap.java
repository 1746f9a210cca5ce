package dev.mapcast.core;

import java.nio.ByteBuffer;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.locks.StampedLock;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * A byte-string key/value map kept off the Java heap, each entry stored once as its protobuf
 * {@code map<string, bytes>} wire record, so that a run of entries is already a valid encoding.
 *
 * <pre>{@code
 * try (OffHeapMap map = OffHeapMap.builder().order(IterationOrder.INSERTION).build()) {
 *     map.put(key, value);
 *     byte[] v = map.get(key);          // null when absent
 *     map.remove(key);
 *     map.compact();                     // reclaim dead records and tombstones now
 *     MemoryStats stats = map.memoryStats();
 * }
 * }</pre>
 *
 * <p>What it does that a runtime map does not: it gives memory back. Deletes and updates leave dead
 * records and index tombstones; compaction reclaims them segment by segment in bounded steps (after
 * writes, past {@link Builder#compactionThreshold}, and on {@link #compact()}), and the index
 * shrinks as the map empties. No operation rehashes or copies the whole map: growth and shrink split
 * or merge one small table at a time. It iterates in first-insertion order if asked, and
 * {@link #pin()} gives a consistent view while writes go on.
 *
 * <p>Threads: a map built plain is single-writer: every call must come from one thread at a time.
 * A map built with {@link Builder#threadSafe(boolean) threadSafe(true)} may be shared: readers
 * never block each other, and a writer holds them up for at most one bounded step.
 *
 * <p>Memory: the map holds off-heap memory until {@link #close()}; {@link #memoryStats()} tells
 * how much. Heap use does not grow with the number of entries.
 */
public final class OffHeapMap implements AutoCloseable, Iterable<Map.Entry<byte[], byte[]>> {

    /** Largest key length a builder accepts: 64 KiB. */
    public static final int MAX_KEY_LENGTH_LIMIT = 64 * 1024;
    /** Largest value length a builder accepts: 256 MiB. */
    public static final int MAX_VALUE_LENGTH_LIMIT = 256 * 1024 * 1024;

    private final MapEngine engine;
    private final StampedLock lock;
    private final int maxKeyLength;
    private final int maxValueLength;
    private final Set<PinnedView> views = Collections.newSetFromMap(new IdentityHashMap<>());

    private OffHeapMap(Builder b) {
        long seed = b.seedFixed ? b.seed : KeyHash.randomSeed();
        this.engine = new MapEngine(b.order, seed, b.initialCapacity, b.segmentSize, b.compactionThreshold,
                b.autoCompaction, b.tombstoneWarningRatio, b.tombstoneWarningListener, b.trackDigest);
        this.lock = b.threadSafe ? new StampedLock() : null;
        this.maxKeyLength = b.maxKeyLength;
        this.maxValueLength = b.maxValueLength;
    }

    public static Builder builder() {
        return new Builder();
    }

    // ---- writes ----

    /**
     * Maps {@code key} to {@code value}, replacing any earlier value (the key keeps its place in
     * INSERTION order). Returns true when the key was not in the map.
     *
     * @throws NullPointerException if key or value is null
     * @throws IllegalArgumentException if key or value is longer than the map's limits
     * @throws IllegalStateException if the map is closed
     */
    public boolean put(byte[] key, byte[] value) {
        checkKey(key);
        checkLength("key", key.length, maxKeyLength);
        checkValue(value);
        long stamp = writeLock();
        try {
            return engine.put(key, NativeMemory.BYTE_ARRAY_OFFSET, key.length, value, NativeMemory.BYTE_ARRAY_OFFSET,
                    value.length);
        } finally {
            unlockWrite(stamp);
        }
    }

    /**
     * Like {@link #put(byte[], byte[])} with the remaining bytes of each buffer (heap or direct);
     * the buffers' positions do not move.
     */
    public boolean put(ByteBuffer key, ByteBuffer value) {
        ByteBuffer k = readable(key, "key");
        ByteBuffer v = readable(value, "value");
        checkLength("key", k.remaining(), maxKeyLength);
        checkLength("value", v.remaining(), maxValueLength);
        long stamp = writeLock();
        try {
            return engine.put(NativeMemory.base(k), NativeMemory.offset(k), k.remaining(), NativeMemory.base(v),
                    NativeMemory.offset(v), v.remaining());
        } finally {
            unlockWrite(stamp);
        }
    }

    /**
     * Puts the key at {@code src[keyIndex, keyIndex + keyLength)} with the value at
     * {@code src[valueIndex, valueIndex + valueLength)}, absolute indices into one buffer (heap or
     * direct): a decoder applies a received message this way with no object per entry. The
     * buffer's position and limit are ignored and unchanged.
     */
    public boolean put(ByteBuffer src, int keyIndex, int keyLength, int valueIndex, int valueLength) {
        ByteBuffer s = readable(src, "src");
        checkRange(s, keyIndex, keyLength, "key");
        checkRange(s, valueIndex, valueLength, "value");
        checkLength("key", keyLength, maxKeyLength);
        checkLength("value", valueLength, maxValueLength);
        Object base = NativeMemory.base(s);
        long origin = NativeMemory.offset(s) - s.position();
        long stamp = writeLock();
        try {
            return engine.put(base, origin + keyIndex, keyLength, base, origin + valueIndex, valueLength);
        } finally {
            unlockWrite(stamp);
        }
    }

    /**
     * Puts {@code count} entries of one buffer, in order, as that many calls of
     * {@link #put(ByteBuffer, int, int, int, int)} would: {@code spans[4i]} to {@code spans[4i + 3]}
     * are entry {@code i}'s key index, key length, value index and value length. Every span is
     * checked before anything is put, so a bad one changes nothing. Faster than one put at a time
     * when filling a large map (the index reads of a batch overlap). Returns the number of keys that
     * were not in the map.
     *
     * @throws IndexOutOfBoundsException if {@code count} exceeds the spans given, or a span the buffer
     * @throws IllegalArgumentException if a key or value is longer than the map's limits
     */
    public int putAll(ByteBuffer src, int[] spans, int count) {
        ByteBuffer s = readable(src, "src");
        Objects.requireNonNull(spans, "spans");
        if (count < 0 || count > spans.length / 4) {
            throw new IndexOutOfBoundsException("count " + count + " (expected: 0 to " + spans.length / 4
                    + ", the entries in " + spans.length + " spans)");
        }
        for (int i = 0; i < count * 4; i += 4) {
            checkRange(s, spans[i], spans[i + 1], "key");
            checkRange(s, spans[i + 2], spans[i + 3], "value");
            checkLength("key", spans[i + 1], maxKeyLength);
            checkLength("value", spans[i + 3], maxValueLength);
        }
        long origin = NativeMemory.offset(s) - s.position();
        long stamp = writeLock();
        try {
            return engine.putBatch(NativeMemory.base(s), origin, spans, count);
        } finally {
            unlockWrite(stamp);
        }
    }

    /** Removes the key at {@code src[index, index + length)} (absolute indices); returns whether it was there. */
    public boolean remove(ByteBuffer src, int index, int length) {
        ByteBuffer s = readable(src, "src");
        checkRange(s, index, length, "key");
        long origin = NativeMemory.offset(s) - s.position();
        long stamp = writeLock();
        try {
            return engine.remove(NativeMemory.base(s), origin + index, length);
        } finally {
            unlockWrite(stamp);
        }
    }

    /** Longest key this map accepts, in bytes. */
    public int maxKeyLength() {
        return maxKeyLength;
    }

    /** Longest value this map accepts, in bytes. */
    public int maxValueLength() {
        return maxValueLength;
    }

    /** Removes {@code key}; returns whether it was in the map. */
    public boolean remove(byte[] key) {
        checkKey(key);
        long stamp = writeLock();
        try {
            return engine.remove(key, NativeMemory.BYTE_ARRAY_OFFSET, key.length);
        } finally {
            unlockWrite(stamp);
        }
    }

    /** Removes the key in {@code key}'s remaining bytes; returns whether it was in the map. */
    public boolean remove(ByteBuffer key) {
        ByteBuffer k = readable(key, "key");
        long stamp = writeLock();
        try {
            return engine.remove(NativeMemory.base(k), NativeMemory.offset(k), k.remaining());
        } finally {
            unlockWrite(stamp);
        }
    }

    /**
     * Reclaims now every dead record, index tombstone and order-log hole, and shrinks the index to
     * what the live entries need. Runs as bounded steps; a thread-safe map lets readers and writers
     * in between steps.
     */
    public CompactionResult compact() {
        long stamp = writeLock();
        MapEngine.Compaction compaction;
        try {
            compaction = engine.new Compaction();
        } finally {
            unlockWrite(stamp);
        }
        boolean more = true;
        while (more) {
            stamp = writeLock();
            try {
                more = compaction.step();
            } finally {
                unlockWrite(stamp);
            }
        }
        stamp = writeLock();
        try {
            return compaction.result();
        } finally {
            unlockWrite(stamp);
        }
    }

    // ---- reads ----

    /** The value of {@code key}, or null when absent. */
    public byte[] get(byte[] key) {
        checkKey(key);
        long stamp = readLock();
        try {
            long record = engine.find(key, NativeMemory.BYTE_ARRAY_OFFSET, key.length);
            return record == 0 ? null : valueOf(record);
        } finally {
            unlockRead(stamp);
        }
    }

    /** The value of the key in {@code key}'s remaining bytes, or null when absent. */
    public byte[] get(ByteBuffer key) {
        ByteBuffer k = readable(key, "key");
        long stamp = readLock();
        try {
            long record = engine.find(NativeMemory.base(k), NativeMemory.offset(k), k.remaining());
            return record == 0 ? null : valueOf(record);
        } finally {
            unlockRead(stamp);
        }
    }

    /**
     * Copies the value of {@code key} into {@code dst} at its position, advancing it, with no
     * intermediate array. Returns the value's length, or -1 when the key is absent (dst unchanged).
     *
     * @throws java.nio.BufferOverflowException if dst has fewer bytes remaining than the value (dst unchanged)
     */
    public int getInto(byte[] key, ByteBuffer dst) {
        return copyOut(key, dst, false);
    }

    /**
     * Length of the key's stored record (one encoded element of a protobuf {@code map<string,
     * bytes>} field 1), or -1 when the key is absent.
     */
    public int recordLength(byte[] key) {
        checkKey(key);
        long stamp = readLock();
        try {
            long record = engine.find(key, NativeMemory.BYTE_ARRAY_OFFSET, key.length);
            return record == 0 ? -1 : RecordLayout.length(record);
        } finally {
            unlockRead(stamp);
        }
    }

    /**
     * Copies the key's stored record into {@code dst} at its position, advancing it: how a delta
     * carries a put with no copy in between. Returns the record's length, or -1 when the key is
     * absent (dst unchanged).
     *
     * @throws java.nio.BufferOverflowException if dst has less room than the record (dst unchanged)
     */
    public int copyRecordTo(byte[] key, ByteBuffer dst) {
        return copyOut(key, dst, true);
    }

    /** Copies the key's whole record, or its value, to dst; -1 when absent. */
    private int copyOut(byte[] key, ByteBuffer dst, boolean wholeRecord) {
        checkKey(key);
        Objects.requireNonNull(dst, "dst");
        long stamp = readLock();
        try {
            long record = engine.find(key, NativeMemory.BYTE_ARRAY_OFFSET, key.length);
            if (record == 0) {
                return -1;
            }
            long span = wholeRecord ? RecordLayout.span(0, RecordLayout.length(record)) : RecordLayout.valueSpan(record);
            int length = RecordLayout.spanLength(span);
            NativeMemory.copyToBuffer(record + RecordLayout.spanOffset(span), length, dst);
            return length;
        } finally {
            unlockRead(stamp);
        }
    }

    public boolean containsKey(byte[] key) {
        checkKey(key);
        long stamp = readLock();
        try {
            return engine.find(key, NativeMemory.BYTE_ARRAY_OFFSET, key.length) != 0;
        } finally {
            unlockRead(stamp);
        }
    }

    public boolean containsKey(ByteBuffer key) {
        ByteBuffer k = readable(key, "key");
        long stamp = readLock();
        try {
            return engine.find(NativeMemory.base(k), NativeMemory.offset(k), k.remaining()) != 0;
        } finally {
            unlockRead(stamp);
        }
    }

    /** Live entries. */
    public long size() {
        long stamp = readLock();
        try {
            checkOpen();
            return engine.size;
        } finally {
            unlockRead(stamp);
        }
    }

    public boolean isEmpty() {
        return size() == 0;
    }

    public IterationOrder order() {
        return engine.order;
    }

    /**
     * The digest of the map's content, as the wire contract defines it ({@code Delta.digest}): the
     * sum, modulo 2^64, over every live entry of XXH64 (seed 0) of its canonical record
     * {@code 0x0A varint(klen) key 0x12 varint(vlen) value}; 0 for an empty map. Maintained on every
     * put and remove, so reading it costs nothing. Equal content gives an equal digest whatever the
     * order, seed or history.
     *
     * @throws IllegalStateException if the map was not built with {@link Builder#trackDigest(boolean) trackDigest(true)}
     */
    public long digest() {
        checkTracksDigest();
        long stamp = readLock();
        try {
            return engine.digest;
        } finally {
            unlockRead(stamp);
        }
    }

    /**
     * One entry's term of {@link #digest()}: XXH64 (seed 0) of its canonical record body. The digest
     * is the sum of these over the live entries, so the digest a write will give can be known
     * before it is applied: add the terms of its puts, take away those of the entries it replaces
     * or removes ({@link #entryDigest(byte[])}).
     */
    public static long entryDigest(byte[] key, byte[] value) {
        Objects.requireNonNull(key, "key");
        Objects.requireNonNull(value, "value");
        byte[] body = RecordLayout.body(key, value);
        return Xxh64.hash(body, 0, body.length, 0);
    }

    /**
     * The {@link #entryDigest(byte[], byte[])} term of the key's stored entry, hashed where it lies
     * (the value is not copied), or 0 when the key is absent. Needs no digest tracking.
     */
    public long entryDigest(byte[] key) {
        checkKey(key);
        long stamp = readLock();
        try {
            long record = engine.find(key, NativeMemory.BYTE_ARRAY_OFFSET, key.length);
            return record == 0 ? 0 : MapEngine.digestOf(record);
        } finally {
            unlockRead(stamp);
        }
    }

    void checkTracksDigest() {
        if (!engine.tracksDigest()) {
            throw new IllegalStateException("digest: not tracked (build the map with trackDigest(true))");
        }
    }

    public boolean isThreadSafe() {
        return lock != null;
    }

    public MemoryStats memoryStats() {
        long stamp = readLock();
        try {
            checkOpen();
            return engine.memoryStats();
        } finally {
            unlockRead(stamp);
        }
    }

    /**
     * Pins a consistent read-only view of the map as it is now. Cheap: no record is copied. Close it
     * when done; see {@link PinnedView}.
     */
    public PinnedView pin() {
        long stamp = writeLock();
        try {
            PinnedView view = engine.pin(this);
            views.add(view);
            return view;
        } finally {
            unlockWrite(stamp);
        }
    }

    /**
     * A cursor over the entries in the map's order. On a single-writer map it fails fast once the
     * map is written; on a thread-safe map use {@link #pin()} and the view's cursor instead.
     *
     * @throws IllegalStateException on a thread-safe map
     */
    public EntryCursor cursor() {
        if (lock != null) {
            throw new IllegalStateException("a thread-safe map has no live cursor: pin() a view and use its cursor");
        }
        checkOpen();
        OrderLog log = engine.log;
        return new EntryCursor(engine, null, engine.locator, engine.store.idLimit(),
                log == null ? 0 : log.writeCursor(), log == null ? 0 : log.readCursor(), log == null ? 0 : log.end());
    }

    /**
     * The entries in the map's order; keys and values are copies. On a single-writer map the
     * iterator fails fast once the map is written. On a thread-safe map it iterates a pinned view,
     * released when the iteration ends; to stop early, iterate an explicit {@link #pin()} instead.
     */
    @Override
    public Iterator<Map.Entry<byte[], byte[]>> iterator() {
        if (lock == null) {
            return cursor().entries();
        }
        PinnedView view = pin();
        Iterator<Map.Entry<byte[], byte[]>> entries = view.iterator();
        return new Iterator<>() {
            @Override
            public boolean hasNext() {
                boolean more = !view.isClosed() && entries.hasNext();
                if (!more) {
                    view.close();
                }
                return more;
            }

            @Override
            public Map.Entry<byte[], byte[]> next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                return entries.next();
            }
        };
    }

    /** Frees all off-heap memory, pinned views' included. Idempotent; later calls fail. */
    @Override
    public void close() {
        long stamp = writeLock(false);
        try {
            for (PinnedView view : views) {
                view.release();
            }
            views.clear();
            engine.close();
        } finally {
            unlockWrite(stamp);
        }
    }

    // ---- package-private helpers ----

    void closeView(PinnedView view) {
        long stamp = writeLock(false);
        try {
            if (!engine.closed && views.remove(view)) {
                view.release();
            }
        } finally {
            unlockWrite(stamp);
        }
    }

    <T> T readLocked(Supplier<T> read) {
        long stamp = readLock();
        try {
            return read.get();
        } finally {
            unlockRead(stamp);
        }
    }

    static void checkKey(byte[] key) {
        Objects.requireNonNull(key, "key");
    }

    /** Checks a buffer argument; any buffer can be read in place, read-only heap buffers included. */
    static ByteBuffer readable(ByteBuffer buffer, String name) {
        return Objects.requireNonNull(buffer, name);
    }

    private void checkValue(byte[] value) {
        Objects.requireNonNull(value, "value");
        checkLength("value", value.length, maxValueLength);
    }

    private static void checkRange(ByteBuffer buffer, int index, int length, String what) {
        if (index < 0 || length < 0 || index > buffer.capacity() - length) {
            throw new IndexOutOfBoundsException(what + ": index " + index + ", length " + length
                    + " (expected: within a buffer of capacity " + buffer.capacity() + ")");
        }
    }

    private static void checkLength(String what, int length, int max) {
        if (length > max) {
            throw new IllegalArgumentException(what + ": " + length + " bytes (expected: at most " + max + ")");
        }
    }

    private void checkOpen() {
        if (engine.closed) {
            throw new IllegalStateException("map is closed");
        }
    }

    private long readLock() {
        long stamp = lock == null ? 0 : lock.readLock();
        if (engine.closed) {
            unlockRead(stamp);
            throw new IllegalStateException("map is closed");
        }
        return stamp;
    }

    private void unlockRead(long stamp) {
        if (lock != null) {
            lock.unlockRead(stamp);
        }
    }

    private long writeLock() {
        return writeLock(true);
    }

    private long writeLock(boolean requireOpen) {
        long stamp = lock == null ? 0 : lock.writeLock();
        if (requireOpen && engine.closed) {
            unlockWrite(stamp);
            throw new IllegalStateException("map is closed");
        }
        return stamp;
    }

    private void unlockWrite(long stamp) {
        if (lock != null) {
            lock.unlockWrite(stamp);
        }
    }

    private static byte[] valueOf(long record) {
        long span = RecordLayout.valueSpan(record);
        return NativeMemory.toArray(record + RecordLayout.spanOffset(span), RecordLayout.spanLength(span));
    }

    /** Builds an {@link OffHeapMap}. Every setting has a default suited to a configuration cache. */
    public static final class Builder {
        private IterationOrder order = IterationOrder.HASH;
        private boolean seedFixed;
        private long seed;
        private long initialCapacity;
        private int segmentSize = 64 * 1024;
        private int maxKeyLength = MAX_KEY_LENGTH_LIMIT;
        private int maxValueLength = 16 * 1024 * 1024;
        private double compactionThreshold = 0.5;
        private boolean autoCompaction = true;
        private double tombstoneWarningRatio = 0.25;
        private Consumer<MemoryStats> tombstoneWarningListener;
        private boolean threadSafe;
        private boolean trackDigest;

        private Builder() {
        }

        /** Iteration order; default {@link IterationOrder#HASH}. */
        public Builder order(IterationOrder order) {
            this.order = Objects.requireNonNull(order, "order");
            return this;
        }

        /**
         * Fixes the hash seed. By default every map draws a random one, so that clients cannot pick
         * colliding keys; fix it only for reproducible tests and benchmarks.
         */
        public Builder hashSeed(long seed) {
            this.seed = seed;
            this.seedFixed = true;
            return this;
        }

        /** Entries to size the index for up front; default 0. The map grows past it as needed. */
        public Builder initialCapacity(long entries) {
            if (entries < 0 || entries > (1L << 40)) {
                throw new IllegalArgumentException("initialCapacity: " + entries + " (expected: 0.." + (1L << 40) + ")");
            }
            this.initialCapacity = entries;
            return this;
        }

        /**
         * Bytes per record segment; default 64 KiB. Smaller segments return memory at a finer grain;
         * a record larger than a segment gets a segment of its own.
         */
        public Builder segmentSize(int bytes) {
            if (bytes < 4096 || bytes > (1 << 30)) {
                throw new IllegalArgumentException("segmentSize: " + bytes + " (expected: 4096.." + (1 << 30) + ")");
            }
            this.segmentSize = bytes;
            return this;
        }

        /** Longest key accepted, in bytes; default and maximum {@value #MAX_KEY_LENGTH_LIMIT}. */
        public Builder maxKeyLength(int bytes) {
            if (bytes < 1 || bytes > MAX_KEY_LENGTH_LIMIT) {
                throw new IllegalArgumentException("maxKeyLength: " + bytes + " (expected: 1.." + MAX_KEY_LENGTH_LIMIT + ")");
            }
            this.maxKeyLength = bytes;
            return this;
        }

        /** Longest value accepted, in bytes; default 16 MiB, maximum {@value #MAX_VALUE_LENGTH_LIMIT}. */
        public Builder maxValueLength(int bytes) {
            if (bytes < 0 || bytes > MAX_VALUE_LENGTH_LIMIT) {
                throw new IllegalArgumentException("maxValueLength: " + bytes + " (expected: 0.." + MAX_VALUE_LENGTH_LIMIT + ")");
            }
            this.maxValueLength = bytes;
            return this;
        }

        /**
         * Fraction of a segment that must be dead before automatic compaction moves its live records
         * out and frees it; default 0.5.
         */
        public Builder compactionThreshold(double deadFraction) {
            if (!(deadFraction > 0 && deadFraction <= 1)) {
                throw new IllegalArgumentException("compactionThreshold: " + deadFraction + " (expected: > 0 and <= 1)");
            }
            this.compactionThreshold = deadFraction;
            return this;
        }

        /** Whether writes run bounded compaction steps past the threshold; default true. */
        public Builder autoCompaction(boolean enabled) {
            this.autoCompaction = enabled;
            return this;
        }

        /** Tombstones per index slot that set {@link MemoryStats#tombstoneWarning()}; default 0.25. */
        public Builder tombstoneWarningRatio(double ratio) {
            if (!(ratio > 0 && ratio <= 1)) {
                throw new IllegalArgumentException("tombstoneWarningRatio: " + ratio + " (expected: > 0 and <= 1)");
            }
            this.tombstoneWarningRatio = ratio;
            return this;
        }

        /** Called, on the writing thread, each time tombstones cross the warning ratio upwards. */
        public Builder onTombstoneWarning(Consumer<MemoryStats> listener) {
            this.tombstoneWarningListener = Objects.requireNonNull(listener, "listener");
            return this;
        }

        /**
         * Whether the map keeps the contract's content digest ({@link OffHeapMap#digest()}); default
         * false. It costs one XXH64 of the record per put and per remove.
         */
        public Builder trackDigest(boolean track) {
            this.trackDigest = track;
            return this;
        }

        /** Whether the map may be shared between threads; default false (single-writer). */
        public Builder threadSafe(boolean threadSafe) {
            this.threadSafe = threadSafe;
            return this;
        }

        public OffHeapMap build() {
            return new OffHeapMap(this);
        }
    }
}
