package dev.mapcast.codec;

import java.util.List;
import java.util.function.Consumer;

/**
 * One JSON object on one line, fields in the order added: what every --json output of the CLI
 * prints and each record of the server's audit log is (one object per line, so a script reads it
 * with {@code jq -c} or line by line). Strings are escaped per RFC 8259: {@code "}, {@code \} and
 * the control characters, so a line never holds a raw newline; other characters stay as they are
 * (UTF-8 once written).
 */
public final class JsonLine {

    private final StringBuilder out = new StringBuilder(64).append('{');

    public JsonLine string(String name, String value) {
        name(name);
        quote(value);
        return this;
    }

    /** An unsigned number: revisions, sizes and byte counts are uint64 on the wire. */
    public JsonLine number(String name, long value) {
        name(name);
        out.append(Long.toUnsignedString(value));
        return this;
    }

    /** {@code "name":null}. */
    public JsonLine nullValue(String name) {
        name(name);
        out.append("null");
        return this;
    }

    public JsonLine bool(String name, boolean value) {
        name(name);
        out.append(value);
        return this;
    }

    /** {@code "name":["a","b"]}. */
    public JsonLine strings(String name, List<String> values) {
        return array(name, values, this::quote);
    }

    /** {@code "name":[{...},{...}]}: an array of objects. */
    public JsonLine objects(String name, List<JsonLine> values) {
        return array(name, values, out::append);
    }

    /** The object, without a line end. */
    @Override
    public String toString() {
        return out + "}";
    }

    private <T> JsonLine array(String name, List<T> values, Consumer<T> element) {
        name(name);
        out.append('[');
        for (int i = 0; i < values.size(); i++) {
            if (i > 0) {
                out.append(',');
            }
            element.accept(values.get(i));
        }
        out.append(']');
        return this;
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
