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
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Objects;
import java.util.function.Function;
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
            long totalEntries, long digest, long incarnation) implements AutoCloseable {
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
        return write(view, map, revision, compactRevision, 0, file);
    }

    /**
     * As {@link #write(PinnedView, String, long, long, Path)}, for the map incarnation
     * {@code incarnation} (in the header and every chunk; 0: none).
     */
    public static long write(PinnedView view, String map, long revision, long compactRevision, long incarnation,
            Path file) throws IOException {
        Objects.requireNonNull(file, "file");
        SnapshotEncoder chunks = new SnapshotEncoder(view, map, revision, compactRevision, incarnation,
                SnapshotEncoder.DEFAULT_CHUNK_BYTES);
        try (SnapshotFileOutput out = new SnapshotFileOutput(file)) {
            out.header(map, revision, view.order() == IterationOrder.INSERTION ? 2 : 1, compactRevision, incarnation);
            ByteBuffer buffer = ByteBuffer.allocateDirect(SnapshotEncoder.DEFAULT_CHUNK_BYTES + 4096);
            while (chunks.hasNext()) {
                int size = chunks.nextChunkSize();
                if (buffer.capacity() < size) {
                    buffer = ByteBuffer.allocateDirect(size);
                }
                buffer.clear();
                chunks.writeNextChunk(buffer);
                out.message(buffer.flip());
            }
            return out.finish(view.size(), view.digest());
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
            SnapshotHeader header = readHeader(reader);
            IterationOrder order = order(header.getOrderValue());
            OffHeapMap map = builder.order(order).trackDigest(true).build();
            try {
                MessageDecoder.ChunkFields chunk;
                long count = 0;
                do {
                    long at = reader.position();
                    chunk = nextChunk(reader, bytes -> MessageDecoder.applySnapshotChunk(bytes, map));
                    checkBelongs(file, at, ++count, chunk, header);
                } while (!chunk.last());
                SnapshotFooter footer = readFooter(reader, chunk, map.size(), map.digest());
                return new Loaded(map, header.getMap(), header.getRevision(), header.getCompactRevision(), order,
                        footer.getTotalEntries(), footer.getDigest(), header.getIncarnation());
            } catch (IOException | RuntimeException e) {
                map.close();
                throw e;
            }
        }
    }

    /**
     * Verifies a snapshot file as {@link #read} does, streaming, with memory bounded by one chunk and
     * no map: structure, magic and version, every chunk of the header's map and revision, the
     * CRC-32C, the entry count and the content digest, nothing after the footer. Gives each entry to
     * {@code entries} (if not null) as it goes, chunk by chunk, each chunk once it checked out: a
     * caller that must show nothing of a bad file verifies first with null.
     *
     * <p>Unlike {@link #read}, it cannot see a key repeated in two chunks if the footer's count and
     * digest were forged to include it: {@link #read} refuses such a file.
     *
     * @throws SnapshotFileException naming the byte where the file is wrong
     */
    public static SnapshotFileInfo inspect(Path file, MessageDecoder.EntryVisitor entries) throws IOException {
        return inspect(file, entries, null);
    }

    /**
     * Like {@link #inspect(Path, MessageDecoder.EntryVisitor)}, also handing each chunk's bytes (a
     * serialised {@code SnapshotChunk}, valid only during the call) to {@code chunks} once it
     * checked out: a restore streams a file this way. The file's CRC, count and digest are checked
     * only after the last chunk, so a caller that sends chunks on must be able to take them back
     * (a Restore call is cancelled) when this throws.
     */
    public static SnapshotFileInfo inspect(Path file, MessageDecoder.EntryVisitor entries,
            java.util.function.Consumer<ByteBuffer> chunks) throws IOException {
        try (FileChannel in = FileChannel.open(file, StandardOpenOption.READ)) {
            Reader reader = new Reader(file, in);
            SnapshotHeader header = readHeader(reader);
            ContentDigest digest = new ContentDigest();
            MessageDecoder.EntryVisitor visitor = entries == null ? digest
                    : (message, keyFrom, keyLength, valueFrom, valueLength) -> {
                        digest.entry(message, keyFrom, keyLength, valueFrom, valueLength);
                        entries.entry(message, keyFrom, keyLength, valueFrom, valueLength);
                    };
            long count = 0;
            MessageDecoder.ChunkFields chunk;
            do {
                long at = reader.position();
                ByteBuffer[] raw = new ByteBuffer[1];
                chunk = nextChunk(reader, bytes -> {
                    raw[0] = bytes.duplicate();
                    return MessageDecoder.visitSnapshotChunk(bytes, visitor);
                });
                checkBelongs(file, at, ++count, chunk, header);
                if (chunks != null) {
                    chunks.accept(raw[0].asReadOnlyBuffer());
                }
            } while (!chunk.last());
            int crc = (int) reader.crc();
            SnapshotFooter footer = readFooter(reader, chunk, digest.entries(), digest.digest());
            return new SnapshotFileInfo(header.getMap(), header.getRevision(), order(header.getOrderValue()),
                    header.getCompactRevision(), count, footer.getTotalEntries(), reader.position(),
                    footer.getDigest(), crc, header.getIncarnation());
        }
    }

    /** Refuses chunk number {@code count} (at byte {@code at}) if it is of another revision or map than the header. */
    private static void checkBelongs(Path file, long at, long count, MessageDecoder.ChunkFields chunk,
            SnapshotHeader header) throws SnapshotFileException {
        if (chunk.revision() != header.getRevision()) {
            throw new SnapshotFileException(file, at, "chunk " + count + " of revision " + chunk.revision()
                    + " in a snapshot of revision " + header.getRevision());
        }
        if (!chunk.map().equals(header.getMap())) {
            throw new SnapshotFileException(file, at, "chunk " + count + " of map \"" + chunk.map()
                    + "\" in a snapshot of map \"" + header.getMap() + "\"");
        }
        if (chunk.incarnation() != header.getIncarnation()) {
            throw new SnapshotFileException(file, at, String.format("chunk %d of incarnation %016x in a snapshot of"
                    + " incarnation %016x", count, chunk.incarnation(), header.getIncarnation()));
        }
    }

    /** The contract's IterationOrder number as the map's order: INSERTION, else HASH (the default). */
    static IterationOrder order(int value) {
        return value == 2 ? IterationOrder.INSERTION : IterationOrder.HASH;
    }

    /** Reads the next chunk with {@code decode}; a malformed one is refused naming its byte in the file. */
    private static MessageDecoder.ChunkFields nextChunk(Reader reader,
            Function<ByteBuffer, MessageDecoder.ChunkFields> decode) throws IOException {
        ByteBuffer bytes = reader.next("chunk");
        try {
            return decode.apply(bytes);
        } catch (MalformedMessageException e) {
            throw new SnapshotFileException(reader.file, reader.messageStart() + e.offset(), e.getMessage(), e);
        }
    }

    private static SnapshotHeader readHeader(Reader reader) throws IOException {
        Path file = reader.file;
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
        return header;
    }

    /**
     * Reads the footer after the last chunk and checks it: nothing after it, the CRC-32C of the
     * bytes before it, the count and the digest of the entries read.
     */
    private static SnapshotFooter readFooter(Reader reader, MessageDecoder.ChunkFields lastChunk, long entries,
            long digest) throws IOException {
        Path file = reader.file;
        long crc = reader.crc();
        long footerAt = reader.position();
        SnapshotFooter footer;
        try {
            footer = SnapshotFooter.parseFrom(reader.next("footer"));
        } catch (InvalidProtocolBufferException e) {
            throw new SnapshotFileException(file, footerAt, "the footer is not a SnapshotFooter: " + e.getMessage(), e);
        }
        long size = reader.in.size();
        if (reader.position() != size) {
            throw new SnapshotFileException(file, reader.position(), (size - reader.position())
                    + " bytes after the footer");
        }
        if ((int) crc != footer.getCrc32C()) {
            throw new SnapshotFileException(file, footerAt, String.format(
                    "CRC-32C mismatch: the footer says %08x, the bytes give %08x", footer.getCrc32C(), (int) crc));
        }
        if (entries != footer.getTotalEntries() || lastChunk.totalEntries() != footer.getTotalEntries()) {
            throw new SnapshotFileException(file, footerAt, "entry count mismatch: the footer says "
                    + footer.getTotalEntries() + ", the last chunk " + lastChunk.totalEntries() + ", the chunks hold "
                    + entries);
        }
        if (digest != footer.getDigest()) {
            throw new SnapshotFileException(file, footerAt, String.format(
                    "digest mismatch: the footer says %016x, the entries give %016x", footer.getDigest(), digest));
        }
        return footer;
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

    /** Forces a directory's entries (a rename or a new file in it) to disk, where the platform can. */
    public static void forceDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException notSupported) {
            // Some platforms cannot open a directory; the rename is then as durable as they make it.
        }
    }
}
