package dev.mapcast.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.client.ReplicaListener.ResyncReason;
import dev.mapcast.codec.Codec;
import dev.mapcast.codec.ProtocolHeaders;
import dev.mapcast.proto.v1.CompactRequest;
import dev.mapcast.proto.v1.CompactResponse;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.StreamedWrite;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.proto.v1.WriteResponse;
import dev.mapcast.proto.v1.WriteResult;
import dev.mapcast.server.MapcastServer;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A client given several members fails over between them, by the rules in MapcastClient's javadoc. */
class FailoverTest {

    private static final Duration WAIT = Duration.ofSeconds(20);

    private MapcastServer server;
    private MapcastClient direct;
    private final List<AutoCloseable> toClose = new ArrayList<>();

    @BeforeEach
    void startServer() {
        server = MapcastServer.builder().port(0).build().start();
        direct = client(address(server.port()));
    }

    @AfterEach
    void stop() throws Exception {
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
        server.close();
    }

    @Test
    void firstMemberWithNothingListeningIsSkipped(@TempDir Path dir) throws Exception {
        String target = address(closedPort()) + "," + address(server.port());
        // A fresh client for each call, so that each one meets the dead member first.
        for (Consumer<MapcastClient> call : EveryKindOfCall.on(dir)) {
            call.accept(client(target));
        }
    }

    @Test
    void readsGoToTheNextMemberWhenOneStops() {
        MapcastServer other = MapcastServer.builder().port(0).build().start();
        toClose.add(other);
        direct.put("config", "who", "first");
        client(address(other.port())).put("config", "who", "second");
        MapcastClient cluster = client(address(server.port()) + "," + address(other.port()));
        assertEquals("first", new String(cluster.get("config", "who").value()));

        server.close();
        assertEquals("second", new String(cluster.get("config", "who").value()), "one call, failed over");
        assertEquals(1, cluster.listMaps().size());
    }

    @Test
    void replicaResumesOnTheNextMemberWithoutSnapshot() throws Exception {
        // Two members with the same revisions: one server behind two proxies.
        LoopbackProxy first = closing(new LoopbackProxy(server.port()));
        LoopbackProxy second = closing(new LoopbackProxy(server.port()));
        direct.put("config", "a", "1");
        List<ResyncReason> resyncs = new CopyOnWriteArrayList<>();
        Replica<String, String> replica = closing(client(address(first.port()) + "," + address(second.port()))
                .replica("config", Codec.utf8(), Codec.utf8(), new ReplicaListener<>() {
                    @Override
                    public void onResync(long revision, ResyncReason reason) {
                        resyncs.add(reason);
                    }
                }));
        assertTrue(replica.awaitRevision(1, WAIT));

        first.cut();
        long last = 0;
        for (int i = 0; i < 20; i++) {
            last = direct.put("config", "k" + i, "v" + i);
        }
        assertTrue(replica.awaitRevision(last, WAIT), "resumed on the second member");
        assertEquals(List.of(ResyncReason.INITIAL), resyncs, "no snapshot after the first");
        assertEquals(1, replica.stats().snapshots());
        assertEquals(20, replica.stats().deltas());
        assertTrue(replica.stats().reconnects() >= 1, "reconnected: " + replica.stats());
        assertEquals(direct.get("config", "k19").revision(), replica.revision());
    }

    @Test
    void writeRefusedAsNotAppliedIsRetriedOnTheNextMember() throws Exception {
        RefusingMember refusing = new RefusingMember(true);
        String target = address(refusing.start()) + "," + address(server.port());

        assertEquals(1, client(target).put("config", "a", "1"), "on the write stream");
        assertEquals(1, refusing.calls.get(), "refused once");
        assertEquals(1, direct.get("config", "a").revision(), "applied exactly once");

        assertEquals(1, client(target).compact("config", 0).getCompactRevision(), "a unary write");
        assertEquals(2, refusing.calls.get());
    }

