package dev.mapcast.codec;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.core.PinnedView;
import dev.mapcast.proto.v1.SnapshotChunk;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Snapshot files written from received chunks: what a saved file holds, and what is refused. */
class SnapshotFileWriterTest {

    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(IterationOrder.class)
    void aFileWrittenFromChunksReadsBackToTheSameMap(IterationOrder order) throws IOException {
        long seed = TestSeeds.seed("aFileWrittenFromChunksReadsBack " + order);
        Path file = dir.resolve("saved.snapshot");
        try (OffHeapMap map = SnapshotFilesTest.randomMap(order, new Random(seed), 20_000); PinnedView view = map.pin()) {
            // Small chunks: many of them, entries cut at many places.
            List<ByteBuffer> chunks = chunks(view, "config", 77, 5, 4096);
            assertTrue(chunks.size() > 10, "chunks: " + chunks.size());
            SnapshotFileInfo saved;
            try (SnapshotFileWriter writer = new SnapshotFileWriter(file)) {
                for (int i = 0; i < chunks.size(); i++) {
                    assertEquals(i == chunks.size() - 1, writer.append(chunks.get(i)));
                }
                assertFalse(Files.exists(file), "nothing under the target's name before finish");
                saved = writer.finish();
            }
            assertEquals(new SnapshotFileInfo("config", 77, order, 5, chunks.size(), view.size(), Files.size(file),
                    view.digest(), saved.crc32c(), 0), saved);
            try (SnapshotFiles.Loaded loaded = SnapshotFiles.read(file, OffHeapMap.builder())) {
                assertEquals("config", loaded.name());
                assertEquals(77, loaded.revision());
                assertEquals(5, loaded.compactRevision());
                assertEquals(order, loaded.order());
                assertEquals(view.digest(), loaded.map().digest(), "seed " + seed);
                assertEquals(SnapshotFilesTest.entries(view.cursor()), SnapshotFilesTest.entries(loaded.map().cursor()), "seed " + seed);
            }
            assertEquals(saved, SnapshotFiles.inspect(file, null), "inspect reports what was written");
        }
        assertEquals(List.of(file), listDir(), "no temporary file left");
    }

    @Test
    void theServersChunksGiveTheFileSnapshotFilesWrites() throws IOException {
        Path saved = dir.resolve("saved.snapshot");
        Path written = dir.resolve("written.snapshot");
        try (OffHeapMap map = SnapshotFilesTest.randomMap(IterationOrder.INSERTION, new Random(4), 30_000); PinnedView view = map.pin()) {
            SnapshotFiles.write(view, "m", 9, 2, written);
            try (SnapshotFileWriter writer = new SnapshotFileWriter(saved)) {
                for (ByteBuffer chunk : chunks(view, "m", 9, 2, SnapshotEncoder.DEFAULT_CHUNK_BYTES)) {
                    writer.append(chunk);
                }
                writer.finish();
            }
        }
        assertArrayEquals(Files.readAllBytes(written), Files.readAllBytes(saved));
    }

    @Test
    void anEmptyMapIsOneEmptyLastChunk() throws IOException {
        Path file = dir.resolve("empty.snapshot");
        try (OffHeapMap map = SnapshotFilesTest.randomMap(IterationOrder.HASH, new Random(5), 0); PinnedView view = map.pin();
             SnapshotFileWriter writer = new SnapshotFileWriter(file)) {
            for (ByteBuffer chunk : chunks(view, "e", 3, 0, 4096)) {
                writer.append(chunk);
            }
            SnapshotFileInfo info = writer.finish();
            assertEquals(0, info.entries());
            assertEquals(0, info.digest());
        }
        try (SnapshotFiles.Loaded loaded = SnapshotFiles.read(file, OffHeapMap.builder())) {
            assertEquals(0, loaded.map().size());
        }
    }

    @Test
    void aChunkOfAnotherRevisionIsRefusedAndNothingIsWritten() throws IOException {
        SnapshotStreamException e = refused(List.of(
                chunk("m", 7, false, Map.of("a", "1"), 0, 0),
                chunk("m", 8, true, Map.of("b", "2"), 2, digestOf(Map.of("a", "1", "b", "2")))));
        assertEquals(2, e.chunk());
        assertTrue(e.getMessage().contains("chunk 2: revision 8 (expected: 7, the first chunk's)"), e.getMessage());
    }

    @Test
    void aChunkOfAnotherMapIsRefusedAndNothingIsWritten() throws IOException {
        SnapshotStreamException e = refused(List.of(
                chunk("m", 7, false, Map.of("a", "1"), 0, 0),
                chunk("other", 7, true, Map.of("b", "2"), 2, digestOf(Map.of("a", "1", "b", "2")))));
        assertTrue(e.getMessage().contains("chunk 2: map \"other\" (expected: \"m\", the first chunk's)"), e.getMessage());
    }

