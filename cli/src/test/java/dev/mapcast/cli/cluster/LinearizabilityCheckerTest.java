package dev.mapcast.cli.cluster;

import static dev.mapcast.cli.cluster.History.Kind.CAS;
import static dev.mapcast.cli.cluster.History.Kind.READ;
import static dev.mapcast.cli.cluster.History.Kind.WRITE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.cli.cluster.History.Kind;
import dev.mapcast.cli.cluster.History.Operation;
import dev.mapcast.cli.cluster.History.Outcome;
import dev.mapcast.cli.cluster.LinearizabilityChecker.Result;
import dev.mapcast.cli.cluster.LinearizabilityChecker.Verdict;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * The checker on small hand-written histories, each a timeline with one millisecond a step, and on
 * a history recorded from threads using a real register.
 */
class LinearizabilityCheckerTest {

    private final AtomicLong clock = new AtomicLong();
    /** Each invocation and completion one millisecond after the one before: an exact timeline. */
    private final History history = new History(() -> clock.addAndGet(1_000_000));
    private final LinearizabilityChecker checker = new LinearizabilityChecker();

    // ---------------------------------------------------------------- hand-written histories

    @Test
    void readAfterACompletedWriteSeesIt() {
        history.ok(write(1, "k", "a"));
        history.ok(write(1, "k", "b"));
        history.ok(read(2, "k"), "b");
        assertLinearizable();
    }

    @Test
    void staleReadAfterACompletedWriteIsNotLinearizable() {
        history.ok(write(1, "k", "a"));
        history.ok(write(1, "k", "b"));
        long stale = read(2, "k");
        history.ok(stale, "a");

        Result result = assertNotLinearizable("k");
        assertTrue(result.explanation().contains("#" + stale + " client 2 READ(k) OK \"a\"  [+4.000 ms, +5.000 ms]"
                + "  <- no linearization once this completes"), result::toString);
    }

    @Test
    void readConcurrentWithAWriteMaySeeTheOldValue() {
        history.ok(write(1, "k", "a"));
        long w = write(1, "k", "b");
        history.ok(read(2, "k"), "a");
        history.ok(w);
        assertLinearizable();
    }

    @Test
    void concurrentWritesSeenInBothOrdersAreNotLinearizable() {
        long wa = write(1, "k", "a");
        long wb = write(2, "k", "b");
        history.ok(read(3, "k"), "a");
        history.ok(read(3, "k"), "b");
        history.ok(read(4, "k"), "b");
        history.ok(read(4, "k"), "a");
        history.ok(wa);
        history.ok(wb);
        assertNotLinearizable("k");
    }

    @Test
    void concurrentWritesSeenInOneOrderAreLinearizable() {
        long wa = write(1, "k", "a");
        long wb = write(2, "k", "b");
        history.ok(read(3, "k"), "a");
        history.ok(read(4, "k"), "a");
        history.ok(read(3, "k"), "b");
        history.ok(read(4, "k"), "b");
        history.ok(wa);
        history.ok(wb);
        assertLinearizable();
    }

    @Test
    void chainOfSuccessfulCasIsLinearizable() {
        history.ok(cas(1, "k", null, "1"));
        long c2 = cas(2, "k", "1", "2");
        long c3 = cas(3, "k", "2", "3"); // concurrent with c2, but must follow it
        history.ok(c3);
        history.ok(c2);
        history.ok(read(1, "k"), "3");
        assertLinearizable();
    }

    @Test
    void twoSuccessfulCasFromTheSameValueAreNotLinearizable() {
        long c1 = cas(1, "k", null, "1");
        long c2 = cas(2, "k", null, "2");
        history.ok(c1);
        history.ok(c2);
        assertNotLinearizable("k");
    }

    @Test
    void failedCasThatMustHaveSeenItsExpectedValueIsNotLinearizable() {
        history.ok(write(1, "k", "a"));
        history.failed(cas(2, "k", "a", "b"));
        assertNotLinearizable("k");
    }

    @Test
    void failedCasConcurrentWithAWriteMayHaveSeenIt() {
        history.ok(write(1, "k", "a"));
        long w = write(1, "k", "c");
        history.failed(cas(2, "k", "a", "b"));
        history.ok(w);
        history.ok(read(2, "k"), "c");
        assertLinearizable();
    }

    @Test
    void failedWriteIsIgnoredButAFailedReadOfItIsNot() {
        history.ok(write(1, "k", "a"));
        history.failed(write(1, "k", "b"));
        history.ok(read(2, "k"), "a");
        assertLinearizable();
        history.ok(read(2, "k"), "b");
        assertNotLinearizable("k");
    }

    @Test
    void unknownWriteThatLaterAppearsInAReadIsLinearizable() {
        history.ok(write(1, "k", "a"));
        history.unknown(write(1, "k", "b"));
        history.ok(read(2, "k"), "a");
        history.ok(read(2, "k"), "b");
        history.ok(read(3, "k"), "b");
        assertLinearizable();
    }

