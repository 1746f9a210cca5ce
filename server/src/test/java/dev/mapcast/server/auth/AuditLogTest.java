package dev.mapcast.server.auth;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.Strictness;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import java.io.IOException;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AuditLogTest {

    private static final Instant TIME = Instant.parse("2026-12-07T21:55:01.123Z");
    private static final String WRITE = "mapcast.v1.Mapcast/Write";

    @TempDir
    Path dir;

    @Test
    void jsonHasTheFieldsInOrder() {
        assertEquals("{\"time\":\"2026-12-07T21:55:01.123Z\",\"user\":\"alice\",\"peer\":\"127.0.0.1:53422\","
                        + "\"method\":\"mapcast.v1.Mapcast/Write\",\"map\":\"m\",\"revision\":7,\"keys\":[\"a\",\"b\"],"
                        + "\"outcome\":\"denied\",\"reason\":\"alice may not write m\"}",
                new AuditRecord(TIME, "alice", "127.0.0.1:53422", WRITE, "m", 7, List.of("a", "b"), "denied",
                        "alice may not write m").toJson());
        assertEquals("{\"time\":\"2026-12-07T21:55:01.000Z\",\"user\":\"\",\"peer\":\"[::1]:1\",\"method\":\"x/Y\","
                        + "\"outcome\":\"unauthenticated\",\"reason\":\"no token\"}",
                new AuditRecord(Instant.parse("2026-12-07T21:55:01Z"), "", "[::1]:1", "x/Y", "", 0, List.of(),
                        "unauthenticated", "no token").toJson(), "empty map, revision 0 and no keys are left out");
        assertEquals("{\"time\":\"2026-12-07T21:55:01.999Z\",\"user\":\"root\",\"peer\":\"p\","
                        + "\"method\":\"mapcast.v1.MapcastAuth/PutUser\",\"keys\":[\"user/alice\"],\"outcome\":\"ok\"}",
                new AuditRecord(Instant.parse("2026-12-07T21:55:01.999999999Z"), "root", "p",
                        "mapcast.v1.MapcastAuth/PutUser", "", 0, List.of("user/alice"), "ok", "").toJson(),
                "milliseconds, not rounded; no reason when ok");
    }

    @Test
    void stringsAreEscapedAndStayOnOneLine() throws Exception {
        String user = "o\"brien\\x";
        List<String> keys = List.of("two\nlines", "tab\tcr\r", "ctl\u0000\u0001\u001f\u007f", "é€😀", "\u2028");
        AuditRecord record = new AuditRecord(TIME, user, "p", WRITE, "m\n", 1, keys, "failed", "bad \"key\"\n");
        assertEquals("{\"time\":\"2026-12-07T21:55:01.123Z\",\"user\":\"o\\\"brien\\\\x\",\"peer\":\"p\","
                        + "\"method\":\"mapcast.v1.Mapcast/Write\",\"map\":\"m\\n\",\"revision\":1,"
                        + "\"keys\":[\"two\\nlines\",\"tab\\tcr\\r\",\"ctl\\u0000\\u0001\\u001f\u007f\",\"é€😀\",\"\u2028\"],"
                        + "\"outcome\":\"failed\",\"reason\":\"bad \\\"key\\\"\\n\"}",
                record.toJson());

        try (AuditLog audit = AuditLog.open(dir.resolve("audit.log"), 1024, 1)) {
            audit.append(record).get(5, TimeUnit.SECONDS);
        }
        byte[] bytes = Files.readAllBytes(dir.resolve("audit.log"));
        assertEquals((record.toJson() + "\n").getBytes(StandardCharsets.UTF_8).length, bytes.length);
        assertEquals(1, IntStream.range(0, bytes.length).filter(i -> bytes[i] == '\n').count(), "one line");
        JsonObject json = parse(lines(dir.resolve("audit.log")).get(0));
        assertEquals(user, json.get("user").getAsString());
        assertEquals("m\n", json.get("map").getAsString());
        assertEquals(keys, strings(json.getAsJsonArray("keys")));
        assertEquals("bad \"key\"\n", json.get("reason").getAsString());
    }

    @Test
    void aThousandKeysAreWrittenAndTheRestCounted() {
        List<String> keys = IntStream.range(0, 1500).mapToObj(i -> "k" + i).toList();
        JsonObject json = parse(new AuditRecord(TIME, "u", "p", WRITE, "m", 1, keys, "ok", "").toJson());
        assertEquals(keys.subList(0, 1000), strings(json.getAsJsonArray("keys")));
        assertEquals(500, json.get("keys_omitted").getAsInt());
        assertEquals(List.of("time", "user", "peer", "method", "map", "revision", "keys", "keys_omitted", "outcome"),
                List.copyOf(json.keySet()));

        JsonObject all = parse(new AuditRecord(TIME, "u", "p", WRITE, "m", 1, keys.subList(0, 1000), "ok", "").toJson());
        assertEquals(1000, all.getAsJsonArray("keys").size());
        assertFalse(all.has("keys_omitted"));
    }

    @Test
    void badArgumentsAreRefused() {
        IllegalArgumentException outcome = assertThrows(IllegalArgumentException.class,
                () -> new AuditRecord(TIME, "u", "p", WRITE, "", 0, List.of(), "error", ""));
        assertEquals("outcome: error (expected: ok, denied, unauthenticated or failed)", outcome.getMessage());
        IllegalArgumentException rotate = assertThrows(IllegalArgumentException.class,
                () -> AuditLog.open(dir.resolve("a.log"), 1023, 1));
        assertEquals("rotateBytes: 1023 (expected: >= 1024)", rotate.getMessage());
        IllegalArgumentException keep = assertThrows(IllegalArgumentException.class,
                () -> AuditLog.open(dir.resolve("a.log"), 1024, 0));
        assertEquals("keepFiles: 0 (expected: >= 1)", keep.getMessage());
        assertFalse(Files.exists(dir.resolve("a.log")));
    }

    @Test
    void aRecordIsInTheFileWhenItsFutureCompletes() throws Exception {
        Path file = dir.resolve("audit.log");
        try (AuditLog audit = AuditLog.open(file, 1 << 20, 1)) {
            assertEquals(file, audit.file());
            for (int i = 0; i < 3; i++) {
                AuditRecord r = record("k" + i);
                audit.append(r).get(5, TimeUnit.SECONDS);
                List<String> lines = lines(file);
                assertEquals(i + 1, lines.size());
                assertEquals(r.toJson(), lines.get(i));
            }
        }
    }

    @Test
    void concurrentAppendersLandOnceEach() throws Exception {
        Path file = dir.resolve("audit.log");
        int threads = 8;
        int each = 250;
        List<CompletableFuture<Void>> written = new ArrayList<>();
        try (AuditLog audit = AuditLog.open(file, 1 << 24, 1)) {
            List<Thread> appenders = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int from = t * each;
                List<CompletableFuture<Void>> mine = new ArrayList<>();
                Thread appender = new Thread(() -> {
                    for (int i = from; i < from + each; i++) {
                        mine.add(audit.append(record("key-" + i)));
                    }
                    synchronized (written) {
                        written.addAll(mine);
                    }
                });
                appenders.add(appender);
                appender.start();
            }
            for (Thread appender : appenders) {
                appender.join();
            }
            CompletableFuture.allOf(written.toArray(CompletableFuture[]::new)).get(10, TimeUnit.SECONDS);

            List<String> lines = lines(file);
            assertEquals(threads * each, lines.size());
            Set<String> keys = new HashSet<>();
            for (String line : lines) {
                keys.add(strings(parse(line).getAsJsonArray("keys")).get(0));
            }
            assertEquals(IntStream.range(0, threads * each).mapToObj(i -> "key-" + i).collect(Collectors.toSet()), keys);
        }
    }

    @Test
    void rotationKeepsWholeLinesAndTheNewestFiles() throws Exception {
        Path file = dir.resolve("audit.log");
        int lineBytes = record(sequenceKey(0)).toJson().length() + 1;
        int perFile = 1024 / lineBytes;
        assertTrue(perFile >= 2, "lines of " + lineBytes + " bytes");
        try (AuditLog audit = AuditLog.open(file, 1024, 3)) {
            for (int i = 0; i < 4 * perFile; i++) {
                audit.append(record(sequenceKey(i))).get(5, TimeUnit.SECONDS);
            }
            assertEquals(IntStream.range(0, 4 * perFile).boxed().toList(), sequence(file, 3, perFile));

            for (int i = 4 * perFile; i < 6 * perFile; i++) {
                audit.append(record(sequenceKey(i))).get(5, TimeUnit.SECONDS);
            }
            assertEquals(IntStream.range(2 * perFile, 6 * perFile).boxed().toList(), sequence(file, 3, perFile),
                    "the two oldest files' worth deleted");
            assertFalse(Files.exists(dir.resolve("audit.log.4")));
        }
    }

    @Test
    void rotationUnderConcurrentBatchesLosesNoLine() throws Exception {
        Path file = dir.resolve("audit.log");
        int records = 300;
        try (AuditLog audit = AuditLog.open(file, 1024, 1000)) {
            List<CompletableFuture<Void>> written = new ArrayList<>();
            for (int i = 0; i < records; i++) {
                written.add(audit.append(record(sequenceKey(i))));
            }
            CompletableFuture.allOf(written.toArray(CompletableFuture[]::new)).get(10, TimeUnit.SECONDS);
        }
        List<Integer> seen = new ArrayList<>();
        List<Path> files = new ArrayList<>();
        for (int n = 1000; n >= 1; n--) {
            Path older = dir.resolve("audit.log." + n);
            if (Files.exists(older)) {
                files.add(older);
            }
        }
        files.add(file);
        assertTrue(files.size() > 2, files::toString);
        for (Path f : files) {
            List<String> lines = lines(f);
            assertFalse(lines.isEmpty(), f + " is empty");
            for (String line : lines) {
                seen.add(sequenceOf(line));
            }
        }
        assertEquals(IntStream.range(0, records).boxed().toList(), seen, "every line once, whole and in order");
    }

    @Test
    void filesAreReadableByTheirOwnerOnly() throws Exception {
        Path file = dir.resolve("audit.log");
        assumeTrue(file.getFileSystem().supportedFileAttributeViews().contains("posix"));
        String bigKey = "k".repeat(600);
        try (AuditLog audit = AuditLog.open(file, 1024, 2)) {
            audit.append(record(bigKey)).get(5, TimeUnit.SECONDS);
            audit.append(record(bigKey)).get(5, TimeUnit.SECONDS);
        }
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("audit.log.1"))));
    }

    @Test
    void closeWritesWhatIsQueuedAndLaterAppendsFail() throws Exception {
        Path file = dir.resolve("audit.log");
        AuditLog audit = AuditLog.open(file, 1 << 20, 1);
        List<CompletableFuture<Void>> written = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            written.add(audit.append(record("k" + i)));
        }
        audit.close();
        for (CompletableFuture<Void> w : written) {
            assertTrue(w.isDone() && !w.isCompletedExceptionally());
        }
        assertEquals(100, lines(file).size());

        audit.close();
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> audit.append(record("late")).get(5, TimeUnit.SECONDS));
        assertInstanceOf(IllegalStateException.class, e.getCause());
        assertEquals("audit log closed", e.getCause().getMessage());
        assertEquals(100, lines(file).size());
    }

    @Test
    void reopeningAppends() throws Exception {
        Path file = dir.resolve("audit.log");
        try (AuditLog audit = AuditLog.open(file, 1 << 20, 1)) {
            audit.append(record("a")).get(5, TimeUnit.SECONDS);
            audit.append(record("b")).get(5, TimeUnit.SECONDS);
        }
        try (AuditLog audit = AuditLog.open(file, 1 << 20, 1)) {
            audit.append(record("c")).get(5, TimeUnit.SECONDS);
        }
        assertEquals(List.of(record("a").toJson(), record("b").toJson(), record("c").toJson()), lines(file));
    }

    @Test
    void aLineCutOffByACrashIsNotContinued() throws Exception {
        Path file = dir.resolve("audit.log");
        Files.writeString(file, record("a").toJson() + "\n{\"time\":\"2026-");
        try (AuditLog audit = AuditLog.open(file, 1 << 20, 1)) {
            audit.append(record("b")).get(5, TimeUnit.SECONDS);
        }
        assertEquals(List.of(record("a").toJson(), "{\"time\":\"2026-", record("b").toJson()), lines(file));
    }

    private static AuditRecord record(String key) {
        return new AuditRecord(TIME, "alice", "127.0.0.1:53422", WRITE, "m", 1, List.of(key), "ok", "");
    }

    private static String sequenceKey(int i) {
        return String.format("seq-%06d", i);
    }

    private static int sequenceOf(String line) {
        return Integer.parseInt(strings(parse(line).getAsJsonArray("keys")).get(0).substring("seq-".length()));
    }

    /** The sequence numbers in file.keep ... file.1, file, oldest first; each file full, none beyond keep. */
    private List<Integer> sequence(Path file, int keep, int perFile) throws IOException {
        assertFalse(Files.exists(dir.resolve(file.getFileName() + "." + (keep + 1))));
        List<Integer> seen = new ArrayList<>();
        for (int n = keep; n >= 0; n--) {
            Path f = n == 0 ? file : dir.resolve(file.getFileName() + "." + n);
            assertTrue(Files.size(f) <= 1024, f + ": " + Files.size(f) + " bytes");
            List<String> lines = lines(f);
            assertEquals(perFile, lines.size(), f.toString());
            for (String line : lines) {
                seen.add(sequenceOf(line));
            }
        }
        return seen;
    }

    /** The lines of a file, each ended by '\n' (none by '\r', which a JSON line never holds). */
    private static List<String> lines(Path file) throws IOException {
        String text = Files.readString(file, StandardCharsets.UTF_8);
        assertTrue(text.isEmpty() || text.endsWith("\n"), () -> file + " ends in the middle of a line");
        String[] ended = text.split("\n", -1);
        return List.of(ended).subList(0, ended.length - 1);
    }

    /** One JSON object, parsed strictly (RFC 8259: no raw control characters in strings). */
    private static JsonObject parse(String line) {
        assertTrue(line.startsWith("{") && line.endsWith("}"), line);
        try {
            JsonReader reader = new JsonReader(new StringReader(line));
            reader.setStrictness(Strictness.STRICT);
            JsonElement element = JsonParser.parseReader(reader);
            assertEquals(JsonToken.END_DOCUMENT, reader.peek(), line);
            return element.getAsJsonObject();
        } catch (IOException e) {
            throw new AssertionError(line, e);
        }
    }

    private static List<String> strings(JsonArray array) {
        List<String> out = new ArrayList<>();
        array.forEach(e -> out.add(e.getAsString()));
        return out;
    }
}
