package dev.mapcast.core;

import java.nio.charset.StandardCharsets;
import java.util.Random;

/**
 * Test keys as Strings whose chars are the key bytes (ISO-8859-1), so that a model map can use
 * them as keys and every byte value round-trips.
 */
final class Keys {

    private static final String READABLE = "abcdefghijklmnopqrstuvwxyz0123456789_-./:";

    private Keys() {
    }

    static byte[] bytes(String key) {
        return key.getBytes(StandardCharsets.ISO_8859_1);
    }

    static String string(byte[] key) {
        return new String(key, StandardCharsets.ISO_8859_1);
    }

    /** A String-ish key of 1..40 bytes: mostly readable, sometimes any byte. */
    static String random(Random rnd) {
        int length = 1 + rnd.nextInt(40);
        char[] chars = new char[length];
        boolean binary = rnd.nextInt(10) == 0;
        for (int i = 0; i < length; i++) {
            chars[i] = binary ? (char) rnd.nextInt(256) : READABLE.charAt(rnd.nextInt(READABLE.length()));
        }
        return new String(chars);
    }

    /** Random bytes of the given length. */
    static byte[] randomBytes(Random rnd, int length) {
        byte[] bytes = new byte[length];
        rnd.nextBytes(bytes);
        return bytes;
    }

    /** The key with unprintable bytes escaped, for messages. */
    static String printable(String key) {
        StringBuilder b = new StringBuilder(key.length() + 2).append('"');
        for (int i = 0; i < key.length(); i++) {
            char c = key.charAt(i);
            if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
                b.append(c);
            } else {
                b.append(String.format("\\x%02x", (int) c));
            }
        }
        return b.append('"').toString();
    }
}
