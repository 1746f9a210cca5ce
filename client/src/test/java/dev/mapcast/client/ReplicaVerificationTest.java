package dev.mapcast.client;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.client.ReplicaListener.ResyncReason;
import dev.mapcast.codec.Codec;
import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.codec.EncodedMethods;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.proto.v1.Delta;
import dev.mapcast.proto.v1.IterationOrder;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.SnapshotChunk;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.proto.v1.WatchResponse;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.ServiceDescriptor;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ServerCalls;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * A replica checks what the server sends: a delta that does not follow its revision (a gap) or
 * whose digest is not the replica's after applying it makes it resynchronise from a new snapshot.
 * The server here is scripted (real Netty, hand-made messages), so that it can misbehave.
 */
class ReplicaVerificationTest {

    @Test
    void aGapMakesTheReplicaResynchronise() throws Exception {
        List<WatchRequest> requests = new CopyOnWriteArrayList<>();
        try (Scripted server = new Scripted(request -> {
            requests.add(request);
            if (requests.size() == 1) {
                // Snapshot at 1, then a delta claiming to follow revision 2: revision 2 is missing.
                return List.of(snapshot(1, Map.of("a", "1")), delta(3, 2, Map.of("b", "2"), Map.of("a", "1", "b", "2")));
            }
            return List.of(snapshot(3, Map.of("a", "1", "b", "2", "c", "3")));
        })) {
            List<ResyncReason> reasons = new CopyOnWriteArrayList<>();
            try (MapcastClient client = server.client();
                 Replica<String, String> replica = client.replica("m", Codec.utf8(), Codec.utf8(), resyncs(reasons))) {
                assertTrue(replica.awaitRevision(3, Duration.ofSeconds(10)));
                assertEquals(Map.of("a", "1", "b", "2", "c", "3"), replica.toMap(), "the content of the new snapshot");
                assertEquals(1, replica.stats().gaps());
                assertEquals(List.of(ResyncReason.INITIAL, ResyncReason.GAP), reasons);
                assertEquals(0, requests.get(1).getAfterRevision(), "resynchronised from a snapshot");
            }
        }
    }

    @Test
    void aDigestMismatchMakesTheReplicaResynchronise() throws Exception {
        List<WatchRequest> requests = new CopyOnWriteArrayList<>();
        try (Scripted server = new Scripted(request -> {
            requests.add(request);
            if (requests.size() == 1) {
                // The delta's digest is that of a map where "b" is "WRONG".
                return List.of(snapshot(1, Map.of("a", "1")), delta(2, 1, Map.of("b", "2"), Map.of("a", "1", "b", "WRONG")));
            }
            return List.of(snapshot(2, Map.of("a", "1", "b", "2")));
        })) {
            List<ResyncReason> reasons = new CopyOnWriteArrayList<>();
            try (MapcastClient client = server.client();
                 Replica<String, String> replica = client.replica("m", Codec.utf8(), Codec.utf8(), resyncs(reasons))) {
                awaitReasons(reasons, 2);
                assertEquals(List.of(ResyncReason.INITIAL, ResyncReason.DIGEST_MISMATCH), reasons);
                assertEquals(1, replica.stats().digestMismatches());
                assertEquals(Map.of("a", "1", "b", "2"), replica.toMap());
                assertEquals(2, requests.size());
                assertEquals(0, requests.get(1).getAfterRevision());
            }
        }
    }

    @Test
    void aSnapshotThatDoesNotCheckOutIsNeverShown() throws Exception {
        List<WatchRequest> requests = new CopyOnWriteArrayList<>();
        try (Scripted server = new Scripted(request -> {
            requests.add(request);
            if (requests.size() == 1) {
                // total_entries says 2, the chunk holds 1.
                SnapshotChunk lying = chunk(1, Map.of("a", "1")).toBuilder().setTotalEntries(2).build();
                return List.of(WatchResponse.newBuilder().setSnapshot(lying).build());
            }
            return List.of(snapshot(1, Map.of("a", "1")));
        })) {
            List<ResyncReason> reasons = new CopyOnWriteArrayList<>();
            try (MapcastClient client = server.client();
                 Replica<String, String> replica = client.replica("m", Codec.utf8(), Codec.utf8(), resyncs(reasons))) {
                awaitReasons(reasons, 1);
                assertEquals(List.of(ResyncReason.DIGEST_MISMATCH), reasons, "the first snapshot shown is the good one");
                assertEquals(Map.of("a", "1"), replica.toMap());
                assertEquals(1, replica.stats().digestMismatches());
            }
        }
    }

    @Test
    void aResumeOntoADifferentMapIsCaughtByTheProgressDigest() throws Exception {
        // The replica follows a map to revision 1 (a=1); the stream breaks; it resumes after 1 on a
        // server whose map is also at revision 1 but holds b=2 (a restart that lost the data). No delta
        // comes, but the Progress that ends the resume carries the server's digest at revision 1.
        List<WatchRequest> requests = new CopyOnWriteArrayList<>();
        try (Scripted server = new Scripted(request -> {
            requests.add(request);
            return switch (requests.size()) {
                case 1 -> List.of(snapshot(1, Map.of("a", "1")), END);
                case 2 -> List.of(progress(1, Map.of("b", "2")));
                default -> List.of(snapshot(1, Map.of("b", "2")));
            };
        })) {
            List<ResyncReason> reasons = new CopyOnWriteArrayList<>();
            try (MapcastClient client = MapcastClient.builder().target("127.0.0.1:" + server.server.getPort())
                    .reconnectBackoff(Duration.ofMillis(10), Duration.ofMillis(50)).build();
                 Replica<String, String> replica = client.replica("m", Codec.utf8(), Codec.utf8(), resyncs(reasons))) {
                awaitReasons(reasons, 2);
                assertEquals(List.of(ResyncReason.INITIAL, ResyncReason.DIGEST_MISMATCH), reasons);
                assertEquals(Map.of("b", "2"), replica.toMap());
                assertEquals(1, requests.get(1).getAfterRevision(), "it resumed");
                assertEquals(0, requests.get(2).getAfterRevision(), "then took a snapshot");
            }
        }
    }

