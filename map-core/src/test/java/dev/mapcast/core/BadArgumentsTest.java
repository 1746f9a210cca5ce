package dev.mapcast.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.BufferOverflowException;
import java.nio.ByteBuffer;
import java.nio.ReadOnlyBufferException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.ConcurrentModificationException;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Misuse gets a clear exception that names what was wrong, and changes nothing: after each rejected
 * call the map has the same size, content and live bytes as before.
 */
class BadArgumentsTest extends AbstractOffHeapTest {

    private static final byte[] K = bytes("key");
    private static final byte[] V = bytes("value");

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    /** A map with a few entries, including a large and an empty value. */
    private OffHeapMap populated(boolean threadSafe) {
        OffHeapMap map = build(OffHeapMap.builder().order(IterationOrder.INSERTION).threadSafe(threadSafe)
                .maxKeyLength(10).maxValueLength(100_000).segmentSize(4096));
        map.put(K, V);
        map.put(bytes("empty"), new byte[0]);
        map.put(bytes("large"), new byte[50_000]);
        for (int i = 0; i < 20; i++) {
            map.put(bytes("k" + i), bytes("v" + i));
        }
        map.remove(bytes("k3"));
        return map;
    }

    /** What a user can see of a map: size, entries in iteration order, live bytes. */
    private record Observed(long size, List<Map.Entry<String, String>> entries, long liveBytes) {
        static Observed of(OffHeapMap map) {
            List<Map.Entry<String, String>> entries = new ArrayList<>();
            for (Map.Entry<byte[], byte[]> e : map) {
                entries.add(Map.entry(Keys.string(e.getKey()), Keys.string(e.getValue())));
            }
            return new Observed(map.size(), entries, map.memoryStats().liveBytes());
        }
    }

    /** Runs the call, expects {@code type}, and checks the map is as before; returns the exception. */
    private static <T extends Throwable> T rejects(OffHeapMap map, Class<T> type, Executable call, String what) {
        Observed before = Observed.of(map);
        T thrown = assertThrows(type, call, what);
        Observed after = Observed.of(map);
        assertEquals(before, after, what + ": a rejected call changed the map");
        return thrown;
    }

    private static void assertMessageNames(Throwable thrown, String... parts) {
        for (String part : parts) {
            assertTrue(thrown.getMessage() != null && thrown.getMessage().contains(part),
                    "message \"" + thrown.getMessage() + "\" should name " + part);
        }
    }

    // ---- nulls ----

    @ParameterizedTest(name = "threadSafe={0}")
    @ValueSource(booleans = {false, true})
    void nullKeyOrValueIsRejectedByName(boolean threadSafe) {
        OffHeapMap map = populated(threadSafe);
        ByteBuffer kb = ByteBuffer.wrap(K);
        ByteBuffer vb = ByteBuffer.wrap(V);
        ByteBuffer dst = ByteBuffer.allocate(100);
        assertMessageNames(rejects(map, NullPointerException.class, () -> map.put(null, V), "put(null, v)"), "key");
        assertMessageNames(rejects(map, NullPointerException.class, () -> map.put(K, null), "put(k, null)"), "value");
        assertMessageNames(rejects(map, NullPointerException.class, () -> map.put(null, vb), "put(null buffer, v)"),
                "key");
        assertMessageNames(rejects(map, NullPointerException.class, () -> map.put(kb, null), "put(k, null buffer)"),
                "value");
        assertMessageNames(rejects(map, NullPointerException.class, () -> map.get((byte[]) null), "get(null)"),
                "key");
        assertMessageNames(rejects(map, NullPointerException.class, () -> map.get((ByteBuffer) null),
                "get(null buffer)"), "key");
        assertMessageNames(rejects(map, NullPointerException.class, () -> map.containsKey((byte[]) null),
                "containsKey(null)"), "key");
        assertMessageNames(rejects(map, NullPointerException.class, () -> map.containsKey((ByteBuffer) null),
                "containsKey(null buffer)"), "key");
        assertMessageNames(rejects(map, NullPointerException.class, () -> map.remove((byte[]) null),
                "remove(null)"), "key");
        assertMessageNames(rejects(map, NullPointerException.class, () -> map.remove((ByteBuffer) null),
                "remove(null buffer)"), "key");
        assertMessageNames(rejects(map, NullPointerException.class, () -> map.getInto(null, dst),
                "getInto(null, dst)"), "key");
        assertMessageNames(rejects(map, NullPointerException.class, () -> map.getInto(K, null),
                "getInto(k, null)"), "dst");
        try (PinnedView view = map.pin()) {
            assertMessageNames(rejects(map, NullPointerException.class, () -> view.get((byte[]) null),
                    "view.get(null)"), "key");
            assertMessageNames(rejects(map, NullPointerException.class, () -> view.get((ByteBuffer) null),
                    "view.get(null buffer)"), "key");
            assertMessageNames(rejects(map, NullPointerException.class, () -> view.containsKey(null),
                    "view.containsKey(null)"), "key");
        }
    }

