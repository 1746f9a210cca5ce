package dev.mapcast.bench;

import java.util.Arrays;

/**
 * A byte-array key for {@link java.util.HashMap}: content equality over a final array, with the
 * hash computed once. The most favourable realistic way to key a {@code HashMap} by byte strings
 * (a bare {@code byte[]} compares by identity, so it cannot look anything up by content).
 */
final class ByteKey {

    final byte[] bytes;
    private final int hash;

    ByteKey(byte[] bytes) {
        this.bytes = bytes;
        this.hash = Arrays.hashCode(bytes);
    }

    @Override
    public int hashCode() {
        return hash;
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof ByteKey)) {
            return false;
        }
        ByteKey other = (ByteKey) o;
        return hash == other.hash && Arrays.equals(bytes, other.bytes);
    }
}
