package dev.mapcast.server.storage;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The data directory's {@code LOCK} file, held while a server (or an offline check) uses the
 * directory, so that no two of them change or read its files at once. An OS file lock: it goes
 * with the process, a crash included.
 */
public final class DataDirectoryLock implements AutoCloseable {

    private final FileChannel file;
    private final FileLock lock;

    private DataDirectoryLock(FileChannel file, FileLock lock) {
        this.file = file;
        this.lock = lock;
    }

    /**
     * Takes the lock of {@code dir} (absolute, existing); throws {@link StorageException} with
     * {@code heldBy} (what holds it, and what to do) if a process, this one included, holds it.
     */
    public static DataDirectoryLock take(Path dir, String heldBy) throws IOException {
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
            throw new StorageException("data directory " + dir + " is in use by " + heldBy);
        }
        return new DataDirectoryLock(channel, lock);
    }

    @Override
    public void close() throws IOException {
        try {
            lock.release();
        } finally {
            file.close();
        }
    }
}
