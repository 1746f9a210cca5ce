package dev.mapcast.cli;

import java.util.Base64;

/**
 * One JSON object on one line, fields in the order added: what every --json output prints (one
 * object per line, so a script reads it with {@code jq -c} or line by line).
 */
final class JsonLine {

    private final StringBuilder out = new StringBuilder(64).append('{');

    JsonLine string(String name, String value) {
        name(name);
        quote(value);
        return this;
    }

    JsonLine number(String name, long value) {
        name(name);
        // Revisions, sizes and byte counts are uint64 on the wire.
        out.append(Long.toUnsignedString(value));
        return this;
    }

    JsonLine bool(String name, boolean value) {
        name(name);
        out.append(value);
        return this;
    }

    /** {@code "name":["a","b"]}. */
    JsonLine strings(String name, java.util.List<String> values) {
        name(name);
        out.append('[');
        for (int i = 0; i < values.size(); i++) {
            if (i > 0) {
                out.append(',');
            }
            quote(values.get(i));
        }
        out.append(']');
        return this;
    }

    /** {@code "name":[{...},{...}]}: an array of objects. */
    JsonLine objects(String name, java.util.List<JsonLine> values) {
        name(name);
        out.append('[');
        for (int i = 0; i < values.size(); i++) {
            if (i > 0) {
                out.append(',');
            }
            out.append(values.get(i));
        }
        out.append(']');
        return this;
    }

    /** {@code "value":"text"} when the bytes are UTF-8, else {@code "value_base64":"..."}. */
    JsonLine value(byte[] value) {
        String text = Text.utf8OrNull(value);
        return text != null ? string("value", text) : string("value_base64", Base64.getEncoder().encodeToString(value));
    }

    @Override
    public String toString() {
        return out + "}";
    }

    private void name(String name) {
        if (out.length() > 1) {
            out.append(',');
        }
        quote(name);
        out.append(':');
    }

    private void quote(String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }
}
