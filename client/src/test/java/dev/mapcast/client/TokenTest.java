package dev.mapcast.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.codec.Codec;
import dev.mapcast.proto.v1.AuthToken;
import dev.mapcast.proto.v1.CreateTokenResponse;
import dev.mapcast.proto.v1.Right;
import dev.mapcast.server.MapcastServer;
import io.grpc.Status;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link MapcastClient.Builder#token}: against a real server with --auth, the token goes with every
 * call the client makes, over plaintext, on every kind of call and after failover (a call without
 * it would be refused), and the server's refusals reach the caller with its reason.
 */
class TokenTest {

    @TempDir
    Path dir;

    private MapcastServer server;
    private String root;
    private final List<AutoCloseable> toClose = new ArrayList<>();

    @BeforeEach
    void start() throws IOException {
        server = MapcastServer.builder().port(0).dataDir(dir.resolve("data")).auth(true).build().start();
        root = Files.readString(dir.resolve("data/root.token")).strip();
    }

    @AfterEach
    void stop() throws Exception {
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
        server.close();
    }

    private String target() {
        return "127.0.0.1:" + server.port();
    }

    @Test
    void everyKindOfCallCarriesTheTokenAlsoAfterFailover() {
        // The first member is down: every call fails over to the server, and a write goes there only
        // because it never left this client. A fresh client per call, so each meets the dead member.
        String target = "127.0.0.1:" + closedPort() + "," + target();
        List<Consumer<MapcastClient>> calls = new ArrayList<>(EveryKindOfCall.on(dir));
        // A single server has no cluster: refused, but only after the caller was authenticated.
        calls.add(c -> assertEquals(Status.Code.FAILED_PRECONDITION,
                assertThrows(MapcastException.class, c::clusterStatus).code()));
        calls.add(c -> assertEquals("root", c.whoAmI().getUser()));
        for (Consumer<MapcastClient> call : calls) {
            call.accept(client(target, root));
        }
    }

    @Test
    void refusalsReachTheCallerWithTheServersReason() throws Exception {
        MapcastClient admin = client(target(), root);
        MapcastClient anonymous = client(target(), null);
        MapcastException none = assertThrows(MapcastException.class, () -> anonymous.get("config", "a"));
        assertEquals(Status.Code.UNAUTHENTICATED, none.code());
        assertEquals("no credentials: send a bearer token (--token, $MAPCAST_TOKEN) or a client certificate",
                none.description());

        admin.addUser("reader");
        admin.addRole("config-r");
        admin.grantPermission("config-r", Right.RIGHT_READ, "config");
        admin.grantRole("reader", "config-r");
        CreateTokenResponse revokedToken = admin.createToken("reader", null);
        admin.revokeToken(revokedToken.getToken().getId());
        MapcastException revoked = assertThrows(MapcastException.class,
                () -> client(target(), revokedToken.getSecret()).put("config", "a", "1"));
        assertEquals(Status.Code.UNAUTHENTICATED, revoked.code(), "a write on the write stream, refused");
        assertTrue(revoked.description().contains(revokedToken.getToken().getId()), revoked.getMessage());

        admin.put("config", "a", "1");
        MapcastClient reader = client(target(), admin.createToken("reader", null).getSecret());
        assertEquals("1", new String(reader.get("config", "a").value()));
        MapcastException denied = assertThrows(MapcastException.class, () -> reader.put("config", "a", "2"));
        assertEquals(Status.Code.PERMISSION_DENIED, denied.code());
        assertEquals("user \"reader\" may not write map \"config\" (no role of it grants write on it)",
                denied.description());
        MapcastException deniedDelete = assertThrows(MapcastException.class, () -> reader.deleteMap("config"));
        assertEquals(Status.Code.PERMISSION_DENIED, deniedDelete.code(), "a unary write, refused alike");

        // A refused replica keeps trying (a grant may be on its way) and has no state meanwhile.
        MapcastClient stranger = client(target(), admin.createToken("reader", null).getSecret());
        admin.revokePermission("config-r", "config");
        try (Replica<String, String> r = stranger.replica("config", Codec.utf8(), Codec.utf8())) {
            assertFalse(r.awaitRevision(1, Duration.ofMillis(300)));
            assertFalse(r.isSynced());
        }
    }

    @Test
    void theAdminCallsSendWhatTheyAreGiven() {
        MapcastClient admin = client(target(), root);
        admin.addUser("app");
        AuthToken expiring = admin.createToken("app", Duration.ofMillis(1500)).getToken();
        assertEquals("app", expiring.getUser());
        assertEquals(2000, expiring.getExpiresUnixMs() - expiring.getCreatedUnixMs(),
                "1.5 s rounds up to 2 s, never down to 0 (never expires)");
        assertEquals(0, admin.createToken("app", null).getToken().getExpiresUnixMs(), "null: never expires");
        assertThrows(IllegalArgumentException.class, () -> admin.createToken("app", Duration.ZERO));
        assertThrows(IllegalArgumentException.class, () -> admin.createToken("app", Duration.ofSeconds(-1)));
        IllegalArgumentException unspecified = assertThrows(IllegalArgumentException.class,
                () -> admin.grantPermission("r", Right.RIGHT_UNSPECIFIED, "app/*"));
        assertEquals("right: RIGHT_UNSPECIFIED (expected: RIGHT_READ, RIGHT_WRITE or RIGHT_READWRITE)",
                unspecified.getMessage());
        assertEquals(2, admin.listTokens("app").size(), "nothing sent for a bad argument");

        MapcastException exists = assertThrows(MapcastException.class, () -> admin.addUser("app"));
        assertEquals(Status.Code.ALREADY_EXISTS, exists.code());
        assertEquals("user \"app\" exists", exists.description());
    }

    @Test
    void aTokenMustBeOneAHeaderCanCarryAndIsNeverShownInTheError() {
        assertEquals("token: null (expected: a token's secret as 'mapcast token create' prints it, printable ASCII"
                + " without spaces)", assertThrows(IllegalArgumentException.class,
                        () -> MapcastClient.builder().token(null)).getMessage());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> MapcastClient.builder().token(" \t"))
                .getMessage().startsWith("token: blank (expected: "));
        for (String bad : new String[] {"s3cr3t-part\n", "s3cr3t part", "s3cr3t-pärt", "s3cr3t\u0000"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> MapcastClient.builder().token(bad), bad);
            assertTrue(e.getMessage().startsWith("token: character U+") && !e.getMessage().contains("s3cr3t"),
                    e.getMessage());
        }
        assertEquals("token: character U+000A at index 11 of 12 (expected: a token's secret as 'mapcast token"
                + " create' prints it, printable ASCII without spaces)", assertThrows(IllegalArgumentException.class,
                        () -> MapcastClient.builder().token("s3cr3t-part\n")).getMessage());
    }

    /** A port nothing listens on: bound, then closed. */
    private static int closedPort() {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    private MapcastClient client(String target, String token) {
        MapcastClient.Builder b = MapcastClient.builder().target(target)
                .reconnectBackoff(Duration.ofMillis(50), Duration.ofMillis(500));
        MapcastClient c = (token == null ? b : b.token(token)).build();
        toClose.add(c);
        return c;
    }
}
