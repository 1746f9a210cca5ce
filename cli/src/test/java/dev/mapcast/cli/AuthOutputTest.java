package dev.mapcast.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.mapcast.cli.Processes.Result;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.proto.v1.Right;
import dev.mapcast.server.MapcastServer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the auth commands print, and the exit code and one line of a refused client, each command
 * its own JVM, against a real server with --auth. Times and token ids vary from run to run: the
 * output is compared with them replaced by TIME and ID.
 */
class AuthOutputTest {

    @TempDir
    static Path dir;

    private static MapcastServer server;
    private static String root;
    private static String alice;
    private static String aliceId;
    private static String revoked;
    private static String revokedId;
    private static final AtomicInteger runs = new AtomicInteger();

    @BeforeAll
    static void start() throws Exception {
        server = MapcastServer.builder().port(0).dataDir(dir.resolve("data")).auth(true).build().start();
        root = Files.readString(dir.resolve("data/root.token")).strip();
        try (MapcastClient admin = MapcastClient.builder().target(target()).token(root).build()) {
            admin.addUser("alice");
            admin.addUser("bob");
            admin.addRole("app-writer");
            admin.grantPermission("app-writer", Right.RIGHT_READWRITE, "app/prod/*");
            admin.grantPermission("app-writer", Right.RIGHT_READ, "config");
            admin.addRole("readers");
            admin.addRole("nobody");
            admin.grantRole("alice", "app-writer");
            admin.grantRole("alice", "readers");
            var token = admin.createToken("alice", null);
            alice = token.getSecret();
            aliceId = token.getToken().getId();
            var gone = admin.createToken("bob", null);
            revoked = gone.getSecret();
            revokedId = gone.getToken().getId();
            admin.revokeToken(revokedId);
        }
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
    }

    private static String target() {
        return "127.0.0.1:" + server.port();
    }

    @Test
    void aRefusedClientReadsOneLineAndExits6() throws Exception {
        assertFails(6, "no credentials: send a bearer token (--token, $MAPCAST_TOKEN) or a client certificate",
                mapcast(Map.of(), "get", "m", "k"));
        String notValid = "token " + revokedId + " is not valid (revoked, or never issued by this cluster)";
        assertFails(6, notValid + " (the token came from $MAPCAST_TOKEN)",
                mapcast(Map.of("MAPCAST_TOKEN", revoked), "put", "app/prod/m", "k", "v"));
        // --token-file goes before $MAPCAST_TOKEN (no usage error), and the message says which was sent.
        Path file = Files.writeString(dir.resolve("revoked.token"), revoked + "\n");
        assertFails(6, notValid + " (the token came from --token-file " + file + ")",
                mapcast(Map.of("MAPCAST_TOKEN", root), "ls", "--token-file", file.toString()));
        assertFails(6, "user \"alice\" may not add users (it needs the admin right: the root role)",
                mapcast(Map.of(), "user", "add", "carol", "--token", alice));
        assertFails(6, "user \"alice\" may not write map \"other\" (no role of it grants write on it)",
                mapcast(Map.of(), "put", "other", "k", "v", "--token", alice));
        assertOk(List.of("1"), mapcast(Map.of(), "put", "app/prod/m", "k", "v", "--token", alice));
    }

    @Test
    void tokenCreatePrintsTheSecretAloneOnStdout() throws Exception {
        Map<String, String> asRoot = Map.of("MAPCAST_TOKEN", root);
        Result created = mapcast(asRoot, "token", "create", "bob", "--ttl", "1h");
        assertEquals(0, created.exitCode(), created::toString);
        assertEquals(List.of("SECRET"), masked(created.stdout()), created::toString);
        assertEquals(List.of("created token ID for user \"bob\", expires TIME; its secret (above) is not shown"
                + " again"), masked(created.stderr()), created::toString);

        Result json = mapcast(asRoot, "token", "create", "bob", "--json");
        assertEquals(0, json.exitCode(), json::toString);
        assertEquals(List.of("{\"id\":\"ID\",\"user\":\"bob\",\"created\":\"TIME\",\"expires\":null,\"secret\":"
                + "\"SECRET\"}"), masked(json.stdout()), json::toString);
        assertFails(1, "token \"0000000000000000\" does not exist (see 'mapcast token list')",
                mapcast(asRoot, "token", "revoke", "0000000000000000"));
    }

