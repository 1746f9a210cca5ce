package dev.mapcast.server;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.proto.v1.AddRoleRequest;
import dev.mapcast.proto.v1.AddUserRequest;
import dev.mapcast.proto.v1.CompactRequest;
import dev.mapcast.proto.v1.CreateTokenRequest;
import dev.mapcast.proto.v1.DeleteMapRequest;
import dev.mapcast.proto.v1.DeleteUserRequest;
import dev.mapcast.proto.v1.GetRequest;
import dev.mapcast.proto.v1.GrantPermissionRequest;
import dev.mapcast.proto.v1.ListMapsRequest;
import dev.mapcast.proto.v1.MapInfo;
import dev.mapcast.proto.v1.MapcastAuthGrpc;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.Permission;
import dev.mapcast.proto.v1.RestoreRequest;
import dev.mapcast.proto.v1.RestoreResponse;
import dev.mapcast.proto.v1.RevokePermissionRequest;
import dev.mapcast.proto.v1.RevokeTokenRequest;
import dev.mapcast.proto.v1.Right;
import dev.mapcast.proto.v1.SnapshotRequest;
import dev.mapcast.proto.v1.UserRoleRequest;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.proto.v1.WhoAmIRequest;
import dev.mapcast.proto.v1.WhoAmIResponse;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.server.security.TlsFiles;
import dev.mapcast.testing.TestPki;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A server with --auth over real gRPC on loopback: identities, rights, revocation, the audit log. */
class AuthTest {

    @TempDir
    Path dir;

    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void close() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    private MapcastServer start() {
        MapcastServer server = MapcastServer.builder().port(0).dataDir(dir.resolve("data")).auth(true).build().start();
        open.add(server);
        return server;
    }

    private ManagedChannel channel(MapcastServer server, String token) {
        NettyChannelBuilder b = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext();
        if (token != null) {
            Metadata headers = new Metadata();
            headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
            b.intercept(MetadataUtils.newAttachHeadersInterceptor(headers));
        }
        ManagedChannel channel = b.build();
        open.add(() -> channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        return channel;
    }

    private String rootToken() throws Exception {
        return Files.readString(dir.resolve("data/root.token")).strip();
    }

    private static WriteRequest put(String map, String key, String value) {
        return WriteRequest.newBuilder().setMap(map).putPuts(key, ByteString.copyFromUtf8(value)).build();
    }

    private static Status.Code code(Runnable call) {
        return assertThrows(StatusRuntimeException.class, call::run).getStatus().getCode();
    }

    /** Root makes user {@code user} with role {@code role} holding {@code right} on {@code pattern}; its token. */
    private static String userWith(ManagedChannel root, String user, String role, Right right, String pattern) {
        var admin = MapcastAuthGrpc.newBlockingStub(root);
        admin.addUser(AddUserRequest.newBuilder().setName(user).build());
        admin.addRole(AddRoleRequest.newBuilder().setName(role).build());
        admin.grantPermission(GrantPermissionRequest.newBuilder().setRole(role)
                .setPermission(Permission.newBuilder().setPattern(pattern).setRight(right)).build());
        admin.grantRole(UserRoleRequest.newBuilder().setUser(user).setRole(role).build());
        return admin.createToken(CreateTokenRequest.newBuilder().setUser(user).build()).getSecret();
    }

    @Test
    void firstStartWritesRootTokenPrivatelyAndLaterStartsKeepIt() throws Exception {
        MapcastServer server = start();
        Path file = dir.resolve("data/root.token");
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
        String token = rootToken();
        assertTrue(token.startsWith("mapcast_"), token);
        WhoAmIResponse me = MapcastAuthGrpc.newBlockingStub(channel(server, token)).whoAmI(WhoAmIRequest.getDefaultInstance());
        assertEquals("root", me.getUser());
        assertEquals(List.of("root"), me.getRolesList());
        server.close();

        MapcastServer again = start();
        assertEquals(token, rootToken(), "a restart neither replaces root nor its token");
        assertEquals("root", MapcastAuthGrpc.newBlockingStub(channel(again, token))
                .whoAmI(WhoAmIRequest.getDefaultInstance()).getUser());
    }

    @Test
    void noCredentialsIsUnauthenticatedOnEveryServiceButHealthAndWhoAmI() throws Exception {
        MapcastServer server = start();
        ManagedChannel anonymous = channel(server, null);
        var maps = MapcastGrpc.newBlockingStub(anonymous);
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                () -> maps.write(put("app/a", "k", "v")));
        assertEquals(Status.Code.UNAUTHENTICATED, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("no credentials"), e.getMessage());
        assertEquals(Status.Code.UNAUTHENTICATED, code(() -> maps.listMaps(ListMapsRequest.getDefaultInstance())));
        assertEquals(Status.Code.UNAUTHENTICATED, code(() -> MapcastAuthGrpc.newBlockingStub(anonymous)
                .addUser(AddUserRequest.newBuilder().setName("mallory").build())));
        assertEquals(Status.Code.UNAUTHENTICATED, code(() -> MapcastGrpc.newBlockingStub(channel(server,
                "mapcast_0123456789abcdef.forged")).listMaps(ListMapsRequest.getDefaultInstance())));
        assertEquals(Status.Code.UNAUTHENTICATED, code(() -> MapcastGrpc.newBlockingStub(channel(server,
                "not-a-token")).listMaps(ListMapsRequest.getDefaultInstance())));
        WatchStream watch = WatchStream.start(anonymous, WatchRequest.newBuilder().setMap("app/a").build());
        assertEquals(Status.Code.UNAUTHENTICATED, Status.fromThrowable(watch.closed.get(10, TimeUnit.SECONDS)).getCode());

        assertEquals("SERVING", HealthGrpc.newBlockingStub(anonymous).check(HealthCheckRequest.getDefaultInstance())
                .getStatus().name());
        WhoAmIResponse me = MapcastAuthGrpc.newBlockingStub(anonymous).whoAmI(WhoAmIRequest.getDefaultInstance());
        assertTrue(me.getAuthEnabled());
        assertEquals("", me.getUser());
        // Nothing was written, and the refusals are audited.
        ManagedChannel root = channel(server, rootToken());
        assertEquals(List.of(), MapcastGrpc.newBlockingStub(root).listMaps(ListMapsRequest.getDefaultInstance())
                .getMapsList());
        String audit = Files.readString(dir.resolve("data/audit.jsonl"));
        assertTrue(audit.contains("\"unauthenticated\""), audit);
    }

