package dev.mapcast.server.storage;

import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.server.FsyncMode;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The data directory: {@code LOCK} (held while a server uses it), {@code catalog} (the maps that
 * exist, see {@link Catalog}) and {@code maps/}, one {@link MapStore} directory per map.
 */
public final class Storage implements AutoCloseable {

    /** How often a map whose log failed tries to write it again (see HostedMap#retryStorage). */
    public static final long RETRY_MILLIS = 1000;
    /** What a cluster member keeps in its data directory about itself; a single server refuses such a directory. */
    public static final String CLUSTER_MEMBER_FILE = "cluster.member";

    public final Path dataDir;
    public final FsyncMode mode;
    public final long snapshotLogBytes;
    private final Path mapsDir;
    private final DataDirectoryLock lock;
    /** Map name to directory name: what the catalog file holds; null until {@link #catalogued}. */
    private TreeMap<String, String> catalog;

    /** Prefix of a map directory being deleted; recovery deletes these (see {@link #deleteMap}). */
    public static final String DELETING = ".deleting-";
    private static final Logger log = LoggerFactory.getLogger(Storage.class);

    private Storage(Path dataDir, FsyncMode mode, long snapshotLogBytes, DataDirectoryLock lock) {
        this.dataDir = dataDir;
        this.mode = mode;
        this.snapshotLogBytes = snapshotLogBytes;
        this.mapsDir = dataDir.resolve("maps");
        this.lock = lock;
    }

    /** Opens (creating if needed) and locks the data directory; fails if another server holds it. */
    public static Storage open(Path dataDir, FsyncMode mode, long snapshotLogBytes) throws IOException {
        Path dir = dataDir.toAbsolutePath();
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new StorageException("data directory " + dir + " is not a directory");
        }
        if (Files.exists(dir.resolve(CLUSTER_MEMBER_FILE))) {
            throw new StorageException("data directory " + dir + " belongs to a cluster member (it holds "
                    + CLUSTER_MEMBER_FILE + "); start it with the --node-id and --cluster it was made with");
        }
        Files.createDirectories(dir.resolve("maps"));
        return new Storage(dir, mode, snapshotLogBytes, DataDirectoryLock.take(dir, "another mapcast server"));
    }

    /** A map the catalog holds: its name and its directory (which may be missing: then it is damaged). */
    public record Catalogued(String name, Path dir) {
    }

    /**
     * The maps the catalog holds, by name. First brings the directory in line with the catalog:
     * builds the catalog from the map directories if there is none (a data directory from before
     * catalogs), and deletes the directories it does not name (a creation whose write was never
     * acknowledged, or a deletion a crash interrupted), and those being created or deleted.
     */
    public synchronized List<Catalogued> catalogued() throws IOException {
        if (catalog == null) {
            TreeMap<String, String> read = Catalog.read(dataDir);
            if (read == null) {
                read = Catalog.fromDirectories(mapsDir);
                Catalog.write(dataDir, read);
                log.info("{} built from the {} map directories in {}", dataDir.resolve(Catalog.FILE), read.size(),
                        mapsDir);
            }
            catalog = read;
            Set<String> named = new HashSet<>(catalog.values());
            try (DirectoryStream<Path> dirs = Files.newDirectoryStream(mapsDir, Files::isDirectory)) {
                for (Path d : dirs) {
                    String dir = d.getFileName().toString();
                    if (dir.startsWith(MapStore.CREATING) || dir.startsWith(DELETING)) {
                        MapStore.deleteTree(d);  // never acknowledged, or already out of the catalog
                    } else if (!named.contains(dir)) {
                        log.warn("{} is not in {}: a map whose creating write was never acknowledged, or whose"
                                + " deletion a crash interrupted; deleting it", d, dataDir.resolve(Catalog.FILE));
                        MapStore.deleteTree(d);
                    }
                }
            }
            SnapshotFiles.forceDirectory(mapsDir);
        }
        List<Catalogued> out = new ArrayList<>();
        catalog.forEach((name, dir) -> out.add(new Catalogued(name, mapsDir.resolve(dir))));
        return out;
    }

    /** Creates the files of a new map; it exists once {@link #catalogue} has added it. */
    public MapStore create(String name, IterationOrder order, long incarnation) throws IOException {
        return MapStore.create(mapsDir, name, order, incarnation, mode, snapshotLogBytes);
    }

    /**
     * Adds a created map to the catalog, durably: from then on it exists (a restart recovers it).
     * Its creating write is acknowledged only after this.
     */
    public synchronized void catalogue(String name) throws IOException {
        TreeMap<String, String> next = new TreeMap<>(catalog());
        next.put(name, MapStore.directoryName(name));
        Catalog.write(dataDir, next);
        catalog = next;
    }

    /**
     * Deletes a map's files, durably and atomically: out of the catalog first (one rename), then
     * its directory renamed to {@code maps/.deleting-...} and deleted. A crash at any point leaves
     * the map whole (still in the catalog) or gone (the next start deletes what is left). The
     * caller has closed the map's log. Returns false if the catalog does not hold the map.
     */
    public synchronized boolean deleteMap(String name) throws IOException {
        TreeMap<String, String> next = new TreeMap<>(catalog());
        String dir = next.remove(name);
        if (dir == null) {
            return false;
        }
        Catalog.write(dataDir, next);
        catalog = next;
        // Out of the catalog, the map is deleted: what follows only removes its files, and what a
        // failure leaves goes at the next start.
        Path from = mapsDir.resolve(dir);
        try {
            if (Files.exists(from)) {
                Path deleting = mapsDir.resolve(DELETING + dir);
                MapStore.deleteTree(deleting);
                Files.move(from, deleting, StandardCopyOption.ATOMIC_MOVE);
                SnapshotFiles.forceDirectory(mapsDir);
                MapStore.deleteTree(deleting);
                SnapshotFiles.forceDirectory(mapsDir);
            }
        } catch (IOException e) {
            log.warn("map \"{}\" is deleted, but its files in {} are not all removed yet ({}); the next start removes"
                    + " them", name, from, e.toString());
        }
        return true;
    }

    private TreeMap<String, String> catalog() throws IOException {
        if (catalog == null) {
            catalogued();
        }
        return catalog;
    }

    @Override
    public void close() throws IOException {
        lock.close();
    }
}
