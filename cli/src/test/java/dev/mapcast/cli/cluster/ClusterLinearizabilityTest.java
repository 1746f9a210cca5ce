package dev.mapcast.cli.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.cli.cluster.ClusterProcesses.Member;
import dev.mapcast.cli.cluster.History.Kind;
import dev.mapcast.cli.cluster.History.Operation;
import dev.mapcast.client.GetResult;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.MapcastException;
import dev.mapcast.client.WriteBatch;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Concurrent clients doing linearizable reads and compare-and-sets on a few keys, each client
 * starting on another member, while members (the leader or a follower, as the seed chooses) are
 * SIGKILLed and restarted; the recorded {@link History} must be linearizable.
 *
 * <p>The compare-and-set is a register's: a client reads the key (value and mod_revision), then
 * writes a new unique value on the condition that the key's mod_revision is still the one it read
 * (absent: {@code ifAbsent}). Every value is written once, so "mod_revision unchanged" is "value
 * unchanged", and the history records CAS(value read, new value). FAILED_PRECONDITION is a failed
 * CAS (it saw another value); any other failure leaves it unknown, a refusal as not applied too
 * (as {@link History} asks: a FAILED CAS would claim it saw another value). A read that fails is
 * recorded unknown, which the checker ignores.
 *
 * <p>{@code -Dmapcast.seed} fixes the clients' choices and the faults; {@code
 * -Dmapcast.linearizabilitySeconds} (default {@value #DEFAULT_SECONDS}) the least length of the run, which
 * goes on until the last member killed is back.
 */
class ClusterLinearizabilityTest {

    static final int DEFAULT_SECONDS = 25;
    private static final String MAP = "lin";
    private static final int CLIENTS = 5;
    private static final List<String> KEYS = List.of("a", "b", "c");
    private static final int FAULTS = 4;

    @TempDir
    Path dir;

    @Test
    void readsAndCompareAndSetsOnEveryMemberStayLinearizableWhileMembersAreKilled() throws Exception {
        long seed = Long.getLong("mapcast.seed", System.nanoTime());
        int seconds = Integer.getInteger("mapcast.linearizabilitySeconds", DEFAULT_SECONDS);
        System.out.println("ClusterLinearizabilityTest: seed " + seed + " (-Dmapcast.seed=" + seed + "), " + seconds
                + " s, " + FAULTS + " faults");
        Random random = new Random(seed);
        History history = new History();
        List<String> unexpected = new CopyOnWriteArrayList<>();
        List<String> faults = new ArrayList<>();
        long operationsSeconds = 0;
        try (ClusterProcesses cluster = ClusterProcesses.start(dir, 3)) {
            // The map exists before the history starts: a Get of a key then says absent, not NOT_FOUND.
            try (MapcastClient c = MapcastClient.builder().target(cluster.targets()).deadline(Duration.ofSeconds(30))
                    .build()) {
                c.put(MAP, "created", "yes");
            }
            List<Member> members = cluster.members();
            List<Thread> clients = new ArrayList<>();
            AtomicBoolean stop = new AtomicBoolean();
            for (int i = 0; i < CLIENTS; i++) {
                List<String> targets = new ArrayList<>();
                for (int j = 0; j < members.size(); j++) {
                    targets.add(members.get((i + j) % members.size()).clientAddress());
                }
                Client client = new Client(i, String.join(",", targets), new Random(random.nextLong()), history, stop,
                        unexpected);
                Thread t = new Thread(client, "cluster-linearizability-client-" + i);
                t.setDaemon(true);
                clients.add(t);
                t.start();
            }
            long start = System.nanoTime();
            long run = TimeUnit.SECONDS.toNanos(seconds);
            try {
                for (int f = 1; f <= FAULTS; f++) {
                    // Faults spread over the run (a schedule, not a condition); a slow restart delays the next.
                    TimeUnit.NANOSECONDS.sleep(Math.max(0, start + run * f / (FAULTS + 1) - System.nanoTime()));
                    Member leader = cluster.awaitLeader();
                    List<Member> followers = cluster.alive().stream().filter(m -> m != leader).toList();
                    Member victim = random.nextBoolean() || followers.isEmpty() ? leader
                            : followers.get(random.nextInt(followers.size()));
                    cluster.kill(victim);
                    Member next = cluster.awaitLeader();
                    cluster.restart(victim);
                    faults.add((victim == leader ? "leader " : "follower ") + victim.id + " (new leader " + next.id
                            + ")");
                }
                // Operations go on a while with every member back, and for the run's length at least.
                long after = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
                TimeUnit.NANOSECONDS.sleep(Math.max(start + run, after) - System.nanoTime());
                operationsSeconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start);
            } catch (Throwable t) {
                throw new AssertionError("seed " + seed + ": " + t.getMessage() + "\n" + cluster.tails(), t);
            } finally {
                stop.set(true);
                for (Thread t : clients) {
                    t.join(60_000);
                }
            }
        }

        List<Operation> ops = history.operations();
        Map<Kind, Map<History.Outcome, Integer>> counts = new EnumMap<>(Kind.class);
        for (Operation op : ops) {
            counts.computeIfAbsent(op.kind(), k -> new TreeMap<>()).merge(op.outcome(), 1, Integer::sum);
        }
        long started = System.nanoTime();
        LinearizabilityChecker.Result result = new LinearizabilityChecker().check(ops);
        System.out.printf("ClusterLinearizabilityTest: %d operations in %d s %s; faults: %s; %s, checked in %d ms"
                + " (seed %d)%n", ops.size(), operationsSeconds, counts, faults, result.verdict(),
                TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started), seed);
        assertTrue(unexpected.isEmpty(), "seed " + seed + ": unexpected failures: " + unexpected);
        assertTrue(counts.getOrDefault(Kind.CAS, Map.of()).getOrDefault(History.Outcome.OK, 0) > 0,
                "seed " + seed + ": no compare-and-set succeeded: " + counts);
        assertEquals(LinearizabilityChecker.Verdict.LINEARIZABLE, result.verdict(), "seed " + seed
                + " (-Dmapcast.seed=" + seed + "): " + result.explanation());
    }

    /** One client: reads, and read-then-CAS, on random keys until the end of the run. */
    private record Client(int index, String targets, Random random, History history, AtomicBoolean stop,
            List<String> unexpected) implements Runnable {

        @Override
        public void run() {
            int written = 0;
            try (MapcastClient client = MapcastClient.builder().target(targets).deadline(Duration.ofSeconds(10))
                    .build()) {
                while (!stop.get()) {
                    String key = KEYS.get(random.nextInt(KEYS.size()));
                    GetResult read = read(client, key);
                    if (read == null) {
                        Thread.sleep(20);  // pacing while members fail over, not for correctness
                        continue;
                    }
                    if (random.nextBoolean()) {
                        continue;  // a read alone
                    }
                    String expected = read.found() ? new String(read.value(), StandardCharsets.UTF_8) : null;
                    String value = "c" + index + "-" + ++written;
                    long id = history.invoke(index, Kind.CAS, key, expected, value);
                    WriteBatch cas = client.write(MAP).put(key, value);
                    if (read.found()) {
                        cas.ifModRevision(key, read.modRevision());
                    } else {
                        cas.ifAbsent(key);
                    }
                    try {
                        cas.commit();
                        history.ok(id);
                    } catch (MapcastException e) {
                        WriteFailure failure = WriteFailure.of(e);
                        if (failure == WriteFailure.CONDITION_FAILED) {
                            history.failed(id);
                        } else {
                            history.unknown(id);
                            if (failure == WriteFailure.UNEXPECTED) {
                                unexpected.add("client " + index + ": CAS on " + key + ": " + e.getMessage());
                            }
                        }
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (RuntimeException | Error e) {
                unexpected.add("client " + index + " died: " + e);
            }
        }

        /** A linearizable Get, recorded; null if it failed (recorded unknown: it says nothing). */
        private GetResult read(MapcastClient client, String key) {
            long id = history.invoke(index, Kind.READ, key, null, null);
            try {
                GetResult r = client.get(MAP, key);
                history.ok(id, r.found() ? new String(r.value(), StandardCharsets.UTF_8) : null);
                return r;
            } catch (MapcastException e) {
                history.unknown(id);
                if (e.code() != io.grpc.Status.Code.UNAVAILABLE && e.code() != io.grpc.Status.Code.DEADLINE_EXCEEDED) {
                    unexpected.add("client " + index + ": read of " + key + ": " + e.getMessage());
                }
                return null;
            }
        }
    }
}
