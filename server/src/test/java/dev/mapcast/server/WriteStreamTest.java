package dev.mapcast.server;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.proto.v1.GetRequest;
import dev.mapcast.proto.v1.GetResponse;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.StreamedWrite;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.proto.v1.WriteResult;
import dev.mapcast.server.rpc.WriteStreamCall;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * WriteStream over real gRPC on loopback: each write answered with its id as a Write call would
 * be, failures answered without ending the stream, the server's reading bounded by the client's,
 * and shutdown answering what it read before ending the stream.
 */
class WriteStreamTest {

    @TempDir
    Path dataDir;

    private MapcastServer server;
    private final List<ManagedChannel> channels = new ArrayList<>();
    /** For Get and Write calls, apart from the connections that tests hold up. */
    private ManagedChannel control;

    private void start(MapcastServer.Builder builder) {
        server = builder.port(0).build().start();
        control = connect();
    }

    private ManagedChannel connect() {
        return channel(NettyChannelBuilder.forAddress("127.0.0.1", server.port()));
    }

    @AfterEach
    void stop() {
        channels.forEach(ManagedChannel::shutdownNow);
        if (server != null) {
            server.close();
        }
    }

    @Test
    void everyWriteIsAnsweredWithItsIdAndApplied() throws Exception {
        start(MapcastServer.builder());
        Writes writes = Writes.open(control, true);
        int count = 2_000;
        for (long id = 1; id <= count; id++) {
            writes.send(id, put("m", "k" + id % 100, "v" + id));
        }
        writes.call.halfClose();
        assertEquals(Status.Code.OK, writes.closed.get(20, TimeUnit.SECONDS).getCode(), writes.closed.get().toString());

        assertEquals(count, writes.results.size());
        Map<String, Long> lastRevisionOfKey = new HashMap<>();
        for (WriteResult r : writes.results.values()) {
            assertEquals(0, r.getCode(), r.toString());
            lastRevisionOfKey.merge("k" + r.getId() % 100, r.getRevision(), Math::max);
        }
        assertEquals(oneTo(count), revisions(writes), "one revision per write, none skipped");
        // Whatever the order: each key holds the value of its write with the highest revision.
        GetResponse k7 = stub().get(GetRequest.newBuilder().setMap("m").setKey("k7").build());
        assertEquals(count, k7.getRevision());
        assertEquals(lastRevisionOfKey.get("k7"), k7.getModRevision());
        long id = writes.results.values().stream().filter(r -> r.getRevision() == k7.getModRevision()).findFirst()
                .orElseThrow().getId();
        assertEquals("v" + id, k7.getValue().toStringUtf8());
    }

    @Test
    void aFailedWriteIsAnsweredWithItsStatusAndTheStreamGoesOn() throws Exception {
        start(MapcastServer.builder().maxKeyBytes(16));
        assertEquals(1, stub().write(put("config", "a", "1")).getRevision());
        Writes writes = Writes.open(control, true);
        writes.send(1, put("config", "b", "2"));
        writes.send(2, put("config", "", "x"));
        writes.send(3, put("config", "k".repeat(17), "x"));
        writes.send(4, put("config", "c", "3").toBuilder().setExpectedRevision(1).build());
        // StreamedWrite{id: 5, write: {puts {key: 0xFF}, map: "config"}}: the key is not UTF-8.
        writes.sendRaw(new byte[] {0x08, 0x05, 0x12, 0x0F, 0x0A, 0x05, 0x0A, 0x01, (byte) 0xFF, 0x12, 0x00,
                0x12, 0x06, 'c', 'o', 'n', 'f', 'i', 'g'});
        writes.send(6, put("nope", "k", "v").toBuilder().setMap("").build());
        writes.send(7, put("config", "d", "4"));
        writes.call.halfClose();
        assertEquals(Status.Code.OK, writes.closed.get(10, TimeUnit.SECONDS).getCode());

        assertEquals(2, writes.result(1).getRevision());
        refused(writes.result(2), Status.Code.INVALID_ARGUMENT, "empty key");
        refused(writes.result(3), Status.Code.INVALID_ARGUMENT, "17 bytes");
        refused(writes.result(4), Status.Code.FAILED_PRECONDITION, "at revision 2 (expected_revision: 1)");
        refused(writes.result(5), Status.Code.INVALID_ARGUMENT, "malformed WriteRequest");
        refused(writes.result(6), Status.Code.INVALID_ARGUMENT, "map: empty");
        assertEquals(3, writes.result(7).getRevision());
        // Only the two writes that succeeded changed anything.
        assertEquals(3, get("config", "a").getRevision());
        assertFalse(get("config", "c").getFound());
        assertEquals("4", get("config", "d").getValue().toStringUtf8());
    }

