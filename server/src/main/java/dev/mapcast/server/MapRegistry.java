package dev.mapcast.server;

import io.grpc.Status;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;

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

    /** Commits a write, creating its map first if needed; a refused write creates nothing. */
    long write(NormalisedWrite write) {
        HostedMap map = maps.get(write.map);
        if (map != null) {
            return map.write(write);
        }
        synchronized (creation) {
            map = maps.get(write.map);
            if (map != null) {
                return map.write(write);
            }
            if (maps.size() >= limits.maxMaps()) {
                throw Status.RESOURCE_EXHAUSTED.withDescription("cannot create map \"" + write.map + "\": the server holds "
                        + maps.size() + " maps (expected: at most " + limits.maxMaps() + ")").asRuntimeException();
            }
            MapStore store = null;
            if (storage != null) {
                try {
                    store = storage.create(write.map, write.order);
                } catch (IOException e) {
                    throw Status.UNAVAILABLE.withDescription("cannot create the files of map \"" + write.map + "\": "
                            + e.getMessage()).withCause(e).asRuntimeException();
                }
            }
            HostedMap created = new HostedMap(write.map, write.order, limits, chunkBytes, store, background);
            try {
                long revision = created.write(write);
                maps.put(write.map, created);
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
