package dev.mapcast.cli;

import dev.mapcast.codec.JsonLine;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Base64;

/** How keys, values and times are shown in human-readable, one-line-per-item output. */
final class Text {

    private Text() {
    }

    /** The bytes as a string if they are valid UTF-8, else null. */
    static String utf8OrNull(byte[] bytes) {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException e) {
            return null;
        }
    }

    /**
     * The value as the next field of a --json line: {@code "value":"text"} when the bytes are
     * UTF-8, else {@code "value_base64":"..."}.
     */
    static JsonLine withValue(JsonLine line, byte[] value) {
        String text = utf8OrNull(value);
        return text != null ? line.string("value", text)
                : line.string("value_base64", Base64.getEncoder().encodeToString(value));
    }

    /**
     * A value on one line: its text with control characters escaped (a newline inside a value must
     * not look like the next item), or {@code base64:...} when it is not UTF-8. Exact bytes are
     * what --json and {@code get --raw} are for.
     */
    static String value(byte[] value) {
        String text = utf8OrNull(value);
        return text == null ? "base64:" + Base64.getEncoder().encodeToString(value) : oneLine(text);
    }

    /**
     * A key before {@code =} in a {@code KEY=VALUE} line: {@link #oneLine}, and its own {@code \}
     * and {@code =} escaped as {@code \\} and {@code \=}, so that the first unescaped {@code =} ends
     * it (key {@code a=b} with value {@code c} is {@code a\=b=c}).
     */
    static String keyBeforeEquals(String key) {
        return oneLine(key.replace("\\", "\\\\")).replace("=", "\\=");
    }

    /** Text with control characters escaped ({@code \n}, {@code \t}, {@code \x07}...). */
    static String oneLine(String s) {
        StringBuilder out = null;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c >= 0x20 && c != 0x7f) {
                if (out != null) {
                    out.append(c);
                }
                continue;
            }
            if (out == null) {
                out = new StringBuilder(s.length() + 8).append(s, 0, i);
            }
            switch (c) {
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> out.append(String.format("\\x%02x", (int) c));
            }
        }
        return out == null ? s : out.toString();
    }

    /** A key or map name in a message: quoted, on one line. */
    static String quoted(String s) {
        return "\"" + oneLine(s) + "\"";
    }

    /** A time in milliseconds since the epoch as ISO-8601 UTC to the second: {@code 2026-12-07T21:49:18Z}. */
    static String time(long unixMillis) {
        return Instant.ofEpochMilli(unixMillis).truncatedTo(ChronoUnit.SECONDS).toString();
    }

    /** {@code "name":"2026-12-07T21:49:18Z"} (see {@link #time}), or {@code "name":null} for 0 (never). */
    static JsonLine withTime(JsonLine line, String name, long unixMillis) {
        return unixMillis == 0 ? line.nullValue(name) : line.string(name, time(unixMillis));
    }
}
