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
 * <p>Preallocation: the file is extended with zeros {@link #PREALLOCATE_BYTES} at a time ahead of
 * the records, so that a force rarely has a file size to journal as well (DurableWriteBenchmark,
 * one writer: mean 1.41 ms before, 0.99 ms after). A record is never empty, so a zero length marks
 * the end of the log; replay then checks that no valid record follows the zeros.
 */
final class WriteAheadLog implements AutoCloseable {

    static final int HEADER_BYTES = 8;
    /** Zeros written ahead of the records at a time. */
    static final int PREALLOCATE_BYTES = 16 * 1024 * 1024;
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
        long to = Math.max(needed, allocated + PREALLOCATE_BYTES);
        for (long at = allocated; at < to; ) {
            ByteBuffer zeros = ZEROS.duplicate();
            zeros.limit((int) Math.min(zeros.capacity(), to - at));
            at += channel.write(zeros, at);
        }
        allocated = to;
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

    /** How a log's replay ended. */
    enum End {
        /** After its last record (and any preallocated zeros). */
        CLEAN,
        /** In a record a crash could have left unfinished: never acknowledged, to be cut off. */
        TORN,
        /** In a record that was written whole and is wrong, or with valid records after it. */
        DAMAGED
    }

    /**
     * What {@link #replay} found: the records applied, the byte where they end (where a torn or
     * damaged record begins), how it ended and, unless {@link End#CLEAN}, what is wrong there.
     */
    record Replayed(long records, long validBytes, End end, String problem) {
    }

    /** Disk sectors are written whole or not at all; a crash leaves an unwritten one as it was: zeros. */
    static final int SECTOR_BYTES = 512;

    /**
     * Reads every record of {@code file} in order, handing each payload to {@code apply}; changes
     * nothing (see {@link #cutTornTail}). A record that is cut short or fails its CRC ends the
     * replay, and is told apart, as etcd's WAL does:
     * <ul>
     * <li>TORN only where a crash can have left it so, in the {@code newest} log (older ones were
     * forced whole before the next began), with no valid record after it: its header or length
     * runs past the end of the file, or one of its sector-aligned parts is still all zeros (the
     * preallocated space was not overwritten there). Such a record was never acknowledged:
     * acknowledgement waits for the force that would have written it whole.
     * <li>DAMAGED otherwise: a whole record whose CRC fails was written and forced, so it may have
     * been acknowledged, as may the records after it. So is a length that one flipped bit makes
     * wrong (flipped back, the record checks out), a record that breaks the revision chain or its
     * digest ({@code apply} throws IllegalStateException), and zeros where a record should be when
     * a valid record follows them.
     * </ul>
     */
    static Replayed replay(Path file, int maxRecordBytes, boolean newest, Consumer<ByteBuffer> apply)
            throws IOException {
        try (FileChannel in = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = in.size();
            long at = 0;
            long records = 0;
            ByteBuffer head = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            ByteBuffer body = ByteBuffer.allocate(64 * 1024);
            CRC32C crc = new CRC32C();
            String problem = null;
            int length = 0;
            int expectedCrc = 0;
            while (at < size) {
                if (size - at < HEADER_BYTES) {
                    problem = "a record header cut short (" + (size - at) + " of " + HEADER_BYTES + " bytes)";
                    break;
                }
                head.clear();
                readFully(in, head, at);
                head.flip();
                length = head.getInt();
                expectedCrc = head.getInt();
                if (length == 0 && expectedCrc == 0) {
                    problem = "";  // the end of the records: preallocated zeros follow
                    break;
                }
                if (length <= 0 || length > maxRecordBytes) {
                    problem = "a record length of " + Integer.toUnsignedString(length) + " bytes (expected: 1 to "
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
                    // It passed its CRC but breaks the revision chain or its digest: damage, wherever it is.
                    return new Replayed(records, at, End.DAMAGED, e.getMessage());
                }
                records++;
                at += HEADER_BYTES + length;
            }
            if (problem == null) {
                return new Replayed(records, at, End.CLEAN, null);
            }
            long valid = nextValidRecord(in, at + 1, size, maxRecordBytes);
            if (problem.isEmpty()) {
                if (valid < 0) {
                    return new Replayed(records, at, End.CLEAN, null);
                }
                problem = "zeros where a record should be";
            }
            if (valid >= 0) {
                return new Replayed(records, at, End.DAMAGED, problem + ", but a valid record follows at byte " + valid
                        + ": this is damage inside the log, not a torn end, and acknowledged writes may follow it");
            }
            if (!newest) {
                return new Replayed(records, at, End.DAMAGED,
                        problem + "; a log that was complete before a later one began cannot be cut");
            }
            if (size - at >= HEADER_BYTES) {
                int flipped = lengthOneBitAway(in, at, length, expectedCrc, size, maxRecordBytes);
                if (flipped > 0) {
                    return new Replayed(records, at, End.DAMAGED, problem + ": its length field is damaged (with "
                            + flipped + ", one bit away, the record checks out), so the record was written whole");
                }
            }
            long end = size - at < HEADER_BYTES ? Long.MAX_VALUE : at + HEADER_BYTES + Integer.toUnsignedLong(length);
            if (end > size || hasUnwrittenSector(in, at, end)) {
                return new Replayed(records, at, End.TORN, problem);
            }
            return new Replayed(records, at, End.DAMAGED, problem + ": the record is whole (no " + SECTOR_BYTES
                    + "-byte sector of it is unwritten zeros), so it was written and then damaged, not torn by a"
                    + " crash; it may have been acknowledged");
        }
    }

    /**
     * Whether a part of {@code [from, to)} between two sector boundaries of the file (the first
     * and last parts may be shorter than a sector) is all zeros: a sector of the record that never
     * reached the disk. Any part counts, even a short one: a crash tears at sector boundaries.
     */
    static boolean hasUnwrittenSector(FileChannel in, long from, long to) throws IOException {
        ByteBuffer sector = ByteBuffer.allocate(SECTOR_BYTES);
        for (long part = from; part < to; ) {
            long next = Math.min(to, (part / SECTOR_BYTES + 1) * SECTOR_BYTES);
            sector.clear().limit((int) (next - part));
            readFully(in, sector, part);
            boolean zeros = true;
            for (int i = 0; i < sector.limit() && zeros; i++) {
                zeros = sector.get(i) == 0;
            }
            if (zeros) {
                return true;
            }
            part = next;
        }
        return false;
    }

    /**
     * A length one bit away from {@code length} with which the record at {@code at} is whole and
     * passes its CRC, or 0: then the length field, not the record, is what went wrong.
     */
    private static int lengthOneBitAway(FileChannel in, long at, int length, int expectedCrc, long size,
            int maxRecordBytes) throws IOException {
        long room = Math.min(size - at - HEADER_BYTES, maxRecordBytes);
        int longest = 0;
        for (int bit = 0; bit < 32; bit++) {
            int candidate = length ^ (1 << bit);
            if (candidate > 0 && candidate <= room) {
                longest = Math.max(longest, candidate);
            }
        }
        if (longest == 0) {
            return 0;
        }
        ByteBuffer body = ByteBuffer.allocate(longest);
        readFully(in, body, at + HEADER_BYTES);
        CRC32C crc = new CRC32C();
        for (int bit = 0; bit < 32; bit++) {
            int candidate = length ^ (1 << bit);
            if (candidate > 0 && candidate <= longest) {
                crc.reset();
                crc.update(body.duplicate().position(0).limit(candidate));
                if ((int) crc.getValue() == expectedCrc) {
                    return candidate;
                }
            }
        }
        return 0;
    }

    /**
     * Cuts the newest log at {@code at}, where {@link #replay} found a torn record, after keeping
     * the file as it was in {@code <file>.torn-<at>} (up to its last byte that is not zero: the
     * preallocated zeros after it are left out), forced to disk first. Returns the kept file.
     * Recovery never reads the kept file and snapshots never delete it.
     */
    static Path cutTornTail(Path file, long at) throws IOException {
        Path kept = file.resolveSibling(file.getFileName() + ".torn-" + at);
        for (int n = 2; java.nio.file.Files.exists(kept); n++) {
            kept = file.resolveSibling(file.getFileName() + ".torn-" + at + "-" + n);
        }
        Path partial = kept.resolveSibling(kept.getFileName() + ".tmp");  // deleted by recovery if left
        try (FileChannel in = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long end = lastNonZero(in) + 1;
            try (FileChannel out = FileChannel.open(partial, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                for (long done = 0; done < end; ) {
                    done += in.transferTo(done, end - done, out);
                }
                out.force(true);
            }
            java.nio.file.Files.move(partial, kept, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            SnapshotFiles.forceDirectory(file.getParent());
            in.truncate(at);
            in.force(true);
        }
        return kept;
    }

    /** The offset of the file's last byte that is not zero, or -1. */
    private static long lastNonZero(FileChannel in) throws IOException {
        long size = in.size();
        ByteBuffer block = ByteBuffer.allocate(64 * 1024);
        for (long blockEnd = size; blockEnd > 0; ) {
            long from = Math.max(0, blockEnd - block.capacity());
            block.clear().limit((int) (blockEnd - from));
            readFully(in, block, from);
            for (int i = block.limit() - 1; i >= 0; i--) {
                if (block.get(i) != 0) {
                    return from + i;
                }
            }
            blockEnd = from;
        }
        return -1;
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
