package dev.mapcast.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.mapcast.cli.Processes.Result;
import dev.mapcast.proto.v1.AddUserRequest;
import dev.mapcast.proto.v1.AuthRole;
import dev.mapcast.proto.v1.AuthToken;
import dev.mapcast.proto.v1.AuthUser;
import dev.mapcast.proto.v1.CreateTokenRequest;
import dev.mapcast.proto.v1.CreateTokenResponse;
import dev.mapcast.proto.v1.DeleteRoleRequest;
import dev.mapcast.proto.v1.DeleteRoleResponse;
import dev.mapcast.proto.v1.GrantPermissionRequest;
import dev.mapcast.proto.v1.ListRolesRequest;
import dev.mapcast.proto.v1.ListRolesResponse;
import dev.mapcast.proto.v1.ListUsersRequest;
import dev.mapcast.proto.v1.ListUsersResponse;
import dev.mapcast.proto.v1.MapcastAuthGrpc;
import dev.mapcast.proto.v1.Permission;
import dev.mapcast.proto.v1.RevokeTokenRequest;
import dev.mapcast.proto.v1.RevokeTokenResponse;
import dev.mapcast.proto.v1.Right;
import dev.mapcast.proto.v1.WhoAmIRequest;
import dev.mapcast.proto.v1.WhoAmIResponse;
import dev.mapcast.server.MapcastServer;
import dev.mapcast.testing.GatedProxy;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
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
 * its own JVM: against a {@link GatedProxy} in front of a real server, which checks tokens as a
 * server with --auth does (the same statuses and reasons) and answers the MapcastAuth calls with a
 * stand-in's fixed answers. {@link AuthCommandTest} runs the same against the real thing.
 */
class AuthOutputTest {

    private static final String ROOT = "mapcast_0123456789abcdef.rootrootrootrootrootrootrootrootrootrootroo";
    private static final String APP = "mapcast_3fa2c1d4e5f60718.appappappappappappappappappappappappappapp";
    private static final String REVOKED = "mapcast_dead00000000beef.gonegonegonegonegonegonegonegonegonegonegon";
    private static final long CREATED = Instant.parse("2026-12-07T21:49:18.250Z").toEpochMilli();

    @TempDir
    static Path dir;

    private static MapcastServer server;
    private static GatedProxy proxy;
    private static final AtomicInteger runs = new AtomicInteger();

    @BeforeAll
    static void start() throws Exception {
        server = MapcastServer.builder().port(0).build().start();
        proxy = GatedProxy.start("127.0.0.1:" + server.port(), AuthOutputTest::check, new StandIn());
    }

    @AfterAll
    static void stop() throws Exception {
        if (proxy != null) {
            proxy.close();
        }
        if (server != null) {
            server.close();
        }
    }

    /** As a server with --auth: ROOT may do anything; APP may use maps but not manage users. */
    private static Status check(String method, String authorization) {
        if (authorization == null) {
            return GatedProxy.NO_CREDENTIALS;
        }
        if (authorization.equals("Bearer " + ROOT) || method.endsWith("/WhoAmI")) {
            return Status.OK;
        }
        if (authorization.equals("Bearer " + APP)) {
            return method.startsWith("mapcast.v1.MapcastAuth/") ? Status.PERMISSION_DENIED.withDescription(
                    "user \"app\" may not manage users, roles and tokens (it lacks the root role)") : Status.OK;
        }
        String id = authorization.substring("Bearer mapcast_".length(), "Bearer mapcast_".length() + 16);
        return Status.UNAUTHENTICATED.withDescription("token \"" + id + "\" was revoked");
    }

    @Test
    void aRefusedClientReadsOneLineAndExits6() throws Exception {
        assertFails(6, "no credentials: send a bearer token (--token, $MAPCAST_TOKEN) or a client certificate",
                mapcast(Map.of(), "get", "m", "k"));
        assertFails(6, "token \"dead00000000beef\" was revoked (the token came from $MAPCAST_TOKEN)",
                mapcast(Map.of("MAPCAST_TOKEN", REVOKED), "put", "m", "k", "v"));
        // --token-file goes before $MAPCAST_TOKEN (no usage error), and the message says which was sent.
        Path file = Files.writeString(dir.resolve("revoked.token"), REVOKED + "\n");
        assertFails(6, "token \"dead00000000beef\" was revoked (the token came from --token-file " + file + ")",
                mapcast(Map.of("MAPCAST_TOKEN", ROOT), "ls", "--token-file", file.toString()));
        assertFails(6, "user \"app\" may not manage users, roles and tokens (it lacks the root role)",
                mapcast(Map.of(), "user", "add", "bob", "--token", APP));
        assertOk(List.of("1"), mapcast(Map.of(), "put", "m", "k", "v", "--token", APP));
    }

