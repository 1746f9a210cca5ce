package dev.mapcast.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.codec.Codec;
import dev.mapcast.proto.v1.AuthToken;
import dev.mapcast.proto.v1.CreateTokenRequest;
import dev.mapcast.proto.v1.CreateTokenResponse;
import dev.mapcast.proto.v1.MapcastAuthGrpc;
import dev.mapcast.proto.v1.Right;
import dev.mapcast.proto.v1.WhoAmIRequest;
import dev.mapcast.proto.v1.WhoAmIResponse;
import dev.mapcast.server.MapcastServer;
import dev.mapcast.testing.GatedProxy;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link MapcastClient.Builder#token}: the token goes with every call the client makes, over
 * plaintext, on every kind of call and after failover, and the server's refusals reach the caller
 * with its reason. A {@link GatedProxy} in front of a real server checks the header as a server
 * with {@code --auth} would; it answers WhoAmI and CreateToken itself.
 */
class TokenTest {

    private static final String SECRET = "mapcast_0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    private static final String READER = "mapcast_fedcba9876543210.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    @TempDir
    Path dir;

    private MapcastServer server;
    private GatedProxy proxy;
    private final FakeAuth auth = new FakeAuth();
    private final List<AutoCloseable> toClose = new ArrayList<>();

    @BeforeEach
    void start() throws IOException {
        server = MapcastServer.builder().port(0).build().start();
        proxy = GatedProxy.start("127.0.0.1:" + server.port(), TokenTest::check, auth);
    }

    @AfterEach
    void stop() throws Exception {
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
        proxy.close();
        server.close();
    }

    /** The gate: SECRET may do anything, READER may not write, anything else is refused. */
    private static Status check(String method, String authorization) {
        if (authorization == null) {
            return GatedProxy.NO_CREDENTIALS;
        }
        if (authorization.equals("Bearer " + READER)) {
            return method.endsWith("/Get") ? Status.OK : Status.PERMISSION_DENIED.withDescription(
                    "user \"reader\" may not write map \"config\" (no role grants write on it)");
        }
        return authorization.equals("Bearer " + SECRET) ? Status.OK
                : Status.UNAUTHENTICATED.withDescription("token \"0000000000000000\" was revoked");
    }

    @Test
    void everyKindOfCallCarriesTheTokenAlsoAfterFailover() {
        // The first member is down: every call fails over to the proxy, and a write goes there only
        // because it never left this client. A fresh client per call, so each meets the dead member.
        String target = "127.0.0.1:" + closedPort() + "," + proxy.target();
        List<Consumer<MapcastClient>> calls = new ArrayList<>(EveryKindOfCall.on(dir));
        // A single server has no cluster: refused, but the call was made (with the token).
        calls.add(c -> assertEquals(Status.Code.FAILED_PRECONDITION,
                assertThrows(MapcastException.class, c::clusterStatus).code()));
        calls.add(c -> assertEquals("alice", c.whoAmI().getUser()));
        for (Consumer<MapcastClient> call : calls) {
            call.accept(client(target, SECRET));
        }

        Set<String> methods = new TreeSet<>();
        for (GatedProxy.Call call : proxy.calls()) {
            assertEquals("Bearer " + SECRET, call.authorization(), call.method());
            methods.add(call.method().substring(call.method().lastIndexOf('/') + 1));
        }
        assertEquals(new TreeSet<>(List.of("Compact", "DeleteMap", "Get", "ListMaps", "Restore", "Snapshot", "Status",
                "Watch", "WhoAmI", "WriteStream")), methods);
    }

