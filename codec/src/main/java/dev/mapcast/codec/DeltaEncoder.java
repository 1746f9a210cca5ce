package dev.mapcast.codec;

import java.nio.BufferOverflowException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Objects;

/**
 * Encodes the contract's {@code Delta} for one write, from the write's own keys and values, before
 * it is applied: so that the server logs a write before any of it is visible, and encodes the
 * delta once to send the same bytes to every watcher. Each put is written as the map stores it (a
 * canonical record: both entry fields present, shortest varints), so the bytes equal
 * protobuf-java's for the same message, puts in the order given.
 *
 * <pre>{@code
 * DeltaEncoder delta = new DeltaEncoder(putKeys, putValues, deleteKeys, revision, digestAfter);
 * ByteBuffer bytes = ByteBuffer.allocate(delta.size(true));
 * delta.writeTo(bytes, true);   // framed as a WatchResponse
 * }</pre>
 */
public final class DeltaEncoder {

    // Delta field numbers, as in mapcast.proto; field 1 (puts) holds map-entry records.
    private static final int PUTS = 1;
    private static final int DELETES = 2;
    private static final int REVISION = 3;
    private static final int PREV_REVISION = 4;
    private static final int DIGEST = 5;
    // Map-entry fields.
    private static final int ENTRY_KEY = 1;
    private static final int ENTRY_VALUE = 2;
    /** WatchResponse.delta. */
    private static final int WATCH_RESPONSE_DELTA = 2;

    private final List<byte[]> putKeys;
    private final List<byte[]> putValues;
    private final List<byte[]> deletes;
    private final long revision;
    private final long digest;
    private final int size;

    /**
     * @param putKeys keys the write puts, UTF-8
     * @param putValues their values, in the same order
     * @param deletes keys it removes, UTF-8
     * @param revision the revision the write creates (prev_revision is {@code revision - 1})
     * @param digest the map's digest once the write is applied
     */
    public DeltaEncoder(List<byte[]> putKeys, List<byte[]> putValues, List<byte[]> deletes, long revision,
            long digest) {
        this.putKeys = List.copyOf(Objects.requireNonNull(putKeys, "putKeys"));
        this.putValues = List.copyOf(Objects.requireNonNull(putValues, "putValues"));
        this.deletes = List.copyOf(Objects.requireNonNull(deletes, "deletes"));
        if (this.putValues.size() != this.putKeys.size()) {
            throw new IllegalArgumentException("putValues: " + this.putValues.size() + " values (expected: one per key, "
                    + this.putKeys.size() + ")");
        }
        if (revision < 1) {
            throw new IllegalArgumentException("revision: " + revision + " (expected: >= 1)");
        }
        this.revision = revision;
        this.digest = digest;
        long bytes = 0;
        for (int i = 0; i < this.putKeys.size(); i++) {
            bytes += ProtoWire.bytesFieldSize(PUTS, entryBodySize(this.putKeys.get(i), this.putValues.get(i)));
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

    /** Bytes of a put's entry body (a key and a value of a Write, so well under 2 GiB). */
    private static int entryBodySize(byte[] key, byte[] value) {
        return Math.addExact(ProtoWire.bytesFieldSize(ENTRY_KEY, key.length),
                ProtoWire.bytesFieldSize(ENTRY_VALUE, value.length));
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
        for (int i = 0; i < putKeys.size(); i++) {
            byte[] key = putKeys.get(i);
            byte[] value = putValues.get(i);
            ProtoWire.putVarint(dst, ProtoWire.tag(PUTS, ProtoWire.LENGTH_DELIMITED));
            ProtoWire.putVarint(dst, entryBodySize(key, value));
            ProtoWire.putBytesField(dst, ENTRY_KEY, key);
            ProtoWire.putBytesField(dst, ENTRY_VALUE, value);
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
