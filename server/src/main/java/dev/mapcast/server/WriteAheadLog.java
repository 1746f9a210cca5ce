package dev.mapcast.server;

import dev.mapcast.codec.SnapshotFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.function.Consumer;
import java.util.zip.CRC32C;

/**
 * One map's write-ahead log: a sequence of records, each {@code [u32 payload length][u32 CRC-32C of
 * the payload][payload]} (little-endian), the payload being a {@code WatchResponse} (a delta or a
 * compaction event) exactly as watchers are sent it. The log is one file from a snapshot to the
 * next ({@link MapStore} rotates it).
 *
 * <p>Group commit: records are appended (written to the file, not forced) under the map's write
 * lock, in revision order; then each writer, without the lock, waits in {@link #awaitDurable} until
 * a force has covered its record. The first writer to wait forces the file for every record
 * appended so far; the others wait for it, so concurrent writes share one fsync.
 *
 * <p>A failed write or force poisons the log: every later append and wait fails, and the map
 * refuses writes until the server restarts and recovers from what reached the disk (after a failed
 * fsync the kernel may have dropped the pages: retrying it would claim durability it cannot give).
 *
 * <p>Preallocation: the file is extended with zeros ahead of the records, so that a force rarely
 * has a file size to journal as well (DurableWriteBenchmark, one writer: mean 1.41 ms before, 0.99
 * ms after). Each step is the file's size, at least {@link #FIRST_GROWTH_BYTES} and at most
 * {@link #MAX_GROWTH_BYTES}: a small map's log takes 64 KiB, a busy one's grows in few steps. When
 * the disk has no room for a step, the record gets just its own bytes. A record is never empty, so
 * a zero length marks the end of the log; replay then checks that no valid record follows the
 * zeros.
 */
final class WriteAheadLog implements AutoCloseable {

    static final int HEADER_BYTES = 8;
    /** The first preallocation step: what a new map's log takes on disk. */
    static final long FIRST_GROWTH_BYTES = 64 * 1024;
    /** The largest preallocation step. */
    static final long MAX_GROWTH_BYTES = 16 * 1024 * 1024;
    private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(1024 * 1024).asReadOnlyBuffer();

