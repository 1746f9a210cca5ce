package dev.mapcast.codec;

import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.core.PinnedView;
import dev.mapcast.proto.v1.SnapshotFooter;
import dev.mapcast.proto.v1.SnapshotHeader;
import com.google.protobuf.InvalidProtocolBufferException;
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
 * Snapshot files in the contract's format: varint-length-delimited messages (the format of
 * protobuf's {@code writeDelimitedTo}), one {@code SnapshotHeader}, the {@code SnapshotChunk}s (the
 * last one marked {@code last}), one {@code SnapshotFooter} with the entry count, the content digest
 * and the CRC-32C of every byte before the footer's length prefix. Any protobuf runtime reads them.
 *
 * <p>Both directions stream with memory bounded by one chunk, whatever the map's size. Writing goes
 * to a temporary file in the same directory, forced to disk and then renamed over the target, so a
 * crash never leaves a half-written snapshot under the target's name. Reading fills a new map and
 * hands it over only when the whole file checked out (structure, CRC-32C, entry count, digest).
 */
public final class SnapshotFiles {

    public static final String MAGIC = "mapcast-snapshot";
    public static final int FORMAT_VERSION = 1;
    /** Largest message a reader accepts: a lying length prefix must not make it allocate more. */
    static final int MAX_MESSAGE_BYTES = 512 * 1024 * 1024;

    private SnapshotFiles() {
    }

    /** A map read from a snapshot file, and what the file said about it. Closing it closes the map. */
    public record Loaded(OffHeapMap map, String name, long revision, long compactRevision, IterationOrder order,
            long totalEntries, long digest) implements AutoCloseable {
        @Override
        public void close() {
            map.close();
        }
    }

    /**
     * Writes the view to {@code file} atomically. The view's map must track its digest.
     *
     * @return bytes written
     */
    public static long write(PinnedView view, String map, long revision, long compactRevision, Path file)
            throws IOException {
        Objects.requireNonNull(file, "file");
        SnapshotEncoder chunks = new SnapshotEncoder(view, map, revision, compactRevision,
                SnapshotEncoder.DEFAULT_CHUNK_BYTES);
        Path dir = file.toAbsolutePath().getParent();
        Path tmp = Files.createTempFile(dir, file.getFileName().toString(), ".tmp");
        try {
            long written;
            try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                CRC32C crc = new CRC32C();
                ByteBuffer buffer = ByteBuffer.allocateDirect(SnapshotEncoder.DEFAULT_CHUNK_BYTES + 4096);
                byte[] header = SnapshotHeader.newBuilder().setMagic(MAGIC).setFormatVersion(FORMAT_VERSION)
                        .setMap(map).setRevision(revision).setOrderValue(view.order() == IterationOrder.INSERTION ? 2 : 1)
                        .setCompactRevision(compactRevision).build().toByteArray();
                buffer.clear();
                ProtoWire.putVarint(buffer, header.length);
                buffer.put(header);
                written = flush(buffer, out, crc);
                while (chunks.hasNext()) {
                    int size = chunks.nextChunkSize();
                    if (buffer.capacity() < size + 5) {
                        buffer = ByteBuffer.allocateDirect(size + 5);
                    }
                    buffer.clear();
                    ProtoWire.putVarint(buffer, size);
                    chunks.writeNextChunk(buffer);
                    written += flush(buffer, out, crc);
                }
                byte[] footer = SnapshotFooter.newBuilder().setTotalEntries(view.size()).setDigest(view.digest())
                        .setCrc32C((int) crc.getValue()).build().toByteArray();
                buffer.clear();
                ProtoWire.putVarint(buffer, footer.length);
                buffer.put(footer);
                written += flush(buffer, out, null);
                out.force(true);
            }
            try {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
            forceDirectory(dir);
            return written;
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /**
     * Reads a snapshot file into a new map made by {@code builder} (which is given
     * {@code trackDigest(true)} and the file's order). The map is returned only if the whole file
     * is valid; otherwise it is closed and the problem is thrown, naming the byte where it was found.
     */
    public static Loaded read(Path file, OffHeapMap.Builder builder) throws IOException {
        Objects.requireNonNull(builder, "builder");
        try (FileChannel in = FileChannel.open(file, StandardOpenOption.READ)) {
            Reader reader = new Reader(file, in);
            ByteBuffer headerBytes = reader.next("header");
            SnapshotHeader header;
            try {
                header = SnapshotHeader.parseFrom(headerBytes);
            } catch (InvalidProtocolBufferException e) {
                throw new SnapshotFileException(file, 0, "the header is not a SnapshotHeader: " + e.getMessage(), e);
            }
            if (!MAGIC.equals(header.getMagic())) {
                throw new SnapshotFileException(file, 0, "not a mapcast snapshot (magic \"" + header.getMagic() + "\")");
            }
            if (header.getFormatVersion() != FORMAT_VERSION) {
                throw new SnapshotFileException(file, 0, "format version " + header.getFormatVersion()
                        + " (expected: " + FORMAT_VERSION + ")");
            }
            IterationOrder order = header.getOrderValue() == 2 ? IterationOrder.INSERTION : IterationOrder.HASH;
            OffHeapMap map = builder.order(order).trackDigest(true).build();
            try {
                MessageDecoder.ChunkFields chunk;
                do {
                    long at = reader.position();
                    ByteBuffer bytes = reader.next("chunk");
                    try {
                        chunk = MessageDecoder.applySnapshotChunk(bytes, map);
                    } catch (MalformedMessageException e) {
                        throw new SnapshotFileException(file, reader.messageStart() + e.offset(), e.getMessage(), e);
                    }
                    if (chunk.revision() != header.getRevision()) {
                        throw new SnapshotFileException(file, at, "chunk of revision " + chunk.revision()
                                + " in a snapshot of revision " + header.getRevision());
                    }
                } while (!chunk.last());
                long crc = reader.crc();
                long footerAt = reader.position();
                SnapshotFooter footer;
                try {
                    footer = SnapshotFooter.parseFrom(reader.next("footer"));
                } catch (InvalidProtocolBufferException e) {
                    throw new SnapshotFileException(file, footerAt, "the footer is not a SnapshotFooter: " + e.getMessage(), e);
                }
                if (reader.position() != in.size()) {
                    throw new SnapshotFileException(file, reader.position(), (in.size() - reader.position())
                            + " bytes after the footer");
                }
                if ((int) crc != footer.getCrc32C()) {
                    throw new SnapshotFileException(file, footerAt, String.format(
                            "CRC-32C mismatch: the footer says %08x, the bytes give %08x", footer.getCrc32C(), (int) crc));
                }
                if (map.size() != footer.getTotalEntries() || chunk.totalEntries() != footer.getTotalEntries()) {
                    throw new SnapshotFileException(file, footerAt, "entry count mismatch: the footer says "
                            + footer.getTotalEntries() + ", the last chunk " + chunk.totalEntries() + ", the chunks hold " + map.size());
                }
                if (map.digest() != footer.getDigest()) {
                    throw new SnapshotFileException(file, footerAt, String.format(
                            "digest mismatch: the footer says %016x, the entries give %016x", footer.getDigest(), map.digest()));
                }
                return new Loaded(map, header.getMap(), header.getRevision(), header.getCompactRevision(), order,
                        footer.getTotalEntries(), footer.getDigest());
            } catch (IOException | RuntimeException e) {
                map.close();
                throw e;
            }
        }
    }

    private static long flush(ByteBuffer buffer, FileChannel out, CRC32C crc) throws IOException {
        buffer.flip();
        if (crc != null) {
            crc.update(buffer.duplicate());
        }
        long bytes = buffer.remaining();
        while (buffer.hasRemaining()) {
            out.write(buffer);
        }
        return bytes;
    }

    /** Forces a directory's entries (a rename or a new file in it) to disk, where the platform can. */
    public static void forceDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException notSupported) {
            // Some platforms cannot open a directory; the rename is then as durable as they make it.
        }
    }

