package dev.mapcast.client;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import dev.mapcast.client.ReplicaListener.ResyncReason;
import dev.mapcast.codec.Codec;
import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.codec.EncodedMessages.Received;
import dev.mapcast.codec.EncodedMethods;
import dev.mapcast.codec.MalformedMessageException;
import dev.mapcast.codec.MessageDecoder;
import dev.mapcast.codec.MessageDecoder.ChunkFields;
import dev.mapcast.codec.MessageDecoder.WatchEvent;
import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.codec.WatchStreamReader;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.core.PinnedView;
import dev.mapcast.proto.v1.Compaction;
import dev.mapcast.proto.v1.Delta;
import dev.mapcast.proto.v1.MapDeleted;
import dev.mapcast.proto.v1.Progress;
import dev.mapcast.proto.v1.WatchRequest;
import com.google.common.util.concurrent.MoreExecutors;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.Metadata;
import io.grpc.Status;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.BiConsumer;
import java.util.function.LongConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A live local copy of one server map, held off-heap and kept in sync in the background.
 *
 * <p>It starts with a snapshot and then applies every delta, checking after each that it follows
 * the replica's revision (else: a gap) and that the map's digest equals the server's (else: a
 * mismatch); either makes it resynchronise from a fresh snapshot. When the stream breaks it
 * reconnects with backoff and resumes after its revision; if the server's history no longer
 * reaches back that far, the server sends a snapshot instead. With several members (see
 * {@link MapcastClient}), a stream that ends UNAVAILABLE reconnects to the next member: members
 * share revisions and incarnations, so the replica resumes there with no snapshot and no gap. Until the first snapshot is complete
 * the replica is empty at revision 0 ({@link #isSynced()} is false); a new snapshot replaces the
 * state only once complete and verified, so readers never see half of one.
 *
 * <p>Reads are local and consistent: {@link #get}, {@link #size}, {@link #forEach} and
 * {@link #revision} each see one revision. Iteration follows the server's order; for an
 * INSERTION-order map that is the server's exact order, so {@link #writeSnapshot} writes the bytes
 * the server would.
 *
 * <p>Life of the map: the replica follows the map by name through its whole life. If the map does
 * not exist (yet, or any more) the server holds the stream open ({@code wait_for_map}) and the
 * replica is empty in state {@link State#ABSENT}; once a write creates the map the replica gets
 * every change from revision 1. Every map has an incarnation (a random id drawn at its creation):
 * a replica that meets another incarnation than its own (the map deleted and created again, a
 * server restarted without its data) resynchronises with {@link ResyncReason#RECREATED}.
 *
 * <p>Connection state: {@link #state()} says whether the replica follows the server now
 * ({@link State#LIVE}), has lost it ({@link State#STALE}, reads answer from the last state known),
 * or has not reached it yet ({@link State#CONNECTING}); {@link #lastContact()} is when the server
 * was last heard from (an idle map gets a Progress event every few seconds). Losing the server logs
 * one WARN line, getting it back one INFO line.
 *
 * <p>Implementation notes. Stream events are handled one at a time under the {@code stream}
 * monitor; every (re)connection gets a new generation number and events of older calls are
 * dropped. Applying a delta or swapping in a snapshot holds the write lock of {@code lock}; reads
 * hold its read lock.
 */
public final class Replica<K, V> implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(Replica.class);
    private static final long MAX_PRESIZE_ENTRIES = 1 << 24;

    private final MapcastClient client;
    private final String map;
    private final Codec<K> keys;
    private final Codec<V> values;
    private final List<ReplicaListener<K, V>> listeners = new CopyOnWriteArrayList<>();
    private final List<LongConsumer> revisionListeners = new CopyOnWriteArrayList<>();
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final Object progress = new Object();
    private final Object stream = new Object();
    /** Reads the stream's messages in place; used under {@code stream}, like everything the stream changes. */
    private final WatchStreamReader reader = new WatchStreamReader();

    // Guarded by lock.
    private OffHeapMap state;
    private volatile long revision;
    private volatile long compactRevision;
    private volatile long serverRevision;
    /** The incarnation of the map the state belongs to; 0: none (no state, or a file without one). */
    private volatile long incarnation;
    private volatile boolean closed;
    private volatile MapcastException failure;
    /** The newest revision whose listeners have run; guarded by progress. */
    private long announcedRevision = -1;
    /** Runs listeners in order, one at a time, off the network thread. */
    private final Executor listenerExecutor;

    // Guarded by stream.
    private ClientCall<WatchRequest, Encoded> call;
    /** The client's member the stream goes to. */
    private int member;
    private long generation;
    private OffHeapMap staging;
    private long stagingRevision;
    private ResyncReason pendingReason;
    private boolean needSnapshot = true;
    private int failures;

    // Connection state; written under stream.
    private volatile State connection = State.CONNECTING;
    private volatile Instant stateSince = Instant.now();
    private volatile Instant lastContact;
    /** Whether the server said the map does not exist (MapDeleted) and no snapshot followed yet. */
    private boolean absent;
    /** Whether losing the server was logged (WARN) in this episode; the INFO line ends it. */
    private boolean lossLogged;
    private final List<StateListener> stateListeners = new CopyOnWriteArrayList<>();

    private final AtomicLong snapshots = new AtomicLong();
    private final AtomicLong deltas = new AtomicLong();
    private final AtomicLong reconnects = new AtomicLong();
    private final AtomicLong gaps = new AtomicLong();
    private final AtomicLong digestMismatches = new AtomicLong();

    Replica(MapcastClient client, String map, Codec<K> keys, Codec<V> values) {
        this.client = client;
        this.map = map;
        this.keys = keys;
        this.values = values;
        this.listenerExecutor = MoreExecutors.newSequentialExecutor(client.listenerPool());
    }

    /** The map's name. */
    public String name() {
        return map;
    }

    /** The value of {@code key}, or null when absent. */
    public V get(K key) {
        byte[] k = keys.encode(key);
        lock.readLock().lock();
        try {
            byte[] v = state == null ? null : state.get(k);
            return v == null ? null : values.decode(v);
        } finally {
            lock.readLock().unlock();
        }
    }

    public boolean containsKey(K key) {
        byte[] k = keys.encode(key);
        lock.readLock().lock();
        try {
            return state != null && state.containsKey(k);
        } finally {
            lock.readLock().unlock();
        }
    }

    public long size() {
        lock.readLock().lock();
        try {
            return state == null ? 0 : state.size();
        } finally {
            lock.readLock().unlock();
        }
    }

    /** The revision the local state is at (0 before the first snapshot). */
    public long revision() {
        return revision;
    }

    /** The server's compact revision, as last heard. */
    public long compactRevision() {
        return compactRevision;
    }

    /** The newest revision the server has reported (through deltas, snapshots or progress events). */
    public long serverRevision() {
        return Math.max(serverRevision, revision);
    }

    /**
     * Whether the replica follows the server now: it holds the map's state and its stream to the
     * server is up ({@link State#LIVE}). False before the first snapshot, while the map does not
     * exist, and while the stream is down (the last state known is still readable).
     */
    public boolean isSynced() {
        return connection == State.LIVE;
    }

    /** Where a replica stands with its server; see {@link Replica#state()}. */
    public enum State {
        /** Not yet heard from the server (it may be down): reads see a warm start's file, or nothing. */
        CONNECTING,
        /** Following the server: the map's state is here and every change arrives as it happens. */
        LIVE,
        /** The server says the map does not exist (yet, or any more): empty, waiting for its creation. */
        ABSENT,
        /** The stream to the server is down: reads see the last state known; it reconnects by itself. */
        STALE,
        /** {@link Replica#close()} was called. */
        CLOSED
    }

    /** Told when a replica's {@link State} changes; see {@link Replica#addStateListener}. */
    @FunctionalInterface
    public interface StateListener {
        /** The replica entered {@code state} at {@code since}. */
        void onStateChange(State state, Instant since);
    }

    /** Where the replica stands with its server now. */
    public State state() {
        return connection;
    }

    /** When the replica entered its current {@link #state()} (say, how long it has been STALE). */
    public Instant stateSince() {
        return stateSince;
    }

    /** When a message from the server last arrived; null if none has yet. */
    public Instant lastContact() {
        return lastContact;
    }

    /** The incarnation of the map the local state belongs to (0 while there is none). */
    public long incarnation() {
        return incarnation;
    }

    /**
     * Tells {@code listener} every state change, in order with the replica's other listeners and on
     * the same threads (never a network thread).
     */
    public void addStateListener(StateListener listener) {
        stateListeners.add(Objects.requireNonNull(listener, "listener"));
    }

    public void removeStateListener(StateListener listener) {
        stateListeners.remove(listener);
    }

    /** The content digest of the local state (as Delta.digest), equal to the server's at the same revision. */
    public long digest() {
        lock.readLock().lock();
        try {
            return state == null ? 0 : state.digest();
        } finally {
            lock.readLock().unlock();
        }
    }

    /** The map's iteration order, as the server keeps it (HASH until the first snapshot). */
    public IterationOrder order() {
        lock.readLock().lock();
        try {
            return state == null ? IterationOrder.HASH : state.order();
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Calls {@code action} for every entry, in the server's order, at one revision. */
    public void forEach(BiConsumer<? super K, ? super V> action) {
        lock.readLock().lock();
        try {
            if (state != null) {
                for (Map.Entry<byte[], byte[]> e : state) {
                    action.accept(keys.decode(e.getKey()), values.decode(e.getValue()));
                }
            }
        } finally {
            lock.readLock().unlock();
        }
    }

    /** A copy of the content, in the server's order. */
    public Map<K, V> toMap() {
        Map<K, V> out = new LinkedHashMap<>();
        forEach(out::put);
        return out;
    }

    /**
     * Waits until the replica has reached {@code revision} (and its listeners have been told); false
     * on timeout.
     *
     * @throws MapcastException if the replica stopped for good (a map name the server refuses)
     */
    public boolean awaitRevision(long revision, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (progress) {
            while (announcedRevision < revision || !hasState()) {
                if (failure != null) {
                    throw failure;
                }
                if (closed) {
                    throw new IllegalStateException("replica of map \"" + map + "\" is closed");
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                TimeUnit.NANOSECONDS.timedWait(progress, left);
            }
            return true;
        }
    }

    public void addListener(ReplicaListener<K, V> listener) {
        listeners.add(listener);
    }

    public void removeListener(ReplicaListener<K, V> listener) {
        listeners.remove(listener);
    }

    /**
     * Tells {@code listener} each revision the replica reaches, the moment it is visible: the
     * low-level form of {@link ReplicaListener}, with no decoding and no hand-off. It runs on the
     * network thread that received the change, so it must return at once: never block in it, never
     * call the client from it (hand such work to an executor).
     */
    public void addRevisionListener(LongConsumer listener) {
        revisionListeners.add(listener);
    }

    public void removeRevisionListener(LongConsumer listener) {
        revisionListeners.remove(listener);
    }

    /**
     * Writes the local state to a snapshot file in the contract's format (streamed; temporary file,
     * fsync, atomic rename). Byte for byte what the server writes at the same revision for an
     * INSERTION-order map.
     */
    public void writeSnapshot(Path file) throws IOException {
        lock.readLock().lock();
        try {
            if (state == null) {
                throw new IllegalStateException("replica of map \"" + map + "\" has no snapshot yet");
            }
            try (PinnedView view = state.pin()) {
                SnapshotFiles.write(view, map, revision, compactRevision, incarnation, file);
            }
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Counters of what the stream did: snapshots, deltas, reconnects, gaps, digest mismatches. */
    public Stats stats() {
        return new Stats(snapshots.get(), deltas.get(), reconnects.get(), gaps.get(), digestMismatches.get());
    }

    /** What a replica's stream did so far. */
    public record Stats(long snapshots, long deltas, long reconnects, long gaps, long digestMismatches) {
    }

    /** Stops following the server and frees the local state. */
    @Override
    public void close() {
        closed = true;
        synchronized (stream) {
            enter(State.CLOSED);
            generation++;
            if (call != null) {
                call.cancel("replica closed", null);
                call = null;
            }
            if (staging != null) {
                staging.close();
                staging = null;
            }
        }
        lock.writeLock().lock();
        try {
            if (state != null) {
                state.close();
                state = null;
            }
        } finally {
            lock.writeLock().unlock();
        }
        signal();
    }

    /** How the local map is built (the order and size come from the snapshot). */
    private OffHeapMap.Builder mapBuilder() {
        return OffHeapMap.builder()
                .trackDigest(true)
                .threadSafe(true)
                .compactionThreshold(client.replicaCompactionThreshold())
                .maxKeyLength(OffHeapMap.MAX_KEY_LENGTH_LIMIT)
                .maxValueLength(OffHeapMap.MAX_VALUE_LENGTH_LIMIT);
    }

    /**
     * Loads {@code file} (fully verified) as the local state before the stream starts, so the
     * replica resumes from the file's revision instead of taking a snapshot.
     */
    void warmStart(Path file) throws IOException {
        SnapshotFiles.Loaded loaded = SnapshotFiles.read(file, mapBuilder());
        if (!loaded.name().equals(map)) {
            loaded.close();
            throw new IllegalArgumentException("snapshot file " + file + " holds map \"" + loaded.name()
                    + "\" (expected: \"" + map + "\")");
        }
        lock.writeLock().lock();
        try {
            state = loaded.map();
            revision = loaded.revision();
            compactRevision = loaded.compactRevision();
            incarnation = loaded.incarnation();
        } finally {
            lock.writeLock().unlock();
        }
        synchronized (stream) {
            needSnapshot = false;
        }
        long at = loaded.revision();
        announce(at, () -> {
            for (ReplicaListener<K, V> l : listeners) {
                l.onResync(at, ResyncReason.SNAPSHOT_FILE);
            }
        });
    }

    // ---- the stream ----

    void start() {
        synchronized (stream) {
            connect();
        }
    }

    /** Opens a Watch: after the local revision, or from a snapshot when one is needed. */
    private void connect() {
        if (closed) {
            return;
        }
        long gen = ++generation;
        long after = needSnapshot || state == null ? 0 : revision;
        // Events are handled on the network thread that received them: applying a delta takes
        // microseconds, and a hand-off to another thread per message would cost more than that.
        member = client.members().current();
        ClientCall<WatchRequest, Encoded> c = client.members().newCall(member, EncodedMethods.watch(),
                CallOptions.DEFAULT.withExecutor(MoreExecutors.directExecutor()));
        call = c;
        c.start(new ClientCall.Listener<>() {
            @Override
            public void onMessage(Encoded message) {
                Received received = message.received();
                try {
                    synchronized (stream) {
                        if (gen != generation) {
                            return;
                        }
                        failures = 0;
                        lastContact = Instant.now();
                        handle(received.bytes());
                        if (gen == generation) {
                            following();
                            c.request(1);
                        }
                    }
                } finally {
                    received.close();
                }
            }

            @Override
            public void onClose(Status status, Metadata trailers) {
                synchronized (stream) {
                    if (gen == generation) {
                        disconnected(status);
                    }
                }
            }
        }, new Metadata());
        // wait_for_map: an absent map is a quiet, open stream, not a NOT_FOUND to retry; progress
        // events keep lastContact() fresh while the map is idle.
        c.sendMessage(WatchRequest.newBuilder().setMap(map).setAfterRevision(after).setBatchEvents(true)
                .setWaitForMap(true).setProgressNotify(true).setIncarnation(after == 0 ? 0 : incarnation).build());
        c.halfClose();
        c.request(1);
    }

    private void disconnected(Status status) {
        call = null;
        if (closed) {
            return;
        }
        if (staging != null) {
            staging.close();
            staging = null;
        }
        if (status.getCode() == Status.Code.INVALID_ARGUMENT) {
            failure = new MapcastException(status, null);
            log.error("replica of map \"{}\" stopped: {}", map, status);
            signal();
            return;
        }
        if (status.getCode() == Status.Code.UNAVAILABLE) {
            // Every member has the same revisions: the next one resumes after ours, no snapshot needed.
            client.members().failed(member);
        }
        long base = client.initialBackoff().toNanos();
        long cap = client.maxBackoff().toNanos();
        // NOT_FOUND: a server that cannot hold the stream open for an absent map; poll it slowly.
        long delay = status.getCode() == Status.Code.NOT_FOUND ? cap : Math.min(cap, base << Math.min(failures, 20));
        delay = (long) (delay * ThreadLocalRandom.current().nextDouble(0.8, 1.2));
        failures++;
        reconnects.incrementAndGet();
        if (status.getCode() == Status.Code.NOT_FOUND) {
            mapAbsent(0);
        } else {
            lost(status);
        }
        log.debug("replica of map \"{}\": stream ended ({}), reconnecting in {} ms", map, status, delay / 1_000_000);
        long gen = ++generation;  // no event of the ended call counts any more
        client.timer().schedule(() -> {
            synchronized (stream) {
                if (gen == generation) {
                    connect();
                }
            }
        }, delay, TimeUnit.NANOSECONDS);
    }

    /** Drops the stream and starts again from a snapshot. */
    private void resync(ResyncReason reason) {
        if (call != null) {
            call.cancel("resynchronising: " + reason, null);
        }
        if (staging != null) {
            staging.close();
            staging = null;
        }
        pendingReason = reason;
        needSnapshot = true;
        connect();
    }

    private void handle(ByteBuffer message) {
        try {
            handleEvent(message, message.position(), message.limit(), true);
        } catch (MalformedMessageException | InvalidProtocolBufferException e) {
            log.warn("replica of map \"{}\": malformed message from the server, resynchronising", map, e);
            resync(ResyncReason.MALFORMED);
        }
    }

    /**
     * The WatchResponse at {@code message[from, to)}; a batch's events one by one, until one of them
     * restarts the stream. Deltas are applied where they lie (no slice, no object per delta).
     */
    private void handleEvent(ByteBuffer message, int from, int to, boolean batchAllowed)
            throws InvalidProtocolBufferException {
        int field = reader.event(message, from, to);
        int bodyFrom = reader.bodyFrom();
        int bodyTo = reader.bodyTo();
        switch (field) {
            case WatchEvent.SNAPSHOT -> onChunk(message.slice(bodyFrom, bodyTo - bodyFrom));
            case WatchEvent.DELTA -> onDelta(message, bodyFrom, bodyTo);
            case WatchEvent.COMPACTION -> {
                Compaction c = Compaction.parseFrom(message.slice(bodyFrom, bodyTo - bodyFrom));
                compactRevision = Math.max(compactRevision, c.getCompactRevision());
                serverRevision = Math.max(serverRevision, c.getRevision());
            }
            case WatchEvent.PROGRESS -> onProgress(Progress.parseFrom(message.slice(bodyFrom, bodyTo - bodyFrom)));
            case WatchEvent.DELETED -> mapAbsent(MapDeleted.parseFrom(message.slice(bodyFrom, bodyTo - bodyFrom))
                    .getRevision());
            case WatchEvent.BATCH -> {
                if (!batchAllowed) {
                    log.warn("replica of map \"{}\": a batch inside a batch, resynchronising", map);
                    resync(ResyncReason.MALFORMED);
                    return;
                }
                long gen = generation;
                reader.startBatch(message, bodyFrom, bodyTo);
                while (reader.nextBatched()) {
                    if (gen != generation) {
                        return;  // an event restarted the stream: the rest belongs to the old one
                    }
                    handleEvent(message, reader.batchedFrom(), reader.batchedTo(), false);
                }
            }
            default -> {
                // an event this client does not know: newer server
            }
        }
    }

    /** A Progress at the replica's own revision carries the server's digest there: check it. */
    private void onProgress(Progress progress) {
        if (progress.getIncarnation() != 0 && incarnation != 0 && progress.getIncarnation() != incarnation
                && staging == null) {
            log.warn("replica of map \"{}\": the server has another incarnation of the map, resynchronising", map);
            resync(ResyncReason.RECREATED);
            return;
        }
        serverRevision = Math.max(serverRevision, progress.getRevision());
        if (progress.getDigest() == 0 || staging != null || progress.getRevision() != revision) {
            return;
        }
        long local;
        lock.readLock().lock();
        try {
            local = state == null ? progress.getDigest() : state.digest();
        } finally {
            lock.readLock().unlock();
        }
        if (local != progress.getDigest()) {
            log.warn("replica of map \"{}\": the server's digest at revision {} is not this replica's, "
                    + "resynchronising", map, revision);
            digestMismatches.incrementAndGet();
            resync(ResyncReason.DIGEST_MISMATCH);
        }
    }

    private void onChunk(ByteBuffer chunk) {
        ChunkFields fields = MessageDecoder.peekSnapshotChunk(chunk);
        if (staging == null || fields.revision() != stagingRevision) {
            if (staging != null) {
                staging.close();  // a newer snapshot replaces one in progress
            }
            staging = mapBuilder()
                    .order(fields.order() == 2 ? IterationOrder.INSERTION : IterationOrder.HASH)
                    // Sent in every chunk: no growth while filling. Capped: a size is a hint, not a promise.
                    .initialCapacity(Math.min(fields.totalEntries(), MAX_PRESIZE_ENTRIES))
                    .build();
            stagingRevision = fields.revision();
        }
        MessageDecoder.applySnapshotChunk(chunk, staging);
        if (!fields.last()) {
            return;
        }
        OffHeapMap complete = staging;
        staging = null;
        if (complete.size() != fields.totalEntries() || complete.digest() != fields.digest()) {
            log.warn("replica of map \"{}\": snapshot at revision {} does not check out ({} entries, digest {}; "
                    + "expected {} and {}), resynchronising", map, fields.revision(), complete.size(),
                    Long.toHexString(complete.digest()), fields.totalEntries(), Long.toHexString(fields.digest()));
            complete.close();
            digestMismatches.incrementAndGet();
            resync(ResyncReason.DIGEST_MISMATCH);
            return;
        }
        OffHeapMap old;
        long oldIncarnation = incarnation;
        boolean backwards = fields.revision() < revision;
        lock.writeLock().lock();
        try {
            old = state;
            state = complete;
            revision = fields.revision();
            compactRevision = fields.compactRevision();
            incarnation = fields.incarnation();
            serverRevision = backwards ? fields.revision() : Math.max(serverRevision, fields.revision());
        } finally {
            lock.writeLock().unlock();
        }
        if (old != null) {
            old.close();
        }
        boolean recreated = oldIncarnation != 0 && fields.incarnation() != oldIncarnation;
        ResyncReason reason = pendingReason != null ? pendingReason
                : recreated || (old != null && backwards) ? ResyncReason.RECREATED
                : old == null ? ResyncReason.INITIAL : ResyncReason.SERVER;
        pendingReason = null;
        absent = false;
        following();  // LIVE before awaitRevision can return
        if (reason == ResyncReason.RECREATED || backwards) {
            announceReset();
        }
        needSnapshot = false;
        snapshots.incrementAndGet();
        long at = fields.revision();
        announce(at, () -> {
            for (ReplicaListener<K, V> l : listeners) {
                l.onResync(at, reason);
            }
        });
    }

    private void onDelta(ByteBuffer message, int from, int to) throws InvalidProtocolBufferException {
        if (state == null || staging != null) {
            log.warn("replica of map \"{}\": a delta before the snapshot was complete, resynchronising", map);
            gaps.incrementAndGet();
            resync(ResyncReason.GAP);
            return;
        }
        Delta decoded = listeners.isEmpty() ? null : Delta.parseFrom(message.slice(from, to - from));
        boolean applied;
        boolean digestOk;
        lock.writeLock().lock();
        try {
            long before = revision;
            applied = reader.applyDelta(message, from, to, state, before);
            if (applied) {
                revision = reader.revision();
                serverRevision = Math.max(serverRevision, reader.revision());
            }
            digestOk = applied && reader.revision() == before + 1 && state.digest() == reader.digest();
        } finally {
            lock.writeLock().unlock();
        }
        if (!applied || reader.revision() != reader.prevRevision() + 1) {
            log.warn("replica of map \"{}\": gap after revision {}, resynchronising", map, revision);
            gaps.incrementAndGet();
            resync(ResyncReason.GAP);
            return;
        }
        if (!digestOk) {
            log.warn("replica of map \"{}\": digest mismatch at revision {}, resynchronising", map, reader.revision());
            digestMismatches.incrementAndGet();
            resync(ResyncReason.DIGEST_MISMATCH);
            return;
        }
        deltas.incrementAndGet();
        long at = reader.revision();
        if (decoded == null) {
            announce(at, null);  // no listener: nothing to decode for it
            return;
        }
        Map<K, V> puts = new LinkedHashMap<>();
        Set<K> deleted = new LinkedHashSet<>();
        for (Map.Entry<String, ByteString> e : decoded.getPutsMap().entrySet()) {
            puts.put(keys.decode(e.getKey().getBytes(StandardCharsets.UTF_8)), values.decode(e.getValue().toByteArray()));
        }
        for (String key : decoded.getDeletesList()) {
            deleted.add(keys.decode(key.getBytes(StandardCharsets.UTF_8)));
        }
        announce(at, () -> {
            for (ReplicaListener<K, V> l : listeners) {
                l.onChange(at, puts, deleted);
            }
        });
    }

    /**
     * Calls the revision listeners here, then tells the replica listeners, in order and off the
     * network thread, that {@code revision} is visible, then wakes {@link #awaitRevision} waiters: a
     * returning awaitRevision(r) means r's listeners have run. With no listener (or a null
     * {@code tellListeners}: there were none when the event was decoded), waiters wake at once.
     */
    private void announce(long revision, Runnable tellListeners) {
        for (LongConsumer l : revisionListeners) {
            l.accept(revision);
        }
        if (tellListeners == null || listeners.isEmpty()) {
            announced(revision);
            return;
        }
        listenerExecutor.execute(() -> {
            try {
                tellListeners.run();
            } catch (RuntimeException | Error e) {
                log.error("a listener of the replica of map \"{}\" failed at revision {}", map, revision, e);
            } finally {
                announced(revision);
            }
        });
    }

    /**
     * The server says the map does not exist: deleted at {@code deletedAt}, or never created (0). A
     * replica that held a state drops it (listeners: {@link ReplicaListener#onDeleted}) and waits,
     * empty, for the map to be created; its next snapshot is reported as RECREATED.
     */
    private void mapAbsent(long deletedAt) {
        if (staging != null) {
            staging.close();
            staging = null;
        }
        OffHeapMap old;
        lock.writeLock().lock();
        try {
            old = state;
            state = null;
            revision = 0;
            compactRevision = 0;
            serverRevision = 0;
            incarnation = 0;
        } finally {
            lock.writeLock().unlock();
        }
        needSnapshot = true;
        boolean wasAbsent = absent;
        absent = true;
        enter(State.ABSENT);
        if (old == null) {
            return;  // nothing held: nothing to tell (the map did not exist for this replica yet)
        }
        old.close();
        pendingReason = ResyncReason.RECREATED;
        if (!wasAbsent) {
            log.info("replica of map \"{}\": the map was deleted at revision {}; waiting for it to be created again",
                    map, deletedAt);
        }
        announceReset();
        announce(0, () -> {
            for (ReplicaListener<K, V> l : listeners) {
                l.onDeleted(deletedAt);
            }
        });
    }

    /** After a message of the current stream: the replica follows the server (or knows the map is absent). */
    private void following() {
        if (connection == State.LIVE && !absent && !lossLogged) {
            return;  // every delta of a live stream: nothing changes, and no lock is taken for it
        }
        if (absent) {
            enter(State.ABSENT);
        } else if (staging == null && hasState()) {
            enter(State.LIVE);
        } else {
            return;  // a snapshot is still arriving
        }
        if (lossLogged) {
            lossLogged = false;
            log.info("replica of map \"{}\" is following the server again, at revision {}", map, revision);
        }
    }

    /** The stream failed: STALE if it had been following, one WARN line per episode. */
    private void lost(Status status) {
        if (connection == State.LIVE || connection == State.ABSENT) {
            enter(State.STALE);
        }
        if (!lossLogged) {
            lossLogged = true;
            String why = status.getCode() + (status.getDescription() == null ? "" : ": " + status.getDescription());
            if (status.getCode() == Status.Code.UNAUTHENTICATED || status.getCode() == Status.Code.PERMISSION_DENIED) {
                // Not a lost server: this client's token or rights. A grant or a token may yet arrive.
                log.warn("replica of map \"{}\" is refused by its server ({}); retrying{}", map, why,
                        hasState() ? ", serving revision " + revision + " from memory meanwhile" : "");
            } else if (hasState()) {
                log.warn("replica of map \"{}\" lost its server ({}); serving revision {} from memory and reconnecting",
                        map, why, revision);
            } else {
                log.warn("replica of map \"{}\" cannot reach its server ({}); retrying", map, why);
            }
        }
    }

    /** Moves to {@code next} (under stream) and tells the state listeners, in order with the others. */
    private void enter(State next) {
        if (connection == next || connection == State.CLOSED) {
            return;
        }
        Instant at = Instant.now();
        connection = next;
        stateSince = at;
        if (!stateListeners.isEmpty()) {
            listenerExecutor.execute(() -> {
                for (StateListener l : stateListeners) {
                    try {
                        l.onStateChange(next, at);
                    } catch (RuntimeException | Error e) {
                        log.error("a state listener of the replica of map \"{}\" failed", map, e);
                    }
                }
            });
        }
    }

    private boolean hasState() {
        lock.readLock().lock();
        try {
            return state != null;
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * The revision went back (another incarnation, or the map deleted): awaitRevision counts from
     * the new history on. In order with the listeners' announcements, so none of the old history
     * lands after it.
     */
    private void announceReset() {
        Runnable reset = () -> {
            synchronized (progress) {
                announcedRevision = -1;
            }
        };
        if (listeners.isEmpty()) {
            reset.run();
        } else {
            listenerExecutor.execute(reset);
        }
    }

    private void announced(long revision) {
        synchronized (progress) {
            announcedRevision = Math.max(announcedRevision, revision);
            progress.notifyAll();
        }
    }

    private void signal() {
        synchronized (progress) {
            progress.notifyAll();
        }
    }
}
