package dev.mapcast.codec;

import dev.mapcast.core.OffHeapMap;
import java.nio.BufferOverflowException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Objects;

/**
 * Encodes the contract's {@code Delta} for one committed write, its puts copied from the map's
 * stored records (the write already applied), so that the server encodes a delta once and sends
 * the same bytes to every watcher. Bytes equal protobuf-java's for the same message, puts in the
 * order given.
 *
 * <pre>{@code
 * DeltaEncoder delta = new DeltaEncoder(map, putKeys, deleteKeys, revision, map.digest());
 * ByteBuffer bytes = ByteBuffer.allocate(delta.size(true));
 * delta.writeTo(bytes, true);   // framed as a WatchResponse
 * }</pre>
 */
public final class DeltaEncoder {

    // Delta field numbers, as in mapcast.proto; field 1 (puts) is the stored records themselves.
    private static final int DELETES = 2;
    private static final int REVISION = 3;
    private static final int PREV_REVISION = 4;
    private static final int DIGEST = 5;
    /** WatchResponse.delta. */
    private static final int WATCH_RESPONSE_DELTA = 2;

    private final OffHeapMap map;
    private final List<byte[]> puts;
    private final List<byte[]> deletes;
    private final long revision;
    private final long digest;
    private final int size;

    /**
     * @param puts keys written by the write, each present in {@code map}
     * @param deletes keys it removed, UTF-8
     * @param revision the revision the write created (prev_revision is {@code revision - 1})
     * @param digest the map's digest after the write
     */
    public DeltaEncoder(OffHeapMap map, List<byte[]> puts, List<byte[]> deletes, long revision, long digest) {
        this.map = Objects.requireNonNull(map, "map");
        this.puts = List.copyOf(Objects.requireNonNull(puts, "puts"));
        this.deletes = List.copyOf(Objects.requireNonNull(deletes, "deletes"));
        if (revision < 1) {
            throw new IllegalArgumentException("revision: " + revision + " (expected: >= 1)");
        }
        this.revision = revision;
        this.digest = digest;
        long bytes = 0;
        for (byte[] key : this.puts) {
            int length = map.recordLength(key);
            if (length < 0) {
                throw new IllegalArgumentException("puts: a key of " + key.length + " bytes is not in the map");
            }
            bytes += length;
        }
        for (byte[] key : this.deletes) {
            bytes += ProtoWire.bytesFieldSize(DELETES, key.length);
        }
        bytes += ProtoWire.varintFieldSize(REVISION, revision);
        if (revision - 1 != 0) {
            bytes += ProtoWire.varintFieldSize(PREV_REVISION, revision - 1);
        }
        if (digest != 0) {
            bytes += ProtoWire.fixed64FieldSize(DIGEST);
        }
        if (bytes > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("delta of " + bytes + " bytes: too large for one message");
        }
        this.size = (int) bytes;
    }

    /** Bytes of the Delta message, or of the WatchResponse holding it. */
    public int size(boolean asWatchResponse) {
        return asWatchResponse ? ProtoWire.bytesFieldSize(WATCH_RESPONSE_DELTA, size) : size;
    }

    /**
     * Writes the Delta (or a WatchResponse holding it) at dst's position and advances it.
     *
     * @throws BufferOverflowException if dst has less room (nothing is written)
     */
    public void writeTo(ByteBuffer dst, boolean asWatchResponse) {
        if (dst.remaining() < size(asWatchResponse)) {
            throw new BufferOverflowException();
        }
        if (asWatchResponse) {
            ProtoWire.putVarint(dst, ProtoWire.tag(WATCH_RESPONSE_DELTA, ProtoWire.LENGTH_DELIMITED));
            ProtoWire.putVarint(dst, size);
        }
        for (byte[] key : puts) {
            map.copyRecordTo(key, dst);
        }
        for (byte[] key : deletes) {
            ProtoWire.putBytesField(dst, DELETES, key);
        }
        ProtoWire.putVarintField(dst, REVISION, revision);
        if (revision - 1 != 0) {
            ProtoWire.putVarintField(dst, PREV_REVISION, revision - 1);
        }
        if (digest != 0) {
            ProtoWire.putFixed64Field(dst, DIGEST, digest);
        }
    }
}