    @Test
    void tokenCreatePrintsTheSecretAloneOnStdout() throws Exception {
        Map<String, String> root = Map.of("MAPCAST_TOKEN", ROOT);
        Result created = mapcast(root, "token", "create", "app", "--ttl", "1h");
        assertEquals(0, created.exitCode(), created::toString);
        assertEquals(APP + "\n", created.stdout(), created::toString);
        assertEquals("created token 3fa2c1d4e5f60718 for user \"app\", expires 2026-12-07T22:49:18Z; its secret"
                + " (above) is not shown again\n", created.stderr());

        assertOk(List.of("{\"id\":\"3fa2c1d4e5f60718\",\"user\":\"app\",\"created\":\"2026-12-07T21:49:18Z\","
                + "\"expires\":null,\"secret\":\"" + APP + "\"}"), mapcast(root, "token", "create", "app", "--json"));
        assertFails(1, "token \"0000000000000000\" does not exist",
                mapcast(root, "token", "revoke", "0000000000000000"));
    }

    @Test
    void usersRolesAndWhoamiForPeopleAndAsJson() throws Exception {
        Map<String, String> root = Map.of("MAPCAST_TOKEN", ROOT);
        assertOk(List.of(
                "NAME   CREATED               ROLES",
                "alice  2026-12-07T21:49:18Z  app-writer, readers",
                "root   -                     root",
                "bob    2026-12-07T21:49:18Z  (none)"), mapcast(root, "user", "list"));
        assertOk(List.of(
                "{\"name\":\"alice\",\"roles\":[\"app-writer\",\"readers\"],\"created\":\"2026-12-07T21:49:18Z\"}",
                "{\"name\":\"root\",\"roles\":[\"root\"],\"created\":null}",
                "{\"name\":\"bob\",\"roles\":[],\"created\":\"2026-12-07T21:49:18Z\"}"),
                mapcast(root, "user", "list", "--json"));
        assertFails(3, "refused by the server: ALREADY_EXISTS: user \"alice\" exists", mapcast(root, "user", "add",
                "alice"));

        assertOk(List.of(
                "ROLE          RIGHT      PATTERN",
                "root (admin)  readwrite  *",
                "app-writer    readwrite  app/prod/*",
                "app-writer    read       config",
                "nobody        -          -"), mapcast(root, "role", "list"));
        assertOk(List.of(
                "{\"name\":\"root\",\"admin\":true,\"permissions\":[{\"pattern\":\"*\",\"right\":\"readwrite\"}]}",
                "{\"name\":\"app-writer\",\"admin\":false,\"permissions\":[{\"pattern\":\"app/prod/*\",\"right\":"
                        + "\"readwrite\"},{\"pattern\":\"config\",\"right\":\"read\"}]}",
                "{\"name\":\"nobody\",\"admin\":false,\"permissions\":[]}"), mapcast(root, "role", "list", "--json"));
        assertOk(List.of("granted write on \"app/*\" to role \"app-writer\""), mapcast(root, "role", "grant",
                "app-writer", "Write", "app/*"));
        // FAILED_PRECONDITION: no --if-... condition here, the server refusing (exit 3, not 1).
        assertFails(3, "refused by the server: role \"root\" is built in and cannot be changed", mapcast(root, "role",
                "delete", "root"));

        assertOk(List.of("user   alice", "via    token 3fa2c1d4e5f60718", "roles  app-writer, readers"),
                mapcast(Map.of(), "whoami", "--token", APP));
        assertOk(List.of("{\"auth_enabled\":true,\"user\":\"alice\",\"via\":\"token\",\"token_id\":"
                + "\"3fa2c1d4e5f60718\",\"roles\":[\"app-writer\",\"readers\"]}"), mapcast(Map.of(), "whoami", "--json",
                        "--token", APP));
    }