    /** As protobuf reads it: unknown fields skipped, a message field sent twice merged. */
    @Test
    void aStreamedWriteIsReadAsProtobufWouldReadIt() throws Exception {
        start(MapcastServer.builder());
        Writes writes = Writes.open(control, true);
        byte[] puts = WriteRequest.newBuilder().putPuts("k", ByteString.copyFromUtf8("v")).build().toByteArray();
        byte[] map = WriteRequest.newBuilder().setMap("merged").build().toByteArray();
        java.io.ByteArrayOutputStream message = new java.io.ByteArrayOutputStream();
        message.writeBytes(new byte[] {0x08, 0x07});                       // id: 7
        message.writeBytes(new byte[] {(byte) 0xC8, 0x01, 0x2A});          // field 25 (unknown): 42
        message.write(0x12);                                                // write, part one: the puts
        message.write(puts.length);
        message.writeBytes(puts);
        message.write(0x12);                                                // write, part two: the map
        message.write(map.length);
        message.writeBytes(map);
        StreamedWrite read = StreamedWrite.parseFrom(message.toByteArray());
        assertEquals(7, read.getId());
        assertEquals(WriteRequest.newBuilder().setMap("merged").putPuts("k", ByteString.copyFromUtf8("v")).build(),
                read.getWrite(), "what protobuf-java reads");
        writes.sendRaw(message.toByteArray());
        assertEquals(1, writes.result(7).getRevision(), writes.result(7).toString());
        assertEquals("v", get("merged", "k").getValue().toStringUtf8());
    }

    @Test
    void aMessageThatIsNotAStreamedWriteEndsTheStream() throws Exception {
        start(MapcastServer.builder());
        Writes writes = Writes.open(control, true);
        writes.send(1, put("m", "a", "1"));
        writes.sendRaw(new byte[] {0x12, 0x7F, 'c'});  // a length past the end
        Status status = writes.closed.get(10, TimeUnit.SECONDS);
        assertEquals(Status.Code.INVALID_ARGUMENT, status.getCode());
        assertTrue(status.getDescription().contains("malformed StreamedWrite"), status.toString());
        assertEquals(1, writes.result(1).getRevision(), "the write before it was answered");
        assertEquals(1, get("m", "a").getRevision());
    }

    /**
     * A writer that sends and never reads its results: the server stops reading its writes once
     * the results it holds back fill the connection's window and gRPC's send buffer, and goes on
     * once they are read. Nothing is queued without bound, and nothing is lost.
     */
    @Test
    void theServerReadsNoFurtherThanTheWriterReadsResults() throws Exception {
        start(MapcastServer.builder());
        int window = 4096;
        ManagedChannel channel = channel(NettyChannelBuilder.forAddress("127.0.0.1", server.port())
                .flowControlWindow(window));
        assertEquals(1, stub().write(put("m", "k0", "v")).getRevision());  // the map exists before settledRevision reads it
        Writes writes = Writes.open(channel, false);
        int count = 20_000;
        for (long id = 1; id <= count; id++) {
            writes.send(id, put("m", "k" + id % 100, "v"));
        }
        long applied = settledRevision("m");
        // A result takes about 11 bytes on the wire; gRPC holds 32 KiB of them before it says not ready.
        long bound = 1 + (window + 32 * 1024) / 8 + WriteStreamCall.MAX_UNANSWERED;
        assertTrue(applied > 1 && applied <= bound, "at revision " + applied + " after 1 + " + count
                + " writes (expected: 2 to " + bound + " while no result is read)");

        writes.call.request(Integer.MAX_VALUE);
        writes.call.halfClose();
        assertEquals(Status.Code.OK, writes.closed.get(30, TimeUnit.SECONDS).getCode());
        assertEquals(count, writes.results.size());
        assertTrue(writes.results.values().stream().allMatch(r -> r.getCode() == 0));
        assertEquals(1 + count, get("m", "k1").getRevision());
    }

    /** On a durable map writes wait for the disk on the pool; many in flight share its fsyncs. */
    @Test
    void durableWritesAreAnsweredOnceOnDisk() throws Exception {
        start(MapcastServer.builder().dataDir(dataDir));
        Writes writes = Writes.open(control, true);
        int count = 500;
        for (long id = 1; id <= count; id++) {
            writes.send(id, put("durable", "k" + id, "v" + id));
        }
        writes.call.halfClose();
        assertEquals(Status.Code.OK, writes.closed.get(30, TimeUnit.SECONDS).getCode());
        assertEquals(oneTo(count), revisions(writes));

        server.close();
        start(MapcastServer.builder().dataDir(dataDir));
        assertEquals(count, get("durable", "k1").getRevision(), "every answered write recovered");
    }

