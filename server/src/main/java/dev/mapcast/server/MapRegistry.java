package dev.mapcast.server;

import io.grpc.Status;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;

/** The server's maps by name. A map is created by its first Write, and only if that Write commits. */
final class MapRegistry implements AutoCloseable {

    private final Limits limits;
    private final int chunkBytes;
    private final ConcurrentHashMap<String, HostedMap> maps = new ConcurrentHashMap<>();
    private final Object creation = new Object();

    MapRegistry(Limits limits, int chunkBytes) {
        this.limits = limits;
        this.chunkBytes = chunkBytes;
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
            HostedMap created = new HostedMap(write.map, write.order, limits, chunkBytes);
            try {
                long revision = created.write(write);
                maps.put(write.map, created);
                return revision;
            } catch (RuntimeException | Error e) {
                created.close();
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