    private static WatchResponse progress(long revision, Map<String, String> content) {
        return WatchResponse.newBuilder().setProgress(dev.mapcast.proto.v1.Progress.newBuilder()
                .setRevision(revision).setDigest(digest(content))).build();
    }

    @Test
    void aSnapshotWithTheRightCountButTheWrongDigestIsNeverShown() throws Exception {
        List<WatchRequest> requests = new CopyOnWriteArrayList<>();
        try (Scripted server = new Scripted(request -> {
            requests.add(request);
            if (requests.size() == 1) {
                SnapshotChunk lying = chunk(1, Map.of("a", "1")).toBuilder().setDigest(digest(Map.of("a", "2"))).build();
                return List.of(WatchResponse.newBuilder().setSnapshot(lying).build());
            }
            return List.of(snapshot(1, Map.of("a", "1")));
        })) {
            List<ResyncReason> reasons = new CopyOnWriteArrayList<>();
            try (MapcastClient client = server.client();
                 Replica<String, String> replica = client.replica("m", Codec.utf8(), Codec.utf8(), resyncs(reasons))) {
                awaitReasons(reasons, 1);
                assertEquals(List.of(ResyncReason.DIGEST_MISMATCH), reasons);
                assertEquals(1, replica.stats().digestMismatches());
                assertEquals(Map.of("a", "1"), replica.toMap());
            }
        }
    }

    private static ReplicaListener<String, String> resyncs(List<ResyncReason> reasons) {
        return new ReplicaListener<>() {
            @Override
            public void onResync(long revision, ResyncReason reason) {
                reasons.add(reason);
            }
        };
    }

    private static void awaitReasons(List<ResyncReason> reasons, int n) {
        await().atMost(Duration.ofSeconds(10)).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(5))
                .untilAsserted(() -> assertEquals(n, reasons.size(), () -> "resyncs: " + reasons));
    }

    private static WatchResponse snapshot(long revision, Map<String, String> content) {
        return WatchResponse.newBuilder().setSnapshot(chunk(revision, content)).build();
    }

    private static SnapshotChunk chunk(long revision, Map<String, String> content) {
        SnapshotChunk.Builder chunk = SnapshotChunk.newBuilder().setMap("m").setRevision(revision).setLast(true)
                .setTotalEntries(content.size()).setDigest(digest(content))
                .setOrder(IterationOrder.ITERATION_ORDER_HASH);
        content.forEach((k, v) -> chunk.putEntries(k, ByteString.copyFromUtf8(v)));
        return chunk.build();
    }

    private static WatchResponse delta(long revision, long prev, Map<String, String> puts, Map<String, String> after) {
        Delta.Builder delta = Delta.newBuilder().setRevision(revision).setPrevRevision(prev).setDigest(digest(after));
        puts.forEach((k, v) -> delta.putPuts(k, ByteString.copyFromUtf8(v)));
        return WatchResponse.newBuilder().setDelta(delta).build();
    }

    /** The contract's digest of a content, computed by map-core. */
    private static long digest(Map<String, String> content) {
        try (OffHeapMap map = OffHeapMap.builder().trackDigest(true).build()) {
            content.forEach((k, v) -> map.put(k.getBytes(StandardCharsets.UTF_8), v.getBytes(StandardCharsets.UTF_8)));
            return map.digest();
        }
    }

    /** In a script: end the stream with UNAVAILABLE here (the replica reconnects and resumes). */
    private static final WatchResponse END = WatchResponse.newBuilder().build();

    /**
     * A server whose Watch answers each call with a scripted list of messages, then stays open (or
     * ends at {@link #END}).
     */
    private static final class Scripted implements AutoCloseable {
        final Server server;
        private final BlockingQueue<Object> open = new LinkedBlockingQueue<>();

        Scripted(Function<WatchRequest, List<WatchResponse>> script) throws Exception {
            ServiceDescriptor service = ServiceDescriptor.newBuilder(MapcastGrpc.SERVICE_NAME)
                    .addMethod(EncodedMethods.watch()).build();
            ServerServiceDefinition definition = ServerServiceDefinition.builder(service)
                    .addMethod(EncodedMethods.watch(), ServerCalls.asyncServerStreamingCall((request, response) -> {
                        for (WatchResponse message : script.apply(request)) {
                            if (message == END) {
                                response.onError(io.grpc.Status.UNAVAILABLE.withDescription("scripted end")
                                        .asRuntimeException());
                                return;
                            }
                            response.onNext(Encoded.of(ByteBuffer.wrap(message.toByteArray())));
                        }
                        open.add(response);  // never completed: the replica decides to leave
                    }))
                    .build();
            server = NettyServerBuilder.forPort(0).addService(definition).build().start();
        }

        MapcastClient client() {
            return MapcastClient.builder().target("127.0.0.1:" + server.getPort()).build();
        }

        @Override
        public void close() {
            server.shutdownNow();
        }
    }
}
