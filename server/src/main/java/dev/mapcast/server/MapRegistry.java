package dev.mapcast.server;

import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.OffHeapMap;
import io.grpc.Status;
import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.function.ToLongFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server's maps by name. A map is created by its first Write, and only if that Write commits.
 * A stored map whose files fail verification at start is quarantined: listed, its files left as
 * they are, and every call naming it refused with FAILED_PRECONDITION until it is deleted.
 */
final class MapRegistry implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(MapRegistry.class);

    private final Limits limits;
    private final int chunkBytes;
    private final ConcurrentHashMap<String, HostedMap> maps = new ConcurrentHashMap<>();
    /** Quarantined maps, name to why: kept apart from {@link #maps}, their files untouched. */
    private final ConcurrentHashMap<String, String> damaged = new ConcurrentHashMap<>();
    private final Object creation = new Object();
    /** Null: maps are kept in memory only. */
    private final Storage storage;
    private final Executor background;

    /**
     * With {@code storage}, recovers every map of its catalog first (latest snapshot plus log). A
     * map that cannot be recovered is quarantined (see {@link #damage}) and the others are served;
     * with {@code strict}, it fails the whole start instead, naming its file and what is wrong.
     */
    MapRegistry(Limits limits, int chunkBytes, Storage storage, Executor background, boolean strict)
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
                    maps.put(c.name(), recover(c, maxRecordBytes));
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

    MapRegistry(Limits limits, int chunkBytes, Storage storage, Executor background) throws IOException {
        this(limits, chunkBytes, storage, background, false);
    }

    private HostedMap recover(Storage.Catalogued c, int maxRecordBytes) throws IOException {
        if (!Files.isDirectory(c.dir())) {
            throw new StorageException(c.dir() + ": missing: the catalog holds the map but its directory is gone");
        }
        MapStore.Recovered r = MapStore.recover(c.dir(), storage.mode, storage.snapshotLogBytes,
                HostedMap.entriesBuilder(limits), HostedMap.modRevisionsBuilder(limits), maxRecordBytes);
        HostedMap map = new HostedMap(r, limits, chunkBytes, background);
        if (!r.name().equals(c.name())) {
            map.close();
            throw new StorageException(c.dir() + ": holds map \"" + r.name() + "\" (expected: \"" + c.name()
                    + "\", as the catalog says)");
        }
        return map;
    }

    /** Why map {@code name} is quarantined (its file, the byte, the problem), or null if it is not. */
    String damage(String name) {
        return damaged.get(name);
    }

    /** The quarantined maps: name to why. */
    Map<String, String> damaged() {
        return new TreeMap<>(damaged);
    }

    /** Forgets that {@code name} is quarantined, once its files are deleted ({@link Storage#deleteMap}). */
    void forgetDamaged(String name) {
        damaged.remove(name);
    }

    /**
     * Deletes a quarantined map's files ({@link Storage#deleteMap}: out of the catalog, then its
     * directory) and forgets it, so that a write or a restore may create the map afresh. Returns
     * false if {@code name} is not quarantined. Under the creation lock: no write creates the map
     * while its old files go.
     */
    boolean deleteDamaged(String name) throws IOException {
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
    void checkNotDamaged(String name) {
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
    HostedMap existing(String name) {
        limits.checkMapName(name);
        HostedMap map = maps.get(name);
        if (map == null) {
            checkNotDamaged(name);
            throw Status.NOT_FOUND.withDescription("map \"" + name + "\" does not exist (a Write creates it)")
                    .asRuntimeException();
        }
        return map;
    }

    /** What {@link #tryWrite} returns when the write would have to wait. */
    static final long WOULD_WAIT = 0;

    /**
     * Commits a write without waiting: to an existing map kept in memory whose lock is free.
     * Otherwise does nothing and returns {@link #WOULD_WAIT}: then {@link #write} it.
     */
    long tryWrite(NormalisedWrite write) {
        HostedMap map = maps.get(write.map);
        return map == null ? WOULD_WAIT : map.tryWrite(write);
    }

    /** Commits a write, creating its map first if needed; a refused write creates nothing. */
    long write(NormalisedWrite write) {
        return createIfAbsent(write.map, write.order, m -> m.write(write));
    }

    /** Replaces a map's content with {@code staged} (checked), creating the map if needed. */
    long restore(String name, OffHeapMap staged) {
        return createIfAbsent(name, staged.order(), m -> m.restore(staged));
    }

    /** Runs {@code change} on the map, first creating it if absent; if the change is refused, creates nothing. */
    private long createIfAbsent(String name, IterationOrder order, ToLongFunction<HostedMap> change) {
        HostedMap map = maps.get(name);
        if (map != null) {
            return change.applyAsLong(map);
        }
        synchronized (creation) {
            map = maps.get(name);
            if (map != null) {
                return change.applyAsLong(map);
            }
            checkNotDamaged(name);  // no fresh start in place of a map whose files are kept
            if (maps.size() + damaged.size() >= limits.maxMaps()) {
                throw Status.RESOURCE_EXHAUSTED.withDescription("cannot create map \"" + name + "\": the server holds "
                        + maps.size() + " maps (expected: at most " + limits.maxMaps() + ")").asRuntimeException();
            }
            MapStore store = null;
            if (storage != null) {
                try {
                    store = storage.create(name, order);
                } catch (IOException e) {
                    throw Status.UNAVAILABLE.withDescription("cannot create the files of map \"" + name + "\": "
                            + e.getMessage()).withCause(e).asRuntimeException();
                }
            }
            HostedMap created = new HostedMap(name, order, limits, chunkBytes, store, background);
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
                return revision;
            } catch (RuntimeException | Error e) {
                created.discard();
                throw e;
            }
        }
    }

    /** The maps, by name. */
    List<HostedMap> all() {
        List<HostedMap> out = new ArrayList<>(maps.values());
        out.sort(Comparator.comparing(m -> m.name));
        return out;
    }

    @Override
    public void close() {
        for (HostedMap map : maps.values()) {
            map.close();
        }
    }
}
