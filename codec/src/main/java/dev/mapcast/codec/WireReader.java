package dev.mapcast.codec;

import java.nio.ByteBuffer;

/**
 * Reads protobuf wire format from a buffer's bytes in place, by absolute index, checking every
 * bound: what is malformed becomes a {@link MalformedMessageException} naming the offset (from the
 * message's first byte) and the reason, with the rules of protobuf-java, so that both accept and
 * refuse the same bytes.
 *
 * <p>One reader per message, not per field (or one per stream, {@link #reset} for each message):
 * the results of a read are left in {@link #value} and {@link #next}, so nothing is allocated per
 * entry.
 */
final class WireReader {

    /** protobuf-java's default recursion limit, which bounds group nesting too. */
    private static final int MAX_DEPTH = 100;

    private ByteBuffer buffer;
    private String messageType;
    /** Absolute index of the message's first byte; offsets in exceptions count from it. */
    int start;
    int end;

    /** The value of the last read. */
    long value;
    /** The index right after the last read. */
    int next;

    /** A reader of the message from {@code buffer}'s position to its limit. */
    WireReader(ByteBuffer buffer, String messageType) {
        reset(buffer, buffer.position(), buffer.limit(), messageType);
    }

    /** A reader to {@link #reset} before use: a stream's decoder reuses one for every message. */
    WireReader() {
    }

    /** Reads the message at {@code buffer[from, to)} (absolute indices) from now on. */
    WireReader reset(ByteBuffer buffer, int from, int to, String messageType) {
        this.buffer = buffer;
        this.messageType = messageType;
        this.start = from;
        this.end = to;
        this.next = from;
        return this;
    }

    MalformedMessageException malformed(int at, String reason) {
        return new MalformedMessageException(messageType, at - start, reason);
    }

    /**
     * Reads a varint at {@code at}, ending before {@code limit}. A tenth byte gives bit 63 whatever
     * its payload, as protobuf-java reads it (a canonical tenth byte is always 0x01).
     */
    void varint(int at, int limit) {
        long result = 0;
        for (int shift = 0, i = at; shift < 64; shift += 7, i++) {
            if (i >= limit) {
                throw malformed(at, "truncated varint");
            }
            byte b = buffer.get(i);
            result |= shift == 63 ? Long.MIN_VALUE : (long) (b & 0x7F) << shift;
            if (b >= 0) {
                value = result;
                next = i + 1;
                return;
            }
        }
        throw malformed(at, "varint longer than 10 bytes");
    }

    /** Reads a varint field's value at {@code at}, within the message; {@link #next} is after it. */
    long varintField(int at) {
        varint(at, end);
        return value;
    }

    /** Reads a fixed64 field's value at {@code at}, within the message; {@link #next} is after it. */
    long fixed64Field(int at) {
        fixed64(at, end);
        return value;
    }

    /** Reads a tag and returns it (also in {@link #value}), checked to name a field and a valid wire type. */
    int tag(int at, int limit) {
        varint(at, limit);
        int tag = (int) value;  // protobuf-java keeps the low 32 bits of a tag
        if ((tag >>> 3) == 0) {
            throw malformed(at, "invalid tag " + tag + " (field number 0)");
        }
        int wireType = tag & 7;
        if (wireType > ProtoWire.FIXED32) {
            throw malformed(at, "invalid wire type " + wireType);
        }
        value = tag;
        return tag;
    }

    /**
     * Reads a length prefix at {@code at}; {@link #value} is the length and {@link #next} the first
     * byte of the content, which is checked to end within {@code limit}.
     */
    void length(int at, int limit) {
        varint(at, limit);
        int length = (int) value;  // protobuf-java reads a length as a 32-bit varint
        if (length < 0) {
            throw malformed(at, "negative length " + length);
        }
        if (length > limit - next) {
            throw malformed(at, "length " + length + " runs past the end (" + (limit - next) + " bytes left)");
        }
        value = length;
    }