    @Test
    void writeFailedWithoutTheTrailerIsNotRetried() throws Exception {
        RefusingMember refusing = new RefusingMember(false);
        MapcastClient cluster = client(address(refusing.start()) + "," + address(server.port()));

        MapcastException e = assertThrows(MapcastException.class, () -> cluster.put("config", "a", "1"));
        assertEquals(Status.Code.UNAVAILABLE, e.code());
        assertTrue(e.getMessage().contains("outcome is unknown") && e.getMessage().contains("FAILED_PRECONDITION"),
                e.getMessage());
        assertEquals(1, refusing.calls.get());
        assertEquals(Status.Code.NOT_FOUND,
                assertThrows(MapcastException.class, () -> direct.get("config", "a")).code(), "not sent again");
        assertEquals(1, cluster.put("config", "a", "1"), "the next call went to the next member");

        MapcastClient unary = client(address(refusing.port()) + "," + address(server.port()));
        e = assertThrows(MapcastException.class, () -> unary.compact("config", 0));
        assertTrue(e.getMessage().contains("outcome is unknown"), e.getMessage());
        assertEquals(2, refusing.calls.get());
        assertEquals(0, direct.listMaps().get(0).getCompactRevision(), "not sent again: not compacted");
    }

    @Test
    void writeStreamResultRefusedAsNotAppliedIsRetriedOnTheNextMember() throws Exception {
        RefusingMember refusing = new RefusingMember(true, true);
        MapcastClient cluster = client(address(refusing.start()) + "," + address(server.port()));

        assertEquals(1, cluster.put("config", "a", "1"), "sent again to the next member");
        assertEquals(1, refusing.calls.get(), "refused once");
        assertEquals(1, direct.get("config", "a").revision(), "applied exactly once");
    }

    @Test
    void writeStreamResultUnavailableWithoutNotAppliedIsNotRetried() throws Exception {
        RefusingMember refusing = new RefusingMember(false, true);
        MapcastClient cluster = client(address(refusing.start()) + "," + address(server.port()));

        MapcastException e = assertThrows(MapcastException.class, () -> cluster.put("config", "a", "1"));
        assertEquals(Status.Code.UNAVAILABLE, e.code());
        assertTrue(e.getMessage().contains("outcome is unknown"), e.getMessage());
        assertEquals(Status.Code.NOT_FOUND,
                assertThrows(MapcastException.class, () -> direct.get("config", "a")).code(), "not sent again");
    }

    /**
     * A member that refuses every write with UNAVAILABLE once it has received it, with or without
     * the not-applied trailer, and counts them. A WriteStream write is refused by ending the stream,
     * or, as a cluster member does, by its result ({@code WriteResult.not_applied}).
     */
    private final class RefusingMember extends MapcastGrpc.MapcastImplBase {
        final AtomicInteger calls = new AtomicInteger();
        private final boolean notApplied;
        private final boolean byResult;
        private Server grpc;

        RefusingMember(boolean notApplied) {
            this(notApplied, false);
        }

        RefusingMember(boolean notApplied, boolean byResult) {
            this.notApplied = notApplied;
            this.byResult = byResult;
        }

        int start() throws IOException {
            grpc = NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))
                    .addService(this).build().start();
            toClose.add(() -> grpc.shutdownNow().awaitTermination());
            return grpc.getPort();
        }

        int port() {
            return grpc.getPort();
        }

        private void refuse(StreamObserver<?> responses) {
            calls.incrementAndGet();
            Metadata trailers = new Metadata();
            if (notApplied) {
                trailers.put(ProtocolHeaders.NOT_APPLIED, ProtocolHeaders.TRUE);
            }
            responses.onError(Status.UNAVAILABLE.withDescription("no leader").asRuntimeException(trailers));
        }

        @Override
        public void write(WriteRequest request, StreamObserver<WriteResponse> responses) {
            refuse(responses);
        }

        @Override
        public void compact(CompactRequest request, StreamObserver<CompactResponse> responses) {
            refuse(responses);
        }

        @Override
        public StreamObserver<StreamedWrite> writeStream(StreamObserver<WriteResult> responses) {
            return new StreamObserver<>() {
                @Override
                public void onNext(StreamedWrite write) {
                    if (!byResult) {
                        refuse(responses);
                        return;
                    }
                    calls.incrementAndGet();
                    responses.onNext(WriteResult.newBuilder().setId(write.getId())
                            .setCode(Status.Code.UNAVAILABLE.value()).setMessage("no leader")
                            .setNotApplied(notApplied).build());
                }

                @Override
                public void onError(Throwable t) {
                }

                @Override
                public void onCompleted() {
                    responses.onCompleted();
                }
            };
        }
    }

    /** A port nothing listens on: bound, then closed. */
    private static int closedPort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static String address(int port) {
        return "127.0.0.1:" + port;
    }

    private MapcastClient client(String target) {
        return closing(MapcastClient.builder().target(target)
                .reconnectBackoff(Duration.ofMillis(50), Duration.ofMillis(500)).build());
    }

    private <T extends AutoCloseable> T closing(T resource) {
        toClose.add(resource);
        return resource;
    }
}
