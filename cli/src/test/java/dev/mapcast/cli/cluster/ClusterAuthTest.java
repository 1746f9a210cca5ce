package dev.mapcast.cli.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.cli.cluster.ClusterProcesses.Member;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.MapcastException;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.Right;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.proto.v1.WatchResponse;
import dev.mapcast.proto.v1.WriteRequest;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Three {@code mapcast serve --auth} processes: root is created once, users and rights made
 * through one member hold on every member, and a revocation ends open watches on every member.
 */
class ClusterAuthTest {

    @TempDir
    Path dir;

    @Test
    void rightsAreReplicatedAndARevocationEndsWatchesOnEveryMember() throws Exception {
        AtomicReference<String> rootToken = new AtomicReference<>();
        // The harness asks for the cluster's status, which needs an identity: root's, once written.
        List<Path> tokenFiles = List.of(1, 2, 3).stream().map(i -> dir.resolve("cluster/m" + i + "/root.token"))
                .toList();
        try (ClusterProcesses cluster = ClusterProcesses.start(dir.resolve("cluster"), 3,
                b -> rootToken(tokenFiles, rootToken) == null ? b : b.token(rootToken.get()), "--auth")) {
            cluster.await("a member to write root.token", () -> rootToken(tokenFiles, rootToken) != null);
            List<Path> files = cluster.members().stream().map(m -> m.dataDir.resolve("root.token"))
                    .filter(Files::exists).toList();
            assertEquals(1, files.size(), "root is created once, its token in one member's data dir: " + files);
            Member leader = cluster.awaitLeader();

            String alice;
            try (MapcastClient root = MapcastClient.builder().target(cluster.targets()).token(rootToken.get())
                    .build()) {
                root.addUser("alice");
                root.addRole("app");
                root.grantPermission("app", Right.RIGHT_READWRITE, "app/*");
                root.grantRole("alice", "app");
                alice = root.createToken("alice", null).getSecret();
            }

            // Alice writes through every member (a follower forwards to the leader), and watches on each.
            List<ManagedChannel> channels = new ArrayList<>();
            List<CompletableFuture<Status>> watches = new ArrayList<>();
            try {
                for (Member m : cluster.members()) {
                    ManagedChannel c = channel(m, alice);
                    channels.add(c);
                    MapcastGrpc.newBlockingStub(c).withDeadlineAfter(30, TimeUnit.SECONDS).write(WriteRequest.newBuilder()
                            .setMap("app/a").putPuts(m.id, ByteString.copyFromUtf8("from " + m.id)).build());
                    watches.add(watch(c, "app/a"));
                }
                for (int i = 0; i < watches.size(); i++) {
                    assertTrue(!watches.get(i).isDone(), "watch on " + cluster.members().get(i).id + " open");
                }

                try (MapcastClient root = MapcastClient.builder().target(leader.clientAddress())
                        .token(rootToken.get()).build()) {
                    long revoked = System.nanoTime();
                    root.revokePermission("app", "app/*");
                    for (int i = 0; i < watches.size(); i++) {
                        Status ended = watches.get(i).get(30, TimeUnit.SECONDS);
                        System.out.printf("[mapcast] ClusterAuthTest: watch on %s ended %d ms after the revocation"
                                + " was acknowledged%n", cluster.members().get(i).id,
                                TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - revoked));
                        assertEquals(Status.Code.PERMISSION_DENIED, ended.getCode(), ended.toString());
                    }
                }
                for (ManagedChannel c : channels) {
                    StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, () -> MapcastGrpc
                            .newBlockingStub(c).withDeadlineAfter(30, TimeUnit.SECONDS).write(WriteRequest.newBuilder()
                                    .setMap("app/a").putPuts("k", ByteString.copyFromUtf8("v")).build()));
                    assertEquals(Status.Code.PERMISSION_DENIED, refused.getStatus().getCode());
                }
            } finally {
                for (ManagedChannel c : channels) {
                    c.shutdownNow();
                }
            }

            // Without a token: refused by every member.
            try (MapcastClient anonymous = MapcastClient.builder().target(cluster.targets()).build()) {
                MapcastException e = assertThrows(MapcastException.class, anonymous::listMaps);
                assertEquals(Status.Code.UNAUTHENTICATED, e.code(), e.toString());
            }
            for (Member m : cluster.members()) {
                String audit = Files.readString(m.dataDir.resolve("audit.jsonl"));
                assertTrue(audit.contains("\"user\":\"alice\""), m.id + "'s audit log names alice: " + audit);
            }
        }
    }

    /** The root token once a member has written it (kept in {@code found}), else null. */
    private static String rootToken(List<Path> files, AtomicReference<String> found) {
        for (Path file : files) {
            try {
                if (found.get() == null && Files.exists(file)) {
                    String token = Files.readString(file).strip();
                    found.set(token.isEmpty() ? null : token);
                }
            } catch (IOException notYet) {
                return null;
            }
        }
        return found.get();
    }

    private static ManagedChannel channel(Member m, String token) {
        Metadata headers = new Metadata();
        headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
        return NettyChannelBuilder.forAddress("127.0.0.1", m.clientPort).usePlaintext()
                .intercept(MetadataUtils.newAttachHeadersInterceptor(headers)).build();
    }

    /** A watch of {@code map}; completes with the status it ends with once its snapshot has come. */
    private static CompletableFuture<Status> watch(ManagedChannel channel, String map) throws Exception {
        CompletableFuture<Void> started = new CompletableFuture<>();
        CompletableFuture<Status> ended = new CompletableFuture<>();
        MapcastGrpc.newStub(channel).watch(WatchRequest.newBuilder().setMap(map).build(), new StreamObserver<>() {
            @Override
            public void onNext(WatchResponse r) {
                started.complete(null);
            }

            @Override
            public void onError(Throwable t) {
                started.complete(null);
                ended.complete(Status.fromThrowable(t));
            }

            @Override
            public void onCompleted() {
                started.complete(null);
                ended.complete(Status.OK);
            }
        });
        started.get(30, TimeUnit.SECONDS);
        return ended;
    }
}
