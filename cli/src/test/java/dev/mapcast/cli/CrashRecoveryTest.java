package dev.mapcast.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.mapcast.client.GetResult;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.proto.v1.MapInfo;
import dev.mapcast.testing.TestSeeds;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * No acknowledged write is lost and no write is half-applied when the server process dies
 * mid-stream: a real {@code mapcast serve} JVM (fsync always, snapshots every 64 KiB of log, so
 * kills also land during snapshots and log rotations) takes concurrent writes from 8 writers and is
 * killed with SIGKILL at a random moment, then started again on the same data directory, many
 * times.
 *
 * <p>Writer {@code w} owns four keys and writes all four in one Write with its next token. After
 * every restart, for each writer: its four keys hold one token (atomicity), at least the last
 * acknowledged one (durability) and at most the last one sent; and the map's revision lies
 * between the number of acknowledged writes and the number sent. Rerun a failure with
 * {@code -Dmapcast.seed=N}.
 */
class CrashRecoveryTest {

    private static final int WRITERS = 8;
    private static final int KEYS_PER_WRITER = 4;
    private static final int ROUNDS = Integer.getInteger("mapcast.crashRounds", 12);
    private static final String MAP = "crash";
    /**
     * Generous: a call fails at once when the server is killed (the connection drops), so this only
     * bounds a call to a server that is slow to answer, as a freshly started JVM on a busy machine is.
     */
    private static final Duration CALL_DEADLINE = Duration.ofSeconds(30);

    @TempDir
    Path dir;

    private final AtomicLongArray acked = new AtomicLongArray(WRITERS);
    private final AtomicLongArray sent = new AtomicLongArray(WRITERS);
    private long ackedWrites;
    private long sentWrites;

    @Test
    void killedAtRandomMomentsEveryAcknowledgedWriteSurvivesAndNoneIsHalfApplied() throws Exception {
        long seed = TestSeeds.seed("CrashRecoveryTest");
        Random rnd = new Random(seed);
        Path data = dir.resolve("data");
        for (int round = 1; round <= ROUNDS; round++) {
            String where = "seed=" + seed + ", round " + round;
            ServeProcess server = ServeProcess.start(data, dir.resolve("serve-" + round + ".err"));
            try (MapcastClient client = MapcastClient.builder().target(server.address)
                    .deadline(CALL_DEADLINE).build()) {
                if (round > 1) {
                    check(client, where);
                }
                List<Thread> writers = new ArrayList<>();
                for (int w = 0; w < WRITERS; w++) {
                    int writer = w;
                    Thread t = new Thread(() -> writeUntilFailure(client, writer), "writer-" + w);
                    t.start();
                    writers.add(t);
                }
                Thread.sleep(200 + rnd.nextInt(1200));
                server.kill();  // SIGKILL: no shutdown hook, no flush
                for (Thread t : writers) {
                    t.join(TimeUnit.SECONDS.toMillis(30));
                    assertTrue(!t.isAlive(), where + ": a writer still running 30 s after the kill");
                }
            } finally {
                server.kill();
            }
            System.out.println("[mapcast] CrashRecoveryTest " + where + ": " + ackedWrites + " writes acknowledged, "
                    + sentWrites + " sent so far");
        }
        ServeProcess last = ServeProcess.start(data, dir.resolve("serve-final.err"));
        try (MapcastClient client = MapcastClient.builder().target(last.address).deadline(CALL_DEADLINE).build()) {
            check(client, "seed=" + seed + ", after the last kill");
            assertTrue(ackedWrites > ROUNDS * WRITERS, "seed=" + seed + ": only " + ackedWrites
                    + " writes acknowledged over " + ROUNDS + " rounds: the test did not exercise much");
        } finally {
            last.kill();
        }
    }

