package dev.mapcast.server.fanout;

import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.codec.EventBatchEncoder;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.server.map.HostedMap;
import dev.mapcast.server.map.Limits;
import dev.mapcast.server.map.MapRegistry;
import dev.mapcast.server.map.SnapshotSender;
import dev.mapcast.server.map.Subscriber;
import dev.mapcast.server.map.WatchEvents;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ServerCallStreamObserver;
import io.netty.channel.EventLoop;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One Watch stream: what it still has to send, sent as fast as the client takes it.
 *
 * <p>Implementation notes.
 * <ul>
 * <li>Threads: the stream sends from its connection's event loop ({@code loop}), where gRPC writes
 * anyway, so a delta costs no thread wake-up beyond the loop's own. Work that takes the map's lock
 * (registering, moving to a fresh snapshot) runs on the server's worker pool, never on the loop.
 * The drain task runs at most once at a time per watcher (the {@code scheduled} flag), on either.
 * <li>Linger: after a send, deltas wait up to the linger on the loop's timer and go together, so
 * under a high write rate each connection is written (a system call each side) at most once per
 * linger rather than once per delta (see {@link #sendFromCaller(long)}).
 * <li>Order: an optional preface (the Compaction event of a resume that needs a snapshot), then the
 * snapshot's chunks, then the queue of events, which holds exactly the map's deltas after the
 * snapshot's revision (they are queued under the map's lock, as the snapshot is pinned). A client
 * that accepts batches gets the events waiting in its queue as one message (up to 512 events or
 * 1 MiB), each event still the bytes encoded once for every watcher.
 * <li>Memory: the queue holds shared, already encoded deltas and is bounded in bytes. A delta that
 * would pass the bound is not queued; the watcher is marked overflowed and the drain task moves it
 * to a fresh snapshot (dropping the queue), or ends it with RESOURCE_EXHAUSTED if it has taken
 * nothing for the slow-watcher timeout. A snapshot costs no queue memory: chunks are encoded from
 * the pinned view one at a time, when the stream can take them.
 * <li>Life of the map: the watcher is attached to a map by {@link MapRegistry#attach}, or, if the
 * map does not exist and the client set {@code wait_for_map}, parked in the registry until a write
 * creates it (then it starts from an empty snapshot at revision 0 and every delta). A deletion
 * ({@link #mapDeleted}) queues a MapDeleted event after the deltas still queued, so the client
 * misses none of them; once it is sent the watcher attaches again (to the map created anew, or to
 * the waiting list). Any other watcher of a deleted map ends with NOT_FOUND. Attaching and
 * detaching run in the drain task, on the pool.
 * </ul>
 */
public final class Watcher implements Subscriber {

    private static final Logger log = LoggerFactory.getLogger(Watcher.class);
    private static final int MAX_BATCH_EVENTS = 512;
    private static final long MAX_BATCH_BYTES = 1 << 20;

    private final MapRegistry registry;
    private final String mapName;
    /** The map it is attached to; null before the first drain and while it waits for the map. */
    private volatile HostedMap map;
    /** Whether it waits for an absent (or deleted) map rather than ending (WatchRequest.wait_for_map). */
    private final boolean waitForMap;
    private final ServerCallStreamObserver<Encoded> call;
    /** The connection's event loop: sends and linger timers run here. */
    private final EventLoop loop;
    /** The server's worker pool: registration and restarts, which take the map's lock. */
    private final Executor pool;
    private final long lingerNanos;
    // What the next attach starts from: written by the drain task, and under the registry's
    // creation lock when the map is deleted or created.
    /** The revision the client has (0: it needs a snapshot). */
    private volatile long afterRevision;
    /** The incarnation the client's state belongs to (0: unknown). */
    private volatile long clientIncarnation;
    /** Start from the map's creation: an empty snapshot at revision 0, then every delta. */
    private volatile boolean fromCreation;
    /** Whether the client was told the map does not exist since it was last attached. */
    private volatile boolean toldAbsent;

    private final boolean progressNotify;
    /** Whether the client accepts {@code EventBatch}es (WatchRequest.batch_events). */
    private final boolean batchEvents;
    private final long maxQueuedBytes;
    private final long slowTimeoutNanos;

    private final ConcurrentLinkedQueue<Encoded> queue = new ConcurrentLinkedQueue<>();
    private final AtomicLong queuedBytes = new AtomicLong();
    private final AtomicBoolean scheduled = new AtomicBoolean();
    private final AtomicBoolean lingering = new AtomicBoolean();
    private volatile boolean overflowed;
    /** Set by a restore: the next drain sends a Compaction event, then a snapshot of the restored map. */
    private volatile boolean restartWanted;
    private volatile boolean cancelled;
    private volatile Status endWith;
    private volatile boolean progressWanted;
    /** When the drain last sent something: the linger and the slow-watcher timeout count from it. */
    private volatile long lastSentNanos = System.nanoTime();

    /** Set (under the map's lock) when the map is deleted: once its MapDeleted is sent, attach again. */
    private volatile boolean detaching;
    /** The MapDeleted of a watcher that had overflowed when its map was deleted: sent alone, first. */
    private volatile Encoded deletedNotice;
    /** A MapDeleted event to send before anything else; written by the drain task. */
    private volatile Encoded notice;

    // Written by the drain task (and start/restart under the map lock); read by tick.
    private volatile Encoded preface;
    private volatile SnapshotSender snapshot;
    /** Whether the drain attached this watcher (to its map, or to the registry's waiting list). */
    private volatile boolean registered;
    private volatile boolean ended;

    /**
     * Sets up the stream; called on the call's own thread (gRPC allows handlers to be set only
     * there). The first drain, on the pool, attaches it to the map (see {@link MapRegistry#attach}).
     */
    public Watcher(MapRegistry registry, ServerCallStreamObserver<Encoded> call, EventLoop loop, Executor pool,
            WatchRequest request, Limits limits) {
        this.registry = registry;
        this.mapName = request.getMap();
        this.waitForMap = request.getWaitForMap();
        this.clientIncarnation = request.getIncarnation();
        this.call = call;
        this.loop = loop;
        this.pool = pool;
        this.lingerNanos = limits.watchLinger().toNanos();
        this.afterRevision = request.getAfterRevision();
        this.progressNotify = request.getProgressNotify();
        this.batchEvents = request.getBatchEvents();
        this.maxQueuedBytes = limits.watcherQueueBytes();
        this.slowTimeoutNanos = limits.slowWatcherTimeout().toNanos();
        call.setOnCancelHandler(() -> {
            cancelled = true;
            schedule();
        });
        call.setOnReadyHandler(this::schedule);
    }

    /** Starts the stream: its first drain registers it with the map. */
    public void start() {
        schedule();
    }

    /**
     * Registers with {@code m} (from the drain, through {@link MapRegistry#attach}); false if
     * {@code m} was deleted meanwhile.
     */
    @Override
    public String mapName() {
        return mapName;
    }

    @Override
    public boolean waitForMap() {
        return waitForMap;
    }

    @Override
    public boolean registerWith(HostedMap m) {
        map = m;
        try {
            m.register(this, afterRevision, clientIncarnation, fromCreation);
        } catch (io.grpc.StatusRuntimeException e) {
            map = null;
            if (m.isDeleted()) {
                return false;
            }
            throw e;
        }
        toldAbsent = false;
        return true;
    }

    /** Parked by the registry until the map is created: the client is told it does not exist (once). */
    @Override
    public void waitForCreation() {
        fromCreation = true;
        if (!toldAbsent) {
            toldAbsent = true;
            notice = WatchEvents.mapDeleted(0, 0);
        }
    }

    /**
     * The map it waited for was created (under the registry's creation lock): registered with it at
     * once, the creation queued behind what it still sends; else (it ends, or it waits to send a
     * lone MapDeleted after falling behind, or the map came whole from a cluster snapshot) its
     * drain attaches it.
     */
    @Override
    public void mapCreated(HostedMap created) {
        if (!cancelled && endWith == null && !detaching) {
            map = created;
            if (created.registerAtCreation(this)) {
                toldAbsent = false;
                schedule();
                return;
            }
            map = null;
        }
        registered = false;
        schedule();
    }

    /**
     * Its map was deleted (under the registry's creation lock and the map's lock): a waiting client
     * is sent {@code notice} and waits for the map again; any other stream ends with {@code gone}.
     * A watcher that kept up is parked among the map's waiters at once (true), its notice queued
     * after every delta: a map created before the notice is sent follows it in order. One that had
     * fallen behind sends the notice alone, then attaches again from its drain.
     */
    @Override
    public boolean mapDeleted(Encoded notice, Status gone) {
        if (!waitForMap) {
            end(gone);
            return false;
        }
        restartWanted = false;  // a restore of the map deleted: nothing left to restart from
        if (overflowed) {
            deletedNotice = notice;  // behind anyway: what is queued goes, the notice alone is sent
            detaching = true;
            schedule();
            return false;
        }
        queue.add(notice);  // after every delta queued: nothing before the deletion is lost
        queuedBytes.addAndGet(notice.size());
        map = null;
        afterRevision = 0;
        clientIncarnation = 0;
        fromCreation = true;
        toldAbsent = true;
        schedule();
        return true;
    }

    /** Sets what to send first; called once, under the map's lock, by {@link HostedMap#register}. */
    @Override
    public void begin(Encoded preface, SnapshotSender snapshot, Iterable<Encoded> history) {
        this.preface = preface;
        this.snapshot = snapshot;
        if (history != null) {
            for (Encoded delta : history) {
                enqueue(delta);
            }
        }
    }

    /**
     * Queues an event for this watcher; called under the map's lock, in revision order. The caller
     * then sends it with {@link #sendFromCaller(long)} once the lock is released.
     */
    @Override
    public void enqueue(Encoded event) {
        if (overflowed || cancelled || endWith != null) {
            return;
        }
        int size = event.size();
        if (queuedBytes.addAndGet(size) > maxQueuedBytes) {
            queuedBytes.addAndGet(-size);
            overflowed = true;
        } else {
            queue.add(event);
        }
    }

    /**
     * Sends what is queued, from the loop; called by the writer once it released the map's lock
     * ({@code now}: {@link System#nanoTime()} then). If this watcher was sent something less than
     * the linger ago, the delta waits for the linger timer instead, and goes with the others that
     * arrive meanwhile.
     */
    @Override
    public void sendFromCaller(long now) {
        if (overflowed) {
            schedule();
            return;
        }
        long wait = lingerNanos - (now - lastSentNanos);
        if (wait <= 0) {
            schedule();
        } else if (lingering.compareAndSet(false, true)) {
            try {
                loop.schedule(() -> {
                    lingering.set(false);
                    schedule();
                }, wait, TimeUnit.NANOSECONDS);
            } catch (RejectedExecutionException closing) {
                lingering.set(false);  // the server is closing: its shutdown ends this stream
            }
        }
    }

    /** Moves this watcher to a Compaction event and a fresh snapshot (the map was restored). */
    @Override
    public void resnapshot() {
        restartWanted = true;
        schedule();
    }

    /**
     * Replaces what is pending with {@code preface} (may be null) and a snapshot; called under the
     * map's lock, by the drain task.
     */
    @Override
    public void restart(Encoded preface, SnapshotSender fresh) {
        closeSnapshot();
        this.preface = preface;
        snapshot = fresh;
        queue.clear();
        queuedBytes.set(0);
        overflowed = false;
    }

    /** Whether the stream has ended. */
    public boolean hasEnded() {
        return ended;
    }

    /** Ends the stream with this status (server shutdown, slow watcher, revoked right). */
    @Override
    public void end(Status status) {
        endWith = status;
        schedule();
    }

    /** Periodic check: a progress event when idle, and the end of a watcher stalled too long. */
    @Override
    public void tick(long now, long progressIntervalNanos) {
        boolean pending = hasPending();
        if (pending && !call.isReady() && now - lastSentNanos > slowTimeoutNanos) {
            end(Status.RESOURCE_EXHAUSTED.withDescription("watcher of map \"" + mapName
                    + "\" took nothing for " + slowTimeoutNanos / 1_000_000_000L + " s while changes were waiting"));
        } else if (progressNotify && !pending && now - lastSentNanos >= progressIntervalNanos) {
            progressWanted = true;
            schedule();
        }
    }

    @Override
    public long queuedBytes() {
        return queuedBytes.get();
    }

    private boolean hasPending() {
        return notice != null || preface != null || snapshot != null || !queue.isEmpty() || overflowed;
    }

    private void schedule() {
        if (scheduled.compareAndSet(false, true)) {
            runDrainOn(needsPool() ? pool : loop);
        }
    }

    /** Runs the drain on {@code executor}; the caller holds {@code scheduled}. */
    private void runDrainOn(Executor executor) {
        try {
            executor.execute(this::drain);
        } catch (RejectedExecutionException closing) {
            scheduled.set(false);  // the server is closing: its shutdown ends this stream
        }
    }

    /** Whether the drain has work that takes the map's lock, which the loop must not wait for. */
    private boolean needsPool() {
        return !registered || overflowed || restartWanted || detaching;
    }

    private void drain() {
        try {
            do {
                if (ended) {
                    return;
                }
                if (cancelled) {
                    finish(null);
                    return;
                }
                if (endWith != null) {
                    finish(endWith);
                    return;
                }
                if (needsPool() && loop.inEventLoop()) {
                    runDrainOn(pool);  // still holding scheduled: the pool's drain goes on from here
                    return;
                }
                if (detaching) {
                    detach();
                }
                if (!registered) {
                    registered = true;
                    registry.attach(this);
                }
                HostedMap map = this.map;
                if (overflowed && map != null && !detaching) {
                    if (System.nanoTime() - lastSentNanos > slowTimeoutNanos) {
                        finish(Status.RESOURCE_EXHAUSTED.withDescription("watcher of map \"" + mapName
                                + "\" fell behind by more than " + maxQueuedBytes + " bytes and took nothing for "
                                + slowTimeoutNanos / 1_000_000_000L + " s"));
                        return;
                    }
                    map.restartFromSnapshot(this, false);
                }
                if (restartWanted && map != null && !detaching) {
                    restartWanted = false;
                    map.restartFromSnapshot(this, true);
                }
                sendWhileReady();
                scheduled.set(false);
            } while (hasWork() && scheduled.compareAndSet(false, true));
        } catch (StatusRuntimeException e) {
            scheduled.set(false);
            finish(e.getStatus());  // the map closed under it
        } catch (RuntimeException | Error e) {
            log.error("watch stream of map \"{}\" failed", mapName, e);
            scheduled.set(false);
            finish(Status.INTERNAL.withDescription("watch stream failed: " + e));
        }
    }

    private boolean hasWork() {
        return cancelled || endWith != null || (overflowed && !detaching) || (restartWanted && !detaching)
                || !registered || (detaching && (deletedNotice != null || drained()))
                || (call.isReady() && (notice != null || preface != null || snapshot != null || !queue.isEmpty()
                        || progressWanted));
    }

    private void sendWhileReady() {
        while (call.isReady() && !overflowed && !cancelled && endWith == null) {
            Encoded next = nextMessage();
            if (next == null) {
                HostedMap m = map;
                if (progressWanted && m != null && !detaching) {
                    progressWanted = false;
                    HostedMap.Head head = m.head();  // read before checking the queue: see HostedMap.write
                    if (queue.isEmpty()) {
                        call.onNext(WatchEvents.progress(head.revision(), head.digest(), m.incarnation));
                        lastSentNanos = System.nanoTime();
                        continue;
                    }
                }
                return;
            }
            call.onNext(next);
            lastSentNanos = System.nanoTime();
        }
    }

    private Encoded nextMessage() {
        if (notice != null) {
            Encoded n = notice;
            notice = null;
            return n;
        }
        if (preface != null) {
            Encoded p = preface;
            preface = null;
            return p;
        }
        if (snapshot != null) {
            if (snapshot.hasNext()) {
                return snapshot.next();
            }
            closeSnapshot();
        }
        Encoded event = queue.poll();
        if (event == null) {
            return null;
        }
        queuedBytes.addAndGet(-event.size());
        if (!batchEvents || queue.isEmpty()) {
            return event;
        }
        // Several events waiting (a linger, or a client slower than the writers): one message.
        List<Encoded> batch = new ArrayList<>();
        batch.add(event);
        long bytes = event.size();
        for (Encoded more; batch.size() < MAX_BATCH_EVENTS && bytes < MAX_BATCH_BYTES && (more = queue.poll()) != null; ) {
            int size = more.size();
            queuedBytes.addAndGet(-size);
            bytes += size;
            batch.add(more);
        }
        return EventBatchEncoder.encode(batch);
    }

    /** Whether everything queued before the deletion, its MapDeleted last, has been sent. */
    private boolean drained() {
        return preface == null && snapshot == null && queue.isEmpty();
    }

    /**
     * After a deletion: once the MapDeleted event is sent (or, for a watcher that had overflowed,
     * put first in place of what it had queued), detaches from the deleted map, so that the drain
     * attaches again, to the map created anew or to the waiting list.
     */
    private void detach() {
        Encoded alone = deletedNotice;
        if (alone != null) {
            deletedNotice = null;
            closeSnapshot();
            preface = null;
            queue.clear();
            queuedBytes.set(0);
            notice = alone;
        } else if (!drained()) {
            return;  // the deltas before the deletion, and its MapDeleted, are still being sent
        }
        detaching = false;
        map = null;
        overflowed = false;
        restartWanted = false;
        afterRevision = 0;
        clientIncarnation = 0;
        fromCreation = true;
        toldAbsent = true;
        registered = false;
    }

    private void finish(Status status) {
        ended = true;
        HostedMap m = map;
        if (m != null) {
            m.removeWatcher(this);
        }
        registry.stopWaiting(this);
        HostedMap created = map;  // registered by a creation that ran before stopWaiting took the lock
        if (created != null && created != m) {
            created.removeWatcher(this);
        }
        closeSnapshot();
        queue.clear();
        queuedBytes.set(0);
        if (status != null && !cancelled) {
            try {
                call.onError(status.asRuntimeException());
            } catch (RuntimeException e) {
                log.debug("ending a watch stream of map \"{}\"", mapName, e);
            }
        }
    }

    private void closeSnapshot() {
        if (snapshot != null) {
            snapshot.close();
            snapshot = null;
        }
    }
}
