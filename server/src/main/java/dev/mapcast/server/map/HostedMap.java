package dev.mapcast.server.map;

import com.google.protobuf.ByteString;
import dev.mapcast.codec.DeltaEncoder;
import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.core.CompactionResult;
import dev.mapcast.core.EntryCursor;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.MemoryStats;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.core.PinnedView;
import dev.mapcast.proto.v1.Compaction;
import dev.mapcast.proto.v1.GetResponse;
import dev.mapcast.proto.v1.MapInfo;
import dev.mapcast.server.storage.MapStore;
import dev.mapcast.server.storage.Storage;
import dev.mapcast.server.storage.WriteAheadLog;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One named map as the server hosts it: its entries, each key's mod_revision, its revision and
 * compact revision, the history of encoded deltas, and its watchers.
 *
 * <p>Implementation notes.
 * <ul>
 * <li>Concurrency: a read-write lock. Writes, compaction's bookkeeping and publishing to watchers
 * hold the write lock, so every watcher's queue gets the deltas in revision order; reads, watch
 * registration and snapshot pinning hold the read lock, so they see one revision. Both off-heap
 * maps are the thread-safe kind, so that snapshots stream from pinned views, and compaction runs,
 * without the lock while writes go on.
 * <li>Encode once: a committed write's delta is encoded once, as a WatchResponse, straight from the
 * stored records; the history and every watcher hold that same buffer.
 * <li>Revision visibility: {@link #revision} is published after the delta is queued to every
 * watcher, so a watcher whose queue is empty after reading revision R has been given every delta up
 * to R (what makes a Progress event true).
 * </ul>
 */
public final class HostedMap implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(HostedMap.class);

    private static final byte[] NO_VALUE = new byte[0];

    public final String name;
    final IterationOrder order;
    /** Random, chosen when the map is created: a map deleted and created again has another. */
    public final long incarnation;
    private final Limits limits;
    private final int chunkBytes;
    /** Replaced whole by a restore (under both locks' write side); read under either. */
    private OffHeapMap entries;
    /** key -> the revision that last wrote it, 8 bytes little-endian. */
    private OffHeapMap modRevisions;
    /** Maps a restore replaced, closed once no snapshot stream reads them (see {@link #tick}). */
    private final List<OffHeapMap> retired = new ArrayList<>();
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    /** Held (read) by work done outside {@link #lock} on the maps, so close() waits for it. */
    private final ReentrantReadWriteLock lifecycle = new ReentrantReadWriteLock();
    private final DeltaHistory history;
    private final List<Subscriber> watchers = new CopyOnWriteArrayList<>();
    private volatile long revision;
    /** The revision and the digest at it, published together (Progress events carry both). */
    private volatile Head head = new Head(0, 0);
    /**
     * Where Compact or a restore left the map: written into snapshots (files, Raft snapshots, watch
     * snapshots), so it must be the same on every cluster member at a revision. How far back this
     * server's own delta history reaches is {@code history.floor()}, which depends on when the
     * member last started; Compaction events and MapInfo give the later of the two.
     */
    private volatile long compactRevision;
    private boolean closed;
    /** Set (under both write locks) once the map is deleted: calls that still hold it find it gone. */
    private volatile boolean deleted;
    /**
     * Set when a logged write could not be applied in memory: the map may hold part of it, so it
     * serves nothing more (but its line in ListMaps) until a restart recovers it from its log.
     */
    private volatile Status outOfService;
    /** Where changes are logged and snapshots written; null for a map kept in memory only. */
    private final MapStore store;
    /** Runs snapshots to the store. */
    private final Executor background;
    private final AtomicBoolean snapshotting = new AtomicBoolean();

    /** A new, empty map; {@code store} (null: in memory only) already holds its revision-0 snapshot. */
    HostedMap(String name, IterationOrder order, long incarnation, Limits limits, int chunkBytes, MapStore store,
            Executor background) {
        this.name = name;
        this.order = order;
        this.incarnation = incarnation;
        this.limits = limits;
        this.chunkBytes = chunkBytes;
        this.entries = entriesBuilder(limits).order(order).build();
        this.modRevisions = modRevisionsBuilder(limits).build();
        this.history = new DeltaHistory(limits.historyDeltas(), limits.historyBytes(), 0);
        this.store = store;
        this.background = background;
    }

    /** A map recovered from its store: its snapshot plus the replayed log, which becomes its history. */
    HostedMap(MapStore.Recovered r, Limits limits, int chunkBytes, Executor background) {
        this.name = r.name();
        this.order = r.order();
        this.incarnation = r.store().incarnation;
        this.limits = limits;
        this.chunkBytes = chunkBytes;
        this.entries = r.entries();
        this.modRevisions = r.modRevisions();
        // History resumes where the compaction left it, as it was before the restart.
        long floor = Math.max(r.snapshotRevision(), r.compactRevision());
        this.history = new DeltaHistory(limits.historyDeltas(), limits.historyBytes(), floor);
        long rev = r.snapshotRevision();
        for (ByteBuffer delta : r.deltas()) {
            if (++rev > floor) {
                history.add(rev, Encoded.of(delta));
            }
        }
        this.revision = r.revision();
        this.head = new Head(r.revision(), entries.digest());
        this.compactRevision = r.compactRevision();
        this.store = r.store();
        this.background = background;
    }

    /**
     * A map loaded from a cluster member's snapshot (no store: the Raft log keeps its changes):
     * takes ownership of both maps; its history starts at {@code revision}.
     */
    public HostedMap(String name, long incarnation, OffHeapMap entries, OffHeapMap modRevisions, long revision,
            long compactRevision, Limits limits, int chunkBytes, Executor background) {
        this.name = name;
        this.order = entries.order();
        this.incarnation = incarnation;
        this.limits = limits;
        this.chunkBytes = chunkBytes;
        this.entries = entries;
        this.modRevisions = modRevisions;
        this.history = new DeltaHistory(limits.historyDeltas(), limits.historyBytes(), revision);
        this.revision = revision;
        this.head = new Head(revision, entries.digest());
        // As the snapshot says, not raised to its revision: compact_revision is in every snapshot
        // file and Compaction event, and a member that installed this snapshot must give the same
        // bytes as one that applied every write. That this member's history starts here is the
        // history's floor (a watch from before it gets a snapshot).
        this.compactRevision = compactRevision;
        this.store = null;
        this.background = background;
    }

    /**
     * Writes the map as it is now to two snapshot files in the contract's format (its entries,
     * and each key's mod_revision as 8 bytes little-endian), pinned under the lock and written
     * without it. The caller keeps writes out meanwhile if the two must be of one revision (a
     * Raft state machine's snapshot is taken between two applied entries).
     */
    public void writeSnapshotFiles(Path entriesFile, Path modRevisionsFile) throws IOException {
        PinnedView e;
        PinnedView m;
        long at;
        long compactedAt;
        lifecycle.readLock().lock();
        try {
            lock.readLock().lock();
            try {
                checkServing();
                at = revision;
                compactedAt = compactRevision;
                e = entries.pin();
                m = modRevisions.pin();
            } finally {
                lock.readLock().unlock();
            }
            try (e; m) {
                SnapshotFiles.write(m, name, at, compactedAt, incarnation, modRevisionsFile);
                SnapshotFiles.write(e, name, at, compactedAt, incarnation, entriesFile);
            }
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    /** How a map's entries are built (recovery gives the order from the file). */
    public static OffHeapMap.Builder entriesBuilder(Limits limits) {
        return OffHeapMap.builder().threadSafe(true).trackDigest(true)
                .maxKeyLength(limits.maxKeyBytes()).maxValueLength(limits.maxValueBytes());
    }

    /** How a map's mod revisions are built (digest tracked: they are written to snapshot files too). */
    public static OffHeapMap.Builder modRevisionsBuilder(Limits limits) {
        return OffHeapMap.builder().threadSafe(true).trackDigest(true).maxKeyLength(limits.maxKeyBytes());
    }

    long revision() {
        return revision;
    }

    /** A map revision and the content digest at it. */
    public record Head(long revision, long digest) {
    }

    public Head head() {
        return head;
    }

    /** Commits one normalised write as the next revision, or throws a status and changes nothing. */
    long write(NormalisedWrite w) {
        lock.writeLock().lock();
        return writeLocked(w);
    }

    /**
     * {@link #write} if that cannot wait: the map is kept in memory only (no log to force) and its
     * lock is free. Otherwise returns {@link MapRegistry#WOULD_WAIT} and changes nothing.
     */
    long tryWrite(NormalisedWrite w) {
        if (store != null || !lock.writeLock().tryLock()) {
            return MapRegistry.WOULD_WAIT;
        }
        return writeLocked(w);
    }

    /** The lock writes and restores take: tests hold it to make calls on the map wait. */
    public ReentrantReadWriteLock.WriteLock writeLock() {
        return lock.writeLock();
    }

    /** The write, with the write lock held; releases it. */
    private long writeLocked(NormalisedWrite w) {
        long next;
        long logEnd = 0;
        try {
            checkServing();
            long current = revision;
            if (w.expectedRevision != 0 && w.expectedRevision != current) {
                throw Status.FAILED_PRECONDITION.withDescription("map \"" + name + "\" is at revision " + current
                        + " (expected_revision: " + w.expectedRevision + ")").asRuntimeException();
            }
            for (int i = 0; i < w.expectedKeys.size(); i++) {
                byte[] key = w.expectedKeys.get(i);
                long actual = modRevision(key);
                if (actual != w.expectedModRevisions[i]) {
                    throw Status.FAILED_PRECONDITION.withDescription("key " + Utf8.preview(key) + " of map \"" + name
                            + "\" " + (actual == 0 ? "is absent" : "has mod_revision " + actual)
                            + " (expected_mod_revisions: " + w.expectedModRevisions[i] + ")").asRuntimeException();
                }
            }
            // The entries the write adds and the digest it will give, in one pass over its keys.
            long growth = 0;
            long digest = entries.digest();
            for (int i = 0; i < w.putKeys.size(); i++) {
                byte[] key = w.putKeys.get(i);
                if (entries.containsKey(key)) {
                    digest -= entries.entryDigest(key);
                } else {
                    growth++;
                }
                digest += OffHeapMap.entryDigest(key, w.putValues.get(i));
            }
            List<byte[]> removed = new ArrayList<>(w.deleteKeys.size());
            for (byte[] key : w.deleteKeys) {
                if (entries.containsKey(key)) {
                    growth--;
                    digest -= entries.entryDigest(key);
                    removed.add(key);
                }
            }
            if (entries.size() + growth > limits.maxEntriesPerMap()) {
                throw Status.RESOURCE_EXHAUSTED.withDescription("map \"" + name + "\" would hold "
                        + (entries.size() + growth) + " entries (expected: at most " + limits.maxEntriesPerMap() + ")")
                        .asRuntimeException();
            }
            // Checked. The delta (with that digest) is encoded and logged before anything changes:
            // a write the log cannot take leaves the map exactly as it was.
            next = current + 1;
            DeltaEncoder delta = new DeltaEncoder(w.putKeys, w.putValues, removed, next, digest);
            ByteBuffer bytes = ByteBuffer.allocate(delta.size(true));
            delta.writeTo(bytes, true);
            Encoded event = Encoded.of(bytes.flip());
            if (store != null) {
                try {
                    logEnd = store.append(event.bytes());
                } catch (IOException e) {
                    throw storageFailure(e, "write to map \"" + name + "\" at revision " + next, false);
                }
            }
            byte[] nextBytes = MapStore.revisionBytes(next);
            try {
                for (int i = 0; i < w.putKeys.size(); i++) {
                    entries.put(w.putKeys.get(i), w.putValues.get(i));
                    modRevisions.put(w.putKeys.get(i), nextBytes);
                }
                for (byte[] key : removed) {
                    entries.remove(key);
                    modRevisions.remove(key);
                }
            } catch (RuntimeException | Error e) {
                throw takeOutOfService(next, e);
            }
            assert entries.digest() == digest : "map \"" + name + "\": digest " + entries.digest()
                    + " after the write, " + digest + " in its delta";
            boolean purged = history.add(next, event);
            publish(event);
            if (purged) {
                long kept = history.floor();
                log.debug("map \"{}\" at revision {}: history past its bound, kept after revision {} ({} deltas,"
                        + " {} bytes); watchers told with a Compaction event", name, next, kept,
                        history.size(), history.bytes());
                publish(WatchEvents.compaction(Compaction.newBuilder()
                        .setCompactRevision(Math.max(compactRevision, kept)).setRevision(next).build()));
            }
            head = new Head(next, digest);
            revision = next;
            w.incarnation = incarnation;
        } finally {
            lock.writeLock().unlock();
        }
        if (w.onApplied != null) {
            w.onApplied.accept(next);
        }
        awaitDurable(logEnd, "write to map \"" + name + "\" at revision " + next);
        sendQueued();
        return next;
    }

    /** Waits until the log record ending at {@code logEnd} is durable (group commit); no-op in memory. */
    private void awaitDurable(long logEnd, String what) {
        if (store == null) {
            return;
        }
        try {
            store.awaitDurable(logEnd);
        } catch (IOException e) {
            throw storageFailure(e, what, true);
        }
        if (store.wantsSnapshot() && snapshotting.compareAndSet(false, true)) {
            try {
                background.execute(this::snapshotToStore);
            } catch (RejectedExecutionException closing) {
                snapshotting.set(false);
            }
        }
    }

    /**
     * Writes a snapshot to the store and drops the log before it: pinned and the log rotated under
     * the lock, written without it while writes go on.
     */
    private void snapshotToStore() {
        lifecycle.readLock().lock();
        try {
            if (closed || deleted) {
                return;
            }
            PinnedView e;
            PinnedView m;
            long at;
            long compactedAt;
            lock.writeLock().lock();
            try {
                if (outOfService != null) {
                    return;  // its memory may hold part of a write: only the log is to be trusted
                }
                at = revision;
                compactedAt = compactRevision;
                store.rotate(at);
                e = entries.pin();
                m = modRevisions.pin();
            } finally {
                lock.writeLock().unlock();
            }
            try (e; m) {
                store.writeSnapshot(name, e, m, at, compactedAt);
            }
        } catch (IOException | RuntimeException e) {
            log.error("snapshot of map \"{}\" failed; its log keeps growing until one succeeds", name, e);
        } finally {
            snapshotting.set(false);
            lifecycle.readLock().unlock();
        }
    }

    public GetResponse get(byte[] key) {
        lock.readLock().lock();
        try {
            checkServing();
            byte[] value = entries.get(key);
            GetResponse.Builder out = GetResponse.newBuilder().setRevision(revision).setIncarnation(incarnation);
            if (value != null) {
                out.setFound(true).setValue(ByteString.copyFrom(value)).setModRevision(modRevision(key));
            }
            return out.build();
        } finally {
            lock.readLock().unlock();
        }
    }

    /** A map's revision and a copy of every entry at it. */
    public record Contents(long revision, List<Map.Entry<byte[], byte[]>> entries) {
    }

    /** Copies every entry: for the small maps the server reads whole (its auth map). */
    public Contents contents() {
        lock.readLock().lock();
        try {
            checkServing();
            List<Map.Entry<byte[], byte[]>> copy = new ArrayList<>();
            for (Map.Entry<byte[], byte[]> e : entries) {
                copy.add(Map.entry(e.getKey(), e.getValue()));
            }
            return new Contents(revision, copy);
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * Reclaims dead records and tombstones, purges history through {@code requested} (0: the current
     * revision) and tells every watcher.
     */
    public Compaction compact(long requested) {
        long current = revision;
        if (Long.compareUnsigned(requested, current) > 0) {  // a uint64: 2^63 and up are beyond, not below 0
            throw Limits.invalid("revision: " + Long.toUnsignedString(requested)
                    + " (expected: 0 or at most the revision of map \"" + name + "\", " + current + ")");
        }
        long target = requested == 0 ? current : requested;
        CompactionResult a;
        CompactionResult b;
        // Not under the map's lock: the off-heap maps compact in bounded steps under their own
        // locks, so writes interleave. The lifecycle lock only keeps close() out.
        lifecycle.readLock().lock();
        try {
            checkServing();
            a = entries.compact();
            b = modRevisions.compact();
        } finally {
            lifecycle.readLock().unlock();
        }
        long logEnd = 0;
        Compaction result;
        lock.writeLock().lock();
        try {
            checkServing();
            history.purgeThrough(target);
            compactRevision = Math.max(compactRevision, target);
            Compaction event = Compaction.newBuilder()
                    .setCompactRevision(compactRevision)
                    .setTombstonesPurged(a.tombstonesPurged() + b.tombstonesPurged())
                    .setBytesReclaimed(a.deadBytesReclaimed() + b.deadBytesReclaimed())
                    .setRevision(revision)
                    .build();
            Encoded encoded = WatchEvents.compaction(event);
            if (store != null) {
                try {
                    logEnd = store.append(encoded.bytes());
                } catch (IOException e) {
                    throw storageFailure(e, "compaction of map \"" + name + "\"", false);
                }
            }
            publish(encoded);
            result = event;
        } finally {
            lock.writeLock().unlock();
        }
        awaitDurable(logEnd, "compaction of map \"" + name + "\"");
        sendQueued();
        return result;
    }

    /**
     * Replaces the whole content with {@code staged}'s (same order, already checked) as the next
     * revision, taking ownership of {@code staged} (the caller must not close it once this
     * returns); every key's mod_revision becomes it, history starts again there (compact_revision
     * is it), and every watcher is moved to a Compaction event and a snapshot. With a store, the
     * new content is on disk (a snapshot at the new revision, the log rotated) before anything
     * changes in memory, all under the write lock so that no write slips between. The staged maps
     * are swapped in; the old ones are closed once the snapshot streams reading them are done.
     */
    long restore(OffHeapMap staged) {
        long next;
        lifecycle.writeLock().lock();  // no compaction or snapshot write runs on the maps being replaced
        lock.writeLock().lock();
        try {
            checkServing();
            if (staged.order() != order) {
                throw Status.FAILED_PRECONDITION.withDescription("map \"" + name + "\" keeps " + order
                        + " order; the snapshot is in " + staged.order() + " order").asRuntimeException();
            }
            next = revision + 1;
            byte[] nextBytes = MapStore.revisionBytes(next);
            OffHeapMap stagedMods = modRevisionsBuilder(limits).initialCapacity(staged.size()).build();
            try {
                try (PinnedView view = staged.pin()) {
                    EntryCursor c = view.cursor();
                    while (c.next()) {
                        stagedMods.put(c.key(), nextBytes);
                    }
                }
                if (store != null) {
                    try (PinnedView e = staged.pin(); PinnedView m = stagedMods.pin()) {
                        store.rotate(next);
                        store.writeSnapshot(name, e, m, next, next);
                    } catch (IOException e) {
                        // Once the snapshot file is in place (renamed whole) a restart would load it:
                        // the restore is on disk, so memory must follow, whatever failed after it.
                        if (!store.hasSnapshot(next)) {
                            throw Status.UNAVAILABLE.withDescription("cannot write the restored map \"" + name
                                    + "\" to disk (" + e.getMessage() + "); nothing was changed").withCause(e)
                                    .asRuntimeException();
                        }
                        log.warn("map \"{}\" restored at revision {}, but cleaning up after its snapshot failed",
                                name, next, e);
                    }
                }
            } catch (RuntimeException | Error e) {
                stagedMods.close();
                throw e;
            }
            retired.add(entries);
            retired.add(modRevisions);
            entries = staged;
            modRevisions = stagedMods;
            history.purgeThrough(next);
            compactRevision = next;
            head = new Head(next, entries.digest());
            revision = next;
            for (Subscriber w : watchers) {
                w.resnapshot();
            }
        } finally {
            lock.writeLock().unlock();
            lifecycle.writeLock().unlock();
        }
        closeRetired();
        return next;
    }

    /** Closes replaced maps that no pinned view reads any more; skipped while a compaction runs. */
    private void closeRetired() {
        if (!lifecycle.writeLock().tryLock()) {
            return;
        }
        try {
            retired.removeIf(m -> {
                if (m.memoryStats().pinnedViews() > 0) {
                    return false;
                }
                m.close();
                return true;
            });
        } finally {
            lifecycle.writeLock().unlock();
        }
    }

    public MapInfo info() {
        lock.readLock().lock();
        try {
            checkOpen();
            MemoryStats stats = entries.memoryStats();
            return MapInfo.newBuilder()
                    .setName(name)
                    .setRevision(revision)
                    .setSize(entries.size())
                    .setOrderValue(orderValue(order))
                    .setCompactRevision(Math.max(compactRevision, history.floor()))
                    .setLiveBytes(stats.liveBytes())
                    .setDeadBytes(stats.deadBytes())
                    .setReservedBytes(stats.reservedBytes() + modRevisions.memoryStats().reservedBytes())
                    .setIncarnation(incarnation)
                    .build();
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * Registers a watcher (from its drain task, so it cannot end meanwhile): history after its
     * revision if kept, else Compaction then a snapshot. A client whose state belongs to another
     * incarnation ({@code clientIncarnation}, 0: unknown) gets a snapshot, whatever its revision.
     * {@code fromCreation}: it waited for this map to be created, and starts from the empty map at
     * revision 0 followed by every delta, while the history still reaches back to the creation.
     */
    public void register(Subscriber watcher, long after, long clientIncarnation, boolean fromCreation) {
        lock.readLock().lock();
        try {
            checkServing();
            List<Encoded> since = fromCreation ? sinceCreation() : null;
            if (since != null) {
                watcher.begin(since.get(0), null, since.subList(1, since.size()));
                watchers.add(watcher);
                return;
            }
            boolean otherIncarnation = clientIncarnation != 0 && clientIncarnation != incarnation;
            List<Encoded> deltas = after == 0 || after > revision || otherIncarnation ? null : history.after(after);
            if (after == 0 || fromCreation || otherIncarnation) {
                watcher.begin(null, snapshot(true), null);
            } else if (deltas == null) {
                Encoded compaction = WatchEvents.compaction(Compaction.newBuilder()
                        .setCompactRevision(Math.max(compactRevision, history.floor())).setRevision(revision).build());
                watcher.begin(compaction, snapshot(true), null);
            } else {
                // The deltas it missed, then where they lead: a client at the same revision checks
                // its digest, which catches a resume against a map that is not the one it followed.
                List<Encoded> resume = new ArrayList<>(deltas);
                resume.add(WatchEvents.progress(revision, head.digest(), incarnation));
                watcher.begin(null, null, resume);
            }
            watchers.add(watcher);
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * Registers a watcher that waited for this map, as it is created (under the registry's creation
     * lock, right after the creating write): the empty map at revision 0, every delta since and a
     * Progress are queued behind whatever the watcher still has to send (a MapDeleted of the map's
     * previous incarnation, say). False, and nothing registered, if the history no longer reaches
     * back to the creation (a map loaded whole, on a cluster member catching up).
     */
    public boolean registerAtCreation(Subscriber watcher) {
        lock.readLock().lock();
        try {
            checkServing();
            List<Encoded> since = sinceCreation();
            if (since == null) {
                return false;
            }
            since.forEach(watcher::enqueue);
            watchers.add(watcher);
            return true;
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * What a watcher that starts from the creation is sent, under the lock: the empty map at
     * revision 0, every delta since, then a Progress; null if the history no longer reaches back.
     */
    private List<Encoded> sinceCreation() {
        List<Encoded> fromZero = history.after(0);
        if (fromZero == null) {
            return null;
        }
        List<Encoded> all = new ArrayList<>(fromZero.size() + 2);
        all.add(WatchEvents.emptySnapshot(name, order, incarnation));
        all.addAll(fromZero);
        all.add(WatchEvents.progress(revision, head.digest(), incarnation));
        return all;
    }

    /** Pins the map at its current revision for a snapshot stream. */
    public SnapshotSender snapshot(boolean asWatchResponses) {
        lock.readLock().lock();
        try {
            checkServing();
            return new SnapshotSender(entries.pin(), name, revision, compactRevision, incarnation, chunkBytes,
                    asWatchResponses);
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * Moves a watcher to a snapshot of the current revision: one that fell behind, or (with
     * {@code compactionFirst}) every watcher after a restore, told by a Compaction event first.
     */
    public void restartFromSnapshot(Subscriber watcher, boolean compactionFirst) {
        lock.readLock().lock();
        try {
            if (deleted) {
                return;  // the deletion told the watcher already (Subscriber#mapDeleted)
            }
            checkServing();
            Encoded preface = compactionFirst ? WatchEvents.compaction(Compaction.newBuilder()
                    .setCompactRevision(compactRevision).setRevision(revision).build()) : null;
            watcher.restart(preface, snapshot(true));
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * Deletes the map: its files (durably, before anything else changes), then its watchers are
     * told (see {@link Subscriber#mapDeleted}) and every later call on it finds it gone. Its memory is
     * freed once no snapshot stream reads it ({@link #freeIfUnread}); the watchers that wait for
     * the map to be created again are handed to {@code waitsAgain}. Returns the revision it had.
     *
     * @throws io.grpc.StatusRuntimeException FAILED_PRECONDITION if a condition does not hold,
     *     UNAVAILABLE if its files cannot be deleted; then nothing changed
     */
    long delete(long expectedRevision, long expectedIncarnation, FilesDeletion deleteFiles,
            Consumer<Subscriber> waitsAgain) {
        lifecycle.writeLock().lock();  // no compaction or snapshot write runs on it meanwhile
        lock.writeLock().lock();
        try {
            checkOpen();
            if (expectedRevision != 0 && expectedRevision != revision) {
                throw Status.FAILED_PRECONDITION.withDescription("map \"" + name + "\" is at revision " + revision
                        + " (expected_revision: " + expectedRevision + "); nothing was deleted").asRuntimeException();
            }
            if (expectedIncarnation != 0 && expectedIncarnation != incarnation) {
                throw Status.FAILED_PRECONDITION.withDescription(String.format("map \"%s\" is incarnation %016x"
                        + " (expected_incarnation: %016x); nothing was deleted", name, incarnation, expectedIncarnation))
                        .asRuntimeException();
            }
            if (store != null) {
                try {
                    if (!store.logFailing()) {
                        store.force();  // the writes in flight are answered as durable, not failed
                    }
                    deleteFiles.delete();  // a map whose log failed can be deleted too: that is a cure
                } catch (IOException e) {
                    throw Status.UNAVAILABLE.withDescription("cannot delete the files of map \"" + name + "\" ("
                            + e.getMessage() + "); nothing was deleted").withCause(e).asRuntimeException();
                }
                try {
                    store.close();
                } catch (IOException e) {
                    log.warn("map \"{}\" deleted; closing its log: {}", name, e.toString());
                }
            }
            deleted = true;
            Encoded notice = WatchEvents.mapDeleted(revision, incarnation);
            Status status = gone().getStatus();
            for (Subscriber w : watchers) {
                if (w.mapDeleted(notice, status)) {
                    waitsAgain.accept(w);
                }
            }
            watchers.clear();
            retired.add(entries);
            retired.add(modRevisions);
            return revision;
        } finally {
            lock.writeLock().unlock();
            lifecycle.writeLock().unlock();
        }
    }

    /** How {@link #delete} deletes a stored map's files: durably, all or nothing (see Storage#deleteMap). */
    interface FilesDeletion {
        void delete() throws IOException;
    }

    /** Whether the map was deleted (a call that still holds it finds it gone: NOT_FOUND). */
    public boolean isDeleted() {
        return deleted;
    }

    /** A deleted map: frees its memory if no snapshot stream reads it any more; true once freed. */
    /**
     * Marks the map gone without a MapDeleted event (its watchers were ended): a cluster member
     * replaced its whole state with a snapshot's. Calls that still hold the map find it gone.
     */
    void retire() {
        lifecycle.writeLock().lock();
        lock.writeLock().lock();
        try {
            deleted = true;
        } finally {
            lock.writeLock().unlock();
            lifecycle.writeLock().unlock();
        }
    }

    boolean freeIfUnread() {
        closeRetired();
        lifecycle.writeLock().lock();
        try {
            if (!retired.isEmpty()) {
                return false;
            }
        } finally {
            lifecycle.writeLock().unlock();
        }
        close();
        return true;
    }

    private StatusRuntimeException gone() {
        return Status.NOT_FOUND.withDescription("map \"" + name + "\" does not exist (it was deleted)")
                .asRuntimeException();
    }

    public void removeWatcher(Subscriber watcher) {
        watchers.remove(watcher);
    }

    public int watcherCount() {
        return watchers.size();
    }

    /** Bytes queued for this map's watchers, in all. */
    public long queuedBytes() {
        long sum = 0;
        for (Subscriber w : watchers) {
            sum += w.queuedBytes();
        }
        return sum;
    }

    public void tick(long now, long progressIntervalNanos) {
        for (Subscriber w : watchers) {
            w.tick(now, progressIntervalNanos);
        }
        closeRetired();
    }

    public void endWatchers(Status status) {
        for (Subscriber w : watchers) {
            w.end(status);
        }
    }

    /** Frees the map's memory; watchers must have ended (their drain tasks done) first. */
    @Override
    public void close() {
        lifecycle.writeLock().lock();
        lock.writeLock().lock();
        try {
            if (!closed) {
                closed = true;
                entries.close();
                modRevisions.close();
                retired.forEach(OffHeapMap::close);
                retired.clear();
                if (store != null && !deleted) {  // a deleted map's log is closed and gone
                    try {
                        store.close();
                    } catch (IOException e) {
                        log.error("closing the log of map \"{}\"", name, e);
                    }
                }
            }
        } finally {
            lock.writeLock().unlock();
            lifecycle.writeLock().unlock();
        }
    }

    static int orderValue(IterationOrder order) {
        return order == IterationOrder.INSERTION ? 2 : 1;  // ITERATION_ORDER_INSERTION / _HASH
    }

    /** Queues an event to every watcher; under the write lock, so every queue is in revision order. */
    private void publish(Encoded event) {
        for (Subscriber w : watchers) {
            w.enqueue(event);
        }
    }

    /** Sends what {@link #publish} queued, on this thread; after the lock is released. */
    private void sendQueued() {
        long now = System.nanoTime();  // once per write, not per watcher: it is read for every one
        for (Subscriber w : watchers) {
            w.sendFromCaller(now);
        }
    }

    private long modRevision(byte[] key) {
        byte[] bytes = modRevisions.get(key);
        return bytes == null ? 0 : ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    /** Forces the log now (the periodic fsync mode's flush). */
    public void forceLog() {
        if (store == null) {
            return;
        }
        lifecycle.readLock().lock();
        try {
            if (!closed && !deleted && !store.logFailing()) {
                store.force();
            }
        } catch (IOException e) {
            storageFailure(e, "periodic force of the log of map \"" + name + "\"", true);
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    /**
     * The status for a write or compaction the store could not take ({@code e}; {@code applied}:
     * it is in memory, its force failed), logging the first line of the episode (see
     * {@link WriteAheadLog}): RESOURCE_EXHAUSTED for a full disk (one WARN line until a write
     * succeeds again); UNAVAILABLE for a failing log (one ERROR line with the first cause; the map
     * takes writes again by itself once {@link #retryStorage} has written and checked its log); and
     * for a log file that lost its name, UNAVAILABLE and the map out of service (one ERROR line).
     */
    private StatusRuntimeException storageFailure(IOException e, String what, boolean applied) {
        if (e instanceof WriteAheadLog.DiskFull full) {
            Path dataDir = store.dataDir();
            long usable = usableSpace(dataDir);
            if (store.diskFull(name)) {
                log.warn("map \"{}\": no space left in data directory {} ({} bytes usable; the {} needs {} bytes"
                        + " of log): its writes are refused with RESOURCE_EXHAUSTED until there is room", name, dataDir,
                        usable, what, full.needed);
            }
            return Status.RESOURCE_EXHAUSTED.withDescription("no space left for map \"" + name + "\" in data directory "
                    + dataDir + ": the " + what + " needs " + full.needed + " bytes of log, " + usable + " bytes are"
                    + " usable; nothing was applied").withCause(e).asRuntimeException();
        }
        if (!store.logFailing()) {  // the append failed but was cut off: the log goes on
            return Status.UNAVAILABLE.withDescription("cannot log the " + what + " (" + e.getMessage()
                    + "); nothing was applied").withCause(e).asRuntimeException();
        }
        IOException first = store.logFailure();
        first = first == null ? e : first;
        boolean gone = first instanceof WriteAheadLog.Gone || e.getCause() instanceof WriteAheadLog.Gone;
        if (store.claimLogFailureReport() != null) {
            if (gone) {
                log.error("map \"{}\": {}; the map is out of service until the server restarts", name,
                        WriteAheadLog.describe(first) + suppressed(first));
            } else {
                log.error("map \"{}\": its write-ahead log {} failed; writes are refused until it can be written"
                        + " again (tried every {} ms)", name, store.logFile(), Storage.RETRY_MILLIS, first);
            }
        }
        String outcome = applied
                ? " was applied in memory but not acknowledged: its log record may not be on disk"
                : " was refused, nothing applied";
        if (gone) {
            goOutOfService(Status.UNAVAILABLE.withDescription("map \"" + name + "\" is out of service: "
                    + WriteAheadLog.describe(first) + suppressed(first) + "; restart the server to recover it from its"
                    + " files"));
            return Status.UNAVAILABLE.withDescription("the " + what + outcome + ": " + WriteAheadLog.describe(first)
                    + "; the map is out of service until the server restarts").withCause(e).asRuntimeException();
        }
        return Status.UNAVAILABLE.withDescription("the " + what + outcome + ": the write-ahead log "
                + store.logFile() + " failed (first failure: " + WriteAheadLog.describe(first) + "); the map takes"
                + " writes again once its log can be written and is checked on disk (tried every "
                + Storage.RETRY_MILLIS + " ms)").withCause(e).asRuntimeException();
    }

    /**
     * One attempt to write a failing log again and check it on disk (the server's storage thread,
     * every {@link Storage#RETRY_MILLIS}); a log that lost acknowledged records, or
     * its file, takes the map out of service.
     */
    public void retryStorage() {
        if (store == null || !store.logFailing()) {
            return;
        }
        lifecycle.readLock().lock();
        lock.writeLock().lock();
        try {
            if (closed || outOfService != null) {
                return;
            }
            IOException first = store.logFailure();
            if (store.reopenLog()) {
                log.info("map \"{}\": its write-ahead log {} is written again and holds every acknowledged write (read"
                        + " back from the disk); writes are accepted again (the failure was: {})", name,
                        store.logFile(), first == null ? "none" : WriteAheadLog.describe(first));
            }
        } catch (IOException e) {
            // Once: out of service, the map is not retried again.
            store.claimLogFailureReport();
            String what = WriteAheadLog.describe(e) + suppressed(e);
            log.error("map \"{}\": {}; the map is out of service until the server restarts", name, what);
            goOutOfService(Status.UNAVAILABLE.withDescription("map \"" + name + "\" is out of service: " + what
                    + (e instanceof WriteAheadLog.Lost ? "; restore it from a snapshot file, or restart the server to"
                            + " recover what its files hold" : "; restart the server to recover it from its files")));
        } finally {
            lock.writeLock().unlock();
            lifecycle.readLock().unlock();
        }
    }

    /** Sets {@link #outOfService} (the first reason stays) and ends the watchers with it. */
    private void goOutOfService(Status status) {
        boolean locked = !lock.isWriteLockedByCurrentThread();
        if (locked) {
            lock.writeLock().lock();
        }
        try {
            if (outOfService == null) {
                outOfService = status;
                endWatchers(status);
            }
        } finally {
            if (locked) {
                lock.writeLock().unlock();
            }
        }
    }

    /** What was done about a failure, as a message's tail (a log file copied back, say). */
    private static String suppressed(Throwable e) {
        StringBuilder out = new StringBuilder();
        for (Throwable s : e.getSuppressed()) {
            out.append("; ").append(WriteAheadLog.describe(s));
        }
        return out.toString();
    }

    private static long usableSpace(Path dir) {
        try {
            return Files.getFileStore(dir).getUsableSpace();
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** Deletes the map's files: its creating write was refused, so the map never existed. */
    void discard() {
        close();
        if (store != null) {
            store.deleteFiles();
        }
    }

    private void checkOpen() {
        if (deleted) {
            throw gone();
        }
        if (closed) {
            throw MapRegistry.SHUTTING_DOWN.asRuntimeException();
        }
    }

    /** {@link #checkOpen}, and the map is not out of service. */
    private void checkServing() {
        checkOpen();
        Status status = outOfService;
        if (status != null) {
            throw status.asRuntimeException();
        }
    }

    /**
     * The write at {@code next} is logged but only part of it may be in memory ({@code cause}, say
     * no memory left for a segment): the map stops serving, so that nothing reads or builds on that
     * state (a later write would log a second record for {@code next}), and its watchers end, to
     * resume once a restart has recovered the map from its log. Under the write lock.
     */
    private StatusRuntimeException takeOutOfService(long next, Throwable cause) {
        String why = cause.getClass().getSimpleName() + (cause.getMessage() == null ? "" : ": " + cause.getMessage());
        String recovery = store == null
                ? "restart the server (the map is kept in memory only: it starts empty)"
                : "restart the server to recover it from its log";
        outOfService = Status.UNAVAILABLE.withDescription("map \"" + name + "\" is out of service: its write at revision "
                + next + " could not be applied in memory (" + why + "); " + recovery);
        log.error("map \"{}\": the write at revision {} could not be applied in memory; the map serves nothing more"
                + " until the server restarts", name, next, cause);
        endWatchers(outOfService);
        return Status.UNAVAILABLE.withDescription("the write to map \"" + name + "\" at revision " + next
                + " could not be applied in memory (" + why + ")" + (store == null ? "" : "; it is logged and may apply"
                + " when the server restarts") + ", and the map serves nothing until then").withCause(cause)
                .asRuntimeException();
    }
}