    /** Writes this writer's four keys with increasing tokens until a write fails (the server died). */
    private void writeUntilFailure(MapcastClient client, int w) {
        while (true) {
            long token = sent.get(w) + 1;
            sent.set(w, token);
            synchronized (this) {
                sentWrites++;
            }
            try {
                var write = client.write(MAP);
                for (int k = 0; k < KEYS_PER_WRITER; k++) {
                    write.put(key(w, k), Long.toString(token));
                }
                write.commit();
            } catch (RuntimeException died) {
                return;
            }
            acked.set(w, token);
            synchronized (this) {
                ackedWrites++;
            }
        }
    }

    private void check(MapcastClient client, String where) {
        // The map itself is created by its first write: absent, it holds nothing of anyone.
        boolean exists = client.listMaps().stream().anyMatch(m -> m.getName().equals(MAP));
        for (int w = 0; w < WRITERS; w++) {
            long token = -1;
            for (int k = 0; k < KEYS_PER_WRITER; k++) {
                GetResult r = exists ? client.get(MAP, key(w, k)) : null;
                long value = r != null && r.found() ? Long.parseLong(new String(r.value(), StandardCharsets.UTF_8)) : 0;
                if (k == 0) {
                    token = value;
                } else if (value != token) {
                    fail(where + ": writer " + w + "'s keys hold tokens " + token + " and " + value
                            + ": a write was half applied");
                }
            }
            if (token < acked.get(w) || token > sent.get(w)) {
                fail(where + ": writer " + w + " holds token " + token + " (acknowledged: " + acked.get(w)
                        + ", sent: " + sent.get(w) + ")");
            }
            // What the server has is what writers build on: an unacknowledged write that survived counts.
            acked.set(w, token);
            sent.set(w, token);
        }
        long revision = client.listMaps().stream().filter(m -> m.getName().equals(MAP)).mapToLong(MapInfo::getRevision)
                .findFirst().orElse(0);
        synchronized (this) {
            assertTrue(revision >= ackedWrites && revision <= sentWrites, where + ": revision " + revision
                    + " (acknowledged writes: " + ackedWrites + ", sent: " + sentWrites + ")");
            ackedWrites = revision;
            sentWrites = revision;
        }
    }

    /**
     * Maps deleted and created again while the server is killed at random moments: after every
     * restart each map is whole or gone, as its last acknowledged operation left it (or as the one
     * in flight at the kill did), and the data directory holds exactly the maps that exist.
     */
    @Test
    void killedWhileMapsAreDeletedAndCreatedAgainEachMapIsWholeOrGone() throws Exception {
        long seed = TestSeeds.seed("CrashRecoveryTest deletions");
        Random rnd = new Random(seed);
        Path data = dir.resolve("data");
        int maps = 4;
        MapLife[] lives = new MapLife[maps];
        for (int m = 0; m < maps; m++) {
            lives[m] = new MapLife("life-" + m, new Random(seed + m));
        }
        long deletions = 0;
        for (int round = 1; round <= Math.max(4, ROUNDS / 2); round++) {
            String where = "seed=" + seed + ", round " + round;
            ServeProcess server = ServeProcess.start(data, dir.resolve("life-" + round + ".err"));
            try (MapcastClient client = MapcastClient.builder().target(server.address)
                    .deadline(CALL_DEADLINE).build()) {
                checkLives(client, lives, data, where);
                List<Thread> threads = new ArrayList<>();
                for (MapLife life : lives) {
                    Thread t = new Thread(() -> life.run(client), "life-" + life.map);
                    t.start();
                    threads.add(t);
                }
                Thread.sleep(200 + rnd.nextInt(1200));
                server.kill();
                for (Thread t : threads) {
                    t.join(TimeUnit.SECONDS.toMillis(30));
                    assertTrue(!t.isAlive(), where + ": a writer still running 30 s after the kill");
                }
            } finally {
                server.kill();
            }
            for (MapLife life : lives) {
                deletions += life.deletions;
                life.deletions = 0;
            }
        }
        ServeProcess last = ServeProcess.start(data, dir.resolve("life-final.err"));
        try (MapcastClient client = MapcastClient.builder().target(last.address).deadline(CALL_DEADLINE).build()) {
            checkLives(client, lives, data, "seed=" + seed + ", after the last kill");
        } finally {
            last.kill();
        }
        assertTrue(deletions >= maps, "seed=" + seed + ": only " + deletions + " deletions acknowledged");
    }

