package dev.mapcast.codec;

import java.io.IOException;
import java.nio.file.Path;

/** A snapshot file that is not what it should be: what is wrong and where. Nothing was applied. */
public final class SnapshotFileException extends IOException {

    private static final long serialVersionUID = 1L;

    private final long offset;

    SnapshotFileException(Path file, long offset, String reason) {
        super(file + ": at byte " + offset + ": " + reason);
        this.offset = offset;
    }

    SnapshotFileException(Path file, long offset, String reason, Throwable cause) {
        super(file + ": at byte " + offset + ": " + reason, cause);
        this.offset = offset;
    }

    /** The byte of the file where the problem was found. */
    public long offset() {
        return offset;
    }
}
