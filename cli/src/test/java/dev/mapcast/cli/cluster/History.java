package dev.mapcast.cli.cluster;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Objects;
import java.util.function.LongSupplier;

/**
 * A record of the operations concurrent clients ran against a key/value store, for {@link
 * LinearizabilityChecker}. Each key is a register holding a string or nothing (null); every key
 * starts absent.
 *
 * <p>A client calls {@link #invoke} just before it sends a request and one of {@link #ok}, {@link
 * #failed} or {@link #unknown} as soon as it has the answer:
 *
 * <pre>{@code
 * long id = history.invoke(client, Kind.CAS, "k", "v1", "v2");
 * try {
 *     if (store.compareAndSet("k", "v1", "v2")) history.ok(id); else history.failed(id);
 * } catch (StatusRuntimeException e) {
 *     history.unknown(id);   // e.g. DEADLINE_EXCEEDED or UNAVAILABLE: it may have applied
 * }
 * }</pre>
 *
 * <p>Outcomes:
 * <ul>
 *   <li>{@link Outcome#OK}: applied; a read's value is the one it returned (null: absent).
 *   <li>{@link Outcome#FAILED}: definitely not applied. For a CAS this means its precondition
 *       failed: the store held a value other than {@code expected}, and the checker holds it to
 *       that. A READ or WRITE that failed carries no information and is ignored. A CAS refused
 *       before it reached the store (nothing observed) must not be recorded as FAILED: record it
 *       as {@link #unknown} (sound, just more work for the checker).
 *   <li>{@link Outcome#UNKNOWN}: a timeout or UNAVAILABLE; it may take effect at any time after its
 *       invocation, or never. An operation still pending when the history is checked counts as
 *       UNKNOWN.
 * </ul>
 *
 * <p>Thread-safe. Times come from {@link System#nanoTime()}: operation A precedes B only if A's
 * completion time is strictly less than B's invocation time; equal times count as concurrent.
 */
final class History {

    /** What an operation does to its key. */
    enum Kind {
        /** Returns the current value. */
        READ,
        /** Sets the value. */
        WRITE,
        /** Sets the value to {@code value} iff it equals {@code expected} (null: absent). */
        CAS
    }

    /** How an operation ended, as far as its client knows. */
    enum Outcome {
        OK,
        FAILED,
        UNKNOWN
    }

    /**
     * One operation, as recorded. {@code complete} is {@link Long#MAX_VALUE} for an UNKNOWN (or
     * still pending) operation: it may take effect at any time after {@code invoke}, or never.
     *
     * @param id the id {@link #invoke} returned, also the operation's index in the history
     * @param expected a CAS's expected value (null: absent); null for the other kinds
     * @param value the value a WRITE or CAS sets; null for a READ
     * @param readValue the value an OK READ returned (null: absent); null otherwise
     */
    record Operation(long id, int client, Kind kind, String key, String expected, String value,
            long invoke, long complete, Outcome outcome, String readValue) {

        /** This operation as if its READ had returned {@code newReadValue}: for tests of the checker. */
        Operation withReadValue(String newReadValue) {
            return new Operation(id, client, kind, key, expected, value, invoke, complete, outcome, newReadValue);
        }

        /** This operation as it stood before it completed: UNKNOWN, completion at infinity. */
        Operation asPending() {
            return new Operation(id, client, kind, key, expected, value, invoke, Long.MAX_VALUE, Outcome.UNKNOWN, null);
        }

        @Override
        public String toString() {
            String call = switch (kind) {
                case READ -> "READ(" + key + ")";
                case WRITE -> "WRITE(" + key + ", " + quote(value) + ")";
                case CAS -> "CAS(" + key + ", " + quote(expected) + " -> " + quote(value) + ")";
            };
            String result = outcome == Outcome.OK && kind == Kind.READ ? "OK " + quote(readValue) : outcome.name();
            return "#" + id + " client " + client + " " + call + " " + result;
        }

        private static String quote(String v) {
            return v == null ? "absent" : '"' + v + '"';
        }
    }

    private final LongSupplier clock;
    private final List<Operation> operations = new ArrayList<>();
    /** Ids that have their outcome (an UNKNOWN one keeps completion time infinity): guarded by operations. */
    private final BitSet settled = new BitSet();

    /** A history timed by {@link System#nanoTime()}. */
    History() {
        this(System::nanoTime);
    }

    /** A history timed by {@code clock} (monotonic, in nanoseconds): lets tests write exact timelines. */
    History(LongSupplier clock) {
        this.clock = Objects.requireNonNull(clock, "clock");
    }

    /**
     * Records the start of an operation and returns its id.
     *
     * @param expected a CAS's expected value (null: absent); ignored for READ and WRITE
     * @param value the value a WRITE or CAS sets (a WRITE of null is a delete); ignored for READ
     */
    long invoke(int client, Kind kind, String key, String expected, String value) {
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(key, "key");
        String exp = kind == Kind.CAS ? expected : null;
        String val = kind == Kind.READ ? null : value;
        synchronized (operations) {
            long id = operations.size();
            operations.add(new Operation(id, client, kind, key, exp, val, clock.getAsLong(), Long.MAX_VALUE,
                    Outcome.UNKNOWN, null));
            return id;
        }
    }

    /** Records that a WRITE or CAS succeeded. */
    void ok(long id) {
        complete(id, Outcome.OK, null, false);
    }

    /** Records that a READ returned {@code readValue} (null: absent). */
    void ok(long id, String readValue) {
        complete(id, Outcome.OK, readValue, true);
    }

    /** Records that an operation was definitely not applied; for a CAS, that its precondition failed. */
    void failed(long id) {
        complete(id, Outcome.FAILED, null, false);
    }

    /** Records that an operation may or may not have applied (timeout, UNAVAILABLE). */
    void unknown(long id) {
        synchronized (operations) {
            pending(id); // the recorded operation stays as it is: UNKNOWN, completion at infinity
            settled.set((int) id);
        }
    }

    /** A snapshot of the operations so far, indexed by id. */
    List<Operation> operations() {
        synchronized (operations) {
            return List.copyOf(operations);
        }
    }

    private void complete(long id, Outcome outcome, String readValue, boolean isRead) {
        long now = clock.getAsLong();
        synchronized (operations) {
            Operation op = pending(id);
            if ((op.kind() == Kind.READ && outcome == Outcome.OK) != isRead) {
                throw new IllegalArgumentException("operation " + op + " (expected: ok(id, value) for an OK READ"
                        + " and ok(id) for a WRITE or CAS)");
            }
            operations.set((int) id, new Operation(id, op.client(), op.kind(), op.key(), op.expected(), op.value(),
                    op.invoke(), now, outcome, readValue));
            settled.set((int) id);
        }
    }

    private Operation pending(long id) {
        if (id < 0 || id >= operations.size()) {
            throw new IllegalArgumentException("id: " + id + " (expected: 0 <= id < " + operations.size() + ")");
        }
        Operation op = operations.get((int) id);
        if (settled.get((int) id)) {
            throw new IllegalStateException("operation " + op + " already has its outcome");
        }
        return op;
    }
}
