package dev.mapcast.cli;

import static dev.mapcast.cli.Processes.awaitContent;
import static dev.mapcast.cli.Processes.read;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.cli.Processes.Result;
import dev.mapcast.cli.cluster.ClusterProcesses;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Users, roles and tokens end to end: {@code mapcast serve --auth} in a process of its own, its
 * root token read from {@code <data-dir>/root.token}, and every command a separate JVM, as a user
 * runs them. Only the server's behaviour the contract states is relied on (statuses, and reasons
 * that name the map or the token); {@link AuthOutputTest} pins the exact output.
 */
class AuthCommandTest {

    @TempDir
    static Path dir;

    private static Process serve;
    private static Path log;
    private static String address;
    private static Path rootToken;
    private static final AtomicInteger runs = new AtomicInteger();

    @BeforeAll
    static void startServer() throws Exception {
        Path data = dir.resolve("data");
        log = dir.resolve("serve.log");
        serve = new ProcessBuilder(ClusterProcesses.mapcast("serve", "--auth", "--listen", "127.0.0.1:0",
                "--data-dir", data.toString())).redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(log.toFile()).start();
        awaitContent(log, s -> ServingLine.in(s) != null, serve, "the serving line");
        address = ServingLine.in(read(log)).address();
        rootToken = data.resolve("root.token");
        // The server writes it on its first start: waited for as a condition, should it come after the line.
        awaitContent(rootToken, s -> !s.isBlank(), serve, "the root token in " + rootToken);
    }

    @AfterAll
    static void stopServer() throws InterruptedException {
        if (serve != null) {
            serve.destroy();
            if (!serve.waitFor(Processes.PATIENCE_SECONDS, TimeUnit.SECONDS)) {
                serve.destroyForcibly();
            }
        }
    }

    @Test
    void usersRolesAndTokensEndToEnd() throws Exception {
        Map<String, String> root = Map.of("MAPCAST_TOKEN", Files.readAllLines(rootToken).get(0).strip());

        Result whoami = mapcast(Map.of(), "whoami", "--token-file", rootToken.toString());
        assertEquals(0, whoami.exitCode(), whoami::toString);
        assertEquals("user   root", whoami.lines().get(0), whoami::toString);
        assertJson("\"auth_enabled\":true,\"user\":\"root\",\"via\":\"token\"", mapcast(root, "whoami", "--json"));

        Result anonymous = mapcast(Map.of(), "ls");
        assertRefused(anonymous, "--token");

        assertJson("{\"name\":\"app\",\"roles\":[],", mapcast(root, "user", "add", "app", "--json"));
        assertJson("{\"name\":\"app-writer\",\"admin\":false,\"permissions\":[]}",
                mapcast(root, "role", "add", "app-writer", "--json"));
        assertJson("\"permissions\":[{\"pattern\":\"app/*\",\"right\":\"readwrite\"}]",
                mapcast(root, "role", "grant", "app-writer", "ReadWrite", "app/*", "--json"));
        assertJson("{\"name\":\"app\",\"roles\":[\"app-writer\"],",
                mapcast(root, "user", "grant-role", "app", "app-writer", "--json"));
        Result created = mapcast(root, "token", "create", "app", "--ttl", "1h", "--json");
        assertJson("\"user\":\"app\",", created);
        String id = field(created, "id");
        Map<String, String> app = Map.of("MAPCAST_TOKEN", field(created, "secret"));

        assertEquals(0, mapcast(root, "put", "other", "k", "v").exitCode());
        Result put = mapcast(app, "put", "app/config", "region", "eu-west-1");
        assertEquals(0, put.exitCode(), put::toString);
        assertRefused(mapcast(app, "put", "other", "k", "v2"), "\"other\"");
        Result get = mapcast(root, "get", "other", "k");
        assertEquals("v\n", get.stdout(), "the refused write changed nothing: " + get);

        Result appMaps = mapcast(app, "ls", "--json");
        assertEquals(0, appMaps.exitCode(), appMaps::toString);
        assertEquals(List.of("app/config"), names(appMaps), "only the maps it may read: " + appMaps);
        assertEquals(List.of("app/config", "other"), names(mapcast(root, "ls", "--json")).stream().sorted().toList());

        Result users = mapcast(root, "user", "list", "--json");
        assertTrue(users.lines().stream().anyMatch(l -> l.startsWith("{\"name\":\"app\",\"roles\":[\"app-writer\"],"))
                && users.lines().stream().anyMatch(l -> l.startsWith("{\"name\":\"root\",")), users::toString);
        Result roles = mapcast(root, "role", "list", "--json");
        assertTrue(roles.lines().contains("{\"name\":\"app-writer\",\"admin\":false,\"permissions\":[{\"pattern\":"
                + "\"app/*\",\"right\":\"readwrite\"}]}")
                && roles.lines().stream().anyMatch(l -> l.startsWith("{\"name\":\"root\",\"admin\":true,")),
                roles::toString);
        Result tokens = mapcast(root, "token", "list", "app", "--json");
        assertTrue(tokens.lines().stream().anyMatch(l -> l.startsWith("{\"id\":\"" + id + "\",\"user\":\"app\",")),
                tokens::toString);

        assertJson("{\"id\":\"" + id + "\",\"user\":\"app\",", mapcast(root, "token", "revoke", id, "--json"));
        assertRefused(mapcast(app, "get", "app/config", "region"), id);
    }

    /** Exit 6, nothing on stdout, and one line on stderr that names {@code what}. */
    private static void assertRefused(Result r, String what) {
        assertEquals(6, r.exitCode(), r::toString);
        assertEquals("", r.stdout(), r::toString);
        List<String> lines = r.stderr().lines().toList();
        assertTrue(lines.size() == 1 && lines.get(0).startsWith("mapcast: ") && lines.get(0).contains(what),
                r::toString);
    }

    /** Exit 0 and one JSON line containing {@code part}. */
    private static void assertJson(String part, Result r) {
        assertEquals(0, r.exitCode(), r::toString);
        assertTrue(r.lines().size() == 1 && r.lines().get(0).startsWith("{") && r.lines().get(0).contains(part),
                r::toString);
    }

    /** A string field of the one JSON line printed. */
    private static String field(Result r, String name) {
        Matcher m = Pattern.compile("\"" + name + "\":\"([^\"]*)\"").matcher(r.stdout());
        assertTrue(m.find(), () -> name + " in " + r);
        return m.group(1);
    }

    /** The "name" of every line of {@code ls --json}. */
    private static List<String> names(Result r) {
        List<String> names = new ArrayList<>();
        for (String line : r.lines()) {
            Matcher m = Pattern.compile("^\\{\"name\":\"([^\"]*)\"").matcher(line);
            assertTrue(m.find(), line);
            names.add(m.group(1));
        }
        return names;
    }

    private static Result mapcast(Map<String, String> env, String... args) {
        List<String> argv = new ArrayList<>(List.of(args));
        argv.addAll(List.of("--server", address, "--timeout", "30s"));
        return Processes.mapcast(dir, runs.incrementAndGet() + "-" + args[0], env, argv);
    }
}
