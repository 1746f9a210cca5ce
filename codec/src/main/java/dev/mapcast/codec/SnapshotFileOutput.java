package dev.mapcast.codec;

import dev.mapcast.proto.v1.SnapshotFooter;
import dev.mapcast.proto.v1.SnapshotHeader;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Objects;
import java.util.zip.CRC32C;

/**
 * The writing half of a snapshot file, shared by {@link SnapshotFiles#write} and
 * {@link SnapshotFileWriter}: length-delimited messages go to a temporary file in the target's
 * directory with the CRC-32C kept as they go; {@link #finish} appends the footer, forces the file
 * to disk and renames it over the target. Closed before {@link #finish}, it deletes the temporary
 * file and leaves the target as it was.
 */
final class SnapshotFileOutput implements Closeable {

    private final Path file;
    private final Path dir;
    private final Path tmp;
    private final FileChannel out;
    private final CRC32C crc = new CRC32C();
    private final ByteBuffer prefix = ByteBuffer.allocate(5);
    private final ByteBuffer[] pair = new ByteBuffer[2];
    private long written;
    private boolean finished;

    SnapshotFileOutput(Path file) throws IOException {
        this.file = Objects.requireNonNull(file, "file");
        this.dir = file.toAbsolutePath().getParent();
        this.tmp = Files.createTempFile(dir, file.getFileName().toString(), ".tmp");
        try {
            this.out = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
    }

    /** Bytes written so far: where the next message's length prefix goes. */
    long position() {
        return written;
    }

    /** The CRC-32C of every byte written so far. */
    int crc32c() {
        return (int) crc.getValue();
    }

    /** Writes the header message. {@code order} is the contract's IterationOrder number. */
    void header(String map, long revision, int order, long compactRevision, long incarnation) throws IOException {
        byte[] header = SnapshotHeader.newBuilder().setMagic(SnapshotFiles.MAGIC)
                .setFormatVersion(SnapshotFiles.FORMAT_VERSION).setMap(map).setRevision(revision)
                .setOrderValue(order).setCompactRevision(compactRevision).setIncarnation(incarnation).build()
                .toByteArray();
        message(ByteBuffer.wrap(header));
    }

    /** Writes one message (the buffer's bytes from position to limit, which neither moves) after its length. */
    void message(ByteBuffer message) throws IOException {
        ByteBuffer bytes = message.duplicate();
        prefix.clear();
        ProtoWire.putVarint(prefix, bytes.remaining());
        prefix.flip();
        crc.update(prefix.duplicate());
        crc.update(bytes.duplicate());
        pair[0] = prefix;
        pair[1] = bytes;
        long length = prefix.remaining() + bytes.remaining();
        long left = length;
        while (left > 0) {
            left -= out.write(pair);
        }
        written += length;
    }

    /**
     * Appends the footer (with the CRC-32C of everything before it), forces the file to disk and
     * renames it over the target.
     *
     * @return the file's size in bytes
     */
    long finish(long totalEntries, long digest) throws IOException {
        if (finished) {
            throw new IllegalStateException("the file is already finished: " + file);
        }
        byte[] footer = SnapshotFooter.newBuilder().setTotalEntries(totalEntries).setDigest(digest)
                .setCrc32C(crc32c()).build().toByteArray();
        message(ByteBuffer.wrap(footer));
        out.force(true);
        out.close();
        try {
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
        }
        finished = true;
        SnapshotFiles.forceDirectory(dir);
        return written;
    }

    /** Without {@link #finish}: deletes the temporary file; the target is untouched. */
    @Override
    public void close() throws IOException {
        if (!finished) {
            try {
                out.close();
            } finally {
                Files.deleteIfExists(tmp);
            }
        }
    }
}
