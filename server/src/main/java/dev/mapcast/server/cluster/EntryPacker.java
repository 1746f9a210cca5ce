package dev.mapcast.server.cluster;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.function.Function;
import java.util.function.ToIntFunction;

/**
 * Packs the changes proposed on a member into Raft log entries, because Ratis's cost is per entry
 * (about 6 ms of CPU over three members on the 2-core machine of BENCHMARKS.md, against well under
 * a millisecond per change inside an entry).
 *
 * <p>At most {@code maxInFlight} entries are outstanding; changes that arrive meanwhile queue and go
 * together in the next one (up to {@code maxItems} or {@code maxBytes}). When an entry of k changes
 * is answered with q queued, the free slot is held, for up to the linger time, until k + q are
 * queued: the k writers just answered come back spread over a millisecond or more, and without the
 * wait they and the q went as two entries, one in flight while the other filled, for good (3.7
 * changes an entry with 16 writers, BENCHMARKS.md). A lone writer never waits: it is the one
 * change expected.
 *
 * @param <T> a queued change
 */
final class EntryPacker<T> {

    private final int maxInFlight;
    private final int maxItems;
    private final int maxBytes;
    private final ToIntFunction<T> bytes;
    /** Runs a task after the linger time. */
    private final Executor linger;
    /** Sends one entry; its future completes once the entry is answered (or refused). */
    private final Function<List<T>, CompletableFuture<?>> send;

    private final ArrayDeque<T> queue = new ArrayDeque<>();
    private int queuedBytes;
    private int inFlight;
    /** While a slot is held: the changes it waits for. */
    private int expected;
    /** Whether a free slot is held for a fuller entry, and which wait holds it. */
    private boolean lingering;
    private long lingerToken;

    EntryPacker(int maxInFlight, int maxItems, int maxBytes, ToIntFunction<T> bytes, Executor linger,
            Function<List<T>, CompletableFuture<?>> send) {
        this.maxInFlight = maxInFlight;
        this.maxItems = maxItems;
        this.maxBytes = maxBytes;
        this.bytes = bytes;
        this.linger = linger;
        this.send = send;
    }

    /** Queues {@code item}; sends an entry now if a slot is free, or if the held one's wait is over. */
    void add(T item) {
        synchronized (queue) {
            queue.add(item);
            queuedBytes += bytes.applyAsInt(item);
            if (lingering) {
                if (queue.size() < expected && queuedBytes < maxBytes) {
                    return;  // the held slot waits for a fuller entry
                }
                lingering = false;
            } else if (inFlight >= maxInFlight) {
                return;  // goes with the next entry, when one in flight is answered
            } else {
                inFlight++;
            }
        }
        sendNext(0);
    }

    /**
     * Sends what is queued as one entry, with one slot taken; frees the slot if nothing is queued.
     * Right after an entry of {@code answered} changes was answered, it first waits for those
     * writers to come back, to go with the ones queued meanwhile.
     */
    private void sendNext(int answered) {
        List<T> batch = new ArrayList<>();
        synchronized (queue) {
            int target = Math.min(maxItems, answered + queue.size());
            if (target > 1 && queue.size() < target && queuedBytes < maxBytes) {
                expected = target;
                lingering = true;
                long token = ++lingerToken;
                linger.execute(() -> lingerEnded(token));
                return;
            }
            lingering = false;
            int size = 0;
            while (!queue.isEmpty() && batch.size() < maxItems
                    && (batch.isEmpty() || size + bytes.applyAsInt(queue.peek()) <= maxBytes)) {
                T item = queue.poll();
                int b = bytes.applyAsInt(item);
                size += b;
                queuedBytes -= b;
                batch.add(item);
            }
            if (batch.isEmpty()) {
                inFlight--;
                return;
            }
        }
        CompletableFuture<?> reply;
        try {
            reply = send.apply(batch);
        } catch (RuntimeException e) {
            reply = CompletableFuture.failedFuture(e);  // the slot is freed all the same
        }
        int size = batch.size();
        reply.whenComplete((answer, error) -> sendNext(size));
    }

    /** The end of a wait for a fuller entry: sends what came, unless it went already. */
    private void lingerEnded(long token) {
        synchronized (queue) {
            if (!lingering || token != lingerToken) {
                return;
            }
            lingering = false;
        }
        sendNext(0);
    }
}
