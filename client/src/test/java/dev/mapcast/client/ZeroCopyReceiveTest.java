package dev.mapcast.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.codec.EncodedMessages.Received;
import dev.mapcast.codec.EncodedMethods;
import dev.mapcast.codec.MessageDecoder;
import dev.mapcast.codec.MessageDecoder.WatchEvent;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.server.MapcastServer;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * The codec's receive path on real grpc-netty: a message lying in one of Netty's buffers is applied
 * where it lies (no copy), one spread over several is copied once; both apply the same.
 */
class ZeroCopyReceiveTest {

    @Test
    void deltasAreAppliedFromNettysOwnBuffers() throws Exception {
        try (MapcastServer server = MapcastServer.builder().port(0).build().start();
             MapcastClient writer = MapcastClient.builder().target("127.0.0.1:" + server.port()).build();
             OffHeapMap replica = OffHeapMap.builder().trackDigest(true).build()) {
            writer.put("m", "seed", "x");
            ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
            AtomicInteger zeroCopy = new AtomicInteger();
            AtomicInteger copied = new AtomicInteger();
            AtomicInteger deltas = new AtomicInteger();
            CompletableFuture<Void> synced = new CompletableFuture<>();
            CompletableFuture<Void> done = new CompletableFuture<>();
            ClientCall<WatchRequest, Encoded> call = channel.newCall(EncodedMethods.watch(), CallOptions.DEFAULT);
            try {
                call.start(new ClientCall.Listener<>() {
                    @Override
                    public void onMessage(Encoded message) {
                        try (Received received = message.received()) {
                            (received.isZeroCopy() ? zeroCopy : copied).incrementAndGet();
                            WatchEvent event = MessageDecoder.watchEvent(received.bytes());
                            if (event.field() == WatchEvent.SNAPSHOT) {
                                MessageDecoder.applySnapshotChunk(event.body(), replica);
                                synced.complete(null);
                            } else if (event.field() == WatchEvent.DELTA) {
                                MessageDecoder.applyDelta(event.body(), replica);
                                if (deltas.incrementAndGet() == 200) {
                                    done.complete(null);
                                }
                            }
                        } catch (RuntimeException e) {
                            done.completeExceptionally(e);
                        }
                        call.request(1);
                    }

                    @Override
                    public void onClose(Status status, Metadata trailers) {
                        done.completeExceptionally(status.asRuntimeException());
                    }
                }, new Metadata());
                call.sendMessage(WatchRequest.newBuilder().setMap("m").build());
                call.halfClose();
                call.request(1);
                synced.get(10, TimeUnit.SECONDS);  // then every write is a delta
                for (int i = 0; i < 200; i++) {
                    writer.put("m", "key-" + i, "value-" + i + "-" + "v".repeat(i * 50));
                }
                try {
                    done.get(20, TimeUnit.SECONDS);
                } catch (java.util.concurrent.TimeoutException e) {
                    throw new AssertionError("timed out: " + deltas + " deltas, " + zeroCopy + " zero-copy, " + copied + " copied", e);
                }
            } finally {
                call.cancel("done", null);
                channel.shutdownNow();
            }
            assertEquals(201, replica.size());
            assertEquals("value-150-" + "v".repeat(7500),
                    new String(replica.get("key-150".getBytes(StandardCharsets.UTF_8)), StandardCharsets.UTF_8));
            assertTrue(zeroCopy.get() > 0, "some messages applied in place: " + zeroCopy + " zero-copy, " + copied + " copied");
            System.out.println("ZeroCopyReceiveTest: " + zeroCopy + " zero-copy, " + copied + " copied");
        }
    }
}
