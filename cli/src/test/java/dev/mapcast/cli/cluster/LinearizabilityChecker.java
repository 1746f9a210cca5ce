package dev.mapcast.cli.cluster;

import dev.mapcast.cli.cluster.History.Kind;
import dev.mapcast.cli.cluster.History.Operation;
import dev.mapcast.cli.cluster.History.Outcome;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Decides whether a {@link History} is linearizable: whether every operation can be given one
 * instant between its invocation and its completion such that, taken in that order, the
 * operations are those of a sequential key/value store.
 *
 * <p><b>Model.</b> Each key is an independent register holding a string or nothing (absent, the
 * initial value). READ returns the value; WRITE sets it; CAS(expected, new) sets it to new iff it
 * equals expected. Linearizability composes (Herlihy &amp; Wing 1990), so the history is
 * linearizable iff each key's sub-history is, and each key is checked on its own. Outcomes:
 * <ul>
 *   <li>OK: the operation took effect between invocation and completion, with the result
 *       recorded.
 *   <li>FAILED: a CAS that failed saw a value other than its expected one; it is linearized like a
 *       read asserting just that. A failed READ or WRITE did nothing and is left out.
 *   <li>UNKNOWN: completion at infinity. A WRITE or CAS may be linearized at any point after its
 *       invocation, or never; an UNKNOWN READ says nothing and is left out.
 * </ul>
 *
 * <p><b>Algorithm.</b> The search of Wing &amp; Gong ("Testing and verifying concurrent objects",
 * JPDC 1993) with the memoisation of Lowe ("Testing for linearizability", CCPE 2017), as in Knossos
 * and Porcupine. A key's operations become call and return entries in one list ordered by time
 * (calls first at equal times: equal means concurrent). A depth-first search linearizes one
 * operation at a time: the candidates are the calls before the first remaining return (the
 * operations nothing unlinearized must precede); a candidate whose step the register allows is
 * lifted out of the list with its return, and the search goes on from the new state; when no
 * candidate is left it backtracks. It succeeds once every operation with a definite outcome is
 * linearized (UNKNOWN ones left are dropped). A configuration (set of linearized operations, register
 * value) is searched at most once: a cache of those seen prunes the rest. UNKNOWN operations have
 * no return entry, so they stay candidates until linearized. Since one may always be dropped, a
 * configuration is also pruned when one with the same definite operations and value, and a subset
 * of its UNKNOWN ones, was seen: it can only do less. The definite candidates are tried before the
 * UNKNOWN ones, so that smaller subset tends to come first; without this pruning a few dozen
 * UNKNOWN writes on a key make a failing search exponential.
 *
 * <p>The search is exponential in the worst case: it stops after {@code maxStates} configurations
 * of one key and answers {@link Verdict#UNDECIDED}. When a key is not linearizable, a binary search
 * finds the shortest prefix of its history (up to some operation's completion, later operations
 * pending) that is not, and the result lists the operations around the end of that prefix.
 */
final class LinearizabilityChecker {

    /** The default bound on the configurations searched for one key. */
    static final int DEFAULT_MAX_STATES = 1_000_000;

    /** The answer of a check. */
    enum Verdict {
        LINEARIZABLE,
        NOT_LINEARIZABLE,
        /** The search hit its bound first: nothing shown either way. */
        UNDECIDED
    }

    /**
     * The result of a check.
     *
     * @param key the key that is not linearizable or undecided; null when linearizable
     * @param explanation what a test failure should say; names the key and the operations
     * @param states the configurations searched, over all keys
     */
    record Result(Verdict verdict, String key, String explanation, long states) {

        boolean linearizable() {
            return verdict == Verdict.LINEARIZABLE;
        }

        @Override
        public String toString() {
            return explanation;
        }
    }

    private final int maxStates;

    /** A checker that searches at most {@link #DEFAULT_MAX_STATES} configurations a key. */
    LinearizabilityChecker() {
        this(DEFAULT_MAX_STATES);
    }

    /** A checker that searches at most {@code maxStates} configurations a key. */
    LinearizabilityChecker(int maxStates) {
        if (maxStates < 1) {
            throw new IllegalArgumentException("maxStates: " + maxStates + " (expected: >= 1)");
        }
        this.maxStates = maxStates;
    }

    Result check(History history) {
        return check(history.operations());
    }

    /** Checks {@code operations}: a history's, possibly edited (a test may corrupt one). */
    Result check(List<Operation> operations) {
        long origin = operations.stream().mapToLong(Operation::invoke).min().orElse(0);
        Map<String, List<Operation>> byKey = new TreeMap<>();
        for (Operation op : operations) {
            if (relevant(op)) {
                byKey.computeIfAbsent(op.key(), k -> new ArrayList<>()).add(op);
            }
        }
        long states = 0;
        String undecided = null;
        for (Map.Entry<String, List<Operation>> e : byKey.entrySet()) {
            Search search = new Search(e.getValue(), maxStates);
            Verdict verdict = search.run();
            states += search.states();
            if (verdict == Verdict.NOT_LINEARIZABLE) {
                return new Result(verdict, e.getKey(), explain(e.getKey(), e.getValue(), origin), states);
            }
            if (verdict == Verdict.UNDECIDED && undecided == null) {
                undecided = e.getKey();
            }
        }
        if (undecided != null) {
            return new Result(Verdict.UNDECIDED, undecided, "undecided: key \"" + undecided + "\" needs more than "
                    + maxStates + " configurations (" + operations.size() + " operations, " + byKey.size()
                    + " keys)", states);
        }
        return new Result(Verdict.LINEARIZABLE, null, "linearizable (" + operations.size() + " operations, "
                + byKey.size() + " keys, " + states + " configurations searched)", states);
    }

    /** Whether an operation constrains the register: failed reads and writes, and unknown reads, do not. */
    private static boolean relevant(Operation op) {
        return switch (op.outcome()) {
            case OK -> true;
            case FAILED -> op.kind() == Kind.CAS;
            case UNKNOWN -> op.kind() != Kind.READ;
        };
    }

    /**
     * The prefix of a key's history up to time {@code t}: the operations invoked by then, those
     * completed later taken as UNKNOWN (pending at {@code t}).
     */
    private static List<Operation> prefix(List<Operation> ops, long t) {
        List<Operation> prefix = new ArrayList<>();
        for (Operation op : ops) {
            if (op.invoke() > t) {
                continue;
            }
            Operation cut = op.complete() <= t ? op : op.asPending();
            if (relevant(cut)) {
                prefix.add(cut);
            }
        }
        return prefix;
    }

    /** Finds the shortest non-linearizable prefix of a key's history and lists the operations ending it. */
    private String explain(String key, List<Operation> ops, long origin) {
        long[] ends = ops.stream().mapToLong(Operation::complete).filter(t -> t != Long.MAX_VALUE)
                .sorted().distinct().toArray();
        // Not linearizable up to ends[hi]: a prefix's linearization is one of the whole history, but for
        // the operations pending after its end, which are UNKNOWN in both.
        int lo = 0;
        int hi = ends.length - 1;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (new Search(prefix(ops, ends[mid]), maxStates).run() == Verdict.NOT_LINEARIZABLE) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        long end = ends[hi];
        Operation last = ops.stream().filter(op -> op.complete() == end).findFirst().orElseThrow();
        List<Operation> prefixOps = ops.stream().filter(op -> op.invoke() <= end).toList();

        // The few completed just before the last one began, and those concurrent with it; UNKNOWN ones
        // begun before that window are only named: they could take effect anywhere in it.
        List<Operation> before = prefixOps.stream().filter(op -> op.complete() < last.invoke())
                .sorted(Comparator.comparingLong(Operation::complete)).toList();
        List<Operation> shown = new ArrayList<>(before.subList(Math.max(0, before.size() - 4), before.size()));
        long windowStart = shown.stream().mapToLong(Operation::invoke).min().orElse(last.invoke());
        List<Operation> olderUnknown = new ArrayList<>();
        for (Operation op : prefixOps) {
            if (op.complete() >= last.invoke()) {
                (op.complete() == Long.MAX_VALUE && op.invoke() < windowStart ? olderUnknown : shown).add(op);
            }
        }
        shown.sort(Comparator.comparingLong(Operation::invoke).thenComparingLong(Operation::id));

        StringBuilder sb = new StringBuilder("not linearizable: key \"").append(key).append("\": its first ")
                .append(prefixOps.size()).append(" operations, up to ").append(time(end, origin))
                .append(" when #").append(last.id()).append(" completed, have no linearization (times from the")
                .append(" first invocation; ? = unknown). The operations around #").append(last.id()).append(':');
        int limit = 16;
        for (Operation op : shown.subList(0, Math.min(limit, shown.size()))) {
            sb.append("\n  ").append(op).append("  [").append(time(op.invoke(), origin)).append(", ")
                    .append(op.complete() == Long.MAX_VALUE ? "?" : time(op.complete(), origin)).append(']')
                    .append(op == last ? "  <- no linearization once this completes" : "");
        }
        if (shown.size() > limit) {
            sb.append("\n  (+").append(shown.size() - limit).append(" more)");
        }
        if (!olderUnknown.isEmpty()) {
            sb.append("\n  and ").append(olderUnknown.size()).append(" UNKNOWN operations begun earlier: ")
                    .append(olderUnknown.stream().limit(limit).map(op -> "#" + op.id()).toList());
        }
        return sb.toString();
    }

    private static String time(long t, long origin) {
        return String.format("+%.3f ms", (t - origin) / 1e6);
    }

    /**
     * One key's search.
     *
     * <p>Implementation notes. Values are interned to ints (0 = absent), so a configuration is a
     * bit set of operation indexes and an int. Entries form a doubly linked list behind a sentinel;
     * lifting an operation unlinks its call and return, and backtracking relinks them in the
     * reverse order, which restores the list exactly (Lowe 2017, section 3). The depth-first search
     * keeps its own stack of frames, one a linearized operation, as a history may be thousands deep.
     */
    private static final class Search {

        private static final int READ = 0;
        private static final int WRITE = 1;
        private static final int CAS = 2;
        private static final int FAILED_CAS = 3;
        private static final int REJECTED = -1;

        private final int maxStates;
        private final int n;
        private final int[] kind;
        private final int[] expected;
        /** A WRITE's or CAS's new value, a READ's value read. */
        private final int[] value;
        private final boolean[] definite;
        /** An operation's bit in the set of linearized definite operations, or of UNKNOWN ones. */
        private final int[] bit;
        private final int definiteCount;
        private final Entry[] calls;
        private final Entry head = new Entry(-1, true);
        /** The sets of UNKNOWN operations seen with each (definite operations, value); none a subset of another. */
        private final Map<Configuration, List<long[]>> seen = new HashMap<>();
        private int states;

        Search(List<Operation> ops, int maxStates) {
            this.maxStates = maxStates;
            this.n = ops.size();
            kind = new int[n];
            expected = new int[n];
            value = new int[n];
            definite = new boolean[n];
            calls = new Entry[n];
            bit = new int[n];
            int definites = 0;
            int unknowns = 0;
            Map<String, Integer> ids = new HashMap<>();
            ids.put(null, 0);
            List<Entry> entries = new ArrayList<>(2 * n);
            long[] times = new long[2 * n];
            for (int i = 0; i < n; i++) {
                Operation op = ops.get(i);
                kind[i] = switch (op.kind()) {
                    case READ -> READ;
                    case WRITE -> WRITE;
                    case CAS -> op.outcome() == Outcome.FAILED ? FAILED_CAS : CAS;
                };
                expected[i] = ids.computeIfAbsent(op.expected(), v -> ids.size());
                value[i] = ids.computeIfAbsent(op.kind() == Kind.READ ? op.readValue() : op.value(), v -> ids.size());
                definite[i] = op.outcome() != Outcome.UNKNOWN;
                bit[i] = definite[i] ? definites++ : unknowns++;
                calls[i] = new Entry(i, true);
                times[entries.size()] = op.invoke();
                entries.add(calls[i]);
                if (definite[i]) {
                    Entry ret = new Entry(i, false);
                    calls[i].match = ret;
                    times[entries.size()] = op.complete();
                    entries.add(ret);
                }
            }
            definiteCount = definites;
            Integer[] order = new Integer[entries.size()];
            Arrays.setAll(order, i -> i);
            Arrays.sort(order, Comparator.<Integer>comparingLong(i -> times[i])
                    .thenComparing(i -> entries.get(i).call ? 0 : 1));
            Entry prev = head;
            for (Integer i : order) {
                Entry e = entries.get(i);
                prev.next = e;
                e.prev = prev;
                prev = e;
            }
        }

        int states() {
            return states;
        }

        Verdict run() {
            int remaining = definiteCount;
            long[] linearizedDefinite = new long[(definiteCount + 63) >>> 6];
            long[] linearizedUnknown = new long[(n - definiteCount + 63) >>> 6];
            List<Frame> stack = new ArrayList<>();
            stack.add(new Frame(-1, 0, candidates()));
            while (remaining > 0) {
                Frame top = stack.get(stack.size() - 1);
                if (top.next == top.candidates.length) { // backtrack
                    if (top.op < 0) {
                        return Verdict.NOT_LINEARIZABLE;
                    }
                    stack.remove(stack.size() - 1);
                    unlift(calls[top.op]);
                    flip(top.op, linearizedDefinite, linearizedUnknown);
                    remaining += definite[top.op] ? 1 : 0;
                    continue;
                }
                int op = top.candidates[top.next++];
                int state = step(op, top.state);
                if (state == REJECTED) {
                    continue;
                }
                flip(op, linearizedDefinite, linearizedUnknown);
                if (!firstVisit(linearizedDefinite, state, linearizedUnknown)) {
                    flip(op, linearizedDefinite, linearizedUnknown);
                    continue;
                }
                if (states > maxStates) {
                    return Verdict.UNDECIDED;
                }
                lift(calls[op]);
                remaining -= definite[op] ? 1 : 0;
                stack.add(new Frame(op, state, candidates()));
            }
            return Verdict.LINEARIZABLE;
        }

        private void flip(int op, long[] linearizedDefinite, long[] linearizedUnknown) {
            long[] set = definite[op] ? linearizedDefinite : linearizedUnknown;
            set[bit[op] >>> 6] ^= 1L << bit[op];
        }

        /** Records a configuration; false if it, or one it is dominated by, was seen before. */
        private boolean firstVisit(long[] linearizedDefinite, int state, long[] linearizedUnknown) {
            List<long[]> unknownSets = seen.computeIfAbsent(new Configuration(linearizedDefinite.clone(), state),
                    c -> new ArrayList<>(1));
            for (long[] seenSet : unknownSets) {
                if (subset(seenSet, linearizedUnknown)) {
                    return false;
                }
            }
            unknownSets.removeIf(seenSet -> subset(linearizedUnknown, seenSet));
            unknownSets.add(linearizedUnknown.clone());
            states++;
            return true;
        }

        private static boolean subset(long[] a, long[] b) {
            for (int i = 0; i < a.length; i++) {
                if ((a[i] & ~b[i]) != 0) {
                    return false;
                }
            }
            return true;
        }

        /** The register's value after {@code op} on {@code state}, or REJECTED if op cannot happen there. */
        private int step(int op, int state) {
            return switch (kind[op]) {
                case READ -> state == value[op] ? state : REJECTED;
                case WRITE -> value[op];
                case CAS -> state == expected[op] ? value[op] : REJECTED;
                case FAILED_CAS -> state != expected[op] ? state : REJECTED;
                default -> throw new AssertionError(kind[op]);
            };
        }

        /** The calls before the first return, definite operations first. */
        private int[] candidates() {
            int[] found = new int[8];
            int count = 0;
            int definiteCount = 0;
            for (Entry e = head.next; e != null && e.call; e = e.next) {
                if (count == found.length) {
                    found = Arrays.copyOf(found, 2 * count);
                }
                found[count++] = e.op;
                definiteCount += definite[e.op] ? 1 : 0;
            }
            int[] ordered = new int[count];
            int d = 0;
            int u = definiteCount;
            for (int i = 0; i < count; i++) {
                ordered[definite[found[i]] ? d++ : u++] = found[i];
            }
            return ordered;
        }

        private static void lift(Entry call) {
            call.prev.next = call.next;
            if (call.next != null) {
                call.next.prev = call.prev;
            }
            Entry ret = call.match;
            if (ret != null) {
                ret.prev.next = ret.next;
                if (ret.next != null) {
                    ret.next.prev = ret.prev;
                }
            }
        }

        private static void unlift(Entry call) {
            Entry ret = call.match;
            if (ret != null) {
                ret.prev.next = ret;
                if (ret.next != null) {
                    ret.next.prev = ret;
                }
            }
            call.prev.next = call;
            if (call.next != null) {
                call.next.prev = call;
            }
        }

        /** A call or return of operation {@code op}; a call's match is its return (null if UNKNOWN). */
        private static final class Entry {
            final int op;
            final boolean call;
            Entry match;
            Entry prev;
            Entry next;

            Entry(int op, boolean call) {
                this.op = op;
                this.call = call;
            }
        }

        /** A point of the search: {@code op} just linearized (-1 at the root), leaving {@code state}. */
        private static final class Frame {
            final int op;
            final int state;
            final int[] candidates;
            int next;

            Frame(int op, int state, int[] candidates) {
                this.op = op;
                this.state = state;
                this.candidates = candidates;
            }
        }

        /** Linearized definite operations and the register's value: the key of the cache. */
        private record Configuration(long[] linearized, int state) {

            @Override
            public boolean equals(Object o) {
                return o instanceof Configuration c && c.state == state && Arrays.equals(c.linearized, linearized);
            }

            @Override
            public int hashCode() {
                return 31 * Arrays.hashCode(linearized) + state;
            }
        }
    }
}