    @Test
    void unknownWriteThatNeverAppearsIsLinearizable() {
        history.ok(write(1, "k", "a"));
        history.unknown(write(1, "k", "b"));
        history.ok(read(2, "k"), "a");
        history.ok(read(3, "k"), "a");
        assertLinearizable();
    }

    @Test
    void unknownWriteTakesEffectOnceAtMost() {
        history.ok(write(1, "k", "a"));
        history.unknown(write(1, "k", "b"));
        history.ok(read(2, "k"), "b");
        history.ok(read(2, "k"), "a");
        assertNotLinearizable("k");
    }

    @Test
    void unknownWriteCannotTakeEffectBeforeItsInvocation() {
        history.ok(read(2, "k"), "b");
        history.unknown(write(1, "k", "b"));
        assertNotLinearizable("k");
    }

    @Test
    void unknownCasTakesEffectOnlyOnItsExpectedValue() {
        history.unknown(cas(1, "k", "x", "b"));
        history.ok(read(2, "k"), "b");
        assertNotLinearizable("k");
    }

    @Test
    void pendingOperationCountsAsUnknown() {
        write(1, "k", "b"); // no outcome yet
        history.ok(read(2, "k"), "b");
        history.ok(read(2, "k"), "b");
        assertLinearizable();
    }

    @Test
    void readOfAValueNeverWrittenIsNotLinearizable() {
        history.ok(write(1, "k", "a"));
        long r = read(2, "k");
        history.ok(r, "z");
        Result result = assertNotLinearizable("k");
        assertTrue(result.explanation().contains("#" + r + " client 2 READ(k) OK \"z\""), result::toString);
    }

    @Test
    void keysAreCheckedIndependentlyAndTheBadOneIsNamed() {
        history.ok(write(1, "x", "a"));
        history.ok(read(2, "y"), null);
        history.ok(write(1, "y", "a"));
        history.ok(read(2, "y"), null);
        history.ok(read(2, "x"), "a");
        assertNotLinearizable("y");
    }

    @Test
    void searchBeyondItsBoundIsUndecided() {
        for (int i = 0; i < 10; i++) {
            history.ok(write(1, "k", "v" + i));
        }
        Result result = new LinearizabilityChecker(5).check(history);
        assertEquals(Verdict.UNDECIDED, result.verdict(), result::toString);
        assertTrue(result.explanation().contains("key \"k\""), result::toString);
    }

    @Test
    void outcomeIsGivenOnce() {
        long r = read(1, "k");
        history.ok(r, "a");
        assertThrows(IllegalStateException.class, () -> history.unknown(r));
        long w = write(1, "k", "a");
        history.unknown(w);
        assertThrows(IllegalStateException.class, () -> history.ok(w));
        assertThrows(IllegalArgumentException.class, () -> history.ok(read(1, "k")));
    }

    // ---------------------------------------------------------------- randomized

    /**
     * Threads run random reads, writes and CAS on a synchronized map, some replies "lost" (UNKNOWN,
     * applied or not), some writes refused (FAILED); the recorded history must be linearizable,
     * and must stop being so when one read is corrupted. The threads' operations come from the
     * seed; their interleaving does not, but the verdicts hold for every interleaving. Reproduce
     * with {@code -Dmapcast.lincheck.seed=N}.
     */
    @Test
    void recordedHistoryOfARealRegisterIsLinearizableUntilOneReadIsCorrupted() throws Exception {
        long seed = Long.getLong("mapcast.lincheck.seed", new SplittableRandom().nextLong());
        System.out.println("LinearizabilityCheckerTest seed: " + seed + " (-Dmapcast.lincheck.seed=" + seed + ")");
        History recorded = new History();
        runClients(recorded, seed, 5, 1_000, 5);
        List<Operation> ops = recorded.operations();

        long start = System.nanoTime();
        Result result = checker.check(ops);
        long millis = (System.nanoTime() - start) / 1_000_000;
        System.out.println("checked " + ops.size() + " operations in " + millis + " ms: " + result);
        assertTrue(result.linearizable(), () -> "seed " + seed + ": " + result);

        Random random = new Random(seed);
        List<Operation> reads = ops.stream()
                .filter(op -> op.kind() == READ && op.outcome() == Outcome.OK).toList();
        Operation victim = reads.get(random.nextInt(reads.size()));
        assertCorruptionFound(ops, victim.withReadValue("never-written"), seed);

        List<Operation[]> staleReads = staleReads(ops);
        Operation[] stale = staleReads.get(random.nextInt(staleReads.size()));
        assertCorruptionFound(ops, stale[0].withReadValue(stale[1].value()), seed);
    }

