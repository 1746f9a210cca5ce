package dev.mapcast.codec;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.core.EntryCursor;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.core.PinnedView;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class SnapshotFilesTest {

    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(IterationOrder.class)
    void aWrittenFileReadsBackToTheSameMap(IterationOrder order) throws IOException {
        long seed = TestSeeds.seed("aWrittenFileReadsBack " + order);
        try (OffHeapMap map = randomMap(order, new Random(seed), 20_000)) {
            Path file = dir.resolve("snap.bin");
            try (PinnedView view = map.pin()) {
                SnapshotFiles.write(view, "config", 77, 5, file);
                map.put(bytes("after"), bytes("the pin"));  // not in the file
                try (SnapshotFiles.Loaded loaded = load(file)) {
                    assertEquals("config", loaded.name());
                    assertEquals(77, loaded.revision());
                    assertEquals(5, loaded.compactRevision());
                    assertEquals(order, loaded.order());
                    assertEquals(view.size(), loaded.map().size(), "seed " + seed);
                    assertEquals(view.digest(), loaded.map().digest(), "seed " + seed);
                    assertEquals(entries(view.cursor()), entries(loaded.map().cursor()), "seed " + seed);
                }
            }
        }
    }

    @Test
    void equalInsertionHistoriesGiveByteIdenticalFiles() throws IOException {
        long seed = TestSeeds.seed("equalInsertionHistoriesGiveByteIdenticalFiles");
        Path a = dir.resolve("a.bin");
        Path b = dir.resolve("b.bin");
        try (OffHeapMap first = randomMap(IterationOrder.INSERTION, new Random(seed), 30_000);
             OffHeapMap second = OffHeapMap.builder().order(IterationOrder.INSERTION).hashSeed(seed ^ 0x5DEECE66DL)
                     .segmentSize(4096).initialCapacity(50_000).trackDigest(true).build()) {
            replay(second, new Random(seed), 30_000);
            second.compact();
            try (PinnedView va = first.pin(); PinnedView vb = second.pin()) {
                SnapshotFiles.write(va, "m", 9, 0, a);
                SnapshotFiles.write(vb, "m", 9, 0, b);
            }
        }
        assertArrayEquals(Files.readAllBytes(a), Files.readAllBytes(b), "seed " + seed);
    }

    @Test
    void everyFlippedBitAndEveryTruncationIsRefused() throws IOException {
        Path file = dir.resolve("small.bin");
        try (OffHeapMap map = randomMap(IterationOrder.HASH, new Random(1), 60); PinnedView view = map.pin()) {
            SnapshotFiles.write(view, "small", 3, 0, file);
        }
        byte[] good = Files.readAllBytes(file);
        Path bad = dir.resolve("bad.bin");
        for (int i = 0; i < good.length; i++) {
            for (int bit = 0; bit < 8; bit += 3) {
                byte[] flipped = good.clone();
                flipped[i] ^= (byte) (1 << bit);
                Files.write(bad, flipped);
                int at = i;
                int b = bit;
                assertThrows(SnapshotFileException.class, () -> load(bad).close(), () -> "bit " + b + " of byte " + at);
                assertThrows(SnapshotFileException.class, () -> SnapshotFiles.inspect(bad, null),
                        () -> "inspect: bit " + b + " of byte " + at);
            }
        }
        for (int length = 0; length < good.length; length++) {
            Files.write(bad, java.util.Arrays.copyOf(good, length));
            int l = length;
            SnapshotFileException e = assertThrows(SnapshotFileException.class, () -> load(bad).close(),
                    () -> "truncated to " + l + " bytes");
            assertTrue(e.offset() <= length, e.getMessage());
            SnapshotFileException inspected = assertThrows(SnapshotFileException.class,
                    () -> SnapshotFiles.inspect(bad, null), () -> "inspect: truncated to " + l + " bytes");
            assertEquals(e.getMessage(), inspected.getMessage());
        }
    }

    @Test
    void aWrongDigestIsRefusedNamingBothDigests() throws IOException {
        Path file = dir.resolve("d.bin");
        try (OffHeapMap map = randomMap(IterationOrder.HASH, new Random(2), 50); PinnedView view = map.pin()) {
            SnapshotFiles.write(view, "d", 1, 0, file);
        }
        byte[] bytes = Files.readAllBytes(file);
        // The footer is the last message: total_entries varint, digest fixed64 (tag 0x11), crc32c fixed32 (tag 0x1d).
        int digestTag = bytes.length - 1 - 4 - 8 - 1;
        assertEquals(0x11, bytes[digestTag] & 0xFF);
        bytes[digestTag + 1] ^= 1;
        Files.write(file, bytes);
        SnapshotFileException e = assertThrows(SnapshotFileException.class, () -> load(file).close());
        assertTrue(e.getMessage().contains("digest mismatch"), e.getMessage());
        SnapshotFileException inspected = assertThrows(SnapshotFileException.class, () -> SnapshotFiles.inspect(file, null));
        assertEquals(e.getMessage(), inspected.getMessage());
    }

    @Test
    void aChunkOfAnotherMapIsRefusedByReadAndInspectAlike() throws IOException {
        // A well-formed file (its CRC, count and digest are right) whose one chunk names another map.
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        dev.mapcast.proto.v1.SnapshotHeader.newBuilder().setMagic(SnapshotFiles.MAGIC)
                .setFormatVersion(SnapshotFiles.FORMAT_VERSION).setMap("header-map").setRevision(3).build()
                .writeDelimitedTo(out);
        long chunkAt = out.size();
        dev.mapcast.proto.v1.SnapshotChunk.newBuilder().setMap("chunk-map").setRevision(3).setLast(true).build()
                .writeDelimitedTo(out);
        java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
        crc.update(out.toByteArray());
        dev.mapcast.proto.v1.SnapshotFooter.newBuilder().setTotalEntries(0).setDigest(0)
                .setCrc32C((int) crc.getValue()).build().writeDelimitedTo(out);
        Path file = Files.write(dir.resolve("other-map.bin"), out.toByteArray());
        for (var check : List.<org.junit.jupiter.api.function.Executable>of(() -> load(file).close(),
                () -> SnapshotFiles.inspect(file, null))) {
            SnapshotFileException e = assertThrows(SnapshotFileException.class, check);
            assertEquals(file + ": at byte " + chunkAt + ": chunk 1 of map \"chunk-map\" in a snapshot of map"
                    + " \"header-map\"", e.getMessage());
        }
    }

    @Test
    void bytesAfterTheFooterAreRefusedWhereTheyStart() throws IOException {
        Path file = dir.resolve("t.bin");
        try (OffHeapMap map = randomMap(IterationOrder.HASH, new Random(6), 50); PinnedView view = map.pin()) {
            SnapshotFiles.write(view, "t", 1, 0, file);
        }
        long size = Files.size(file);
        Files.write(file, new byte[] {0, 1, 2}, java.nio.file.StandardOpenOption.APPEND);
        for (var check : List.<org.junit.jupiter.api.function.Executable>of(() -> load(file).close(),
                () -> SnapshotFiles.inspect(file, null))) {
            SnapshotFileException e = assertThrows(SnapshotFileException.class, check);
            assertEquals(size, e.offset());
            assertEquals(file + ": at byte " + size + ": 3 bytes after the footer", e.getMessage());
        }
    }

    @Test
    void inspectReportsTheFileAndGivesEveryEntryInOrder() throws IOException {
        Path file = dir.resolve("i.bin");
        Map<String, String> expected;
        long digest;
        long bytes;
        try (OffHeapMap map = randomMap(IterationOrder.INSERTION, new Random(7), 20_000); PinnedView view = map.pin()) {
            bytes = SnapshotFiles.write(view, "inspected", 12, 3, file);
            expected = entries(view.cursor());
            digest = view.digest();
        }
        Map<String, String> listed = new LinkedHashMap<>();
        SnapshotFileInfo info = SnapshotFiles.inspect(file, (message, keyFrom, keyLength, valueFrom, valueLength) -> {
            byte[] key = new byte[keyLength];
            byte[] value = new byte[valueLength];
            message.get(keyFrom, key);
            message.get(valueFrom, value);
            listed.put(new String(key, StandardCharsets.UTF_8), HexFormat.of().formatHex(value));
        });
        assertEquals(List.copyOf(expected.entrySet()), List.copyOf(listed.entrySet()), "the file's order");
        assertEquals("inspected", info.map());
        assertEquals(12, info.revision());
        assertEquals(IterationOrder.INSERTION, info.order());
        assertEquals(3, info.compactRevision());
        assertEquals(expected.size(), info.entries());
        assertEquals(digest, info.digest());
        assertEquals(bytes, info.bytes());
        assertEquals(Files.size(file), info.bytes());
        assertTrue(info.chunks() >= 1, "chunks: " + info.chunks());
    }

    @Test
    void pythonProtobufReadsAFileWeWrote() throws Exception {
        Path generated = dir.resolve("py");
        Files.createDirectories(generated);
        Path protoRoot = Path.of("..", "proto", "src", "main", "proto").toAbsolutePath().normalize();
        run(List.of("protoc", "-I" + protoRoot, "--python_out=" + generated, "mapcast/v1/mapcast.proto"));
        Path file = dir.resolve("py.bin");
        Map<String, String> expected;
        long digest;
        try (OffHeapMap map = randomMap(IterationOrder.INSERTION, new Random(3), 3_000); PinnedView view = map.pin()) {
            SnapshotFiles.write(view, "interop", 42, 0, file);
            expected = entries(view.cursor());
            digest = view.digest();
        }
        String json = run(List.of("/usr/bin/python3", Path.of("..", "examples", "python", "read_snapshot.py").toString(),
                generated.toString(), file.toString()));
        StringBuilder entriesJson = new StringBuilder("[");
        for (Map.Entry<String, String> e : new java.util.TreeMap<>(expected).entrySet()) {
            if (entriesJson.length() > 1) {
                entriesJson.append(", ");
            }
            entriesJson.append("[\"").append(e.getKey()).append("\", \"").append(e.getValue()).append("\"]");
        }
        entriesJson.append("]");
        assertTrue(json.contains("\"magic\": \"mapcast-snapshot\""), json);
        assertTrue(json.contains("\"revision\": 42"), json);
        assertTrue(json.contains("\"entries\": " + entriesJson + ","), "python read other entries: " + json);
        assertTrue(json.contains("\"digest\": " + Long.toUnsignedString(digest)), json);
    }

    private static SnapshotFiles.Loaded load(Path file) throws IOException {
        return SnapshotFiles.read(file, OffHeapMap.builder());
    }

    /** A map after {@code ops} random puts and removes with ASCII keys (JSON-safe for the Python check). */
    static OffHeapMap randomMap(IterationOrder order, Random rnd, int ops) {
        OffHeapMap map = OffHeapMap.builder().order(order).trackDigest(true).build();
        replay(map, rnd, ops);
        return map;
    }

    private static void replay(OffHeapMap map, Random rnd, int ops) {
        for (int i = 0; i < ops; i++) {
            byte[] key = bytes("key-" + rnd.nextInt(Math.max(10, ops / 3)));
            if (rnd.nextInt(4) == 0) {
                map.remove(key);
            } else {
                byte[] value = new byte[rnd.nextInt(50) == 0 ? 3_000 : rnd.nextInt(80)];
                rnd.nextBytes(value);
                map.put(key, value);
            }
        }
    }

    static Map<String, String> entries(EntryCursor cursor) {
        Map<String, String> entries = new LinkedHashMap<>();
        while (cursor.next()) {
            entries.put(new String(cursor.key(), StandardCharsets.UTF_8), HexFormat.of().formatHex(cursor.value()));
        }
        return entries;
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static String run(List<String> command) throws Exception {
        Process p = new ProcessBuilder(new ArrayList<>(command)).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "timed out: " + command);
        assertEquals(0, p.exitValue(), command + " failed (the CI installs protobuf-compiler and python3-protobuf): " + out);
        return out;
    }
}