    @Test
    void usersRolesAndWhoamiForPeopleAndAsJson() throws Exception {
        Map<String, String> asRoot = Map.of("MAPCAST_TOKEN", root);
        assertMasked(List.of(
                "NAME   CREATED               ROLES",
                "alice  TIME  app-writer, readers",
                "bob    TIME  (none)",
                "root   TIME  root"), mapcast(asRoot, "user", "list"));
        assertMasked(List.of(
                "{\"name\":\"alice\",\"roles\":[\"app-writer\",\"readers\"],\"created\":\"TIME\"}",
                "{\"name\":\"bob\",\"roles\":[],\"created\":\"TIME\"}",
                "{\"name\":\"root\",\"roles\":[\"root\"],\"created\":\"TIME\"}"),
                mapcast(asRoot, "user", "list", "--json"));
        assertFails(3, "refused by the server: ALREADY_EXISTS: user \"alice\" exists", mapcast(asRoot, "user", "add",
                "alice"));

        assertOk(List.of(
                "ROLE          RIGHT      PATTERN",
                "app-writer    readwrite  app/prod/*",
                "app-writer    read       config",
                "nobody        -          -",
                "readers       -          -",
                "root (admin)  readwrite  *"), mapcast(asRoot, "role", "list"));
        assertOk(List.of(
                "{\"name\":\"app-writer\",\"admin\":false,\"permissions\":[{\"pattern\":\"app/prod/*\",\"right\":"
                        + "\"readwrite\"},{\"pattern\":\"config\",\"right\":\"read\"}]}",
                "{\"name\":\"nobody\",\"admin\":false,\"permissions\":[]}",
                "{\"name\":\"readers\",\"admin\":false,\"permissions\":[]}",
                "{\"name\":\"root\",\"admin\":true,\"permissions\":[{\"pattern\":\"*\",\"right\":\"readwrite\"}]}"),
                mapcast(asRoot, "role", "list", "--json"));
        assertOk(List.of("granted write on \"app/*\" to role \"nobody\""), mapcast(asRoot, "role", "grant",
                "nobody", "Write", "app/*"));
        // FAILED_PRECONDITION: no --if-... condition here, the server refusing (exit 3, not 1).
        assertFails(3, "refused by the server: role \"root\" is built in: it has every right and cannot be changed"
                + " or deleted", mapcast(asRoot, "role", "delete", "root"));

        assertOk(List.of("user   alice", "via    token " + aliceId, "roles  app-writer, readers"),
                mapcast(Map.of(), "whoami", "--token", alice));
        assertOk(List.of("{\"auth_enabled\":true,\"user\":\"alice\",\"via\":\"token\",\"token_id\":\"" + aliceId
                + "\",\"roles\":[\"app-writer\",\"readers\"]}"), mapcast(Map.of(), "whoami", "--json", "--token", alice));
    }

    /** {@code mapcast args} against the server, with {@code env}. */
    private static Result mapcast(Map<String, String> env, String... args) {
        List<String> argv = new ArrayList<>(List.of(args));
        argv.addAll(List.of("--server", target(), "--timeout", "30s"));
        return Processes.mapcast(dir, Integer.toString(runs.incrementAndGet()), env, argv);
    }

    /** Lines with times, token secrets and ids replaced by TIME, SECRET and ID. */
    private static List<String> masked(String text) {
        return text.replaceAll("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ", "TIME")
                .replaceAll("mapcast_[0-9a-f]{16}\\.[A-Za-z0-9_-]{43}", "SECRET")
                .replaceAll("(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])", "ID").lines().toList();
    }

    private static void assertMasked(List<String> lines, Result r) {
        assertEquals(0, r.exitCode(), r::toString);
        assertEquals(lines, masked(r.stdout()), r::toString);
        assertEquals("", r.stderr(), r::toString);
    }

    private static void assertOk(List<String> lines, Result r) {
        assertEquals(0, r.exitCode(), r::toString);
        assertEquals(lines, r.lines(), r::toString);
        assertEquals("", r.stderr(), r::toString);
    }

    /** The exit code, and stderr exactly one line: {@code mapcast: <message>}. */
    private static void assertFails(int exitCode, String message, Result r) {
        assertEquals(exitCode, r.exitCode(), r::toString);
        assertEquals("mapcast: " + message + "\n", r.stderr(), r::toString);
        assertEquals("", r.stdout(), r::toString);
    }
}