    /** stop(): writes already read are applied and answered, later ones refused, then the stream ends. */
    @Test
    void stoppingTheServerAnswersWhatItReadThenEndsTheStream() throws Exception {
        // A grace long enough that a slow machine never reaches the forced end, which ends streams otherwise.
        start(MapcastServer.builder().shutdownGrace(Duration.ofSeconds(60)));
        assertEquals(1, stub().write(put("busy", "k", "0")).getRevision());
        assertEquals(1, stub().write(put("other", "k", "0")).getRevision());
        Writes writes = Writes.open(connect(), true);
        ReentrantReadWriteLock.WriteLock busy = server.hosted("busy").writeLock();
        Thread stopping = new Thread(server::stop);
        busy.lock();
        long refusedId;
        try {
            for (long id = 1; id <= 3; id++) {
                writes.send(id, put("busy", "k", "v" + id));  // wait for the lock, on the pool
            }
            // A stream's writes are read in order: once this one is answered, the three were read.
            assertEquals(2, writes.sendAndAwait(99, put("other", "k", "1")).getRevision());
            stopping.start();
            // Writes to another map commit at once on the event loop: the first refused shows the stream is ending.
            refusedId = 100;
            while (writes.sendAndAwait(refusedId, put("other", "k", "v")).getCode() == 0) {
                refusedId++;
                assertTrue(refusedId < 10_000, "the stream never refused a write while stopping");
            }
            refused(writes.result(refusedId), Status.Code.UNAVAILABLE, "shutting down");
            assertFalse(writes.closed.isDone(), "the stream waits for the writes it read");
        } finally {
            busy.unlock();
        }
        Status status = writes.closed.get(10, TimeUnit.SECONDS);
        assertEquals(Status.Code.UNAVAILABLE, status.getCode());
        assertTrue(status.getDescription().contains("shutting down"), status.toString());
        for (long id = 1; id <= 3; id++) {
            assertEquals(0, writes.result(id).getCode(), writes.result(id).toString());
        }
        stopping.join(10_000);
        server.start();
        assertEquals(4, get("busy", "k").getRevision(), "the three writes read before stopping applied");
        assertEquals(2 + refusedId - 100, get("other", "k").getRevision(), "the refused write did not");
    }

    // ---- helpers ----

    /** One WriteStream call with raw requests; results by id. */
    private static final class Writes extends ClientCall.Listener<WriteResult> {
        final ClientCall<byte[], WriteResult> call;
        final Map<Long, WriteResult> results = new ConcurrentHashMap<>();
        final CompletableFuture<Status> closed = new CompletableFuture<>();

        private Writes(ClientCall<byte[], WriteResult> call) {
            this.call = call;
        }

        /** Opens a stream; with {@code reading} false it reads no result until asked to. */
        static Writes open(Channel channel, boolean reading) {
            Writes w = new Writes(channel.newCall(RawBytes.requests(MapcastGrpc.getWriteStreamMethod()), CallOptions.DEFAULT));
            w.call.start(w, new Metadata());
            if (reading) {
                w.call.request(Integer.MAX_VALUE);
            }
            return w;
        }

        void send(long id, WriteRequest write) {
            sendRaw(StreamedWrite.newBuilder().setId(id).setWrite(write).build().toByteArray());
        }

        void sendRaw(byte[] message) {
            call.sendMessage(message);
        }

        WriteResult sendAndAwait(long id, WriteRequest write) {
            send(id, write);
            return result(id);
        }

        /** The result of write {@code id}, waiting up to 10 s for it. */
        WriteResult result(long id) {
            return await().atMost(10, TimeUnit.SECONDS).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(1))
                    .alias("a result for write " + id).until(() -> results.get(id), Objects::nonNull);
        }

        @Override
        public void onMessage(WriteResult result) {
            results.put(result.getId(), result);
        }

        @Override
        public void onClose(Status status, Metadata trailers) {
            closed.complete(status);
        }
    }

    private ManagedChannel channel(NettyChannelBuilder builder) {
        ManagedChannel channel = builder.usePlaintext().build();
        channels.add(channel);
        return channel;
    }

    private MapcastGrpc.MapcastBlockingStub stub() {
        return MapcastGrpc.newBlockingStub(control);
    }

    private GetResponse get(String map, String key) {
        return stub().get(GetRequest.newBuilder().setMap(map).setKey(key).build());
    }

    /** The map's revision once it has not moved for half a second. */
    private long settledRevision(String map) throws InterruptedException {
        long last = -1;
        long now = get(map, "k1").getRevision();
        while (now != last) {
            last = now;
            Thread.sleep(500);
            now = get(map, "k1").getRevision();
        }
        return now;
    }

    private static Set<Long> oneTo(long n) {
        return LongStream.rangeClosed(1, n).boxed().collect(Collectors.toCollection(TreeSet::new));
    }

    private static Set<Long> revisions(Writes writes) {
        return writes.results.values().stream().map(WriteResult::getRevision).collect(Collectors.toCollection(TreeSet::new));
    }

    private static void refused(WriteResult result, Status.Code code, String inDescription) {
        assertEquals(code.value(), result.getCode(), result.toString());
        assertEquals(0, result.getRevision());
        assertTrue(result.getMessage().contains(inDescription), "\"" + result.getMessage() + "\" names \"" + inDescription + "\"");
    }

    private static WriteRequest put(String map, String key, String value) {
        return WriteRequest.newBuilder().setMap(map).putPuts(key, ByteString.copyFromUtf8(value)).build();
    }
}
