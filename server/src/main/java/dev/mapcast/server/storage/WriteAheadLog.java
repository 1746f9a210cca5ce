package dev.mapcast.server.storage;

import com.sun.nio.file.ExtendedOpenOption;
import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.server.FsyncMode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
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
 * <p>Failures: a record the disk has no room for is cut off again and refused ({@link DiskFull});
 * the log stays healthy. Any other failed write that cannot be cut off, or any failed force, makes
 * the log <em>failing</em>: every append and wait fails ({@link Failed}, naming the first cause)
 * until {@link #reopen} has written it again and checked it on disk. A file that lost its name
 * (removed, renamed, replaced, its directory removed) is {@link Gone}: never reopened.
 *
 * <p>Preallocation: the file is extended with zeros ahead of the records, so that a force rarely
 * has a file size to journal as well (DurableWriteBenchmark, one writer: mean 1.41 ms before, 0.99
 * ms after). Each step is the file's size, at least {@link #FIRST_GROWTH_BYTES} and at most
 * {@link #MAX_GROWTH_BYTES}: a small map's log takes 64 KiB, a busy one's grows in few steps. When
 * the disk has no room for a step, the record gets just its own bytes. A record is never empty, so
 * a zero length marks the end of the log; replay then checks that no valid record follows the
 * zeros.
 *
 * <p>Implementation notes.
 * <ul>
 * <li>Acknowledged prefix: {@code syncedFileEnd} is where the records a successful force covered
 * end in the current file, {@code syncedFileCrc} the CRC-32C of the file's bytes before it, and
 * {@code pending} holds the records appended after it (their payloads are the encoded events the
 * map's history holds anyway). A force drops what it covered from {@code pending}. Appends happen
 * under the map's write lock; {@code pending}, the synced figures and the failure state are guarded
 * by {@code monitor}.
 * <li>Why a failed log is not simply forced again: after a failed fsync Linux marks the dirty
 * pages clean, so the page cache can hold bytes the disk never got, and a second fsync succeeds
 * without writing them. Reading the file back through the cache would see them too. So
 * {@link #reopen}, under the map's write lock (no appends meanwhile), (1) checks the path still
 * names the file; (2) opens it again and rewrites every record after the acknowledged prefix from
 * memory (so the map's memory, which holds those unacknowledged writes, matches the disk again),
 * cuts whatever a failed append left after them, writes the zero end mark (a write that must
 * succeed) and forces; (3) reads the file back from the disk itself (O_DIRECT where the file system
 * allows it, else through the cache) and compares the CRC-32C of the acknowledged prefix, then of
 * the whole, with what was written. A prefix that differs (or a file now shorter than it) means
 * acknowledged writes are gone: {@link Lost}, the map goes out of service and is not reopened. A
 * tail that differs, or any error, leaves the log failing for the next attempt.
 * <li>Identity: after each successful force (and rotation) the path is checked to still name a
 * file ({@code access(2)}, one per group commit, not per record), and at most once a second (and
 * at each rotation and reopen) to name the very file that was forced ({@code fileKey}: device and
 * inode; see {@link #IDENTITY_CHECK_NANOS} for why not every time). A file removed or renamed keeps
 * working through its open descriptor, so without this check writes would be acknowledged into a
 * file no restart reads. A file replaced by another under its name is seen within a second: writes
 * acknowledged meanwhile are in the replaced file, not where a restart looks. When the path is then free and
 * its directory still there, the acknowledged prefix is copied back to it from the open
 * descriptor, so a restart finds every acknowledged write rather than an older state. A rename
 * after the last check and before an acknowledgement is not seen: the check narrows the window,
 * it cannot close it.
 * </ul>
 */
public final class WriteAheadLog implements AutoCloseable {

    public static final int HEADER_BYTES = 8;
    /** The first preallocation step: what a new map's log takes on disk. */
    static final long FIRST_GROWTH_BYTES = 64 * 1024;
    /** The largest preallocation step. */
    static final long MAX_GROWTH_BYTES = 16 * 1024 * 1024;
    private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(1024 * 1024).asReadOnlyBuffer();
    /**
     * How often a force checks that the path names the very file ({@code lstat}), not just that
     * it exists ({@code access}): on ext4 here an {@code lstat} after each {@code fdatasync} made the
     * next one about 80 us slower (p50 of 330 us), {@code access} did not.
     */
    private static final long IDENTITY_CHECK_NANOS = 1_000_000_000L;
    /** For {@link #checkNamed}: the path must exist, whatever file it names. */
    private static final Object NAME_ONLY = new Object();

    private final FsyncMode mode;
    private final Object monitor = new Object();
    private final CRC32C crc = new CRC32C();
    /** Every byte of the current file's records so far; under the map's write lock. */
    private final CRC32C fileCrc = new CRC32C();
    private final ByteBuffer header = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);

    private FileChannel channel;
    private Path file;
    /** The file's identity when opened (null where the platform has none). */
    private Object fileKey;
    /** Logical offset (across rotations) of the end of the last appended record. */
    private volatile long written;
    /** Guarded by monitor: logical offset up to which records are on disk, and whether a force runs. */
    private long synced;
    private boolean syncing;
    /** Guarded by monitor: records appended to the current file after the acknowledged prefix. */
    private final ArrayDeque<Pending> pending = new ArrayDeque<>();
    private long syncedFileEnd;
    private int syncedFileCrc;
    /** Guarded by monitor: the first failure since the log was last healthy, and whether it was reported. */
    private IOException failed;
    private boolean failureReported;
    /** Guarded by monitor: {@link Gone} or {@link Lost}, never reopened. */
    private IOException unrecoverable;
    /** {@code failed != null}, read without the monitor. */
    private volatile boolean failing;
    /** File offset up to which the file exists (records, then preallocated zeros); under the map's write lock. */
    private long allocated;
    /** When a force last checked the file's identity, not just its name; read and written by the forcing thread. */
    private long identityCheckedAt = System.nanoTime() - IDENTITY_CHECK_NANOS;

    /** A record appended after the acknowledged prefix: enough to write it again, and the file's CRC after it. */
    private record Pending(long end, long fileStart, int length, int recordCrc, int fileCrcAfter, ByteBuffer payload) {
        long fileEnd() {
            return fileStart + HEADER_BYTES + length;
        }
    }

    /** The disk has no room for a record; nothing was written. */
    public static final class DiskFull extends IOException {
        private static final long serialVersionUID = 1L;
        public final long needed;

        public DiskFull(Path file, long needed, IOException cause) {
            super("no space left on the device for " + needed + " bytes of " + file, cause);
            this.needed = needed;
        }
    }

    /** The log's file lost its name while in use: removed, renamed, replaced, or its directory removed. */
    public static final class Gone extends IOException {
        private static final long serialVersionUID = 1L;

        public Gone(String message) {
            super(message);
        }
    }

    /** On reopening, the disk no longer held every acknowledged record. */
    public static final class Lost extends IOException {
        private static final long serialVersionUID = 1L;

        public Lost(String message) {
            super(message);
        }
    }

    /** The log failed earlier and has not been written again since; the cause is the first failure. */
    public static final class Failed extends IOException {
        private static final long serialVersionUID = 1L;

        public Failed(Path file, IOException first) {
            super("the write-ahead log " + file + " failed earlier (" + describe(first) + ")", first);
        }
    }

    /**
     * Opens {@code file} for appending at {@code end}, the end of its records as {@link #replay}
     * found it (0 for a new file).
     */
    public WriteAheadLog(Path file, FsyncMode mode, long end) throws IOException {
        this.mode = mode;
        this.file = file;
        this.channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
        try {
            fileKey = identity(file);
            // The records replay just read (in the page cache): what a later reopen checks the disk against.
            ByteBuffer buffer = ByteBuffer.allocate(64 * 1024);
            for (long at = 0; at < end; ) {
                buffer.clear().limit((int) Math.min(buffer.capacity(), end - at));
                readFully(channel, buffer, at);
                buffer.flip();
                at += buffer.remaining();
                fileCrc.update(buffer);
            }
            syncedFileEnd = end;
            syncedFileCrc = (int) fileCrc.getValue();
            channel.position(end);
            allocated = channel.size();
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    Path file() {
        return file;
    }

    /**
     * Appends one record; called under the map's write lock. Returns the logical offset to pass to
     * {@link #awaitDurable}. If writing fails, the partial record is cut off when possible (else the
     * log is failing); {@link DiskFull} if the disk had no room for it.
     */
    public long append(ByteBuffer payload) throws IOException {
        checkHealthy();
        ByteBuffer body = payload.duplicate();
        int length = body.remaining();
        crc.reset();
        crc.update(body.duplicate());
        int recordCrc = (int) crc.getValue();
        header.clear();
        header.putInt(length).putInt(recordCrc).flip();
        long start = channel.position();
        long recordEnd = start + HEADER_BYTES + length;
        try {
            if (recordEnd > allocated) {
                preallocate(recordEnd);
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
                synchronized (monitor) {
                    fail(e);
                }
                throw failure();
            }
            if (isNoSpace(e, file, HEADER_BYTES + length)) {
                throw new DiskFull(file, HEADER_BYTES + length, e);
            }
            throw e;
        }
        fileCrc.update(header.array(), 0, HEADER_BYTES);
        fileCrc.update(payload.duplicate());
        long end = written + HEADER_BYTES + length;
        synchronized (monitor) {
            pending.add(new Pending(end, start, length, recordCrc, (int) fileCrc.getValue(), payload.duplicate()));
        }
        written = end;
        return end;
    }

    /** Extends the file with zeros past {@code needed}; the next force makes them durable with the records. */
    private void preallocate(long needed) throws IOException {
        long step = Math.max(FIRST_GROWTH_BYTES, Math.min(MAX_GROWTH_BYTES, allocated));
        long to = Math.max(needed, allocated + step);
        try {
            writeZeros(channel, allocated, to);
        } catch (IOException e) {
            if (to == needed || !isNoSpace(e, file, to - allocated)) {
                throw e;
            }
            // A nearly full disk: give back the zeros that fit and take just the record's room.
            channel.truncate(allocated);
            writeZeros(channel, allocated, needed);
            to = needed;
        }
        allocated = to;
    }

    /** Returns once the record ending at {@code end} is on disk (at once unless {@link FsyncMode#ALWAYS}). */
    public void awaitDurable(long end) throws IOException {
        if (mode != FsyncMode.ALWAYS) {
            checkHealthy();
            return;
        }
        forceThrough(end);
    }

    /**
     * Group commit: returns once a force has covered {@code end}, forcing the file itself if no
     * force runs; then the path is checked to still name the file.
     */
    private void forceThrough(long end) throws IOException {
        FileChannel toForce;
        Path forced;
        Object key;
        long target;
        synchronized (monitor) {
            while (true) {
                if (failed != null) {
                    throw failure();
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
            forced = file;
            key = fileKey;
            target = written;
        }
        IOException error = null;
        try {
            toForce.force(false);
            long now = System.nanoTime();
            boolean identity = now - identityCheckedAt >= IDENTITY_CHECK_NANOS;
            checkNamed(forced, identity ? key : NAME_ONLY);
            if (identity) {
                identityCheckedAt = now;
            }
        } catch (IOException e) {
            error = e;
        }
        synchronized (monitor) {
            syncing = false;
            if (error != null) {
                fail(error);
            } else {
                synced = Math.max(synced, target);
                while (!pending.isEmpty() && pending.peekFirst().end() <= target) {
                    Pending p = pending.removeFirst();
                    syncedFileEnd = p.fileEnd();
                    syncedFileCrc = p.fileCrcAfter();
                }
            }
            monitor.notifyAll();
            if (error != null) {
                throw failure();
            }
        }
    }

    /** Forces what is appended now (the periodic mode's background flush, and clean shutdown). */
    void force() throws IOException {
        forceThrough(written);
    }

    /**
     * Continues in {@code next} (a new, empty file); called under the map's write lock. Everything
     * appended so far is forced first, so no waiter needs the old file any more. Returns the old
     * file's channel, closed.
     */
    void rotate(Path next) throws IOException {
        FileChannel fresh = FileChannel.open(next, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
        synchronized (monitor) {
            while (syncing) {
                try {
                    monitor.wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    discard(fresh, next);
                    throw new IOException("interrupted rotating the write-ahead log", e);
                }
            }
            Object freshKey;
            try {
                if (failed != null) {
                    throw failure();
                }
                channel.force(false);
                // The force acknowledges every waiter: only if the records are where a restart looks.
                checkNamed(file, fileKey);
                freshKey = identity(next);
            } catch (IOException e) {
                discard(fresh, next);
                if (failed == null) {
                    fail(e);
                }
                throw failure();
            }
            synced = written;
            pending.clear();
            FileChannel old = channel;
            old.truncate(old.position());  // the old log keeps no zeros past its records
            channel = fresh;
            file = next;
            fileKey = freshKey;
            allocated = 0;
            fileCrc.reset();
            syncedFileEnd = 0;
            syncedFileCrc = 0;
            old.close();
            monitor.notifyAll();
        }
        SnapshotFiles.forceDirectory(next.getParent());
    }

    /** Whether the log is failing: appends and waits fail until {@link #reopen} succeeds. */
    public boolean failing() {
        return failing;
    }

    /** The first failure of the log as it is failing now, or null. */
    IOException firstFailure() {
        synchronized (monitor) {
            return failed;
        }
    }

    /** The first failure if nobody reported it yet (then it counts as reported), else null. */
    IOException claimFailureReport() {
        synchronized (monitor) {
            if (failed == null || failureReported) {
                return null;
            }
            failureReported = true;
            return failed;
        }
    }

    /**
     * One attempt to make a failing log healthy again (see the implementation notes); under the
     * map's write lock. Returns true once healthy (at once if it was), false if it still cannot be
     * written; throws {@link Gone} or {@link Lost} if it never will be.
     */
    public boolean reopen() throws IOException {
        List<Pending> tail;
        long prefixEnd;
        int prefixCrc;
        synchronized (monitor) {
            while (syncing) {
                try {
                    monitor.wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            }
            if (failed == null) {
                return true;
            }
            if (unrecoverable != null) {
                throw unrecoverable;
            }
            tail = new ArrayList<>(pending);
            prefixEnd = syncedFileEnd;
            prefixCrc = syncedFileCrc;
        }
        long end = tail.isEmpty() ? prefixEnd : tail.get(tail.size() - 1).fileEnd();
        try {
            checkNamed(file, fileKey);
        } catch (Gone g) {
            synchronized (monitor) {
                fail(g);
            }
            throw g;
        } catch (IOException e) {
            return false;
        }
        FileChannel fresh = null;
        try {
            fresh = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
            ByteBuffer head = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            for (Pending p : tail) {
                head.clear();
                head.putInt(p.length()).putInt(p.recordCrc()).flip();
                writeFully(fresh, head, p.fileStart());
                writeFully(fresh, p.payload().duplicate(), p.fileStart() + HEADER_BYTES);
            }
            fresh.truncate(end);  // whatever a failed append left after the records
            writeZeros(fresh, end, end + HEADER_BYTES);  // the end mark
            fresh.force(true);
            long[] onDisk = diskCrcs(file, prefixEnd, end);
            if (onDisk[0] != Integer.toUnsignedLong(prefixCrc)) {
                Lost lost = new Lost("reading " + file + " back from the disk, its first " + prefixEnd + " bytes (every"
                        + " acknowledged record) " + (onDisk[0] < 0 ? "are not all there" : "differ from what was written")
                        + ": acknowledged writes were lost");
                synchronized (monitor) {
                    fail(lost);
                }
                throw lost;
            }
            if (onDisk[1] != Integer.toUnsignedLong((int) fileCrc.getValue())) {
                fresh.close();
                return false;  // the rewritten records did not reach the disk whole: try again later
            }
            fresh.position(end);
        } catch (Lost e) {
            closeQuietly(fresh);
            throw e;
        } catch (IOException | RuntimeException e) {
            closeQuietly(fresh);
            return false;
        }
        synchronized (monitor) {
            FileChannel old = channel;
            channel = fresh;
            allocated = end + HEADER_BYTES;
            synced = written;
            pending.clear();
            syncedFileEnd = end;
            syncedFileCrc = (int) fileCrc.getValue();
            failed = null;
            failureReported = false;
            failing = false;
            closeQuietly(old);
            monitor.notifyAll();
        }
        return true;
    }

    @Override
    public void close() throws IOException {
        synchronized (monitor) {
            channel.close();
        }
    }

    private void checkHealthy() throws IOException {
        synchronized (monitor) {
            if (failed != null) {
                throw failure();
            }
        }
    }

    private Failed failure() {
        synchronized (monitor) {
            return new Failed(file, failed);
        }
    }

    /**
     * Makes the log failing with {@code e} unless it already is; a {@link Gone} file gets its
     * acknowledged prefix copied back to its path. Under the monitor.
     */
    private void fail(IOException e) {
        if ((e instanceof Gone || e instanceof Lost) && unrecoverable == null) {
            unrecoverable = e;
            if (e instanceof Gone g) {
                copyBack(g);
            }
        }
        if (failed == null) {
            failed = e;
            failureReported = false;
            failing = true;
        }
        monitor.notifyAll();
    }

    /** Copies the acknowledged prefix to the path the file lost, if it is free and its directory there. */
    private void copyBack(Gone g) {
        Path dir = file.getParent();
        if (!Files.isDirectory(dir) || Files.exists(file, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        try (FileChannel out = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (long at = 0; at < syncedFileEnd; ) {
                at += channel.transferTo(at, syncedFileEnd - at, out);
            }
            writeZeros(out, syncedFileEnd, syncedFileEnd + HEADER_BYTES);
            out.force(true);
            SnapshotFiles.forceDirectory(dir);
            g.addSuppressed(new IOException("its acknowledged records (" + syncedFileEnd + " bytes) were copied back"
                    + " to " + file + " from the open file, for a restart to find"));
        } catch (IOException e) {
            g.addSuppressed(e);
        }
    }

    /**
     * Fails with {@link Gone} unless {@code path} still names the file whose identity is
     * {@code key}, or with {@link #NAME_ONLY}, unless it names a file at all.
     */
    private static void checkNamed(Path path, Object key) throws IOException {
        if (key == NAME_ONLY) {
            if (!Files.exists(path)) {
                throw new Gone("the write-ahead log " + path + " was removed or renamed, or its directory was, while"
                        + " the server wrote it");
            }
            return;
        }
        Object now;
        try {
            now = identity(path);
        } catch (NoSuchFileException e) {
            throw new Gone("the write-ahead log " + path + " was removed or renamed, or its directory was, while the"
                    + " server wrote it");
        }
        if (key != null && !key.equals(now)) {
            throw new Gone(path + " names another file than the write-ahead log the server writes (" + now
                    + ", expected: " + key + ")");
        }
    }

    private static Object identity(Path path) throws IOException {
        return Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
    }

    /** Whether {@code e} says the disk (or the quota) is full, or the file's store has less than {@code needed} left. */
    public static boolean isNoSpace(IOException e, Path file, long needed) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            String m = t.getMessage();
            if (m != null && (m.contains("No space left on device") || m.contains("Disk quota exceeded"))) {
                return true;
            }
        }
        try {
            return Files.getFileStore(file).getUsableSpace() < needed;
        } catch (IOException | RuntimeException unknown) {
            return false;
        }
    }

    /** A failure's message for another message: its own, or its class. */
    public static String describe(Throwable e) {
        return Objects.requireNonNullElse(e.getMessage(), e.getClass().getSimpleName());
    }

    /**
     * The CRC-32C (unsigned) of {@code file}'s first {@code first} bytes and of its first
     * {@code second} ({@code first <= second}), -1 where the file is shorter; read from the disk
     * itself with O_DIRECT where the file system allows it, else through the page cache.
     */
    static long[] diskCrcs(Path file, long first, long second) throws IOException {
        FileChannel opened;
        int align;
        try {
            align = (int) Files.getFileStore(file).getBlockSize();
            opened = FileChannel.open(file, StandardOpenOption.READ, ExtendedOpenOption.DIRECT);
        } catch (IOException | UnsupportedOperationException noDirect) {
            opened = FileChannel.open(file, StandardOpenOption.READ);
            align = 1;
        }
        try (FileChannel in = opened) {
            int chunk = Math.max(align, 1024 * 1024 / align * align);
            ByteBuffer buffer = ByteBuffer.allocateDirect(chunk + align).alignedSlice(align);
            CRC32C c = new CRC32C();
            long[] out = {first == 0 ? 0 : -1, second == 0 ? 0 : -1};
            for (long at = 0; at < second && at % align == 0; ) {
                buffer.clear().limit(chunk);
                int n = in.read(buffer, at);
                if (n <= 0) {
                    break;
                }
                long until = Math.min(at + n, second);
                if (first > at && first <= until) {
                    c.update(buffer.duplicate().position(0).limit((int) (first - at)));
                    out[0] = c.getValue();
                    c.update(buffer.duplicate().position((int) (first - at)).limit((int) (until - at)));
                } else {
                    c.update(buffer.duplicate().position(0).limit((int) (until - at)));
                }
                if (until == second) {
                    out[1] = c.getValue();
                }
                at += n;
            }
            return out;
        }
    }

    private static void writeZeros(FileChannel to, long from, long until) throws IOException {
        for (long at = from; at < until; ) {
            ByteBuffer zeros = ZEROS.duplicate();
            zeros.limit((int) Math.min(zeros.capacity(), until - at));
            at += to.write(zeros, at);
        }
    }

    private static void writeFully(FileChannel to, ByteBuffer src, long position) throws IOException {
        for (long at = position; src.hasRemaining(); ) {
            at += to.write(src, at);
        }
    }

    private static void discard(FileChannel fresh, Path next) {
        closeQuietly(fresh);
        try {
            Files.deleteIfExists(next);
        } catch (IOException ignored) {
            // an empty log: recovery takes it as one
        }
    }

    private static void closeQuietly(FileChannel c) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (IOException ignored) {
            // nothing left to lose: it is being replaced
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
    public record Replayed(long records, long validBytes, End end, String problem) {
    }

    /** Disk sectors are written whole or not at all; a crash leaves an unwritten one as it was: zeros. */
    public static final int SECTOR_BYTES = 512;

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
    public static Replayed replay(Path file, int maxRecordBytes, boolean newest, Consumer<ByteBuffer> apply)
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