    @Test
    void builderRejectsNullsByName() {
        assertMessageNames(assertThrows(NullPointerException.class, () -> OffHeapMap.builder().order(null)), "order");
        assertMessageNames(assertThrows(NullPointerException.class,
                () -> OffHeapMap.builder().onTombstoneWarning(null)), "listener");
    }

    // ---- lengths ----

    @ParameterizedTest(name = "threadSafe={0}")
    @ValueSource(booleans = {false, true})
    void tooLongKeyOrValueIsRejectedWithLengthAndLimit(boolean threadSafe) {
        OffHeapMap map = populated(threadSafe);
        byte[] longKey = bytes("elevenbytes");
        byte[] longValue = new byte[100_001];
        assertEquals(11, longKey.length);

        IllegalArgumentException e = rejects(map, IllegalArgumentException.class, () -> map.put(longKey, V),
                "put of an 11-byte key, limit 10");
        assertMessageNames(e, "key", "11", "10");
        e = rejects(map, IllegalArgumentException.class,
                () -> map.put(ByteBuffer.wrap(longKey), ByteBuffer.wrap(V)), "put(ByteBuffer) of an 11-byte key");
        assertMessageNames(e, "key", "11", "10");
        e = rejects(map, IllegalArgumentException.class,
                () -> map.put(ByteBuffer.allocateDirect(11), ByteBuffer.wrap(V)), "put(direct) of an 11-byte key");
        assertMessageNames(e, "key", "11", "10");

        e = rejects(map, IllegalArgumentException.class, () -> map.put(K, longValue),
                "put of a 100001-byte value, limit 100000");
        assertMessageNames(e, "value", "100001", "100000");
        e = rejects(map, IllegalArgumentException.class,
                () -> map.put(ByteBuffer.wrap(K), ByteBuffer.wrap(longValue).asReadOnlyBuffer()),
                "put(ByteBuffer) of a 100001-byte value");
        assertMessageNames(e, "value", "100001", "100000");

        // An update that is too long leaves the old value in place.
        rejects(map, IllegalArgumentException.class, () -> map.put(bytes("large"), longValue), "too long update");
        assertEquals(50_000, map.get(bytes("large")).length);

        // The limits themselves are accepted.
        map.put(bytes("tenbytes10"), new byte[100_000]);
        assertEquals(100_000, map.get(bytes("tenbytes10")).length);
    }

