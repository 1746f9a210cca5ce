package dev.mapcast.server.auth;

import dev.mapcast.codec.SnapshotFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The audit log of a server started with --auth: one line of JSON per call ({@link
 * AuditRecord#toJson}), in UTF-8, each ended by {@code '\n'}, appended to a file that a new log
 * creates readable by its owner only (mode 0600 where the file system has POSIX permissions: the
 * log names users and keys).
 *
 * <p>Durability: a record's future completes after fsync: the server acknowledges a write only
 * after its audit record is on disk. Records appended while the disk is busy share the next fsync
 * (group commit), so a busy server pays one fsync per batch, not one per call; {@link #append}
 * itself never waits for the disk. A record whose future failed may still be in the file.
 *
 * <p>Rotation: when a batch of lines would take the file past {@code rotateBytes}, the file is
 * renamed {@code file.1} (the previous {@code file.1} becomes {@code file.2}, and so on up to
 * {@code file.keepFiles}; the oldest beyond that is deleted) and the batch starts a new file. A line
 * is never split across files (so one batch larger than {@code rotateBytes} makes a larger file).
 *
 * <p>Futures complete on the log's writer thread: a dependent action added without an executor
 * runs there and holds up every record behind it, so keep such actions short or use the
 * {@code ...Async} methods.
 */
public final class AuditLog implements AutoCloseable {
    /*
     * Implementation notes.
     *
     * Concurrency: append() queues under `lock` (and wakes the writer when the queue was empty);
     * the writer thread swaps the queue for an empty one under the lock, then writes, forces and
     * completes that batch without it. After open(), only the writer thread touches `channel`,
     * `size`, `buffer` and `rotationFailing`.
     *
     * Failure: a batch that fails is cut off again (truncated to the size before it), so the next
     * batch never continues a partial line. If even that fails, the channel is dropped and opened
     * again for the next batch, which first ends the partial line (as open() does after a crash).
     * A rotation that fails leaves the records going to the current file (an audit log that grows
     * past its size beats a server that refuses every write); it is tried again at the next batch.
     */

    private static final Logger log = LoggerFactory.getLogger(AuditLog.class);

    private static final int BUFFER_BYTES = 64 * 1024;
    private static final OpenOption[] OPEN = {StandardOpenOption.CREATE, StandardOpenOption.READ,
        StandardOpenOption.WRITE};

    private final Path file;
    private final Path dir;
    private final long rotateBytes;
    private final int keepFiles;
    private final Thread writer;

    private final Object lock = new Object();
    private List<Queued> queued = new ArrayList<>();  // guarded by lock
    private boolean closed;  // guarded by lock

    private FileChannel channel;  // null after a failure, until the next batch opens the file again
    private long size;
    private final ByteBuffer buffer = ByteBuffer.allocateDirect(BUFFER_BYTES);
    private boolean rotationFailing;

    private record Queued(byte[] line, CompletableFuture<Void> written) {
    }

    private AuditLog(Path file, long rotateBytes, int keepFiles) {
        this.file = file;
        this.dir = file.toAbsolutePath().getParent();
        this.rotateBytes = rotateBytes;
        this.keepFiles = keepFiles;
        this.writer = new Thread(this::run, "mapcast-audit");
        writer.setDaemon(true);
    }

    /**
     * Opens (creating, or appending to) {@code file}; rotates it when it would exceed {@code
     * rotateBytes}, keeping {@code keepFiles} older files ({@code file.1} newest ... {@code file.N}
     * oldest).
     *
     * @throws IllegalArgumentException if {@code rotateBytes < 1024} or {@code keepFiles < 1}
     * @throws IOException if the file cannot be opened or created
     */
    public static AuditLog open(Path file, long rotateBytes, int keepFiles) throws IOException {
        Objects.requireNonNull(file, "file");
        if (rotateBytes < 1024) {
            throw new IllegalArgumentException("rotateBytes: " + rotateBytes + " (expected: >= 1024)");
        }
        if (keepFiles < 1) {
            throw new IllegalArgumentException("keepFiles: " + keepFiles + " (expected: >= 1)");
        }
        AuditLog audit = new AuditLog(file, rotateBytes, keepFiles);
        audit.openFile();
        audit.writer.start();
        return audit;
    }

    /**
     * Appends one record; the returned future completes once the line is on disk (fsync), or
     * exceptionally with an IOException. Many records waiting together share one fsync (group
     * commit). Never blocks the caller on the disk. After {@link #close} the future fails with
     * {@code IllegalStateException("audit log closed")}.
     */
    public CompletableFuture<Void> append(AuditRecord record) {
        byte[] line = (record.toJson() + '\n').getBytes(StandardCharsets.UTF_8);
        CompletableFuture<Void> written = new CompletableFuture<>();
        synchronized (lock) {
            if (closed) {
                return CompletableFuture.failedFuture(new IllegalStateException("audit log closed"));
            }
            queued.add(new Queued(line, written));
            if (queued.size() == 1) {
                lock.notifyAll();
            }
        }
        return written;
    }

    /**
     * Appends every record queued so far, forces, closes; waits for that. Idempotent. Records
     * appended after close fail their future with {@code IllegalStateException("audit log closed")}.
     */
    @Override
    public void close() {
        synchronized (lock) {
            closed = true;
            lock.notifyAll();
        }
        if (Thread.currentThread() == writer) {
            return;  // from a future's dependent action: the writer ends once it has drained the queue
        }
        boolean interrupted = false;
        while (true) {
            try {
                writer.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true;  // the records queued are still written: wait on
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /** The file being written (the newest records). */
    public Path file() {
        return file;
    }

    private void run() {
        try {
            while (true) {
                List<Queued> batch;
                synchronized (lock) {
                    while (queued.isEmpty() && !closed) {
                        try {
                            lock.wait();
                        } catch (InterruptedException e) {
                            // Only close() ends the writer: records are waiting on it.
                        }
                    }
                    if (queued.isEmpty()) {
                        break;
                    }
                    batch = queued;
                    queued = new ArrayList<>();
                }
                Thread.interrupted();  // an interrupt would close the channel under the next batch
                write(batch);
            }
            if (channel != null) {
                try {
                    channel.force(false);
                } catch (IOException e) {
                    log.error("audit log {}: cannot force it at close", file, e);
                }
                closeChannel();
            }
        } finally {
            // Normally nothing is left; after an Error, no append may wait for ever.
            List<Queued> left;
            synchronized (lock) {
                closed = true;
                left = queued;
                queued = List.of();
            }
            fail(left, new IllegalStateException("audit log closed"));
        }
    }

    private void write(List<Queued> batch) {
        long bytes = 0;
        for (Queued q : batch) {
            bytes += q.line.length;
        }
        try {
            if (channel == null) {
                openFile();
            }
            if (size > 0 && size + bytes > rotateBytes) {
                rotate();
            }
            long before = size;
            try {
                for (Queued q : batch) {
                    put(q.line);
                }
                flush();
                channel.force(false);
            } catch (IOException | RuntimeException e) {
                buffer.clear();
                cutOff(before);
                throw e;
            }
            size = before + bytes;
        } catch (IOException | RuntimeException e) {
            log.error("audit log {}: {} records not written", file, batch.size(), e);
            fail(batch, e);
            return;
        }
        for (Queued q : batch) {
            q.written.complete(null);
        }
    }

    private void put(byte[] line) throws IOException {
        for (int at = 0; at < line.length; ) {
            int n = Math.min(buffer.remaining(), line.length - at);
            buffer.put(line, at, n);
            at += n;
            if (!buffer.hasRemaining()) {
                flush();
            }
        }
    }

    private void flush() throws IOException {
        buffer.flip();
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
        buffer.clear();
    }

    /** Takes back what a failed batch wrote, or drops the channel if it cannot. */
    private void cutOff(long before) {
        try {
            channel.truncate(before);
            channel.position(before);
        } catch (IOException e) {
            log.error("audit log {}: cannot cut off a failed batch; the next batch opens the file again", file, e);
            closeChannel();
        }
    }

    /**
     * Opens {@code file} at its end (creating it, readable by its owner only), after ending a last
     * line that a crash or a failed batch left without its {@code '\n'}.
     */
    private void openFile() throws IOException {
        boolean creating = Files.notExists(file);
        FileChannel opened = PrivateFiles.open(file, Set.of(OPEN));
        try {
            long end = opened.size();
            if (end > 0) {
                ByteBuffer last = ByteBuffer.allocate(1);
                opened.read(last, end - 1);
                if (last.get(0) != '\n') {
                    end += opened.write(ByteBuffer.wrap(new byte[] {'\n'}), end);
                }
            }
            opened.position(end);
            if (creating) {
                SnapshotFiles.forceDirectory(dir);  // the new name, and the renames of a rotation before it
            }
            channel = opened;
            size = end;
        } catch (IOException | RuntimeException e) {
            try {
                opened.close();
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /** file.(N-1) -> file.N ... file -> file.1, then a new file. */
    private void rotate() throws IOException {
        channel.force(false);
        closeChannel();
        try {
            for (int i = keepFiles + 1; Files.deleteIfExists(older(i)); i++) {
                // Left by a run that kept more files.
            }
            for (int i = keepFiles - 1; i >= 1; i--) {
                if (Files.exists(older(i))) {
                    move(older(i), older(i + 1));  // replaces (deletes) the oldest
                }
            }
            move(file, older(1));
            if (rotationFailing) {
                log.info("audit log {}: rotated again", file);
                rotationFailing = false;
            }
        } catch (IOException e) {
            if (!rotationFailing) {
                log.error("audit log {}: cannot rotate; it grows past {} bytes until it can", file, rotateBytes, e);
                rotationFailing = true;
            }
        }
        openFile();
    }

    private Path older(int n) {
        return file.resolveSibling(file.getFileName() + "." + n);
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);  // a POSIX rename replaces `to`
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    private void closeChannel() {
        try {
            channel.close();
        } catch (IOException e) {
            log.warn("audit log {}: cannot close it", file, e);
        }
        channel = null;
    }

    private static void fail(List<Queued> batch, Throwable cause) {
        for (Queued q : batch) {
            q.written.completeExceptionally(cause);
        }
    }
}
