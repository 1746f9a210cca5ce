package dev.mapcast.server.auth;

import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.proto.v1.AuthUser;
import dev.mapcast.proto.v1.CreateTokenResponse;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.EnumSet;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The first start with --auth: creates user {@code root} with the root role and a token that never
 * expires, and writes the token to {@code <data-dir>/root.token} (mode 0600, written whole or not
 * at all), logging the path and never the token. Does nothing if user root exists. In a cluster
 * the members race; the creation is conditional on root being absent, so one wins, and the token
 * file is in the data directory of the member whose creation was committed.
 */
public final class RootBootstrap {

    private static final Logger log = LoggerFactory.getLogger(RootBootstrap.class);
    public static final String TOKEN_FILE = "root.token";

    private RootBootstrap() {
    }

    /** Creates root if absent; returns the token file written, or null if root existed. */
    public static Path run(AuthStore store, Path dataDir) throws IOException {
        AuthStore.Applied<CreateTokenResponse> applied;
        try {
            applied = store.update(state -> {
                if (state.users.containsKey(AuthState.ROOT)) {
                    return new AuthStore.Edit<>();
                }
                AuthStore.Edit<CreateTokenResponse> edit = AuthService.newToken(AuthState.ROOT, 0);
                return edit.put("user/" + AuthState.ROOT, AuthUser.newBuilder().setName(AuthState.ROOT)
                        .addRoles(AuthState.ROOT).setCreatedUnixMs(System.currentTimeMillis()).build());
            });
        } catch (StatusRuntimeException e) {
            if (e.getStatus().getCode() == Status.Code.ABORTED) {
                return null;  // another member created root meanwhile
            }
            throw e;
        }
        if (applied.result() == null) {
            log.info("auth on: user root exists (its token is where it was first written, e.g. {})",
                    dataDir.resolve(TOKEN_FILE));
            return null;
        }
        Path file = dataDir.resolve(TOKEN_FILE);
        writePrivate(file, applied.result().getSecret() + "\n");
        log.info("auth on: created user root; its token (id {}) is in {} (readable by this user only): keep it safe,"
                + " use it to create other users and their tokens", applied.result().getToken().getId(), file);
        return file;
    }

    /** Writes {@code text} to a new temporary file with mode 0600, forces it, renames it into place. */
    static void writePrivate(Path file, String text) throws IOException {
        Path temp = file.resolveSibling(file.getFileName() + ".tmp");
        Files.deleteIfExists(temp);
        try (FileChannel out = PrivateFiles.open(temp, EnumSet.of(StandardOpenOption.CREATE_NEW,
                StandardOpenOption.WRITE))) {
            ByteBuffer bytes = ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8));
            while (bytes.hasRemaining()) {
                out.write(bytes);
            }
            out.force(true);
        }
        Files.move(temp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        SnapshotFiles.forceDirectory(file.toAbsolutePath().getParent());
    }
}
