package dev.mapcast.server.storage;

import java.io.IOException;

/** The data directory holds something the server cannot recover from as it is; the message says what and where. */
public final class StorageException extends IOException {

    private static final long serialVersionUID = 1L;

    public StorageException(String message) {
        super(message);
    }

    public StorageException(String message, Throwable cause) {
        super(message, cause);
    }
}
