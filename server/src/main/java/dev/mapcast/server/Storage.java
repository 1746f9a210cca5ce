package dev.mapcast.server;

import dev.mapcast.core.IterationOrder;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * The data directory: {@code LOCK} (held while a server uses it) and {@code maps/}, one
 * {@link MapStore} directory per map.
 */
final class Storage implements AutoCloseable {

    final Path dataDir;
    final FsyncMode mode;
    final long snapshotLogBytes;
    private final Path mapsDir;
    private final FileChannel lockFile;
    private final FileLock lock;

    private Storage(Path dataDir, FsyncMode mode, long snapshotLogBytes, FileChannel lockFile, FileLock lock) {
        this.dataDir = dataDir;
        this.mode = mode;
        this.snapshotLogBytes = snapshotLogBytes;
        this.mapsDir = dataDir.resolve("maps");
        this.lockFile = lockFile;
        this.lock = lock;
    }

    /** Opens (creating if needed) and locks the data directory; fails if another server holds it. */
    static Storage open(Path dataDir, FsyncMode mode, long snapshotLogBytes) throws IOException {
        Path dir = dataDir.toAbsolutePath();
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new StorageException("data directory " + dir + " is not a directory");
        }
        Files.createDirectories(dir.resolve("maps"));
        FileChannel channel = FileChannel.open(dir.resolve("LOCK"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
        FileLock lock;
        try {
            lock = channel.tryLock();
        } catch (OverlappingFileLockException sameProcess) {
            lock = null;
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
        if (lock == null) {
            channel.close();
            throw new StorageException("data directory " + dir + " is in use by another mapcast server");
        }
        return new Storage(dir, mode, snapshotLogBytes, channel, lock);
    }

    /** The directories of the stored maps; deletes those whose creation a crash interrupted. */
    List<Path> mapDirectories() throws IOException {
        List<Path> out = new ArrayList<>();
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(mapsDir, Files::isDirectory)) {
            for (Path d : dirs) {
                String f = d.getFileName().toString();
                if (f.startsWith(MapStore.CREATING) || f.startsWith(MapStore.DELETING)) {
                    // A creating write never acknowledged, or a map deleted before a crash: not a map.
                    MapStore.deleteTree(d);
                } else {
                    out.add(d);
                }
            }
        }
        out.sort(null);
        return out;
    }

    MapStore create(String name, IterationOrder order, long incarnation) throws IOException {
        return MapStore.create(mapsDir, name, order, incarnation, mode, snapshotLogBytes);
    }

    @Override
    public void close() throws IOException {
        try {
            lock.release();
        } finally {
            lockFile.close();
        }
    }
}