    /** Reads the length-delimited messages of a file, one reusable buffer, the CRC kept as it goes. */
    private static final class Reader {
        private final Path file;
        private final FileChannel in;
        private final CRC32C crc = new CRC32C();
        private final ByteBuffer prefix = ByteBuffer.allocate(10);
        private ByteBuffer message = ByteBuffer.allocateDirect(64 * 1024);
        private long position;
        private long messageStart;

        Reader(Path file, FileChannel in) {
            this.file = file;
            this.in = in;
        }

        long position() {
            return position;
        }

        long messageStart() {
            return messageStart;
        }

        long crc() {
            return crc.getValue();
        }

        ByteBuffer next(String what) throws IOException {
            long at = position;
            long length = 0;
            int shift = 0;
            prefix.clear();
            while (true) {
                ByteBuffer one = prefix.slice(prefix.position(), 1);
                if (in.read(one, position) <= 0) {
                    throw new SnapshotFileException(file, at, "truncated: the file ends where the " + what + "'s length should be");
                }
                byte b = prefix.get(prefix.position());
                prefix.position(prefix.position() + 1);
                position++;
                length |= (long) (b & 0x7F) << shift;
                if (b >= 0) {
                    break;
                }
                shift += 7;
                if (shift > 35) {
                    throw new SnapshotFileException(file, at, "the " + what + "'s length prefix is not a varint");
                }
            }
            if (length > MAX_MESSAGE_BYTES) {
                throw new SnapshotFileException(file, at, "a " + what + " of " + length + " bytes (expected: at most "
                        + MAX_MESSAGE_BYTES + ")");
            }
            if (position + length > in.size()) {
                throw new SnapshotFileException(file, at, "truncated: a " + what + " of " + length + " bytes, "
                        + (in.size() - position) + " left in the file");
            }
            if (message.capacity() < length) {
                message = ByteBuffer.allocateDirect((int) length);
            }
            message.clear().limit((int) length);
            while (message.hasRemaining()) {
                if (in.read(message, position + message.position()) < 0) {
                    throw new SnapshotFileException(file, position, "truncated " + what);
                }
            }
            message.flip();
            prefix.flip();
            crc.update(prefix);
            crc.update(message.duplicate());
            messageStart = position;
            position += length;
            return message;
        }
    }
}