    @Test
    void grantsDecideWhatAUserMayReadAndWriteAndRefusalsChangeNothing() throws Exception {
        MapcastServer server = start();
        ManagedChannel root = channel(server, rootToken());
        MapcastGrpc.newBlockingStub(root).write(put("other", "k", "root's"));
        ManagedChannel alice = channel(server, userWith(root, "alice", "app-rw", Right.RIGHT_READWRITE, "app/*"));
        var maps = MapcastGrpc.newBlockingStub(alice);

        assertEquals(1, maps.write(put("app/a", "k", "v")).getRevision());
        assertEquals("v", maps.get(GetRequest.newBuilder().setMap("app/a").setKey("k").build()).getValue()
                .toStringUtf8());
        StatusRuntimeException denied = assertThrows(StatusRuntimeException.class,
                () -> maps.write(put("other", "k", "alice's")));
        assertEquals(Status.Code.PERMISSION_DENIED, denied.getStatus().getCode());
        assertEquals("user \"alice\" may not write map \"other\" (no role of it grants write on it)",
                denied.getStatus().getDescription());
        assertEquals(Status.Code.PERMISSION_DENIED,
                code(() -> maps.get(GetRequest.newBuilder().setMap("other").setKey("k").build())));
        assertEquals(Status.Code.PERMISSION_DENIED, code(() -> MapcastAuthGrpc.newBlockingStub(alice)
                .addUser(AddUserRequest.newBuilder().setName("eve").build())));
        assertEquals(List.of("app/a"), maps.listMaps(ListMapsRequest.getDefaultInstance()).getMapsList().stream()
                .map(MapInfo::getName).toList());
        assertEquals("root's", MapcastGrpc.newBlockingStub(root).get(GetRequest.newBuilder().setMap("other")
                .setKey("k").build()).getValue().toStringUtf8(), "the refused write changed nothing");

        // Every other call that names a map is checked too; ListMaps stays as it was.
        var readOnly = MapcastGrpc.newBlockingStub(channel(server, userWith(root, "reader", "r", Right.RIGHT_READ,
                "other")));
        assertEquals("root's", readOnly.get(GetRequest.newBuilder().setMap("other").setKey("k").build()).getValue()
                .toStringUtf8());
        assertEquals(Status.Code.PERMISSION_DENIED, code(() -> readOnly.compact(CompactRequest.newBuilder()
                .setMap("other").build())));
        assertEquals(Status.Code.PERMISSION_DENIED, code(() -> readOnly.deleteMap(DeleteMapRequest.newBuilder()
                .setMap("other").build())));
        assertEquals(Status.Code.PERMISSION_DENIED, code(() -> readOnly.snapshot(SnapshotRequest.newBuilder()
                .setMap("app/a").build()).hasNext()));
        CompletableFuture<Status> restore = new CompletableFuture<>();
        var restoreCall = MapcastGrpc.newStub(alice).restore(new StreamObserver<>() {
            @Override
            public void onNext(RestoreResponse value) {
            }

            @Override
            public void onError(Throwable t) {
                restore.complete(Status.fromThrowable(t));
            }

            @Override
            public void onCompleted() {
                restore.complete(Status.OK);
            }
        });
        restoreCall.onNext(RestoreRequest.newBuilder().setMap("other").build());
        restoreCall.onCompleted();
        assertEquals(Status.Code.PERMISSION_DENIED, restore.get(10, TimeUnit.SECONDS).getCode());
        assertEquals(List.of("app/a", "other"), MapcastGrpc.newBlockingStub(root).listMaps(ListMapsRequest
                .getDefaultInstance()).getMapsList().stream().map(MapInfo::getName).toList());
        assertEquals(1, MapcastGrpc.newBlockingStub(root).get(GetRequest.newBuilder().setMap("other").setKey("k")
                .build()).getRevision(), "refused calls changed nothing");

        // The server's own map is no client's, not even root's.
        for (ManagedChannel c : List.of(alice, root)) {
            assertEquals(Status.Code.INVALID_ARGUMENT, code(() -> MapcastGrpc.newBlockingStub(c)
                    .get(GetRequest.newBuilder().setMap("__mapcast/auth").setKey("user/root").build())));
            assertEquals(Status.Code.INVALID_ARGUMENT, code(() -> MapcastGrpc.newBlockingStub(c)
                    .write(put("__mapcast/auth", "user/root", "x"))));
        }
        assertFalse(MapcastGrpc.newBlockingStub(root).listMaps(ListMapsRequest.getDefaultInstance()).getMapsList()
                .stream().anyMatch(m -> m.getName().startsWith("__mapcast/")));

        String audit = Files.readString(dir.resolve("data/audit.jsonl"));
        assertTrue(audit.lines().anyMatch(l -> l.contains("\"user\":\"alice\"") && l.contains("Mapcast/Write")
                && l.contains("\"map\":\"app/a\"") && l.contains("\"ok\"") && l.contains("\"k\"")), audit);
        assertTrue(audit.lines().anyMatch(l -> l.contains("\"user\":\"alice\"") && l.contains("\"denied\"")
                && l.contains("\"map\":\"other\"")), audit);
        assertFalse(audit.contains("alice's"), "values never reach the audit log");
    }

