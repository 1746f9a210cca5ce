package dev.mapcast.codec;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.core.EntryCursor;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.core.PinnedView;
import dev.mapcast.proto.v1.SnapshotChunk;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The encoder's chunks against protobuf-java: same content, same order, byte for byte. */
class SnapshotEncoderTest {

    @ParameterizedTest
    @EnumSource(IterationOrder.class)
    void chunksAreExactlyWhatProtobufJavaWritesForTheSameMessages(IterationOrder order) throws Exception {
        long seed = TestSeeds.seed("chunksAreExactlyWhatProtobufJavaWrites " + order);
        Random rnd = new Random(seed);
        try (OffHeapMap map = OffHeapMap.builder().order(order).segmentSize(4096).trackDigest(true).build()) {
            for (int i = 0; i < 5_000; i++) {
                String key = "key/" + rnd.nextInt(3_000) + (rnd.nextInt(20) == 0 ? "-ünïcödé-" + "x".repeat(150) : "");
                byte[] value = new byte[rnd.nextInt(10) == 0 ? 200 + rnd.nextInt(20_000) : rnd.nextInt(100)];
                rnd.nextBytes(value);
                if (rnd.nextInt(5) == 0) {
                    map.remove(key.getBytes(StandardCharsets.UTF_8));
                } else {
                    map.put(key.getBytes(StandardCharsets.UTF_8), value);
                }
            }
            try (PinnedView view = map.pin()) {
                map.put("written-after-the-pin".getBytes(StandardCharsets.UTF_8), new byte[3]);
                LinkedHashMap<String, ByteString> expected = entriesInOrder(view);
                int budget = 16 * 1024;
                // A negative incarnation: a fixed64 with its top bit set is encoded as any other.
                long incarnation = 0x8badf00d12345678L;
                SnapshotEncoder encoder = new SnapshotEncoder(view, "config/prod", 1234567, 42, incarnation, budget);
                LinkedHashMap<String, ByteString> seen = new LinkedHashMap<>();
                List<String> keys = new ArrayList<>(expected.keySet());
                int chunks = 0;
                while (encoder.hasNext()) {
                    boolean last = encoder.nextIsLast();
                    ByteBuffer buffer = encoder.nextChunk();
                    byte[] bytes = new byte[buffer.remaining()];
                    buffer.get(bytes);
                    SnapshotChunk chunk = SnapshotChunk.parseFrom(bytes);
                    assertArrayEquals(chunk.toByteArray(), bytes, "seed " + seed + ", chunk " + chunks + ": re-serialised");
                    SnapshotChunk.Builder rebuilt = SnapshotChunk.newBuilder()
                            .putAllEntries(chunk.getEntriesMap())
                            .setMap("config/prod").setRevision(1234567).setLast(last)
                            .setOrder(order == IterationOrder.INSERTION
                                    ? dev.mapcast.proto.v1.IterationOrder.ITERATION_ORDER_INSERTION
                                    : dev.mapcast.proto.v1.IterationOrder.ITERATION_ORDER_HASH)
                            .setCompactRevision(42)
                            .setIncarnation(incarnation)
                            .setTotalEntries(view.size());  // in every chunk: a receiver sizes its map up front
                    if (last) {
                        rebuilt.setDigest(view.digest());
                    }
                    assertArrayEquals(rebuilt.build().toByteArray(), bytes, "seed " + seed + ", chunk " + chunks + ": built");
                    int entryBytes = bytes.length - rebuilt.clearEntries().build().getSerializedSize();
                    assertTrue(entryBytes <= budget || chunk.getEntriesCount() == 1,
                            "seed " + seed + ", chunk " + chunks + ": " + entryBytes + " entry bytes over the budget");
                    for (Map.Entry<String, ByteString> e : chunk.getEntriesMap().entrySet()) {
                        assertEquals(keys.get(seen.size()), e.getKey(), "seed " + seed + ": order");
                        seen.put(e.getKey(), e.getValue());
                    }
                    chunks++;
                }
                assertEquals(expected, seen, "seed " + seed + ": content");
                assertTrue(chunks > 10, "seed " + seed + ": " + chunks + " chunks; the test wants many");
                assertFalse(seen.containsKey("written-after-the-pin"));
            }
        }
    }

    @Test
    void anEmptyMapIsOneLastChunk() throws Exception {
        try (OffHeapMap map = OffHeapMap.builder().trackDigest(true).build(); PinnedView view = map.pin()) {
            SnapshotEncoder encoder = new SnapshotEncoder(view, "empty", 0, 0, SnapshotEncoder.DEFAULT_CHUNK_BYTES);
            assertTrue(encoder.hasNext());
            SnapshotChunk chunk = SnapshotChunk.parseFrom(encoder.nextChunk());
            assertTrue(chunk.getLast());
            assertEquals(0, chunk.getEntriesCount());
            assertEquals("empty", chunk.getMap());
            assertFalse(encoder.hasNext());
            assertThrows(IllegalStateException.class, () -> encoder.writeNextChunk(ByteBuffer.allocate(100)));
        }
    }

    @Test
    void anEntryLargerThanTheBudgetGetsAChunkOfItsOwn() throws Exception {
        try (OffHeapMap map = OffHeapMap.builder().trackDigest(true).build()) {
            map.put("small".getBytes(StandardCharsets.UTF_8), new byte[10]);
            map.put("large".getBytes(StandardCharsets.UTF_8), new byte[100_000]);
            try (PinnedView view = map.pin()) {
                SnapshotEncoder encoder = new SnapshotEncoder(view, "m", 1, 0, 1024);
                int chunks = 0;
                int entries = 0;
                while (encoder.hasNext()) {
                    entries += SnapshotChunk.parseFrom(encoder.nextChunk()).getEntriesCount();
                    chunks++;
                }
                assertEquals(2, chunks);
                assertEquals(2, entries);
            }
        }
    }

    @Test
    void aBufferTooSmallGetsNothingWritten() {
        try (OffHeapMap map = OffHeapMap.builder().trackDigest(true).build()) {
            map.put("k".getBytes(StandardCharsets.UTF_8), new byte[50]);
            try (PinnedView view = map.pin()) {
                SnapshotEncoder encoder = new SnapshotEncoder(view, "m", 1, 0, 1024);
                ByteBuffer small = ByteBuffer.allocate(encoder.nextChunkSize() - 1);
                assertThrows(java.nio.BufferOverflowException.class, () -> encoder.writeNextChunk(small));
                assertEquals(0, small.position());
            }
        }
    }

    @Test
    void aViewWhoseMapKeepsNoDigestIsRefused() {
        try (OffHeapMap map = OffHeapMap.builder().build(); PinnedView view = map.pin()) {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> new SnapshotEncoder(view, "m", 1, 0, 1024));
            assertTrue(e.getMessage().contains("trackDigest"), e.getMessage());
        }
    }

    private static LinkedHashMap<String, ByteString> entriesInOrder(PinnedView view) {
        LinkedHashMap<String, ByteString> entries = new LinkedHashMap<>();
        EntryCursor cursor = view.cursor();
        while (cursor.next()) {
            entries.put(new String(cursor.key(), StandardCharsets.UTF_8), ByteString.copyFrom(cursor.value()));
        }
        return entries;
    }
}
