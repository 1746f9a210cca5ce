package dev.mapcast.server.rpc;

import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.UnsafeByteOperations;
import java.util.HashMap;
import java.util.Map;

/**
 * Where and why a request's bytes are not a valid message of its type, in the request's own
 * terms: the field's path ({@code puts[2].key}), what is wrong, and the byte offset. protobuf-java
 * says only "Protocol message had invalid UTF-8." or quotes its own classes and methods.
 */
final class MalformedMessage {

    /** As protobuf-java's default: deeper nesting is refused. */
    private static final int MAX_DEPTH = 100;

    private MalformedMessage() {
    }

    /** What is wrong with {@code bytes} as a {@code type}, or null if this walk finds nothing wrong. */
    static String describe(Descriptor type, byte[] bytes) {
        try {
            new Walk(bytes).message(type, 0, bytes.length, "", 0);
            return null;
        } catch (Problem p) {
            return p.getMessage();
        }
    }

    private static final class Problem extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Problem(String message) {
            super(message, null, false, false);
        }
    }

    private static final class Walk {
        private final byte[] bytes;
        private int pos;

        Walk(byte[] bytes) {
            this.bytes = bytes;
        }

        void message(Descriptor type, int from, int to, String path, int depth) {
            if (depth > MAX_DEPTH) {
                throw new Problem(where(path) + "nested more than " + MAX_DEPTH + " messages deep (at byte " + from
                        + ")");
            }
            Map<Integer, Integer> seen = new HashMap<>();  // field number -> entries walked, for [i]
            pos = from;
            while (pos < to) {
                int tagAt = pos;
                long tag = varint(to, path, "a field tag");
                int number = (int) (tag >>> 3);
                int wireType = (int) (tag & 7);
                if (number == 0) {
                    throw new Problem(where(path) + "field number 0 at byte " + tagAt + " (not a valid field)");
                }
                FieldDescriptor field = type.findFieldByNumber(number);
                String name = path + (field == null ? "field " + number : field.getName());
                switch (wireType) {
                    case 0 -> varint(to, name, "a varint");
                    case 1 -> skip(8, to, name);
                    case 5 -> skip(4, to, name);
                    case 2 -> {
                        int lengthAt = pos;
                        long length = varint(to, name, "a length");
                        if (length > to - pos) {
                            throw new Problem("the message ends inside " + name + " (its length at byte " + lengthAt
                                    + " says " + length + " bytes, only " + (to - pos) + " left)");
                        }
                        int start = pos;
                        int end = pos + (int) length;
                        if (field != null && field.getType() == FieldDescriptor.Type.STRING
                                && !UnsafeByteOperations.unsafeWrap(bytes, start, end - start).isValidUtf8()) {
                            throw new Problem(name + " is not valid UTF-8 (bytes " + start + " to " + end
                                    + " of the message: " + hex(start, end) + ")");
                        }
                        if (field != null && field.getType() == FieldDescriptor.Type.MESSAGE) {
                            int index = field.isRepeated() ? seen.merge(number, 1, Integer::sum) - 1 : -1;
                            message(field.getMessageType(), start, end,
                                    name + (index >= 0 ? "[" + index + "]" : "") + ".", depth + 1);
                        }
                        pos = end;
                    }
                    default -> throw new Problem(where(name) + "wire type " + wireType + " at byte " + tagAt
                            + " (mapcast's messages use 0, 1, 2 and 5)");
                }
            }
        }

        private long varint(int to, String name, String what) {
            int at = pos;
            long value = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                if (pos >= to) {
                    throw new Problem("the message ends inside " + what + " of " + name + " (at byte " + at + ")");
                }
                byte b = bytes[pos++];
                value |= (long) (b & 0x7f) << shift;
                if (b >= 0) {
                    return value;
                }
            }
            throw new Problem(name + ": " + what + " longer than 10 bytes at byte " + at + " (a malformed varint)");
        }

        private void skip(int n, int to, String name) {
            if (to - pos < n) {
                throw new Problem("the message ends inside " + name + " (" + n + " bytes at byte " + pos + ", only "
                        + (to - pos) + " left)");
            }
            pos += n;
        }

        private String hex(int from, int to) {
            StringBuilder s = new StringBuilder();
            for (int i = from; i < Math.min(to, from + 16); i++) {
                s.append(String.format("%02x", bytes[i] & 0xff));
            }
            return s.append(to - from > 16 ? "..." : "").toString();
        }

        private static String where(String path) {
            return path.isEmpty() ? "" : path.substring(0, path.length() - (path.endsWith(".") ? 1 : 0)) + ": ";
        }
    }
}