    @Test
    void builderRejectsOutOfRangeSettingsNamingTheValue() {
        checkBuilderRejects(b -> b.initialCapacity(-1), "initialCapacity", "-1");
        checkBuilderRejects(b -> b.initialCapacity((1L << 40) + 1), "initialCapacity", String.valueOf((1L << 40) + 1));
        checkBuilderRejects(b -> b.segmentSize(4095), "segmentSize", "4095");
        checkBuilderRejects(b -> b.segmentSize(0), "segmentSize", "0");
        checkBuilderRejects(b -> b.segmentSize((1 << 30) + 1), "segmentSize", String.valueOf((1 << 30) + 1));
        checkBuilderRejects(b -> b.maxKeyLength(0), "maxKeyLength", "0");
        checkBuilderRejects(b -> b.maxKeyLength(OffHeapMap.MAX_KEY_LENGTH_LIMIT + 1), "maxKeyLength",
                String.valueOf(OffHeapMap.MAX_KEY_LENGTH_LIMIT + 1));
        checkBuilderRejects(b -> b.maxValueLength(-1), "maxValueLength", "-1");
        checkBuilderRejects(b -> b.maxValueLength(OffHeapMap.MAX_VALUE_LENGTH_LIMIT + 1), "maxValueLength",
                String.valueOf(OffHeapMap.MAX_VALUE_LENGTH_LIMIT + 1));
        checkBuilderRejects(b -> b.compactionThreshold(0), "compactionThreshold", "0.0");
        checkBuilderRejects(b -> b.compactionThreshold(1.5), "compactionThreshold", "1.5");
        checkBuilderRejects(b -> b.compactionThreshold(Double.NaN), "compactionThreshold", "NaN");
        checkBuilderRejects(b -> b.compactionThreshold(-0.25), "compactionThreshold", "-0.25");
        checkBuilderRejects(b -> b.tombstoneWarningRatio(0), "tombstoneWarningRatio", "0.0");
        checkBuilderRejects(b -> b.tombstoneWarningRatio(2), "tombstoneWarningRatio", "2.0");
        checkBuilderRejects(b -> b.tombstoneWarningRatio(Double.NaN), "tombstoneWarningRatio", "NaN");

        // The bounds are accepted, and a builder that rejected a value still builds with its defaults.
        OffHeapMap.Builder b = OffHeapMap.builder();
        assertThrows(IllegalArgumentException.class, () -> b.segmentSize(1));
        b.initialCapacity(0).segmentSize(4096).maxKeyLength(1).maxValueLength(0).compactionThreshold(1)
                .tombstoneWarningRatio(1);
        try (OffHeapMap map = build(b)) {
            map.put(bytes("k"), new byte[0]);
            assertEquals(1, map.size());
            assertThrows(IllegalArgumentException.class, () -> map.put(bytes("k"), new byte[1]));
        }
        assertDoesNotThrow(() -> OffHeapMap.builder().segmentSize(1 << 30).maxKeyLength(OffHeapMap.MAX_KEY_LENGTH_LIMIT)
                .maxValueLength(OffHeapMap.MAX_VALUE_LENGTH_LIMIT).initialCapacity(1L << 40));
    }