    @Test
    void revokingARightEndsOpenStreamsAndRevokingATokenEndsItsCalls() throws Exception {
        MapcastServer server = start();
        ManagedChannel root = channel(server, rootToken());
        var admin = MapcastAuthGrpc.newBlockingStub(root);
        String aliceToken = userWith(root, "alice", "app-r", Right.RIGHT_READ, "app/*");
        ManagedChannel alice = channel(server, aliceToken);
        MapcastGrpc.newBlockingStub(root).write(put("app/a", "k", "v"));

        WatchStream watch = WatchStream.start(alice, WatchRequest.newBuilder().setMap("app/a").build());
        watch.await(r -> r.hasSnapshot() || r.hasBatch());
        long revoked = System.nanoTime();
        admin.revokePermission(RevokePermissionRequest.newBuilder().setRole("app-r").setPattern("app/*").build());
        Status ended = Status.fromThrowable(watch.closed.get(10, TimeUnit.SECONDS));
        System.out.printf("watch ended %d ms after the revocation was acknowledged%n",
                TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - revoked));
        assertEquals(Status.Code.PERMISSION_DENIED, ended.getCode());
        assertTrue(ended.getDescription().contains("map \"app/a\""), ended.getDescription());

        admin.grantPermission(GrantPermissionRequest.newBuilder().setRole("app-r").setPermission(Permission.newBuilder()
                .setPattern("app/a").setRight(Right.RIGHT_READ)).build());
        WatchStream again = WatchStream.start(alice, WatchRequest.newBuilder().setMap("app/a").build());
        again.await(r -> r.hasSnapshot() || r.hasBatch());
        String id = aliceToken.substring("mapcast_".length(), aliceToken.indexOf('.'));
        admin.revokeToken(RevokeTokenRequest.newBuilder().setId(id).build());
        assertEquals(Status.Code.UNAUTHENTICATED, Status.fromThrowable(again.closed.get(10, TimeUnit.SECONDS)).getCode());
        assertEquals(Status.Code.UNAUTHENTICATED, code(() -> MapcastGrpc.newBlockingStub(alice)
                .get(GetRequest.newBuilder().setMap("app/a").setKey("k").build())));

