package dev.mapcast.server.map;

import java.nio.charset.StandardCharsets;

/** UTF-8 helpers for keys and names in status descriptions. */
public final class Utf8 {

    private static final int PREVIEW_CHARS = 40;

    private Utf8() {
    }

    public static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static int length(String s) {
        int bytes = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                bytes += 1;
            } else if (c < 0x800) {
                bytes += 2;
            } else if (Character.isHighSurrogate(c)) {
                bytes += 4;
                i++;
            } else {
                bytes += 3;
            }
        }
        return bytes;
    }

    /** The key quoted, cut to a readable length, for error messages. */
    static String preview(byte[] key) {
        String s = new String(key, StandardCharsets.UTF_8);
        return '"' + (s.length() > PREVIEW_CHARS ? s.substring(0, PREVIEW_CHARS) + "..." : s) + '"';
    }
}