    private static void checkBuilderRejects(Consumer<OffHeapMap.Builder> setting, String name, String badValue) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> setting.accept(OffHeapMap.builder()), name + "(" + badValue + ")");
        assertMessageNames(e, name, badValue);
    }

    // ---- getInto destinations ----

    @ParameterizedTest(name = "direct={0}")
    @ValueSource(booleans = {false, true})
    void getIntoATooSmallBufferThrowsAndLeavesItUnchanged(boolean direct) {
        OffHeapMap map = populated(false);
        ByteBuffer dst = direct ? ByteBuffer.allocateDirect(64) : ByteBuffer.allocate(64);
        for (int i = 0; i < dst.capacity(); i++) {
            dst.put(i, (byte) 0x5A);
        }
        dst.position(10).limit(14); // 4 bytes left, the value has 5
        rejects(map, BufferOverflowException.class, () -> map.getInto(K, dst), "getInto with 4 of 5 bytes free");
        assertEquals(10, dst.position(), "dst position after a failed getInto");
        assertEquals(14, dst.limit(), "dst limit after a failed getInto");
        ByteBuffer whole = dst.duplicate().clear();
        for (int i = 0; i < whole.capacity(); i++) {
            assertEquals((byte) 0x5A, whole.get(i), "dst byte " + i + " after a failed getInto");
        }
        rejects(map, BufferOverflowException.class, () -> map.getInto(bytes("large"), ByteBuffer.allocate(49_999)),
                "getInto of 50000 bytes into 49999");

        // Exactly enough room works, and an empty value fits anywhere.
        dst.limit(15);
        assertEquals(5, map.getInto(K, dst));
        assertEquals(15, dst.position());
        assertEquals(0, map.getInto(bytes("empty"), dst));
        assertEquals(15, dst.position());
    }

    @ParameterizedTest(name = "direct={0}")
    @ValueSource(booleans = {false, true})
    void getIntoAReadOnlyBufferIsRejected(boolean direct) {
        OffHeapMap map = populated(false);
        ByteBuffer readOnly = (direct ? ByteBuffer.allocateDirect(64) : ByteBuffer.allocate(64)).asReadOnlyBuffer();
        rejects(map, ReadOnlyBufferException.class, () -> map.getInto(K, readOnly), "getInto a read-only buffer");
        assertEquals(0, readOnly.position());
    }

    // ---- use after close ----

    @ParameterizedTest(name = "threadSafe={0}")
    @ValueSource(booleans = {false, true})
    void everyMapMethodFailsAfterClose(boolean threadSafe) {
        OffHeapMap map = populated(threadSafe);
        PinnedView view = map.pin();
        EntryCursor viewCursor = view.cursor();
        EntryCursor mapCursor = threadSafe ? null : map.cursor();
        Iterator<Map.Entry<byte[], byte[]>> mapIterator = threadSafe ? null : map.iterator();
        map.close();

        ByteBuffer kb = ByteBuffer.wrap(K);
        ByteBuffer vb = ByteBuffer.wrap(V);
        List<Named> calls = new ArrayList<>(List.of(
                named("put(byte[], byte[])", () -> map.put(K, V)),
                named("put(ByteBuffer, ByteBuffer)", () -> map.put(kb, vb)),
                named("get(byte[])", () -> map.get(K)),
                named("get(ByteBuffer)", () -> map.get(kb)),
                named("getInto", () -> map.getInto(K, ByteBuffer.allocate(10))),
                named("containsKey(byte[])", () -> map.containsKey(K)),
                named("containsKey(ByteBuffer)", () -> map.containsKey(kb)),
                named("remove(byte[])", () -> map.remove(K)),
                named("remove(ByteBuffer)", () -> map.remove(kb)),
                named("size", map::size),
                named("isEmpty", map::isEmpty),
                named("compact", map::compact),
                named("memoryStats", map::memoryStats),
                named("pin", map::pin),
                named("cursor", map::cursor),
                named("iterator", () -> map.iterator().hasNext()),
                named("view.size", view::size),
                named("view.get(byte[])", () -> view.get(K)),
                named("view.get(ByteBuffer)", () -> view.get(kb)),
                named("view.containsKey", () -> view.containsKey(K)),
                named("view.cursor", view::cursor),
                named("view.iterator", () -> view.iterator().hasNext()),
                named("cursor of the view, next()", viewCursor::next)));
        if (!threadSafe) {
            calls.add(named("map cursor made before close, next()", mapCursor::next));
            calls.add(named("map iterator made before close, hasNext()", mapIterator::hasNext));
        }
        for (Named call : calls) {
            assertThrows(IllegalStateException.class, call.call(), call.name() + " after close()");
        }
        assertEquals(0, offHeapBytesSinceStart(), "a closed map, with its view, holds nothing");
        assertDoesNotThrow(map::close, "close() twice");
        assertDoesNotThrow(view::close, "a view's close() after its map's");
    }

    @ParameterizedTest(name = "threadSafe={0}")
    @ValueSource(booleans = {false, true})
    void everyViewMethodFailsAfterTheViewIsClosed(boolean threadSafe) {
        OffHeapMap map = populated(threadSafe);
        Observed before = Observed.of(map);
        PinnedView view = map.pin();
        EntryCursor cursor = view.cursor();
        assertTrue(cursor.next());
        Iterator<Map.Entry<byte[], byte[]>> iterator = view.iterator();
        view.close();

        ByteBuffer kb = ByteBuffer.wrap(K);
        List<Named> calls = List.of(
                named("view.size", view::size),
                named("view.get(byte[])", () -> view.get(K)),
                named("view.get(ByteBuffer)", () -> view.get(kb)),
                named("view.containsKey", () -> view.containsKey(K)),
                named("view.cursor", view::cursor),
                named("view.iterator", () -> view.iterator().hasNext()),
                named("its cursor's next()", cursor::next),
                named("its cursor's key()", cursor::key),
                named("its cursor's value()", cursor::value),
                named("its cursor's copyRecordTo()", () -> cursor.copyRecordTo(ByteBuffer.allocate(100))),
                named("its iterator's hasNext()", iterator::hasNext));
        for (Named call : calls) {
            assertThrows(IllegalStateException.class, call.call(), call.name() + " after the view's close()");
        }
        assertDoesNotThrow(view::close, "a view's close() twice");
        assertEquals(before, Observed.of(map), "closing a view changed the map");
        assertEquals(0, map.memoryStats().pinnedViews());
    }

    private record Named(String name, Executable call) {
    }

    private static Named named(String name, Executable call) {
        return new Named(name, call);
    }

    // ---- cursors ----

    @Test
    void cursorFailsFastAfterAWriteOnASingleWriterMap() {
        OffHeapMap map = populated(false);
        List<Named> writes = List.of(
                named("put of a new key", () -> map.put(bytes("new"), V)),
                named("put of a present key", () -> map.put(K, bytes("other"))),
                named("put(ByteBuffer)", () -> map.put(ByteBuffer.wrap(bytes("b")), ByteBuffer.wrap(V))),
                named("remove", () -> map.remove(bytes("k1"))),
                named("remove(ByteBuffer)", () -> map.remove(ByteBuffer.wrap(bytes("k2")))),
                named("compact", map::compact));
        for (Named write : writes) {
            EntryCursor cursor = map.cursor();
            assertTrue(cursor.next());
            Iterator<Map.Entry<byte[], byte[]>> iterator = map.iterator();
            assertTrue(iterator.hasNext());
            iterator.next();
            assertDoesNotThrow(write.call(), write.name());
            assertThrows(ConcurrentModificationException.class, cursor::next, "cursor.next() after " + write.name());
            assertThrows(ConcurrentModificationException.class, cursor::key, "cursor.key() after " + write.name());
            assertThrows(ConcurrentModificationException.class, cursor::value, "cursor.value() after " + write.name());
            assertThrows(ConcurrentModificationException.class, () -> cursor.copyRecordTo(ByteBuffer.allocate(100)),
                    "cursor.copyRecordTo() after " + write.name());
            assertThrows(ConcurrentModificationException.class, iterator::hasNext,
                    "iterator.hasNext() after " + write.name());
        }
        // A view's cursor is unaffected by writes.
        try (PinnedView view = map.pin()) {
            EntryCursor cursor = view.cursor();
            map.put(bytes("later"), V);
            int n = 0;
            while (cursor.next()) {
                n++;
            }
            assertEquals(view.size(), n);
        }
    }

    @Test
    void cursorMustBeOnAnEntry() {
        OffHeapMap map = populated(false);
        EntryCursor cursor = map.cursor();
        IllegalStateException e = assertThrows(IllegalStateException.class, cursor::key, "key() before next()");
        assertTrue(e.getMessage().contains("next()"), e.getMessage());
        while (cursor.next()) {
            cursor.key();
        }
        assertThrows(IllegalStateException.class, cursor::value, "value() after the last entry");
        assertThrows(IllegalStateException.class, cursor::recordLength, "recordLength() after the last entry");
    }

    @Test
    void threadSafeMapHasNoLiveCursor() {
        OffHeapMap map = populated(true);
        Observed before = Observed.of(map);
        IllegalStateException e = rejects(map, IllegalStateException.class, map::cursor, "cursor() of a thread-safe map");
        assertTrue(e.getMessage().contains("pin"), e.getMessage());
        assertEquals(before, Observed.of(map));
    }

    @Test
    void readOnlyAndDirectKeyAndValueBuffersAreAccepted() {
        OffHeapMap map = populated(false);
        ByteBuffer key = ByteBuffer.allocateDirect(16).put(bytes("direct")).flip().asReadOnlyBuffer();
        ByteBuffer value = ByteBuffer.wrap(bytes("xxpayloadxx"), 2, 7).asReadOnlyBuffer();
        assertTrue(map.put(key, value));
        assertEquals(0, key.position());
        assertEquals(2, value.position());
        assertArrayEquals(bytes("payload"), map.get(bytes("direct")));
        assertArrayEquals(bytes("payload"), map.get(key));
        assertTrue(map.remove(key));
        assertEquals(null, map.get(bytes("direct")));
    }
}
