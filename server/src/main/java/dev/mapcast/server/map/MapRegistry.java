package dev.mapcast.server.map;

import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.server.storage.MapStore;
import dev.mapcast.server.storage.Storage;
import dev.mapcast.server.storage.StorageException;
import dev.mapcast.server.storage.WriteAheadLog;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.nio.file.Files;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;
import java.util.function.ToLongFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server's maps by name. A map is created by its first Write that puts something, and only if
 * that Write commits (or by a Restore); it is removed only by {@link #delete}. Each creation draws a
 * random incarnation, so a map deleted and created again is told apart from the one before.
 *
 * <p>Implementation notes. Creating and deleting a map, and parking or waking the watchers that
 * wait for an absent map, hold the {@code creation} monitor, then (inside it) the map's own locks.
 * A call that looked a map up just before it was deleted finds it gone ({@link HostedMap#isDeleted}):
 * a write then looks the name up again (it may create the map anew), a read answers NOT_FOUND.
 *
 * <p>A stored map whose files fail verification at start is quarantined: listed, its files left as
 * they are, and every call naming it refused with FAILED_PRECONDITION until it is deleted.
 */
public final class MapRegistry implements AutoCloseable {

    /** What a call gets once the server is stopping: the client may retry elsewhere or later. */
    public static final Status SHUTTING_DOWN = Status.UNAVAILABLE.withDescription("the server is shutting down");

    private static final Logger log = LoggerFactory.getLogger(MapRegistry.class);

    private final Limits limits;
    private final int chunkBytes;
    private final ConcurrentHashMap<String, HostedMap> maps = new ConcurrentHashMap<>();
    /** Quarantined maps, name to why: kept apart from {@link #maps}, their files untouched. */
    private final ConcurrentHashMap<String, String> damaged = new ConcurrentHashMap<>();
    private final Object creation = new Object();
    /** Watchers waiting for an absent map to be created, by name; guarded by {@code creation}. */
    private final Map<String, List<Subscriber>> waiting = new HashMap<>();
    /** Deleted maps whose memory a snapshot stream may still read; freed by {@link #tick}. */
    private final List<HostedMap> deleted = new CopyOnWriteArrayList<>();
    /** Draws incarnations; guarded by {@code creation}. */
    private final SecureRandom random = new SecureRandom();
    /** Null: maps are kept in memory only. */
    private final Storage storage;
    private final Executor background;

    /**
     * With {@code storage}, recovers every map of its catalog first (latest snapshot plus log). A
     * map that cannot be recovered is quarantined (see {@link #damage}) and the others are served;
     * with {@code strict}, it fails the whole start instead, naming its file and what is wrong.
     */
    public MapRegistry(Limits limits, int chunkBytes, Storage storage, Executor background, boolean strict)
            throws IOException {
        this.limits = limits;
        this.chunkBytes = chunkBytes;
        this.storage = storage;
        this.background = background;
        if (storage == null) {
            return;
        }
        int maxRecordBytes = (int) Math.min(Integer.MAX_VALUE - 16, 2L * limits.maxWriteBytes() + (1 << 20));
        try {
            for (Storage.Catalogued c : storage.catalogued()) {
                try {
                    HostedMap map = recover(c, maxRecordBytes);
                    if (map != null) {
                        maps.put(c.name(), map);
                    }
                } catch (IOException | RuntimeException e) {
                    String problem = e.getMessage() == null ? e.toString() : e.getMessage();
                    if (strict) {
                        throw new StorageException("map \"" + c.name() + "\": " + problem, e);
                    }
                    damaged.put(c.name(), problem);
                    log.error("map \"{}\" is quarantined, the server serves the other maps: {}; its files are left as"
                            + " they are (see 'mapcast data check')", c.name(), problem);
                }
            }
        } catch (IOException | RuntimeException e) {
            close();
            throw e;
        }
    }

    public MapRegistry(Limits limits, int chunkBytes, Storage storage, Executor background) throws IOException {
        this(limits, chunkBytes, storage, background, false);
    }

    private HostedMap recover(Storage.Catalogued c, int maxRecordBytes) throws IOException {
        if (!Files.isDirectory(c.dir())) {
            throw new StorageException(c.dir() + ": missing: the catalog holds the map but its directory is gone");
        }
        MapStore.Recovered r = MapStore.recover(c.dir(), storage.mode, storage.snapshotLogBytes,
                HostedMap.entriesBuilder(limits), HostedMap.modRevisionsBuilder(limits), maxRecordBytes);
        if (r.revision() == 0) {
            // Its creating write never reached the disk, so was never acknowledged: the map was never
            // created (a data directory from before the catalog can hold such a directory).
            log.info("map \"{}\" in {}: its creating write did not reach the disk before the server stopped; it was"
                    + " never created, removing it", r.name(), c.dir());
            r.entries().close();
            r.modRevisions().close();
            r.store().close();
            storage.deleteMap(c.name());
            return null;
        }
        HostedMap map = new HostedMap(r, limits, chunkBytes, background);
        if (!r.name().equals(c.name())) {
            map.close();
            throw new StorageException(c.dir() + ": holds map \"" + r.name() + "\" (expected: \"" + c.name()
                    + "\", as the catalog says)");
        }
        return map;
    }

    /** Why map {@code name} is quarantined (its file, the byte, the problem), or null if it is not. */
    public String damage(String name) {
        return damaged.get(name);
    }

    /** The quarantined maps: name to why. */
    public Map<String, String> damaged() {
        return new TreeMap<>(damaged);
    }

    /**
     * Deletes a quarantined map's files ({@link Storage#deleteMap}: out of the catalog, then its
     * directory) and forgets it, so that a write or a restore may create the map afresh. Returns
     * false if {@code name} is not quarantined. Under the creation lock: no write creates the map
     * while its old files go.
     */
    public boolean deleteDamaged(String name) throws IOException {
        synchronized (creation) {
            if (!damaged.containsKey(name)) {
                return false;
            }
            storage.deleteMap(name);
            damaged.remove(name);
            return true;
        }
    }

    /** FAILED_PRECONDITION if {@code name} is quarantined: no call may use it, nor create a map in its place. */
    public void checkNotDamaged(String name) {
        String problem = damaged.get(name);
        if (problem != null) {
            throw Status.FAILED_PRECONDITION.withDescription("map \"" + name + "\" is damaged and quarantined: "
                    + problem + "; its files are left as they are. To recover it: stop the server, run 'mapcast data"
                    + " check' and 'mapcast data salvage " + name + " --out FILE' (or use a snapshot file you saved),"
                    + " start the server, then 'mapcast map delete " + name + "' and 'mapcast snapshot restore "
                    + name + " FILE'").asRuntimeException();
        }
    }

    /** The map, or NOT_FOUND (FAILED_PRECONDITION if it is quarantined). */
    public HostedMap existing(String name) {
        limits.checkMapName(name);
        HostedMap map = maps.get(name);
        if (map == null) {
            checkNotDamaged(name);
            throw notFound(name);
        }
        return map;
    }

    /** The map, or null if it does not exist. */
    public HostedMap find(String name) {
        return maps.get(name);
    }

    /** What {@link #tryWrite} returns when the write would have to wait. */
    public static final long WOULD_WAIT = 0;

    /**
     * Commits a write without waiting: to an existing map kept in memory whose lock is free.
     * Otherwise does nothing and returns {@link #WOULD_WAIT}: then {@link #write} it.
     */
    public long tryWrite(NormalisedWrite write) {
        HostedMap map = maps.get(write.map);
        if (map == null) {
            return WOULD_WAIT;
        }
        try {
            return map.tryWrite(write);
        } catch (StatusRuntimeException e) {
            if (map.isDeleted()) {
                return WOULD_WAIT;  // deleted meanwhile: write() looks the name up again
            }
            throw e;
        }
    }

    /**
     * Commits a write, creating its map first if needed and if the write puts something; a refused
     * write creates nothing. A write that would create nothing on an absent map is NOT_FOUND.
     */
    public long write(NormalisedWrite write) {
        String refusal = write.putKeys.isEmpty() ? "map \"" + write.map + "\" does not exist: a write that only"
                + " deletes keys or only sets conditions creates nothing (a write that puts a key creates the map)"
                : null;
        return createIfAbsent(write.map, write.order, write.incarnationIfCreated, refusal, m -> m.write(write));
    }

    /** A map's revision, and the incarnation it belongs to. */
    public record Version(long revision, long incarnation) {
    }

    /**
     * Replaces a map's content with {@code staged} (checked), creating the map if needed, with
     * {@code incarnationIfCreated} (0: a random one).
     */
    public Version restore(String name, OffHeapMap staged, long incarnationIfCreated) {
        long[] incarnation = new long[1];
        long revision = createIfAbsent(name, staged.order(), incarnationIfCreated, null, m -> {
            long r = m.restore(staged);
            incarnation[0] = m.incarnation;
            return r;
        });
        return new Version(revision, incarnation[0]);
    }

    /**
     * Deletes a map (see {@link HostedMap#delete}); NOT_FOUND if it does not exist. Returns the
     * revision and incarnation it had; a quarantined map's files are deleted whatever the
     * conditions (its revision and incarnation are unknown: both 0).
     */
    public Version delete(String name, long expectedRevision, long expectedIncarnation) {
        limits.checkMapName(name);
        synchronized (creation) {
            HostedMap map = maps.get(name);
            if (map == null) {
                if (damaged.containsKey(name)) {
                    try {
                        deleteDamaged(name);
                    } catch (IOException e) {
                        throw Status.UNAVAILABLE.withDescription("cannot delete the files of quarantined map \""
                                + name + "\" (" + e.getMessage() + "); nothing was deleted").withCause(e)
                                .asRuntimeException();
                    }
                    return new Version(0, 0);
                }
                throw notFound(name);
            }
            long revision = map.delete(expectedRevision, expectedIncarnation,
                    storage == null ? null : () -> storage.deleteMap(name),
                    watcher -> waiting.computeIfAbsent(name, k -> new ArrayList<>()).add(watcher));
            maps.remove(name, map);
            deleted.add(map);
            return new Version(revision, map.incarnation);
        }
    }

    /**
     * Attaches a watcher (from its drain task) to its map, or, if the map does not exist and the
     * watcher waits for it, parks it until a write creates the map; else NOT_FOUND.
     */
    public void attach(Subscriber watcher) {
        HostedMap map = maps.get(watcher.mapName());
        if (map != null && watcher.registerWith(map)) {
            return;
        }
        synchronized (creation) {
            map = maps.get(watcher.mapName());
            if (map != null) {
                if (!watcher.registerWith(map)) {
                    throw new IllegalStateException("map \"" + watcher.mapName() + "\" deleted outside the creation lock");
                }
                return;
            }
            checkNotDamaged(watcher.mapName());
            if (!watcher.waitForMap()) {
                throw notFound(watcher.mapName());
            }
            waiting.computeIfAbsent(watcher.mapName(), k -> new ArrayList<>()).add(watcher);
            watcher.waitForCreation();
        }
    }

    /** Forgets a watcher that ended while it waited for its map (no-op for any other). */
    public void stopWaiting(Subscriber watcher) {
        synchronized (creation) {
            List<Subscriber> list = waiting.get(watcher.mapName());
            if (list != null && list.remove(watcher) && list.isEmpty()) {
                waiting.remove(watcher.mapName());
            }
        }
    }

    /** Ends every watcher waiting for a map to be created (the server is stopping). */
    public void endWaiting(Status status) {
        List<Subscriber> all = new ArrayList<>();
        synchronized (creation) {
            waiting.values().forEach(all::addAll);
        }
        for (Subscriber w : all) {
            w.end(status);
        }
    }

    /** Frees the memory of deleted maps that no snapshot stream reads any more. */
    public void tick() {
        for (HostedMap map : deleted) {
            if (map.freeIfUnread()) {
                deleted.remove(map);
            }
        }
    }

    /**
     * Runs {@code change} on the map, first creating it if absent (refused with NOT_FOUND and
     * {@code refusal} if that is not null); if the change is refused, creates nothing.
     */
    private long createIfAbsent(String name, IterationOrder order, long incarnation, String refusal,
            ToLongFunction<HostedMap> change) {
        while (true) {
            HostedMap map = maps.get(name);
            if (map == null) {
                synchronized (creation) {
                    map = maps.get(name);
                    if (map == null) {
                        return create(name, order, incarnation, refusal, change);
                    }
                }
            }
            try {
                return change.applyAsLong(map);
            } catch (StatusRuntimeException e) {
                if (!map.isDeleted()) {
                    throw e;
                }
                // deleted since it was looked up: look again (the change may create it anew)
            }
        }
    }

    /** Creates map {@code name} with {@code change} as its first; under the creation lock. */
    private long create(String name, IterationOrder order, long incarnation, String refusal,
            ToLongFunction<HostedMap> change) {
        checkNotDamaged(name);  // no fresh start in place of a map whose files are kept
        if (refusal != null) {
            throw Status.NOT_FOUND.withDescription(refusal).asRuntimeException();
        }
        if (maps.size() + damaged.size() >= limits.maxMaps()) {
            throw Status.RESOURCE_EXHAUSTED.withDescription("cannot create map \"" + name + "\": the server holds "
                    + maps.size() + " maps (expected: at most " + limits.maxMaps() + ")").asRuntimeException();
        }
        while (incarnation == 0) {  // 0 means "none" on the wire
            incarnation = random.nextLong();
        }
        MapStore store = null;
        if (storage != null) {
            try {
                store = storage.create(name, order, incarnation);
            } catch (IOException e) {
                Status status = WriteAheadLog.isNoSpace(e, storage.dataDir, 1)
                        ? Status.RESOURCE_EXHAUSTED.withDescription("no space left in data directory "
                                + storage.dataDir + " to create map \"" + name + "\": " + e.getMessage())
                        : Status.UNAVAILABLE.withDescription("cannot create the files of map \"" + name + "\": "
                                + e.getMessage());
                throw status.withCause(e).asRuntimeException();
            }
        }
        HostedMap created = new HostedMap(name, order, incarnation, limits, chunkBytes, store, background);
        try {
            long revision = change.applyAsLong(created);
            if (storage != null) {
                // The map exists once the catalog holds it; only then is its creating write acknowledged.
                try {
                    storage.catalogue(name);
                } catch (IOException e) {
                    throw Status.UNAVAILABLE.withDescription("cannot add map \"" + name + "\" to the catalog: "
                            + e.getMessage() + "; nothing was created").withCause(e).asRuntimeException();
                }
            }
            maps.put(name, created);
            List<Subscriber> waiters = waiting.remove(name);
            if (waiters != null) {
                waiters.forEach(w -> w.mapCreated(created));
            }
            return revision;
        } catch (RuntimeException | Error e) {
            created.discard();
            throw e;
        }
    }

    /**
     * Replaces every map with {@code loaded} (a cluster member that caught up from a snapshot):
     * the watchers of the maps it had end with {@code forWatchers} (they resume, from the new
     * state), and those waiting for a map that {@code loaded} holds are woken.
     */
    public void replaceAll(List<HostedMap> loaded, Status forWatchers) {
        synchronized (creation) {
            for (HostedMap map : maps.values()) {
                map.endWatchers(forWatchers);
                map.retire();
                deleted.add(map);  // freed once no snapshot stream reads it (tick)
            }
            maps.clear();
            for (HostedMap map : loaded) {
                maps.put(map.name, map);
                List<Subscriber> waiters = waiting.remove(map.name);
                if (waiters != null) {
                    waiters.forEach(w -> w.mapCreated(map));
                }
            }
        }
    }

    /** The maps, by name. */
    public List<HostedMap> all() {
        List<HostedMap> out = new ArrayList<>(maps.values());
        out.sort(Comparator.comparing(m -> m.name));
        return out;
    }

    private static StatusRuntimeException notFound(String name) {
        return Status.NOT_FOUND.withDescription("map \"" + name + "\" does not exist (a Write that puts a key creates it)")
                .asRuntimeException();
    }

    @Override
    public void close() {
        for (HostedMap map : maps.values()) {
            map.close();
        }
        for (HostedMap map : deleted) {
            map.close();
        }
        deleted.clear();
    }
}