    private final FsyncMode mode;
    private final Object monitor = new Object();
    private final CRC32C crc = new CRC32C();
    private final ByteBuffer header = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);

    private FileChannel channel;
    private Path file;
    /** Logical offset (across rotations) of the end of the last appended record. */
    private volatile long written;
    /** Guarded by monitor: logical offset up to which records are on disk, and whether a force runs. */
    private long synced;
    private boolean syncing;
    private IOException failed;
    /** File offset up to which the file exists (records, then preallocated zeros); under the map's write lock. */
    private long allocated;

    /**
     * Opens {@code file} for appending at {@code end}, the end of its records as {@link #replay}
     * found it (0 for a new file).
     */
    WriteAheadLog(Path file, FsyncMode mode, long end) throws IOException {
        this.mode = mode;
        this.file = file;
        this.channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
        channel.position(end);
        allocated = channel.size();
    }

    Path file() {
        return file;
    }

    /**
     * Appends one record; called under the map's write lock. Returns the logical offset to pass to
     * {@link #awaitDurable}. If writing fails, the partial record is cut off when possible.
     */
    long append(ByteBuffer payload) throws IOException {
        checkHealthy();
        ByteBuffer body = payload.duplicate();
        crc.reset();
        crc.update(body.duplicate());
        header.clear();
        header.putInt(body.remaining()).putInt((int) crc.getValue()).flip();
        long start = channel.position();
        try {
            if (start + HEADER_BYTES + body.remaining() > allocated) {
                preallocate(start + HEADER_BYTES + body.remaining());
            }
            ByteBuffer[] parts = {header, body};
            while (header.hasRemaining() || body.hasRemaining()) {
                channel.write(parts);
            }
        } catch (IOException e) {
            try {
                channel.truncate(start);
                channel.position(start);
                allocated = start;
            } catch (IOException cut) {
                e.addSuppressed(cut);
                poison(e);
            }
            throw e;
        }
        long end = written + HEADER_BYTES + payload.remaining();
        written = end;
        return end;
    }

    /** Extends the file with zeros past {@code needed}; the next force makes them durable with the records. */
    private void preallocate(long needed) throws IOException {
        long step = Math.max(FIRST_GROWTH_BYTES, Math.min(MAX_GROWTH_BYTES, allocated));
        long to = Math.max(needed, allocated + step);
        try {
            writeZeros(allocated, to);
        } catch (IOException e) {
            if (to == needed || !isNoSpace(e, to - allocated)) {
                throw e;
            }
            // A nearly full disk: give back the zeros that fit and take just the record's room.
            channel.truncate(allocated);
            writeZeros(allocated, needed);
            to = needed;
        }
        allocated = to;
    }

    private void writeZeros(long from, long until) throws IOException {
        for (long at = from; at < until; ) {
            ByteBuffer zeros = ZEROS.duplicate();
            zeros.limit((int) Math.min(zeros.capacity(), until - at));
            at += channel.write(zeros, at);
        }
    }

    /** Whether {@code e} says the disk (or the quota) is full, or the file's store has less than {@code needed} left. */
    private boolean isNoSpace(IOException e, long needed) {
        String m = e.getMessage();
        if (m != null && (m.contains("No space left on device") || m.contains("Disk quota exceeded"))) {
            return true;
        }
        try {
            return java.nio.file.Files.getFileStore(file).getUsableSpace() < needed;
        } catch (IOException | RuntimeException unknown) {
            return false;
        }
    }

    /** Returns once the record ending at {@code end} is on disk (at once unless {@link FsyncMode#ALWAYS}). */
    void awaitDurable(long end) throws IOException {
        if (mode != FsyncMode.ALWAYS) {
            checkHealthy();
            return;
        }
        FileChannel toForce;
        long target;
        synchronized (monitor) {
            while (true) {
                if (failed != null) {
                    throw new IOException("the write-ahead log " + file + " failed earlier", failed);
                }
                if (synced >= end) {
                    return;
                }
                if (!syncing) {
                    break;
                }
                try {
                    monitor.wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted waiting for the write-ahead log to reach the disk", e);
                }
            }
            syncing = true;
            toForce = channel;
            target = written;
        }
        IOException error = null;
        try {
            toForce.force(false);
        } catch (IOException e) {
            error = e;
        }
        synchronized (monitor) {
            syncing = false;
            if (error != null) {
                failed = error;
            } else {
                synced = Math.max(synced, target);
            }
            monitor.notifyAll();
        }
        if (error != null) {
            throw error;
        }
    }

    /** Forces what is appended now (the periodic mode's background flush, and clean shutdown). */
    void force() throws IOException {
        long end = written;
        if (mode == FsyncMode.ALWAYS) {
            awaitDurable(end);
            return;
        }
        synchronized (monitor) {
            checkHealthy();
            try {
                channel.force(false);
                synced = end;
            } catch (IOException e) {
                failed = e;
                throw e;
            }
        }
    }

    /**
     * Continues in {@code next} (a new, empty file); called under the map's write lock. Everything
     * appended so far is forced first, so no waiter needs the old file any more. Returns the old
     * file's channel, closed.
     */
    void rotate(Path next) throws IOException {
        FileChannel fresh = FileChannel.open(next, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        synchronized (monitor) {
            while (syncing) {
                try {
                    monitor.wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    fresh.close();
                    throw new IOException("interrupted rotating the write-ahead log", e);
                }
            }
            try {
                checkHealthy();
                channel.force(false);
            } catch (IOException e) {
                fresh.close();
                poison(e);
                throw e;
            }
            synced = written;
            FileChannel old = channel;
            old.truncate(old.position());  // the old log keeps no zeros past its records
            channel = fresh;
            file = next;
            allocated = 0;
            old.close();
            monitor.notifyAll();
        }
        SnapshotFiles.forceDirectory(next.getParent());
    }

    @Override
    public void close() throws IOException {
        synchronized (monitor) {
            channel.close();
        }
    }

    private void checkHealthy() throws IOException {
        IOException e;
        synchronized (monitor) {
            e = failed;
        }
        if (e != null) {
            throw new IOException("the write-ahead log " + file + " failed earlier", e);
        }
    }

    private void poison(IOException e) {
        synchronized (monitor) {
            if (failed == null) {
                failed = e;
            }
            monitor.notifyAll();
        }
    }

    /** What {@link #replay} found. */
    record Replayed(long records, long validBytes, long droppedBytes, String droppedReason) {
    }

    /**
     * Reads every record of {@code file} in order, handing each payload to {@code apply}. A record
     * that is cut short or fails its CRC ends the replay: if {@code cutTornTail}, the file is
     * truncated there (that record was never acknowledged: acknowledgement waits for the force);
     * otherwise it is an error naming the file and offset.
     */
    static Replayed replay(Path file, int maxRecordBytes, boolean cutTornTail, Consumer<ByteBuffer> apply)
            throws IOException {
        try (FileChannel in = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long size = in.size();
            long at = 0;
            long records = 0;
            ByteBuffer head = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            ByteBuffer body = ByteBuffer.allocate(64 * 1024);
            CRC32C crc = new CRC32C();
            String problem = null;
            while (at < size) {
                if (size - at < HEADER_BYTES) {
                    problem = "a record header cut short (" + (size - at) + " of " + HEADER_BYTES + " bytes)";
                    break;
                }
                head.clear();
                readFully(in, head, at);
                head.flip();
                int length = head.getInt();
                int expectedCrc = head.getInt();
                if (length == 0 && expectedCrc == 0) {
                    problem = "";  // the end of the records: preallocated zeros follow
                    break;
                }
                if (length <= 0 || length > maxRecordBytes) {
                    problem = "a record length of " + Integer.toUnsignedString(length) + " bytes (expected: at most "
                            + maxRecordBytes + ")";
                    break;
                }
                if (size - at - HEADER_BYTES < length) {
                    problem = "a record cut short (" + (size - at - HEADER_BYTES) + " of " + length + " bytes)";
                    break;
                }
                if (body.capacity() < length) {
                    body = ByteBuffer.allocate(Math.max(length, body.capacity() * 2));
                }
                body.clear().limit(length);
                readFully(in, body, at + HEADER_BYTES);
                body.flip();
                crc.reset();
                crc.update(body.duplicate());
                if ((int) crc.getValue() != expectedCrc) {
                    problem = String.format("a record whose CRC-32C is %08x (its header says %08x)",
                            (int) crc.getValue(), expectedCrc);
                    break;
                }
                try {
                    apply.accept(body.asReadOnlyBuffer());
                } catch (IllegalStateException e) {
                    // A record that passed its CRC but breaks the revision chain or its digest: damage,
                    // wherever it is in the log.
                    throw new StorageException(file + " at byte " + at + ": " + e.getMessage(), e);
                }
                records++;
                at += HEADER_BYTES + length;
            }
            long valid = problem == null ? -1 : nextValidRecord(in, at + 1, size, maxRecordBytes);
            if (problem == null || (problem.isEmpty() && valid < 0)) {
                return new Replayed(records, at, 0, null);
            }
            if (problem.isEmpty()) {
                problem = "zeros where a record should be";
            }
            if (!cutTornTail) {
                throw new StorageException(file + " at byte " + at + ": " + problem
                        + "; a log that was complete before a later one began cannot be cut");
            }
            if (valid >= 0) {
                throw new StorageException(file + " at byte " + at + ": " + problem + ", but a valid record follows"
                        + " at byte " + valid + ": this is damage inside the log, not a torn end, and acknowledged"
                        + " writes may follow it; restore the map from a snapshot file or repair the log");
            }
            in.truncate(at);
            in.force(true);
            return new Replayed(records, at, size - at, problem);
        }
    }

    /**
     * The offset of the first whole record with a matching CRC at or after {@code from}, or -1.
     * A torn end has none: whatever follows the last record a force covered is unacknowledged.
     */
    private static long nextValidRecord(FileChannel in, long from, long size, int maxRecordBytes) throws IOException {
        if (size - from < HEADER_BYTES) {
            return -1;
        }
        // In memory, not a read per offset: the tail can be megabytes of preallocated zeros.
        java.nio.MappedByteBuffer tail = in.map(FileChannel.MapMode.READ_ONLY, from,
                Math.min(size - from, Integer.MAX_VALUE));
        tail.order(ByteOrder.LITTLE_ENDIAN);
        CRC32C crc = new CRC32C();
        int limit = tail.limit();
        for (int at = 0; limit - at >= HEADER_BYTES; at++) {
            int length = tail.getInt(at);
            if (length <= 0 || length > maxRecordBytes || limit - at - HEADER_BYTES < length) {
                continue;
            }
            crc.reset();
            crc.update(tail.duplicate().position(at + HEADER_BYTES).limit(at + HEADER_BYTES + length));
            if ((int) crc.getValue() == tail.getInt(at + 4)) {
                return from + at;
            }
        }
        return -1;
    }

    private static void readFully(FileChannel in, ByteBuffer dst, long position) throws IOException {
        long p = position;
        while (dst.hasRemaining()) {
            int n = in.read(dst, p);
            if (n < 0) {
                throw new StorageException("unexpected end of file reading at byte " + p);
            }
            p += n;
        }
    }
}