    /** Reads a little-endian fixed64 at {@code at}. */
    void fixed64(int at, int limit) {
        if (limit - at < Long.BYTES) {
            throw malformed(at, "truncated fixed64");
        }
        long v = 0;
        for (int i = 0; i < Long.BYTES; i++) {
            v |= (buffer.get(at + i) & 0xFFL) << (8 * i);
        }
        value = v;
        next = at + Long.BYTES;
    }

    /**
     * Skips the field whose tag was just read (its content starts at {@code at}); {@link #next} is
     * after it. Returns false for an end-group tag, which ends the enclosing message or group.
     */
    boolean skip(int tag, int at, int limit, int depth) {
        switch (tag & 7) {
            case ProtoWire.VARINT:
                varint(at, limit);
                return true;
            case ProtoWire.FIXED64:
                if (limit - at < 8) {
                    throw malformed(at, "truncated fixed64");
                }
                next = at + 8;
                return true;
            case ProtoWire.LENGTH_DELIMITED:
                length(at, limit);
                next += (int) value;
                return true;
            case ProtoWire.START_GROUP:
                if (depth >= MAX_DEPTH) {
                    throw malformed(at, "groups nested deeper than " + MAX_DEPTH);
                }
                int p = at;
                while (true) {
                    if (p >= limit) {
                        throw malformed(p, "truncated group");
                    }
                    int inner = tag(p, limit);
                    if (!skip(inner, next, limit, depth + 1)) {
                        if (inner >>> 3 != tag >>> 3) {
                            throw malformed(p, "end-group tag of field " + (inner >>> 3) + " closes a group of field " + (tag >>> 3));
                        }
                        return true;
                    }
                    p = next;
                }
            case ProtoWire.END_GROUP:
                return false;
            case ProtoWire.FIXED32:
                if (limit - at < 4) {
                    throw malformed(at, "truncated fixed32");
                }
                next = at + 4;
                return true;
            default:
                throw malformed(at, "invalid wire type " + (tag & 7));
        }
    }

    /**
     * Reads a length-delimited string field whose content starts at {@code at}, checking that it is
     * UTF-8 of at most {@code maxLength} bytes; {@link #value} is its length, {@link #next} after it.
     * Returns the index of its first byte.
     */
    int utf8Field(int at, int limit, String what, int maxLength) {
        length(at, limit);
        int from = next;
        int length = (int) value;
        utf8(from, from + length, what);
        if (length > maxLength) {
            throw malformed(at, what + " of " + length + " bytes (expected: at most " + maxLength + ")");
        }
        next = from + length;
        return from;
    }

    /** Checks that {@code [from, to)} is valid UTF-8, as protobuf requires of a string. */
    void utf8(int from, int to, String what) {
        int i = from;
        while (i < to) {
            if (i + Long.BYTES <= to && (buffer.getLong(i) & 0x8080_8080_8080_8080L) == 0) {
                i += Long.BYTES;  // eight ASCII bytes
                continue;
            }
            byte b = buffer.get(i);
            if (b >= 0) {
                i++;
                continue;
            }
            if (b < (byte) 0xE0) {
                if (i + 1 >= to || b < (byte) 0xC2 || buffer.get(i + 1) > (byte) 0xBF) {
                    throw malformed(i, what + " is not UTF-8");
                }
                i += 2;
            } else if (b < (byte) 0xF0) {
                if (i + 2 >= to) {
                    throw malformed(i, what + " is not UTF-8");
                }
                byte b2 = buffer.get(i + 1);
                if (b2 > (byte) 0xBF || (b == (byte) 0xE0 && b2 < (byte) 0xA0) || (b == (byte) 0xED && b2 >= (byte) 0xA0)
                        || buffer.get(i + 2) > (byte) 0xBF) {
                    throw malformed(i, what + " is not UTF-8");
                }
                i += 3;
            } else {
                if (i + 3 >= to) {
                    throw malformed(i, what + " is not UTF-8");
                }
                byte b2 = buffer.get(i + 1);
                if (b2 > (byte) 0xBF || (((b << 28) + (b2 - (byte) 0x90)) >> 30) != 0
                        || buffer.get(i + 2) > (byte) 0xBF || buffer.get(i + 3) > (byte) 0xBF) {
                    throw malformed(i, what + " is not UTF-8");
                }
                i += 4;
            }
        }
    }
}