    /** One map's life: puts of increasing tokens, and now and then a deletion. {@code -1}: absent. */
    private static final class MapLife {
        final String map;
        final Random rnd;
        /** The state the last acknowledged operation left: a token, or -1 (absent). */
        volatile long acked = -1;
        /** What the operation in flight at the kill would leave, or Long.MIN_VALUE if none was. */
        volatile long inFlight = Long.MIN_VALUE;
        long token;
        long deletions;

        MapLife(String map, Random rnd) {
            this.map = map;
            this.rnd = rnd;
        }

        void run(MapcastClient client) {
            while (true) {
                boolean delete = acked >= 0 && rnd.nextInt(5) == 0;
                long next = delete ? -1 : ++token;
                inFlight = next;
                try {
                    if (delete) {
                        client.deleteMap(map);
                        deletions++;
                    } else {
                        client.put(map, "k", Long.toString(next));
                    }
                } catch (RuntimeException died) {
                    return;
                }
                acked = next;
                inFlight = Long.MIN_VALUE;
            }
        }
    }

    private static void checkLives(MapcastClient client, MapLife[] lives, Path data, String where)
            throws IOException {
        long present = 0;
        for (MapLife life : lives) {
            boolean exists = client.listMaps().stream().anyMatch(m -> m.getName().equals(life.map));
            long state = exists ? Long.parseLong(new String(client.get(life.map, "k").value(), StandardCharsets.UTF_8))
                    : -1;
            if (state != life.acked && state != life.inFlight) {
                fail(where + ": map " + life.map + " is " + (state < 0 ? "gone" : "at token " + state)
                        + " (acknowledged: " + life.acked + ", in flight: " + life.inFlight + ")");
            }
            life.acked = state;
            life.inFlight = Long.MIN_VALUE;
            present += exists ? 1 : 0;
        }
        try (var dirs = Files.list(data.resolve("maps"))) {
            assertEquals(present, dirs.filter(Files::isDirectory).count(),
                    where + ": one directory per map that exists, no leftover of a deletion or creation");
        }
    }

    private static String key(int writer, int k) {
        return "w" + writer + "-" + k;
    }

    /** {@code mapcast serve} in its own JVM, on a port of its choosing (port 0), logging to a file. */
    private static final class ServeProcess {
        final Process process;
        final String address;

        private ServeProcess(Process process, String address) {
            this.process = process;
            this.address = address;
        }

        static ServeProcess start(Path data, Path err) throws IOException, InterruptedException {
            List<String> cmd = new ArrayList<>();
            cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
            if (Runtime.version().feature() >= 23) {
                cmd.add("--sun-misc-unsafe-memory-access=allow");
                cmd.add("--enable-native-access=ALL-UNNAMED");
            }
            cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName(), "serve",
                    "--listen", "127.0.0.1:0", "--data-dir", data.toString(), "--snapshot-log-bytes", "64KiB"));
            Process p = new ProcessBuilder(cmd).redirectOutput(ProcessBuilder.Redirect.DISCARD)
                    .redirectError(err.toFile()).start();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            ServingLine serving;
            while ((serving = ServingLine.in(Files.exists(err) ? Files.readString(err) : "")) == null) {
                if (!p.isAlive() || System.nanoTime() > deadline) {
                    p.destroyForcibly();
                    fail("mapcast serve did not start (exit " + (p.isAlive() ? "-" : p.exitValue()) + "): "
                            + (Files.exists(err) ? Files.readString(err) : ""));
                }
                Thread.sleep(20);
            }
            return new ServeProcess(p, serving.address());
        }

        void kill() throws InterruptedException {
            process.destroyForcibly();
            assertTrue(process.waitFor(30, TimeUnit.SECONDS), "killed server exits");
            assertEquals(false, process.isAlive());
        }
    }
}