    @Test
    void refusalsReachTheCallerWithTheServersReason() throws Exception {
        MapcastClient anonymous = client(proxy.target(), null);
        MapcastException none = assertThrows(MapcastException.class, () -> anonymous.get("config", "a"));
        assertEquals(Status.Code.UNAUTHENTICATED, none.code());
        assertEquals("no credentials: send a bearer token (--token, $MAPCAST_TOKEN) or a client certificate",
                none.description());

        MapcastException revoked = assertThrows(MapcastException.class,
                () -> client(proxy.target(), "mapcast_0000000000000000.x").put("config", "a", "1"));
        assertEquals(Status.Code.UNAUTHENTICATED, revoked.code(), "a write on the write stream, refused");
        assertEquals("UNAUTHENTICATED: token \"0000000000000000\" was revoked", revoked.getMessage());

        client(proxy.target(), SECRET).put("config", "a", "1");
        MapcastClient reader = client(proxy.target(), READER);
        assertEquals("1", new String(reader.get("config", "a").value()));
        MapcastException denied = assertThrows(MapcastException.class, () -> reader.put("config", "a", "2"));
        assertEquals(Status.Code.PERMISSION_DENIED, denied.code());
        assertEquals("user \"reader\" may not write map \"config\" (no role grants write on it)", denied.description());
        MapcastException deniedDelete = assertThrows(MapcastException.class, () -> reader.deleteMap("config"));
        assertEquals(Status.Code.PERMISSION_DENIED, deniedDelete.code(), "a unary write, refused alike");

        // A refused replica keeps trying (a grant may be on its way) and has no state meanwhile.
        try (Replica<String, String> r = reader.replica("config", Codec.utf8(), Codec.utf8())) {
            assertFalse(r.awaitRevision(1, Duration.ofMillis(300)));
            assertFalse(r.isSynced());
        }
    }

    @Test
    void theAdminCallsSendWhatTheyAreGiven() {
        MapcastClient admin = client(proxy.target(), SECRET);
        CreateTokenResponse created = admin.createToken("app", Duration.ofMillis(1500));
        assertEquals("app", created.getToken().getUser());
        assertEquals(2, auth.created.get(0).getTtlSeconds(), "1.5 s rounds up to 2 s, never down to 0 (never expires)");
        admin.createToken("app", null);
        assertEquals(0, auth.created.get(1).getTtlSeconds(), "null: never expires");
        assertThrows(IllegalArgumentException.class, () -> admin.createToken("app", Duration.ZERO));
        assertThrows(IllegalArgumentException.class, () -> admin.createToken("app", Duration.ofSeconds(-1)));
        IllegalArgumentException unspecified = assertThrows(IllegalArgumentException.class,
                () -> admin.grantPermission("r", Right.RIGHT_UNSPECIFIED, "app/*"));
        assertEquals("right: RIGHT_UNSPECIFIED (expected: RIGHT_READ, RIGHT_WRITE or RIGHT_READWRITE)",
                unspecified.getMessage());
        assertEquals(2, auth.created.size(), "nothing sent for a bad argument");

        // A method the stand-in does not serve: the server's own status reaches the caller.
        MapcastException unimplemented = assertThrows(MapcastException.class, () -> admin.addUser("bob"));
        assertEquals(Status.Code.UNIMPLEMENTED, unimplemented.code());
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

    /** Answers WhoAmI and CreateToken; the server has no MapcastAuth service yet. */
    private static final class FakeAuth extends MapcastAuthGrpc.MapcastAuthImplBase {
        final List<CreateTokenRequest> created = new CopyOnWriteArrayList<>();

        @Override
        public void whoAmI(WhoAmIRequest request, StreamObserver<WhoAmIResponse> responses) {
            responses.onNext(WhoAmIResponse.newBuilder().setAuthEnabled(true).setUser("alice").setVia("token")
                    .setTokenId("0123456789abcdef").addRoles("root").build());
            responses.onCompleted();
        }

        @Override
        public void createToken(CreateTokenRequest request, StreamObserver<CreateTokenResponse> responses) {
            created.add(request);
            responses.onNext(CreateTokenResponse.newBuilder().setToken(AuthToken.newBuilder().setId("00000000000000"
                    + created.size()).setUser(request.getUser())).setSecret(SECRET).build());
            responses.onCompleted();
        }
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