    @Test
    void aLyingDigestIsRefusedAndNothingIsWritten() throws IOException {
        Map<String, String> entries = Map.of("a", "1", "b", "2");
        SnapshotStreamException e = refused(List.of(
                chunk("m", 7, false, Map.of("a", "1"), 0, 0),
                chunk("m", 7, true, Map.of("b", "2"), 2, digestOf(entries) + 1)));
        assertTrue(e.getMessage().contains(String.format("the entries' digest is %016x (expected: the server's %016x)",
                digestOf(entries), digestOf(entries) + 1)), e.getMessage());
    }

    @Test
    void aLyingEntryCountIsRefusedAndNothingIsWritten() throws IOException {
        SnapshotStreamException e = refused(List.of(
                chunk("m", 7, true, Map.of("a", "1"), 2, digestOf(Map.of("a", "1")))));
        assertTrue(e.getMessage().contains("the chunks hold 1 entries (expected: total_entries 2)"), e.getMessage());
    }

    @Test
    void aMalformedChunkIsRefusedWithItsOffset() throws IOException {
        byte[] good = chunk("m", 7, true, Map.of("key", "value"), 1, digestOf(Map.of("key", "value"))).array();
        ByteBuffer truncated = ByteBuffer.wrap(good, 0, good.length - 3).slice();
        SnapshotStreamException e = refused(List.of(truncated));
        assertTrue(e.getMessage().startsWith("snapshot stream, chunk 1: malformed SnapshotChunk at byte "), e.getMessage());
    }

    @Test
    void aStreamEndingBeforeTheLastChunkWritesNothing() throws IOException {
        Path file = dir.resolve("target.snapshot");
        Files.writeString(file, "the previous snapshot");
        try (SnapshotFileWriter writer = new SnapshotFileWriter(file)) {
            assertFalse(writer.append(chunk("m", 7, false, Map.of("a", "1"), 0, 0)));
            SnapshotStreamException e = assertThrows(SnapshotStreamException.class, writer::finish);
            assertTrue(e.getMessage().contains("the stream ended after 1 chunks, before the last one"), e.getMessage());
        }
        assertEquals("the previous snapshot", Files.readString(file));
        assertEquals(List.of(file), listDir());
    }

    @Test
    void closingBeforeFinishLeavesTheTargetAsItWas() throws IOException {
        Path file = dir.resolve("target.snapshot");
        Files.writeString(file, "the previous snapshot");
        try (SnapshotFileWriter writer = new SnapshotFileWriter(file)) {
            writer.append(chunk("m", 7, true, Map.of("a", "1"), 1, digestOf(Map.of("a", "1"))));
        }
        assertEquals("the previous snapshot", Files.readString(file));
        assertEquals(List.of(file), listDir());
    }

    /** Appends the chunks: one must be refused; the existing target stays and no temporary file is left. */
    private SnapshotStreamException refused(List<ByteBuffer> chunks) throws IOException {
        Path file = dir.resolve("target.snapshot");
        Files.writeString(file, "the previous snapshot");
        SnapshotStreamException e;
        try (SnapshotFileWriter writer = new SnapshotFileWriter(file)) {
            e = assertThrows(SnapshotStreamException.class, () -> {
                for (ByteBuffer chunk : chunks) {
                    writer.append(chunk);
                }
            });
            assertThrows(IllegalStateException.class, writer::finish, "an aborted writer writes nothing more");
        }
        assertEquals("the previous snapshot", Files.readString(file));
        assertEquals(List.of(file), listDir(), "no temporary file left");
        return e;
    }

    /** A chunk as protobuf-java encodes it (not the codec's own encoder). */
    private static ByteBuffer chunk(String map, long revision, boolean last, Map<String, String> entries,
            long totalEntries, long digest) {
        SnapshotChunk.Builder b = SnapshotChunk.newBuilder().setMap(map).setRevision(revision).setLast(last)
                .setTotalEntries(totalEntries).setDigest(digest);
        entries.forEach((k, v) -> b.putEntries(k, ByteString.copyFromUtf8(v)));
        return ByteBuffer.wrap(b.build().toByteArray());
    }

    private static long digestOf(Map<String, String> entries) {
        try (OffHeapMap map = OffHeapMap.builder().trackDigest(true).build()) {
            entries.forEach((k, v) -> map.put(SnapshotFilesTest.bytes(k), SnapshotFilesTest.bytes(v)));
            return map.digest();
        }
    }

    private static List<ByteBuffer> chunks(PinnedView view, String map, long revision, long compactRevision,
            int chunkBytes) {
        SnapshotEncoder encoder = new SnapshotEncoder(view, map, revision, compactRevision, chunkBytes);
        List<ByteBuffer> chunks = new ArrayList<>();
        while (encoder.hasNext()) {
            ByteBuffer chunk = ByteBuffer.allocate(encoder.nextChunkSize());
            encoder.writeNextChunk(chunk);
            chunks.add(chunk.flip().asReadOnlyBuffer());  // as received: read-only
        }
        return chunks;
    }

    private List<Path> listDir() throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.toList();
        }
    }

}
