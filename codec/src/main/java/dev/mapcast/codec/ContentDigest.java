package dev.mapcast.codec;

import dev.mapcast.core.Xxh64;
import java.nio.ByteBuffer;

/**
 * The contract's content digest (see {@code Delta.digest}) of entries as they stream past, without
 * a map: the sum, modulo 2^64, of XXH64 (seed 0) over each entry's canonical record
 * {@code 0x0A varint(klen) key 0x12 varint(vlen) value}. A received entry may be encoded otherwise
 * (fields reordered or missing, long varints), so each is re-encoded canonically into one reused
 * array before it is hashed: constant memory, one copy per entry.
 *
 * <p>It counts every entry it is given: a key given twice counts twice, so a stream that repeats a
 * key cannot match a map's digest and count (a map holds each key once).
 */
final class ContentDigest implements MessageDecoder.EntryVisitor {

    private static final byte KEY_TAG = 0x0A;
    private static final byte VALUE_TAG = 0x12;

    private byte[] record = new byte[256];
    private long digest;
    private long entries;

    @Override
    public void entry(ByteBuffer message, int keyFrom, int keyLength, int valueFrom, int valueLength) {
        int size = 1 + ProtoWire.varintSize(keyLength) + keyLength + 1 + ProtoWire.varintSize(valueLength) + valueLength;
        if (record.length < size) {
            record = new byte[Math.max(size, record.length * 2)];
        }
        ByteBuffer out = ByteBuffer.wrap(record);
        out.put(KEY_TAG);
        ProtoWire.putVarint(out, keyLength);
        message.get(keyFrom, record, out.position(), keyLength);
        out.position(out.position() + keyLength);
        out.put(VALUE_TAG);
        ProtoWire.putVarint(out, valueLength);
        message.get(valueFrom, record, out.position(), valueLength);
        digest += Xxh64.hash(record, 0, size, 0);
        entries++;
    }

    /** The digest of every entry given so far (0 for none, as for the empty map). */
    long digest() {
        return digest;
    }

    /** How many entries were given. */
    long entries() {
        return entries;
    }
}
