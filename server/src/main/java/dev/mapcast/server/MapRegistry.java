package dev.mapcast.server;

import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.OffHeapMap;
import io.grpc.Status;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.function.ToLongFunction;

/** The server's maps by name. A map is created by its first Write, and only if that Write commits. */
final class MapRegistry implements AutoCloseable {

    private final Limits limits;
    private final int chunkBytes;
    private final ConcurrentHashMap<String, HostedMap> maps = new ConcurrentHashMap<>();
    private final Object creation = new Object();
    /** Null: maps are kept in memory only. */
    private final Storage storage;
    private final Executor background;

    /**
     * With {@code storage}, recovers every stored map first (latest snapshot plus log); a map that
     * cannot be recovered fails the whole start, naming its file and what is wrong.
     */
    MapRegistry(Limits limits, int chunkBytes, Storage storage, Executor background) throws IOException {
        this.limits = limits;
        this.chunkBytes = chunkBytes;
        this.storage = storage;
        this.background = background;
        if (storage == null) {
            return;
        }
        int maxRecordBytes = (int) Math.min(Integer.MAX_VALUE - 16, 2L * limits.maxWriteBytes() + (1 << 20));
        try {
            for (Path dir : storage.mapDirectories()) {
                MapStore.Recovered r = MapStore.recover(dir, storage.mode, storage.snapshotLogBytes,
                        HostedMap.entriesBuilder(limits), HostedMap.modRevisionsBuilder(limits), maxRecordBytes);
                if (maps.containsKey(r.name())) {
                    throw new StorageException(dir + " holds map \"" + r.name() + "\", which another directory holds too");
                }
                maps.put(r.name(), new HostedMap(r, limits, chunkBytes, background));
            }
        } catch (IOException | RuntimeException e) {
            close();
            throw e;
        }
    }

    /** The map, or NOT_FOUND. */
    HostedMap existing(String name) {
        limits.checkMapName(name);
        HostedMap map = maps.get(name);
        if (map == null) {
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
            if (maps.size() >= limits.maxMaps()) {
                throw Status.RESOURCE_EXHAUSTED.withDescription("cannot create map \"" + name + "\": the server holds "
                        + maps.size() + " maps (expected: at most " + limits.maxMaps() + ")").asRuntimeException();
            }
            MapStore store = null;
            if (storage != null) {
                try {
                    store = storage.create(name, order);
                } catch (IOException e) {
                    Status status = WriteAheadLog.isNoSpace(e, storage.dataDir, 1)
                            ? Status.RESOURCE_EXHAUSTED.withDescription("no space left in data directory "
                                    + storage.dataDir + " to create map \"" + name + "\": " + e.getMessage())
                            : Status.UNAVAILABLE.withDescription("cannot create the files of map \"" + name + "\": "
                                    + e.getMessage());
                    throw status.withCause(e).asRuntimeException();
                }
            }
            HostedMap created = new HostedMap(name, order, limits, chunkBytes, store, background);
            try {
                long revision = change.applyAsLong(created);
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
