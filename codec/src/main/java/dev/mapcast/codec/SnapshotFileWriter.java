package dev.mapcast.codec;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Objects;

/**
 * Writes a snapshot file from {@code SnapshotChunk} messages exactly as a server's {@code Snapshot}
 * RPC sent them, one chunk at a time: memory is bounded by one chunk whatever the map's size, and
 * the chunks go to the file byte for byte (for an INSERTION-order map, the file equals what
 * {@link SnapshotFiles#write} makes of the server's map).
 *
 * <pre>{@code
 * try (SnapshotFileWriter writer = new SnapshotFileWriter(Path.of("config.snapshot"))) {
 *     for (ByteBuffer chunk : received) {
 *         writer.append(chunk);
 *     }
 *     SnapshotFileInfo saved = writer.finish();   // only now does config.snapshot change
 * }
 * }</pre>
 *
 * <p>It verifies as it goes: each chunk's structure (as {@link MessageDecoder} reads it, no object
 * per entry), every chunk of the first chunk's map and revision, nothing after the last chunk, and
 * at the last chunk the entries' count and content digest against its {@code total_entries} and
 * {@code digest}. A refused chunk throws a {@link SnapshotStreamException} and aborts the writer.
 *
 * <p>The file is written as a temporary file in the target's directory, forced to disk and renamed
 * over the target by {@link #finish}; an abort, a failure or a close before {@link #finish} deletes
 * the temporary file and leaves any existing target untouched. Not thread-safe.
 */
public final class SnapshotFileWriter implements AutoCloseable {

    private final SnapshotFileOutput out;
    private final ContentDigest digest = new ContentDigest();
    private MessageDecoder.ChunkFields first;
    private MessageDecoder.ChunkFields last;
    private long chunks;
    private long announcedEntries;
    private boolean aborted;
    private SnapshotFileInfo finished;

    /** Starts the temporary file next to {@code file}; nothing is written to {@code file} before {@link #finish}. */
    public SnapshotFileWriter(Path file) throws IOException {
        this.out = new SnapshotFileOutput(Objects.requireNonNull(file, "file"));
    }

    /**
     * Verifies one chunk (the buffer's bytes from position to limit, which neither moves) and
     * appends it.
     *
     * @return whether it was the last chunk ({@code last} set): then {@link #finish} is next
     * @throws SnapshotStreamException if the chunk is refused; the writer is then aborted
     */
    public boolean append(ByteBuffer chunk) throws IOException {
        Objects.requireNonNull(chunk, "chunk");
        checkOpen();
        long number = chunks + 1;
        if (last != null) {
            throw abort(new SnapshotStreamException(number, "a chunk after the last one"));
        }
        MessageDecoder.ChunkFields fields;
        try {
            fields = MessageDecoder.visitSnapshotChunk(chunk, digest);
        } catch (MalformedMessageException e) {
            throw abort(new SnapshotStreamException(number, e.getMessage(), e));
        }
        if (first == null) {
            first = fields;
            out.header(fields.map(), fields.revision(), fields.order(), fields.compactRevision(), fields.incarnation());
        } else if (fields.revision() != first.revision()) {
            throw abort(new SnapshotStreamException(number, "revision " + fields.revision()
                    + " (expected: " + first.revision() + ", the first chunk's)"));
        } else if (!fields.map().equals(first.map())) {
            throw abort(new SnapshotStreamException(number, "map \"" + fields.map() + "\" (expected: \""
                    + first.map() + "\", the first chunk's)"));
        }
        try {
            out.message(chunk);
        } catch (IOException | RuntimeException e) {
            abortKeeping(e);
            throw e;
        }
        chunks = number;
        if (fields.totalEntries() != 0 || fields.last()) {
            announcedEntries = fields.totalEntries();
        }
        if (!fields.last()) {
            return false;
        }
        if (digest.entries() != fields.totalEntries()) {
            throw abort(new SnapshotStreamException(number, "the chunks hold " + digest.entries()
                    + " entries (expected: total_entries " + fields.totalEntries() + ")"));
        }
        if (digest.digest() != fields.digest()) {
            throw abort(new SnapshotStreamException(number, String.format(
                    "the entries' digest is %016x (expected: the server's %016x)", digest.digest(), fields.digest())));
        }
        last = fields;
        return true;
    }

    /**
     * After the last chunk: writes the footer, forces the file to disk and renames it over the
     * target.
     *
     * @throws SnapshotStreamException if the last chunk has not been appended (the stream ended
     *     early); the writer is then aborted
     */
    public SnapshotFileInfo finish() throws IOException {
        checkOpen();
        if (last == null) {
            throw abort(new SnapshotStreamException(chunks + 1, "the stream ended after " + chunks
                    + " chunks, before the last one"));
        }
        int crc = out.crc32c();
        try {
            long bytes = out.finish(last.totalEntries(), last.digest());
            finished = new SnapshotFileInfo(first.map(), first.revision(), SnapshotFiles.order(first.order()),
                    first.compactRevision(), chunks, last.totalEntries(), bytes, last.digest(), crc,
                    first.incarnation());
            return finished;
        } catch (IOException | RuntimeException e) {
            abortKeeping(e);
            throw e;
        }
    }

    /** Entries appended so far. */
    public long entries() {
        return digest.entries();
    }

    /** The map's entry count as the chunks announce it (mapcast sets it in every chunk), 0 until known. */
    public long announcedEntries() {
        return announcedEntries;
    }

    /** Bytes written so far. */
    public long bytes() {
        return out.position();
    }

    /** Chunks appended so far. */
    public long chunks() {
        return chunks;
    }

    /** Gives up: deletes the temporary file; the target is untouched. Does nothing once finished. */
    @Override
    public void close() throws IOException {
        if (finished == null && !aborted) {
            aborted = true;
            out.close();
        }
    }

    private void checkOpen() {
        if (aborted) {
            throw new IllegalStateException("the writer was aborted or closed: nothing more can be written");
        }
        if (finished != null) {
            throw new IllegalStateException("the file is already finished");
        }
    }

    /** Aborts for {@code e}; returns it to be thrown. */
    private SnapshotStreamException abort(SnapshotStreamException e) {
        abortKeeping(e);
        return e;
    }

    /** Deletes the temporary file; a failure to do so is added to {@code reason}, which stays the error. */
    private void abortKeeping(Exception reason) {
        try {
            close();
        } catch (IOException | RuntimeException suppressed) {
            reason.addSuppressed(suppressed);
        }
    }
}
