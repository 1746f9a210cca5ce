package dev.mapcast.cli;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.cli.Processes.Result;
import dev.mapcast.client.GetResult;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.server.MapcastServer;
import dev.mapcast.testing.TestSeeds;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A map with a bad bit in its log, as an operator meets it with the {@code mapcast} command (each
 * command its own JVM): {@code ls} shows it damaged, {@code get} is refused, {@code data check}
 * names it and exits 5, {@code data salvage} writes what verifies to a snapshot file that
 * {@code snapshot inspect} accepts and {@code snapshot restore} loads, and {@code serve --strict}
 * refuses to start. Rerun a failure with {@code -Dmapcast.seed=N}.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DataCommandTest {

    @TempDir
    Path tmp;

    private final AtomicInteger files = new AtomicInteger();
    private MapcastServer server;

    @AfterEach
    void stop() {
        if (server != null) {
            server.close();
            server = null;
        }
    }

    private String start(Path data) {
        server = MapcastServer.builder().port(0).dataDir(data).build().start();
        return "127.0.0.1:" + server.port();
    }

    @Test
    void aDamagedMapIsListedCheckedSalvagedAndRestored() throws Exception {
        long seed = TestSeeds.seed("DataCommandTest");
        Random rnd = new Random(seed);
        Path data = tmp.resolve("data");
        List<TreeMap<String, String>> model = new ArrayList<>();
        model.add(new TreeMap<>());
        String address = start(data);
        try (MapcastClient client = MapcastClient.builder().target(address).build()) {
            for (int i = 1; i <= 20; i++) {
                TreeMap<String, String> next = new TreeMap<>(model.get(i - 1));
                String key = "k" + rnd.nextInt(8);
                String value = "v" + i + "-" + "x".repeat(rnd.nextInt(100));
                client.put("m", key, value);
                next.put(key, value);
                model.add(next);
            }
            client.put("other", "a", "1");
        }
        stop();
        Path log = log(data, "m-m");
        List<long[]> records = records(log);
        int bad = rnd.nextInt(records.size());
        long at = records.get(bad)[0] + rnd.nextInt((int) (8 + records.get(bad)[1]));
        String where = "seed=" + seed + ", byte " + at + " of record " + (bad + 1);
        flip(log, at, 1 << rnd.nextInt(8));

        address = start(data);
        Result ls = mapcast("ls", "--server", address);
        String damagedLine = ls.lines().stream().filter(l -> l.startsWith("m ")).findFirst().orElse("");
        assertTrue(ls.exitCode() == 0 && damagedLine.contains("DAMAGED: " + log + " at byte " + records.get(bad)[0]),
                where + "\n" + ls);
        Result lsJson = mapcast("ls", "--server", address, "--json");
        assertTrue(lsJson.lines().stream().anyMatch(l -> l.startsWith("{\"name\":\"m\",\"damaged\":\"" + log)),
                where + "\n" + lsJson);
        assertTrue(lsJson.lines().stream().anyMatch(l -> l.startsWith("{\"name\":\"other\",\"revision\":1,")),
                where + "\n" + lsJson);
        assertFailed(3, "mapcast: refused by the server: map \"m\" is damaged and quarantined: ",
                mapcast("get", "--server", address, "m", "k1"));
        assertFailed(1, "is in use by a running mapcast server", mapcast("data", "check", "--data-dir",
                data.toString()));
        stop();

        Result check = mapcast("data", "check", "--data-dir", data.toString());
        assertFailed(5, "mapcast: 1 of 2 maps in " + data.toAbsolutePath() + " damaged", check);
        assertEquals(2, check.lines().size(), where + "\n" + check);
        assertTrue(check.lines().get(0).startsWith("\"m\": DAMAGED: " + log + " at byte " + records.get(bad)[0]),
                where + "\n" + check);
        assertEquals("\"other\": ok, revision 1, 1 entries", check.lines().get(1), where + "\n" + check);
        Result checkJson = mapcast("data", "check", "--data-dir", data.toString(), "--json");
        assertEquals(5, checkJson.exitCode(), checkJson::toString);
        assertTrue(checkJson.lines().get(0).startsWith("{\"name\":\"m\",\"directory\":\"")
                && checkJson.lines().get(0).contains("\"status\":\"damaged\""), where + "\n" + checkJson);

        Path salvaged = tmp.resolve("m.snapshot");
        Result salvage = mapcast("data", "salvage", "m", "--out", salvaged.toString(), "--data-dir", data.toString());
        assertEquals(0, salvage.exitCode(), where + "\n" + salvage);
        assertTrue(salvage.lines().get(0).startsWith("salvaged map \"m\" at revision " + bad + " to " + salvaged),
                where + "\n" + salvage);
        assertTrue(salvage.lines().get(1).startsWith("left out: " + log + " at byte " + records.get(bad)[0]),
                where + "\n" + salvage);
        assertFailed(1, "mapcast: no map \"absent\" in ", mapcast("data", "salvage", "absent", "--out",
                tmp.resolve("absent.snapshot").toString(), "--data-dir", data.toString()));
        Result inspect = mapcast("snapshot", "inspect", salvaged.toString());
        assertTrue(inspect.exitCode() == 0 && inspect.stdout().contains("revision          " + bad + "\n"),
                where + "\n" + inspect);

        Result strict = mapcast("serve", "--listen", "127.0.0.1:0", "--data-dir", data.toString(), "--strict");
        assertFailed(5, "mapcast: cannot use data directory " + data.toAbsolutePath() + ": map \"m\": " + log
                + " at byte " + records.get(bad)[0], strict);

        address = start(data);
        Result restore = mapcast("snapshot", "restore", "--server", address, "m-salvaged", salvaged.toString());
        assertEquals(0, restore.exitCode(), where + "\n" + restore);
        try (MapcastClient client = MapcastClient.builder().target(address).build()) {
            for (String key : model.get(bad).keySet()) {
                GetResult r = client.get("m-salvaged", key);
                assertEquals(model.get(bad).get(key), new String(r.value(), UTF_8), where + ": " + key);
            }
            long size = client.listMaps().stream().filter(m -> m.getName().equals("m-salvaged")).findFirst()
                    .orElseThrow().getSize();
            assertEquals(model.get(bad).size(), size, where);
        }
    }

    @Test
    void checkSaysWhenThereIsNoDataDirectory() {
        assertFailed(1, "is not a mapcast data directory", mapcast("data", "check", "--data-dir",
                tmp.resolve("nowhere").toString()));
        Result help = mapcast("data", "--help");
        assertTrue(help.exitCode() == 0 && help.stdout().contains("check") && help.stdout().contains("salvage"),
                help::toString);
    }

    // ---- helpers ----

    private Result mapcast(String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        if (Runtime.version().feature() >= 23) {
            cmd.add("--sun-misc-unsafe-memory-access=allow");
            cmd.add("--enable-native-access=ALL-UNNAMED");
        }
        cmd.addAll(List.of("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", System.getProperty("java.class.path"),
                Main.class.getName()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().remove(ClientOptions.ENV);
        int n = files.incrementAndGet();
        return Processes.run(pb, tmp.resolve(n + ".out"), tmp.resolve(n + ".err"), null,
                "mapcast " + String.join(" ", args));
    }

    private static void assertFailed(int exitCode, String message, Result r) {
        assertEquals(exitCode, r.exitCode(), r::toString);
        assertTrue(r.stderr().contains(message) && r.stderr().lines().anyMatch(l -> l.startsWith("mapcast: ")),
                r::toString);
        assertFalse(r.stderr().contains("\tat "), r::toString);
    }

    private static Path log(Path data, String dir) throws IOException {
        try (Stream<Path> files = Files.list(data.resolve("maps").resolve(dir))) {
            List<Path> logs = files.filter(f -> f.getFileName().toString().matches("wal-\\d{20}\\.log")).sorted()
                    .collect(Collectors.toList());
            return logs.get(logs.size() - 1);
        }
    }

    /** Each record of a log up to its first zero length, as {offset, payload length}. */
    private static List<long[]> records(Path log) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(log)).order(ByteOrder.LITTLE_ENDIAN);
        List<long[]> out = new ArrayList<>();
        int at = 0;
        while (bytes.limit() - at >= 8 && bytes.getInt(at) != 0) {
            out.add(new long[] {at, bytes.getInt(at)});
            at += 8 + bytes.getInt(at);
        }
        return out;
    }

    private static void flip(Path file, long at, int mask) throws IOException {
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(1);
            c.read(b, at);
            b.put(0, (byte) (b.get(0) ^ mask));
            c.write(b.flip(), at);
        }
    }
}