    private void assertCorruptionFound(List<Operation> ops, Operation corrupted, long seed) {
        List<Operation> edited = new ArrayList<>(ops);
        edited.set((int) corrupted.id(), corrupted);
        long start = System.nanoTime();
        Result result = checker.check(edited);
        long millis = (System.nanoTime() - start) / 1_000_000;
        System.out.println("corrupted " + corrupted + ", checked in " + millis + " ms: " + result);
        assertEquals(Verdict.NOT_LINEARIZABLE, result.verdict(), () -> "seed " + seed + ": " + result);
        assertEquals(corrupted.key(), result.key(), () -> "seed " + seed + ": " + result);
        assertTrue(result.explanation().contains(corrupted + "  ["), () -> "seed " + seed + ": " + result);
    }

    /**
     * Pairs (read R, write W) where R cannot return W's value: another successful WRITE or CAS on
     * the key began after W completed and completed before R began. Values are unique, so no
     * one else writes W's value back.
     */
    private static List<Operation[]> staleReads(List<Operation> ops) {
        List<Operation[]> pairs = new ArrayList<>();
        Map<String, List<Operation>> writes = new HashMap<>();
        for (Operation op : ops) {
            if (op.kind() != READ && op.outcome() == Outcome.OK) {
                writes.computeIfAbsent(op.key(), k -> new ArrayList<>()).add(op);
            }
        }
        for (Operation r : ops) {
            if (r.kind() != READ || r.outcome() != Outcome.OK) {
                continue;
            }
            List<Operation> onKey = writes.getOrDefault(r.key(), List.of());
            onKey.stream().filter(w2 -> w2.complete() < r.invoke())
                    .flatMap(w2 -> onKey.stream().filter(w1 -> w1.complete() < w2.invoke()))
                    .findFirst().ifPresent(w1 -> pairs.add(new Operation[] {r, w1}));
        }
        return pairs;
    }

    /**
     * Runs {@code clients} threads of {@code opsPerClient} operations each on {@code keys} keys of
     * one synchronized map, recording into {@code recorded}. Written values are unique.
     */
    private static void runClients(History recorded, long seed, int clients, int opsPerClient, int keys)
            throws Exception {
        Map<String, String> store = new HashMap<>();
        CountDownLatch start = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(clients);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int c = 0; c < clients; c++) {
                int client = c;
                Random random = new Random(seed + c);
                done.add(pool.submit(() -> {
                    Map<String, String> lastSeen = new HashMap<>();
                    start.await();
                    for (int i = 0; i < opsPerClient; i++) {
                        String key = "k" + random.nextInt(keys);
                        String value = "c" + client + "-" + i;
                        int dice = random.nextInt(100);
                        Kind kind = dice < 40 ? READ : dice < 60 ? WRITE : CAS;
                        String expected = random.nextInt(4) == 0 ? null : lastSeen.get(key);
                        long id = recorded.invoke(client, kind, key, expected, value);
                        if (random.nextBoolean()) {
                            Thread.yield(); // widen the window in which others run concurrently
                        }
                        boolean lost = kind != READ && random.nextInt(100) < 2;
                        boolean refused = kind == WRITE && random.nextInt(100) < 2;
                        boolean apply = !refused && (!lost || random.nextBoolean());
                        String read = null;
                        boolean applied = false;
                        synchronized (store) {
                            String current = store.get(key);
                            switch (kind) {
                                case READ -> read = current;
                                case WRITE -> applied = apply;
                                case CAS -> applied = apply && Objects.equals(current, expected);
                            }
                            if (applied) {
                                store.put(key, value);
                            }
                        }
                        if (kind == READ) {
                            recorded.ok(id, read);
                            lastSeen.put(key, read);
                        } else if (lost) {
                            recorded.unknown(id);
                        } else if (applied) {
                            recorded.ok(id);
                            lastSeen.put(key, value);
                        } else {
                            recorded.failed(id); // a refused WRITE, a CAS whose precondition failed
                        }
                    }
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> f : done) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
    }

    // ---------------------------------------------------------------- helpers

    private long read(int client, String key) {
        return history.invoke(client, READ, key, null, null);
    }

    private long write(int client, String key, String value) {
        return history.invoke(client, WRITE, key, null, value);
    }

    private long cas(int client, String key, String expected, String value) {
        return history.invoke(client, CAS, key, expected, value);
    }

    private void assertLinearizable() {
        Result result = checker.check(history);
        assertEquals(Verdict.LINEARIZABLE, result.verdict(), result::toString);
    }

    private Result assertNotLinearizable(String key) {
        Result result = checker.check(history);
        assertEquals(Verdict.NOT_LINEARIZABLE, result.verdict(), result::toString);
        assertEquals(key, result.key(), result::toString);
        assertTrue(result.explanation().contains("key \"" + key + "\""), result::toString);
        return result;
    }
}
