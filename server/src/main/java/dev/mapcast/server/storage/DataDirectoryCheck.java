package dev.mapcast.server.storage;

import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.core.PinnedView;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Offline checks of a data directory that no server holds (its {@code LOCK} is held from
 * {@link #open} to {@link #close}): what {@code mapcast data check} and {@code mapcast data salvage}
 * run. Reads the maps' files as a server's start does, and changes nothing in the data directory.
 *
 * <pre>{@code
 * try (DataDirectoryCheck data = DataDirectoryCheck.open(Path.of("mapcast-data"))) {
 *     for (DataDirectoryCheck.MapReport m : data.check().maps()) { ... }
 * }
 * }</pre>
 */
public final class DataDirectoryCheck implements AutoCloseable {

    /** Longest log record accepted: that of a server with the largest --max-write-bytes (see MapRegistry). */
    private static final int MAX_RECORD_BYTES = 2 * 256 * 1024 * 1024 + (1 << 20);

    private final Path dataDir;
    private final DataDirectoryLock lock;

    private DataDirectoryCheck(Path dataDir, DataDirectoryLock lock) {
        this.dataDir = dataDir;
        this.lock = lock;
    }

    /**
     * Takes the data directory's lock.
     *
     * @throws StorageException if {@code dataDir} is not a data directory, or a server holds it
     */
    public static DataDirectoryCheck open(Path dataDir) throws IOException {
        Path dir = dataDir.toAbsolutePath();
        if (!Files.isDirectory(dir.resolve("maps"))) {
            throw new StorageException(dir + " is not a mapcast data directory (expected: a directory with maps/ in it)");
        }
        return new DataDirectoryCheck(dir, DataDirectoryLock.take(dir, "a running mapcast server: stop it first (a"
                + " server changes the files these checks read)"));
    }

    /**
     * One map's verdict: ok ({@code problem} null) at {@code revision} with {@code entries}, or the
     * problem (the file, the byte, what is wrong) that quarantines it at a server's start.
     * {@code note}, if not null, is what a start would repair by itself (a torn log end).
     */
    public record MapReport(String name, Path directory, long revision, long entries, String problem, String note) {
        public boolean ok() {
            return problem == null;
        }
    }

    /** Every map's verdict, by name, and notes on the directory (none is damage). */
    public record Report(List<MapReport> maps, List<String> notes) {
        public boolean ok() {
            return maps.stream().allMatch(MapReport::ok);
        }
    }

    /**
     * Verifies every map of the catalog (without a catalog, every map directory) as a start would:
     * newest snapshot, every log record's CRC, the revision chain and the digest after each delta.
     *
     * @throws StorageException if the catalog itself is damaged
     */
    public Report check() throws IOException {
        List<String> notes = new ArrayList<>();
        TreeMap<String, String> catalog = catalog(notes);
        Set<String> named = new HashSet<>(catalog.values());
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(dataDir.resolve("maps"), Files::isDirectory)) {
            for (Path d : dirs) {
                if (!named.contains(d.getFileName().toString())) {
                    notes.add(d + " is not in the catalog: a creation never acknowledged or a deletion a crash"
                            + " interrupted; the server deletes it at its next start");
                }
            }
        }
        List<MapReport> maps = new ArrayList<>();
        for (Map.Entry<String, String> m : catalog.entrySet()) {
            maps.add(check(m.getKey(), dataDir.resolve("maps").resolve(m.getValue())));
        }
        return new Report(maps, notes);
    }

    private MapReport check(String name, Path dir) {
        if (!Files.isDirectory(dir)) {
            return new MapReport(name, dir, 0, 0, dir + ": missing: the catalog holds the map but its directory is gone",
                    null);
        }
        try (MapStore.Read read = MapStore.read(dir, OffHeapMap.builder(), OffHeapMap.builder(), MAX_RECORD_BYTES,
                false)) {
            String problem = read.damage();
            if (problem == null && !read.name().equals(name)) {
                problem = dir + ": holds map \"" + read.name() + "\" (expected: \"" + name + "\", as the catalog says)";
            }
            String note = read.torn() == null ? null : read.torn().file() + " ends in a torn record at byte "
                    + read.torn().at() + " (" + read.torn().problem() + "): a write never acknowledged, which the"
                    + " server cuts at its next start (keeping the file aside)";
            return new MapReport(name, dir, read.revision(), read.entries().size(), problem, note);
        } catch (IOException | RuntimeException e) {
            return new MapReport(name, dir, 0, 0, e.getMessage() == null ? e.toString() : e.getMessage(), null);
        }
    }

    /** What {@link #salvage} wrote, and what of the map's history it left out (empty: nothing). */
    public record Salvaged(String map, Path file, long revision, long entries, Path snapshot, long snapshotRevision,
            long logRecords, List<String> leftOut) {
    }

    /**
     * Writes the longest verified prefix of map {@code name}'s history to {@code out} as a snapshot
     * file (the contract's format, which {@code mapcast snapshot restore} loads): the newest
     * snapshot that verifies, then every log record after it that verifies, in order, up to the
     * first one that does not. Returns null if the data directory has no such map.
     *
     * @throws StorageException if no snapshot of the map verifies (nothing to start from)
     */
    public Salvaged salvage(String name, Path out) throws IOException {
        String dirName = catalog(new ArrayList<>()).get(name);
        if (dirName == null) {
            return null;
        }
        Path dir = dataDir.resolve("maps").resolve(dirName);
        if (!Files.isDirectory(dir)) {
            throw new StorageException(dir + ": missing: the catalog holds map \"" + name + "\" but its directory is"
                    + " gone; nothing to salvage");
        }
        try (MapStore.Read read = MapStore.read(dir, OffHeapMap.builder(), OffHeapMap.builder(), MAX_RECORD_BYTES,
                true)) {
            List<String> leftOut = new ArrayList<>(read.badSnapshots());
            if (read.damage() != null) {
                leftOut.add(read.damage());
                List<Path> later = read.logsLeftOut();
                for (Path log : later.subList(Math.min(1, later.size()), later.size())) {
                    leftOut.add(log + ": a later log, after the damage");
                }
            }
            if (read.torn() != null) {
                leftOut.add(read.torn().file() + " at byte " + read.torn().at() + ": a torn record ("
                        + read.torn().problem() + "), a write never acknowledged");
            }
            try (PinnedView view = read.entries().pin()) {
                // The map's incarnation too: a replica warm-started from the file resumes against it.
                SnapshotFiles.write(view, read.name(), read.revision(), Math.min(read.compactRevision(),
                        read.revision()), read.incarnation(), out);
            }
            return new Salvaged(read.name(), out, read.revision(), read.entries().size(), read.snapshot(),
                    read.snapshotRevision(), read.logRecords(), leftOut);
        }
    }

    /** The catalog, or without one what a start would build (and a note saying so). */
    private TreeMap<String, String> catalog(List<String> notes) throws IOException {
        TreeMap<String, String> catalog = Catalog.read(dataDir);
        if (catalog == null) {
            notes.add(dataDir.resolve(Catalog.FILE) + " does not exist (a data directory from before catalogs): the"
                    + " server builds it from the map directories at its next start");
            catalog = Catalog.fromDirectories(dataDir.resolve("maps"));
        }
        return catalog;
    }

    /** Releases the data directory's lock. */
    @Override
    public void close() throws IOException {
        lock.close();
    }
}
