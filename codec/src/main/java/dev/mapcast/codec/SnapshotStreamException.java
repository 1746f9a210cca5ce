package dev.mapcast.codec;

import java.io.IOException;

/**
 * A received snapshot stream that is not what it should be (a malformed chunk, chunks of another
 * map or revision, a count or digest that does not match the entries): what is wrong and in which
 * chunk. The {@link SnapshotFileWriter} that met it wrote nothing.
 */
public final class SnapshotStreamException extends IOException {

    private static final long serialVersionUID = 1L;

    private final long chunk;

    SnapshotStreamException(long chunk, String reason) {
        super("snapshot stream, chunk " + chunk + ": " + reason);
        this.chunk = chunk;
    }

    SnapshotStreamException(long chunk, String reason, Throwable cause) {
        super("snapshot stream, chunk " + chunk + ": " + reason, cause);
        this.chunk = chunk;
    }

    /** The chunk, counted from 1, where the problem was found. */
    public long chunk() {
        return chunk;
    }
}
