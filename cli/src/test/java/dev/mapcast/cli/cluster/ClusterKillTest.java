package dev.mapcast.cli.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.mapcast.cli.cluster.ClusterProcesses.Member;
import dev.mapcast.client.GetResult;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.MapcastException;
import dev.mapcast.codec.SnapshotFileInfo;
import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.core.IterationOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Three members under a steady load of acknowledged writes; the leader is SIGKILLed at a random
 * moment, again and again ({@code -Dmapcast.clusterKills}, default {@value #DEFAULT_KILLS}; the
 * {@code cluster-soak} profile runs more). Each round: a new leader is elected, a write sent after
 * the kill is acknowledged (writes resume; the time from the kill is printed, not asserted), the
 * killed member is restarted, and with the writers paused every member must hold every
 * acknowledged write, nothing that was refused as not applied, each writer's keys at or past
 * their last acknowledged token, and the same revision and the same snapshot bytes.
 *
 * <p>Each writer owns its keys and writes one at a time, increasing tokens, so the latest value of
 * a key is known: its last acknowledged token, or a later token whose write had an unknown outcome.
 * The seed ({@code -Dmapcast.seed}) fixes the moments of the kills and the writers' key choices;
 * the interleavings of real processes it cannot fix.
 */
class ClusterKillTest {

    static final int DEFAULT_KILLS = 20;
    private static final String MAP = "kill";
    private static final int WRITERS = 6;
    private static final int KEYS_PER_WRITER = 3;
    private static final Duration WRITE_DEADLINE = Duration.ofSeconds(30);

    @TempDir
    Path dir;

    @Test
    void killingTheLeaderRepeatedlyLosesNoAcknowledgedWriteAndWritesResume() throws Exception {
        int kills = Integer.getInteger("mapcast.clusterKills", DEFAULT_KILLS);
        long seed = Long.getLong("mapcast.seed", System.nanoTime());
        System.out.println("ClusterKillTest: seed " + seed + " (-Dmapcast.seed=" + seed + "), " + kills + " kills");
        Random random = new Random(seed);
        long started = System.nanoTime();
        List<Long> failoverMillis = new ArrayList<>();
        try (ClusterProcesses cluster = ClusterProcesses.start(dir, 3);
                Load load = new Load(cluster, random.nextLong())) {
            try {
                for (int round = 1; round <= kills; round++) {
                    load.awaitAcks(WRITERS);  // writes are flowing before the kill
                    Thread.sleep(random.nextInt(1000));  // a random moment, not a condition
                    Member leader = cluster.awaitLeader();
                    load.killAt = Long.MAX_VALUE;
                    long killed = System.nanoTime();
                    cluster.kill(leader);
                    load.firstAckAfterKill.set(Long.MAX_VALUE);
                    load.killAt = System.nanoTime();  // a write sent from here cannot reach the dead leader
                    Member next = cluster.awaitLeader();
                    long resumed = load.awaitAckAfterKill();
                    long failover = TimeUnit.NANOSECONDS.toMillis(resumed - killed);
                    failoverMillis.add(failover);
                    long restarting = System.nanoTime();
                    cluster.restart(leader);
                    long checked = System.nanoTime();
                    String figures = load.checkEveryMember(cluster, "after kill " + round);
                    System.out.printf("round %d: killed leader %s, new leader %s, first write sent after the kill"
                            + " acknowledged %d ms after it; restart %d ms, check %d ms (%s)%n", round, leader.id,
                            next.id, failover, TimeUnit.NANOSECONDS.toMillis(checked - restarting),
                            TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - checked), figures);
                }
                String figures = load.checkEveryMember(cluster, "at the end");
                System.out.println("ClusterKillTest: " + figures);
            } catch (Throwable t) {
                throw new AssertionError("seed " + seed + " (-Dmapcast.seed=" + seed + "): " + t.getMessage()
                        + "\n" + cluster.tails(), t);
            } finally {
                load.stop();
            }
            load.assertNoUnexpectedFailure(seed);
        }
        List<Long> sorted = new ArrayList<>(failoverMillis);
        Collections.sort(sorted);
        System.out.printf("ClusterKillTest: %d kills in %d s, leader kill -> next acknowledged write (ms): %s;"
                + " median %d, max %d (seed %d)%n", kills, TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - started),
                failoverMillis, sorted.isEmpty() ? 0 : sorted.get(sorted.size() / 2),
                sorted.isEmpty() ? 0 : sorted.get(sorted.size() - 1), seed);
    }

    /** What one writer knows of one of its keys. Guarded by itself. */
    private static final class KeyLog {
        final String key;
        long lastAcked;  // 0: none yet
        long lastAckedRevision;
        final Set<Long> unknown = new HashSet<>();
        final Set<Long> notApplied = new HashSet<>();

        KeyLog(String key) {
            this.key = key;
        }

        /** Why {@code value} (null: absent) cannot be this key's value now, or null if it can. */
        synchronized String refuse(String value) {
            if (value == null) {
                return lastAcked == 0 ? null : "absent, but token " + lastAcked + " was acknowledged";
            }
            long token = Long.parseLong(value);
            if (token == lastAcked) {
                return null;
            }
            if (notApplied.contains(token)) {
                return "token " + token + ", whose write was refused as not applied";
            }
            if (token < lastAcked) {
                return "token " + token + ", older than the acknowledged " + lastAcked + " (went backwards or lost)";
            }
            return unknown.contains(token) ? null : "token " + token + ", never acknowledged nor left unknown"
                    + " (last acknowledged: " + lastAcked + ")";
        }
    }

    /** The writers, and the checks of what they wrote. */
    private static final class Load implements AutoCloseable {
        final List<Writer> writers = new ArrayList<>();
        final Map<String, KeyLog> keys = new TreeMap<>();
        final AtomicLong acks = new AtomicLong();
        /** Unknown outcomes whose description is the server's refusal before proposing: reported, not asserted. */
        final AtomicLong refusedAsUnknown = new AtomicLong();
        final List<String> unexpected = new CopyOnWriteArrayList<>();
        /** Writes invoked after this (nanoTime) count for {@link #firstAckAfterKill}. */
        volatile long killAt = Long.MAX_VALUE;
        final AtomicLong firstAckAfterKill = new AtomicLong(Long.MAX_VALUE);
        private final Object gate = new Object();
        private boolean paused;  // guarded by gate
        private int waiting;  // writers at the gate, guarded by gate
        private volatile boolean stopped;

        Load(ClusterProcesses cluster, long seed) {
            List<Member> members = cluster.members();
            for (int w = 0; w < WRITERS; w++) {
                List<KeyLog> own = new ArrayList<>();
                for (int k = 0; k < KEYS_PER_WRITER; k++) {
                    KeyLog log = new KeyLog("w" + w + "-k" + k);
                    own.add(log);
                    keys.put(log.key, log);
                }
                // Each writer starts on another member, so that followers forward writes too.
                List<String> targets = new ArrayList<>();
                for (int i = 0; i < members.size(); i++) {
                    targets.add(members.get((w + i) % members.size()).clientAddress());
                }
                writers.add(new Writer(w, own, String.join(",", targets), new Random(seed + w)));
            }
            writers.forEach(Thread::start);
        }

        /** Waits until {@code n} more writes are acknowledged. */
        void awaitAcks(int n) throws InterruptedException {
            long target = acks.get() + n;
            long deadline = System.nanoTime() + ClusterProcesses.PATIENCE.toNanos();
            while (acks.get() < target) {
                if (System.nanoTime() > deadline) {
                    fail("no write acknowledged for " + ClusterProcesses.PATIENCE + "; unexpected failures: "
                            + unexpected);
                }
                Thread.sleep(10);
            }
        }

        /** Waits for the first acknowledgement of a write sent after the kill; returns its time. */
        long awaitAckAfterKill() throws InterruptedException {
            long deadline = System.nanoTime() + ClusterProcesses.PATIENCE.toNanos();
            while (firstAckAfterKill.get() == Long.MAX_VALUE) {
                if (System.nanoTime() > deadline) {
                    fail("writes did not resume within " + ClusterProcesses.PATIENCE + " of the leader's kill;"
                            + " unexpected failures: " + unexpected);
                }
                Thread.sleep(5);
            }
            return firstAckAfterKill.get();
        }

        /** Stops the writers between two writes and waits until each is idle (its write answered). */
        void pause() throws InterruptedException {
            long deadline = System.nanoTime() + WRITE_DEADLINE.toNanos() + ClusterProcesses.PATIENCE.toNanos();
            synchronized (gate) {
                paused = true;
                while (waiting < WRITERS) {
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        fail("writers still busy " + WRITE_DEADLINE + " after the pause (their write deadline)");
                    }
                    gate.wait(TimeUnit.NANOSECONDS.toMillis(left) + 1);
                }
            }
        }

        void resume() {
            synchronized (gate) {
                paused = false;
                gate.notifyAll();
            }
        }

        /** Called by a writer before each write: waits while paused. */
        void pass() throws InterruptedException {
            synchronized (gate) {
                if (!paused) {
                    return;
                }
                waiting++;
                gate.notifyAll();
                while (paused && !stopped) {
                    gate.wait();
                }
                waiting--;
            }
        }

        /**
         * With the writers paused: waits until every member gives the same snapshot (bytes), then
         * checks every writer key on every member by a linearizable Get against what was
         * acknowledged, and every key of the snapshot against the Gets. Returns figures to print.
         */
        String checkEveryMember(ClusterProcesses cluster, String when) throws Exception {
            pause();
            try {
                Map<String, String> content = awaitSameSnapshot(cluster, when);
                long revision = -1;
                for (Member m : cluster.members()) {
                    try (MapcastClient c = MapcastClient.builder().target(m.clientAddress()).deadline(WRITE_DEADLINE)
                            .build()) {
                        for (KeyLog log : keys.values()) {
                            GetResult r = c.get(MAP, log.key);
                            String value = r.found() ? new String(r.value(), StandardCharsets.UTF_8) : null;
                            String why = log.refuse(value);
                            if (why != null) {
                                fail(when + ": member " + m.id + " holds " + log.key + " = " + why);
                            }
                            assertEquals(content.get(log.key), value, when + ": " + log.key + " by Get on " + m.id
                                    + " vs its snapshot");
                            if (revision < 0) {
                                revision = r.revision();
                            }
                            assertEquals(revision, r.revision(), when + ": map revision seen by Get on " + m.id);
                        }
                    }
                }
                assertTrue(keys.keySet().containsAll(content.keySet()), when + ": keys no writer wrote: " + content
                        .keySet());
                long unknown = keys.values().stream().mapToLong(k -> {
                    synchronized (k) {
                        return k.unknown.size();
                    }
                }).sum();
                long notApplied = keys.values().stream().mapToLong(k -> {
                    synchronized (k) {
                        return k.notApplied.size();
                    }
                }).sum();
                // Each applied write adds one revision: an acknowledged one once, an unknown one at most once.
                long acknowledged = acks.get();
                assertTrue(revision >= acknowledged && revision <= acknowledged + unknown, when + ": revision "
                        + revision + " for " + acknowledged + " acknowledged writes and " + unknown + " unknown ones"
                        + " (a write applied twice, or one lost)");
                return "revision " + revision + " on every member, " + acks.get() + " writes acknowledged, "
                        + unknown + " unknown (of which " + refusedAsUnknown.get() + " said by the server not applied), "
                        + notApplied + " refused as not applied";
            } finally {
                resume();
            }
        }

        /** Waits until every member's snapshot is byte for byte the same; returns its content. */
        private Map<String, String> awaitSameSnapshot(ClusterProcesses cluster, String when) throws Exception {
            long deadline = System.nanoTime() + ClusterProcesses.PATIENCE.toNanos();
            String last = "";
            while (System.nanoTime() < deadline) {
                byte[] first = null;
                String differs = null;
                List<String> revisions = new ArrayList<>();
                for (Member m : cluster.members()) {
                    Path file = Files.createTempFile(dirOf(cluster), m.id + "-", ".snap");
                    try (MapcastClient c = MapcastClient.builder().target(m.clientAddress())
                            .deadline(Duration.ofSeconds(10)).build()) {
                        SnapshotFileInfo info = c.saveSnapshot(MAP, file);
                        revisions.add(m.id + "@" + info.revision());
                        byte[] bytes = Files.readAllBytes(file);
                        if (first == null) {
                            first = bytes;
                        } else if (!Arrays.equals(first, bytes)) {
                            differs = "snapshots differ: " + revisions;
                        }
                    } catch (MapcastException e) {
                        differs = m.id + ": " + e.getMessage();
                    } finally {
                        Files.deleteIfExists(file);
                    }
                    if (differs != null) {
                        break;
                    }
                }
                if (differs == null) {
                    Path file = Files.createTempFile(dirOf(cluster), "check-", ".snap");
                    try {
                        Files.write(file, first);
                        Map<String, String> content = new LinkedHashMap<>();
                        SnapshotFiles.inspect(file, (message, keyFrom, keyLength, valueFrom, valueLength) -> {
                            byte[] k = new byte[keyLength];
                            byte[] v = new byte[valueLength];
                            message.get(keyFrom, k);
                            message.get(valueFrom, v);
                            content.put(new String(k, StandardCharsets.UTF_8), new String(v, StandardCharsets.UTF_8));
                        });
                        return content;
                    } finally {
                        Files.deleteIfExists(file);
                    }
                }
                last = differs;
                Thread.sleep(200);
            }
            fail(when + ": members did not converge to one snapshot within " + ClusterProcesses.PATIENCE + " (last: "
                    + last + ")");
            return null;
        }

        private static Path dirOf(ClusterProcesses cluster) {
            return cluster.members().get(0).dataDir.getParent();
        }

        void assertNoUnexpectedFailure(long seed) {
            assertTrue(unexpected.isEmpty(), "seed " + seed + ": writes failed in a way a retrying client cannot"
                    + " handle: " + unexpected);
        }

        void stop() throws InterruptedException {
            stopped = true;
            resume();
            for (Writer w : writers) {
                w.join(WRITE_DEADLINE.toMillis() + 10_000);
            }
        }

        @Override
        public void close() throws InterruptedException {
            stop();
        }

        /** One writer: its keys, one write at a time, tokens increasing. */
        final class Writer extends Thread {
            private final List<KeyLog> own;
            private final String targets;
            private final Random random;
            private long token;
            private long lastRevision;

            Writer(int index, List<KeyLog> own, String targets, Random random) {
                super("cluster-kill-writer-" + index);
                setDaemon(true);
                this.own = own;
                this.targets = targets;
                this.random = random;
            }

            @Override
            public void run() {
                try (MapcastClient client = MapcastClient.builder().target(targets).deadline(WRITE_DEADLINE).build()) {
                    while (!stopped) {
                        pass();
                        if (stopped) {
                            break;
                        }
                        KeyLog log = own.get(random.nextInt(own.size()));
                        long t = ++token;
                        long invoked = System.nanoTime();
                        try {
                            long revision = client.write(MAP).put(log.key, Long.toString(t))
                                    .order(IterationOrder.INSERTION).commit();
                            if (revision <= lastRevision) {
                                unexpected.add(getName() + ": token " + t + " acknowledged at revision " + revision
                                        + ", not after its previous write's " + lastRevision);
                            }
                            lastRevision = revision;
                            synchronized (log) {
                                log.lastAcked = t;
                                log.lastAckedRevision = revision;
                            }
                            acks.incrementAndGet();
                            if (invoked > killAt) {
                                firstAckAfterKill.accumulateAndGet(System.nanoTime(), Math::min);
                            }
                        } catch (MapcastException e) {
                            WriteFailure failure = WriteFailure.of(e);
                            synchronized (log) {
                                (failure == WriteFailure.NOT_APPLIED ? log.notApplied : log.unknown).add(t);
                            }
                            if (failure == WriteFailure.UNKNOWN && String.valueOf(e.getMessage())
                                    .contains("nothing was written")) {
                                refusedAsUnknown.incrementAndGet();  // a figure: the server's text said not applied
                            }
                            if (failure == WriteFailure.UNEXPECTED || failure == WriteFailure.CONDITION_FAILED) {
                                unexpected.add(getName() + ": token " + t + " to " + log.key + ": " + e.getMessage());
                            }
                            Thread.sleep(20);  // pacing while no leader is known, not for correctness
                        }
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                } catch (RuntimeException | Error e) {
                    unexpected.add(getName() + " died: " + e);
                }
            }
        }
    }
}