    /** Today's server, without the MapcastAuth service: the same line as for any method it lacks. */
    @Test
    void aServerWithoutTheAuthServiceIsNamed() throws Exception {
        String direct = "127.0.0.1:" + server.port();
        assertFails(4, "the server at " + direct + " is not a mapcast server, or one too old for this command (Method"
                + " not found: mapcast.v1.MapcastAuth/WhoAmI)", mapcast(Map.of(), "whoami", "--server", direct));
    }

    /** The stand-in's fixed answers, in the shapes the contract gives. */
    private static final class StandIn extends MapcastAuthGrpc.MapcastAuthImplBase {
        private static final AuthUser ALICE = AuthUser.newBuilder().setName("alice").addRoles("app-writer")
                .addRoles("readers").setCreatedUnixMs(CREATED).build();

        @Override
        public void whoAmI(WhoAmIRequest request, StreamObserver<WhoAmIResponse> responses) {
            answer(responses, WhoAmIResponse.newBuilder().setAuthEnabled(true).setUser("alice").setVia("token")
                    .setTokenId("3fa2c1d4e5f60718").addAllRoles(ALICE.getRolesList()).build());
        }

        @Override
        public void createToken(CreateTokenRequest request, StreamObserver<CreateTokenResponse> responses) {
            AuthToken.Builder token = AuthToken.newBuilder().setId("3fa2c1d4e5f60718").setUser(request.getUser())
                    .setCreatedUnixMs(CREATED);
            if (request.getTtlSeconds() > 0) {
                token.setExpiresUnixMs(CREATED + request.getTtlSeconds() * 1000);
            }
            answer(responses, CreateTokenResponse.newBuilder().setToken(token).setSecret(APP).build());
        }

        @Override
        public void revokeToken(RevokeTokenRequest request, StreamObserver<RevokeTokenResponse> responses) {
            refuse(responses, Status.NOT_FOUND.withDescription("token \"" + request.getId() + "\" does not exist"));
        }

        @Override
        public void listUsers(ListUsersRequest request, StreamObserver<ListUsersResponse> responses) {
            answer(responses, ListUsersResponse.newBuilder().addUsers(ALICE)
                    .addUsers(AuthUser.newBuilder().setName("root").addRoles("root"))
                    .addUsers(AuthUser.newBuilder().setName("bob").setCreatedUnixMs(CREATED)).build());
        }

        @Override
        public void addUser(AddUserRequest request, StreamObserver<AuthUser> responses) {
            refuse(responses, Status.ALREADY_EXISTS.withDescription("user \"" + request.getName() + "\" exists"));
        }

        @Override
        public void listRoles(ListRolesRequest request, StreamObserver<ListRolesResponse> responses) {
            answer(responses, ListRolesResponse.newBuilder()
                    .addRoles(AuthRole.newBuilder().setName("root").setAdmin(true).addPermissions(permission("*",
                            Right.RIGHT_READWRITE)))
                    .addRoles(AuthRole.newBuilder().setName("app-writer").addPermissions(permission("app/prod/*",
                            Right.RIGHT_READWRITE)).addPermissions(permission("config", Right.RIGHT_READ)))
                    .addRoles(AuthRole.newBuilder().setName("nobody")).build());
        }

        @Override
        public void grantPermission(GrantPermissionRequest request, StreamObserver<AuthRole> responses) {
            answer(responses, AuthRole.newBuilder().setName(request.getRole()).addPermissions(request.getPermission())
                    .build());
        }

        @Override
        public void deleteRole(DeleteRoleRequest request, StreamObserver<DeleteRoleResponse> responses) {
            refuse(responses, Status.FAILED_PRECONDITION.withDescription("role \"root\" is built in and cannot be"
                    + " changed"));
        }

        private static Permission permission(String pattern, Right right) {
            return Permission.newBuilder().setPattern(pattern).setRight(right).build();
        }

        private static <T> void answer(StreamObserver<T> responses, T answer) {
            responses.onNext(answer);
            responses.onCompleted();
        }

        private static void refuse(StreamObserver<?> responses, Status status) {
            responses.onError(status.asRuntimeException());
        }
    }

    /** {@code mapcast args} against the proxy (unless args name a --server), with {@code env}. */
    private static Result mapcast(Map<String, String> env, String... args) {
        List<String> argv = new ArrayList<>(List.of(args));
        if (!argv.contains("--server")) {
            argv.addAll(List.of("--server", proxy.target()));
        }
        argv.addAll(List.of("--timeout", "30s"));
        return Processes.mapcast(dir, Integer.toString(runs.incrementAndGet()), env, argv);
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