        // Deleting a user ends its certificate-less tokens too.
        String bobToken = userWith(root, "bob", "bob-r", Right.RIGHT_READ, "app/a");
        ManagedChannel bob = channel(server, bobToken);
        WatchStream bobs = WatchStream.start(bob, WatchRequest.newBuilder().setMap("app/a").build());
        bobs.await(r -> r.hasSnapshot() || r.hasBatch());
        assertEquals(1, admin.deleteUser(DeleteUserRequest.newBuilder().setName("bob").build()).getTokensRevoked());
        assertEquals(Status.Code.UNAUTHENTICATED, Status.fromThrowable(bobs.closed.get(10, TimeUnit.SECONDS)).getCode());
    }

    /** Step 1 of turning auth on without downtime: users made while it is off hold once it is on. */
    @Test
    void usersMadeBeforeAuthIsTurnedOnHoldOnceItIs() throws Exception {
        MapcastServer unsecured = MapcastServer.builder().port(0).dataDir(dir.resolve("data")).build().start();
        ManagedChannel anyone = channel(unsecured, null);
        var admin = MapcastAuthGrpc.newBlockingStub(anyone);
        assertFalse(admin.whoAmI(WhoAmIRequest.getDefaultInstance()).getAuthEnabled());
        admin.addUser(AddUserRequest.newBuilder().setName("root").build());
        admin.grantRole(UserRoleRequest.newBuilder().setUser("root").setRole("root").build());
        String root = admin.createToken(CreateTokenRequest.newBuilder().setUser("root").build()).getSecret();
        String app = userWith(anyone, "app", "app", Right.RIGHT_READWRITE, "app/*");
        // A server without --auth takes tokens and ignores them: clients can send them first.
        assertEquals(1, MapcastGrpc.newBlockingStub(channel(unsecured, app)).write(put("app/a", "k", "v"))
                .getRevision());
        unsecured.close();

        MapcastServer secured = start();
        assertFalse(Files.exists(dir.resolve("data/root.token")), "root exists: no second root, no token file");
        assertEquals("root", MapcastAuthGrpc.newBlockingStub(channel(secured, root))
                .whoAmI(WhoAmIRequest.getDefaultInstance()).getUser());
        assertEquals(2, MapcastGrpc.newBlockingStub(channel(secured, app)).write(put("app/a", "k", "w")).getRevision());
        assertEquals(Status.Code.UNAUTHENTICATED, code(() -> MapcastGrpc.newBlockingStub(channel(secured, null))
                .write(put("app/a", "k", "x"))));
    }

    @Test
    void anExpiredTokenIsRefused() throws Exception {
        MapcastServer server = start();
        ManagedChannel root = channel(server, rootToken());
        var admin = MapcastAuthGrpc.newBlockingStub(root);
        admin.addUser(AddUserRequest.newBuilder().setName("temp").build());
        String token = admin.createToken(CreateTokenRequest.newBuilder().setUser("temp").setTtlSeconds(1).build())
                .getSecret();
        var who = MapcastAuthGrpc.newBlockingStub(channel(server, token));
        var maps = MapcastGrpc.newBlockingStub(channel(server, token));
        assertEquals("temp", who.whoAmI(WhoAmIRequest.getDefaultInstance()).getUser());
        await().atMost(Duration.ofSeconds(10)).until(() -> {
            try {
                maps.listMaps(ListMapsRequest.getDefaultInstance());
                return false;
            } catch (StatusRuntimeException e) {
                assertEquals(Status.Code.UNAUTHENTICATED, e.getStatus().getCode());
                assertTrue(e.getStatus().getDescription().contains("expired"), e.getMessage());
                return true;
            }
        });
    }

    @Test
    void usersAndTokensSurviveARestart() throws Exception {
        MapcastServer server = start();
        String token = userWith(channel(server, rootToken()), "carol", "c", Right.RIGHT_WRITE, "c/*");
        assertEquals(1, MapcastGrpc.newBlockingStub(channel(server, token)).write(put("c/1", "k", "v")).getRevision());
        server.close();
        MapcastServer again = start();
        assertEquals(2, MapcastGrpc.newBlockingStub(channel(again, token)).write(put("c/1", "k", "w")).getRevision());
        assertEquals(Status.Code.PERMISSION_DENIED, code(() -> MapcastGrpc.newBlockingStub(channel(again, token))
                .get(GetRequest.newBuilder().setMap("c/1").setKey("k").build())), "write only: no read");
    }

    @Test
    void aClientCertificateNamesItsUser() throws Exception {
        TestPki pki = TestPki.in(dir.resolve("pki"));
        TestPki.Ca ca = pki.ca("ca");
        TestPki.Issued serverCert = pki.server(ca, "server");
        MapcastServer server = MapcastServer.builder().port(0).dataDir(dir.resolve("data")).auth(true)
                .tls(TlsFiles.of(serverCert.cert(), serverCert.key(), ca.cert())
                        .withClientAuth(TlsFiles.ClientAuth.OPTIONAL))
                .build().start();
        open.add(server);
        String rootToken = rootToken();
        TestPki.Issued dave = pki.client(ca, "dave");
        ManagedChannel viaCert = NettyChannelBuilder.forAddress("127.0.0.1", server.port())
                .sslContext(GrpcSslContexts.forClient().trustManager(ca.cert().toFile())
                        .keyManager(dave.cert().toFile(), dave.key().toFile()).build()).build();
        open.add(() -> viaCert.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        StatusRuntimeException unknown = assertThrows(StatusRuntimeException.class,
                () -> MapcastGrpc.newBlockingStub(viaCert).listMaps(ListMapsRequest.getDefaultInstance()));
        assertEquals(Status.Code.UNAUTHENTICATED, unknown.getStatus().getCode());
        assertTrue(unknown.getStatus().getDescription().contains("\"dave\""), unknown.getMessage());

        Metadata headers = new Metadata();
        headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + rootToken);
        ManagedChannel root = NettyChannelBuilder.forAddress("127.0.0.1", server.port())
                .sslContext(GrpcSslContexts.forClient().trustManager(ca.cert().toFile()).build())
                .intercept(MetadataUtils.newAttachHeadersInterceptor(headers)).build();
        open.add(() -> root.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        var admin = MapcastAuthGrpc.newBlockingStub(root);
        admin.addUser(AddUserRequest.newBuilder().setName("dave").build());
        admin.addRole(AddRoleRequest.newBuilder().setName("d").build());
        admin.grantPermission(GrantPermissionRequest.newBuilder().setRole("d").setPermission(Permission.newBuilder()
                .setPattern("d").setRight(Right.RIGHT_READWRITE)).build());
        admin.grantRole(UserRoleRequest.newBuilder().setUser("dave").setRole("d").build());

        WhoAmIResponse me = MapcastAuthGrpc.newBlockingStub(viaCert).whoAmI(WhoAmIRequest.getDefaultInstance());
        assertEquals("dave", me.getUser());
        assertEquals("certificate", me.getVia());
        assertEquals(1, MapcastGrpc.newBlockingStub(viaCert).write(put("d", "k", "v")).getRevision());
        assertEquals(Status.Code.PERMISSION_DENIED, code(() -> MapcastGrpc.newBlockingStub(viaCert)
                .write(put("e", "k", "v"))));
    }

    @Test
    void badAdminInputIsRefusedNamingTheValue() throws Exception {
        MapcastServer server = start();
        var admin = MapcastAuthGrpc.newBlockingStub(channel(server, rootToken()));
        admin.addRole(AddRoleRequest.newBuilder().setName("r").build());
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> admin.grantPermission(
                GrantPermissionRequest.newBuilder().setRole("r").setPermission(Permission.newBuilder()
                        .setPattern("a*b").setRight(Right.RIGHT_READ)).build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().startsWith("permission.pattern: \"a*b\""), e.getMessage());
        assertEquals(Status.Code.INVALID_ARGUMENT, code(() -> admin.addUser(AddUserRequest.newBuilder()
                .setName(" padded").build())));
        assertEquals(Status.Code.ALREADY_EXISTS, code(() -> admin.addRole(AddRoleRequest.newBuilder().setName("r")
                .build())));
        assertEquals(Status.Code.NOT_FOUND, code(() -> admin.grantRole(UserRoleRequest.newBuilder().setUser("nobody")
                .setRole("r").build())));
        assertEquals(Status.Code.FAILED_PRECONDITION, code(() -> admin.grantPermission(GrantPermissionRequest
                .newBuilder().setRole("root").setPermission(Permission.newBuilder().setPattern("x")
                        .setRight(Right.RIGHT_READ)).build())));
        assertEquals(Status.Code.INVALID_ARGUMENT, code(() -> admin.createToken(CreateTokenRequest.newBuilder()
                .setUser("root").setTtlSeconds(-1).build())));
    }
}
