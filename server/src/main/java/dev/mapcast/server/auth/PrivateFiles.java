package dev.mapcast.server.auth;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;

/** Files that name users and hold secrets (the root token, the audit log): created readable by their owner only. */
final class PrivateFiles {

    private static final FileAttribute<?> OWNER_ONLY =
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------"));

    private PrivateFiles() {
    }

    /** Opens {@code file}; one it creates gets mode 0600 where the file system has POSIX permissions. */
    static FileChannel open(Path file, Set<? extends OpenOption> options) throws IOException {
        return file.getFileSystem().supportedFileAttributeViews().contains("posix")
                ? FileChannel.open(file, options, OWNER_ONLY) : FileChannel.open(file, options);
    }
}
