package dev.mapcast.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.proto.v1.DeleteMapRequest;
import dev.mapcast.proto.v1.GetRequest;
import dev.mapcast.proto.v1.ListMapsRequest;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.proto.v1.WatchResponse;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.server.rpc.ConnectionLimits;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The server's defences against a client that holds its connection wrongly ({@link
 * ConnectionLimits}): tested with a real gRPC client where one behaves so, and with raw HTTP/2
 * frames on a socket where no gRPC client would (ping floods, silence).
 */
class ConnectionLimitsTest {

    private static final int FRAME_SETTINGS = 4;
    private static final int FRAME_PING = 6;
    private static final int FRAME_GOAWAY = 7;
    private static final int ENHANCE_YOUR_CALM = 0xb;
    private static final long WAIT_MILLIS = 60_000;

    private MapcastServer server;
    private ManagedChannel channel;

    @AfterEach
    void stop() {
        if (channel != null) {
            channel.shutdownNow();
        }
        server.close();
    }

    private void start(ConnectionLimits limits) {
        server = MapcastServer.builder().port(0).connectionLimits(limits).build().start();
    }

    @Test
    void aClientPingingInALoopIsToldToCalmDown() throws Exception {
        start(ConnectionLimits.DEFAULTS);
        try (RawHttp2 raw = RawHttp2.connect(server.port())) {
            int goAwayCode = -1;
            long deadline = System.currentTimeMillis() + WAIT_MILLIS;
            while (goAwayCode < 0 && System.currentTimeMillis() < deadline) {
                try {
                    raw.ping();
                } catch (SocketException closed) {  // the server sent GOAWAY and closed: read what it said
                    raw.awaitClosed();
                }
                Thread.sleep(10);
                goAwayCode = raw.goAwayCodeSeen();
            }
            assertEquals(ENHANCE_YOUR_CALM, goAwayCode, "GOAWAY ENHANCE_YOUR_CALM (too_many_pings)");
        }
    }

    @Test
    void pingsAtThePermittedRateAreAnsweredWithoutCalls() throws Exception {
        start(ConnectionLimits.DEFAULTS.withMinClientPingInterval(Duration.ofMillis(200)));
        try (RawHttp2 raw = RawHttp2.connect(server.port())) {
            for (int i = 0; i < 10; i++) {
                raw.ping();
                Thread.sleep(300);
            }
            raw.awaitPingAcks(10);
            assertEquals(-1, raw.goAwayCodeSeen(), "no GOAWAY for pings at the permitted rate");
        }
    }

    @Test
    void aConnectionWithNoCallForTheIdleTimeoutIsClosed() throws Exception {
        start(ConnectionLimits.DEFAULTS.withIdleTimeout(Duration.ofMillis(300)));
        try (RawHttp2 raw = RawHttp2.connect(server.port())) {
            raw.awaitClosed();
            assertEquals(0, raw.goAwayCodeSeen(), "GOAWAY NO_ERROR first");
        }
    }

    @Test
    void aClientThatStopsAnsweringIsDisconnected() throws Exception {
        start(ConnectionLimits.DEFAULTS.withKeepAlive(Duration.ofMillis(300), Duration.ofMillis(300)));
        try (RawHttp2 raw = RawHttp2.connect(server.port())) {
            raw.stopAnsweringPings();
            raw.awaitClosed();
            assertTrue(raw.pingsFromServer() > 0, "the server asked before it gave up");
        }
    }

    @Test
    void aConnectionThatNeverHandshakesIsClosed() throws Exception {
        start(ConnectionLimits.DEFAULTS.withHandshakeTimeout(Duration.ofMillis(300)));
        try (Socket silent = new Socket("127.0.0.1", server.port())) {
            silent.setSoTimeout((int) WAIT_MILLIS);
            // The server speaks first (its SETTINGS); then, with no preface from this side, it closes.
            while (silent.getInputStream().read() >= 0) {
                continue;
            }
        } catch (SocketException reset) {
            // closed by the server, with a reset: as good
        }
    }

    @Test
    void callsBeyondTheStreamLimitWaitForOneToEnd() throws Exception {
        start(ConnectionLimits.DEFAULTS.withMaxStreamsPerConnection(2));
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        MapcastGrpc.MapcastBlockingStub stub = MapcastGrpc.newBlockingStub(channel);
        stub.write(WriteRequest.newBuilder().setMap("watched").putPuts("k", ByteString.copyFromUtf8("v")).build());
        stub.write(WriteRequest.newBuilder().setMap("read").putPuts("k", ByteString.copyFromUtf8("v")).build());

        for (int i = 0; i < 2; i++) {  // two watches hold both slots of this connection
            MapcastGrpc.newStub(channel).watch(WatchRequest.newBuilder().setMap("watched").build(), ignore());
        }
        awaitWatchers(2);
        GetRequest get = GetRequest.newBuilder().setMap("read").setKey("k").build();
        com.google.common.util.concurrent.ListenableFuture<dev.mapcast.proto.v1.GetResponse> pending =
                MapcastGrpc.newFutureStub(channel).withDeadlineAfter(WAIT_MILLIS, TimeUnit.MILLISECONDS).get(get);
        // An absence, so a wait: with both slots held, the call cannot start, however long it waits.
        Thread.sleep(500);
        assertFalse(pending.isDone(), "a third call on the connection waits for a stream slot");

        // The watched map deleted (over another connection): the server ends both watches.
        ManagedChannel other = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        try {
            MapcastGrpc.newBlockingStub(other).deleteMap(DeleteMapRequest.newBuilder().setMap("watched").build());
        } finally {
            other.shutdownNow();
        }
        assertEquals("v", pending.get(WAIT_MILLIS, TimeUnit.MILLISECONDS).getValue().toStringUtf8(),
                "the call runs once the streams ended");
    }

    @Test
    void connectionsBeyondTheBoundAreClosedAndRoomIsMadeWhenOneCloses() throws Exception {
        start(ConnectionLimits.DEFAULTS.withMaxConnections(2));
        List<ManagedChannel> held = new ArrayList<>();
        try {
            for (int i = 0; i < 2; i++) {  // each channel holds one connection once it has made a call
                ManagedChannel c = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
                held.add(c);
                MapcastGrpc.newBlockingStub(c).listMaps(ListMapsRequest.getDefaultInstance());
            }
            channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
            StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, () -> MapcastGrpc
                    .newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                    .listMaps(ListMapsRequest.getDefaultInstance()));
            assertEquals(Status.Code.UNAVAILABLE, refused.getStatus().getCode(), refused.toString());

            held.remove(0).shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            // The server sees the close a moment later; a new connection then gets in.
            long deadline = System.currentTimeMillis() + WAIT_MILLIS;
            while (true) {
                ManagedChannel fresh = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext()
                        .build();
                try {
                    MapcastGrpc.newBlockingStub(fresh).withDeadlineAfter(10, TimeUnit.SECONDS)
                            .listMaps(ListMapsRequest.getDefaultInstance());
                    break;
                } catch (StatusRuntimeException e) {
                    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.toString());
                    assertTrue(System.currentTimeMillis() < deadline, "no room made within " + WAIT_MILLIS + " ms");
                    Thread.sleep(20);
                } finally {
                    fresh.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
                }
            }
        } finally {
            for (ManagedChannel c : held) {
                c.shutdownNow();
            }
        }
    }

    private void awaitWatchers(int n) throws InterruptedException {
        long deadline = System.currentTimeMillis() + WAIT_MILLIS;
        while (server.watcherCount() < n) {
            assertTrue(System.currentTimeMillis() < deadline, "watchers open: " + server.watcherCount());
            Thread.sleep(10);
        }
    }

    private static StreamObserver<WatchResponse> ignore() {
        return new StreamObserver<>() {
            @Override
            public void onNext(WatchResponse value) {
            }

            @Override
            public void onError(Throwable t) {
            }

            @Override
            public void onCompleted() {
            }
        };
    }

    /**
     * A client speaking HTTP/2 by hand: the preface, SETTINGS (acknowledging the server's), PINGs
     * when told to; a reader thread notes the server's PINGs, PING acks, GOAWAY and the close.
     */
    private static final class RawHttp2 implements AutoCloseable {
        private final Socket socket;
        private final OutputStream out;
        private final Thread reader;
        private volatile int goAwayCode = -1;
        private volatile int pingAcks;
        private volatile int serverPings;
        private volatile boolean answerPings = true;
        private volatile boolean closed;

        private RawHttp2(Socket socket) throws IOException {
            this.socket = socket;
            this.out = socket.getOutputStream();
            this.reader = new Thread(this::read, "raw-http2-reader");
            reader.setDaemon(true);
        }

        static RawHttp2 connect(int port) throws IOException {
            RawHttp2 raw = new RawHttp2(new Socket("127.0.0.1", port));
            raw.out.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            raw.frame(FRAME_SETTINGS, 0, new byte[0]);
            raw.reader.start();
            return raw;
        }

        void ping() throws IOException {
            frame(FRAME_PING, 0, new byte[8]);
        }

        void stopAnsweringPings() {
            answerPings = false;
        }

        int goAwayCodeSeen() {
            return goAwayCode;
        }

        int pingsFromServer() {
            return serverPings;
        }

        void awaitPingAcks(int n) throws InterruptedException {
            long deadline = System.currentTimeMillis() + WAIT_MILLIS;
            while (pingAcks < n) {
                assertFalse(closed, "closed after " + pingAcks + " ping acks (GOAWAY " + goAwayCode + ")");
                assertTrue(System.currentTimeMillis() < deadline, "ping acks: " + pingAcks);
                Thread.sleep(10);
            }
        }

        void awaitClosed() throws InterruptedException {
            reader.join(WAIT_MILLIS);
            assertTrue(closed, "the server closed the connection");
        }

        private synchronized void frame(int type, int flags, byte[] payload) throws IOException {
            byte[] header = {(byte) (payload.length >>> 16), (byte) (payload.length >>> 8), (byte) payload.length,
                (byte) type, (byte) flags, 0, 0, 0, 0};
            out.write(header);
            out.write(payload);
            out.flush();
        }

        private void read() {
            try {
                DataInputStream in = new DataInputStream(socket.getInputStream());
                while (true) {
                    int length = in.readUnsignedByte() << 16 | in.readUnsignedShort();
                    int type = in.readUnsignedByte();
                    int flags = in.readUnsignedByte();
                    in.readInt();
                    byte[] payload = in.readNBytes(length);
                    if (type == FRAME_SETTINGS && (flags & 1) == 0) {
                        frame(FRAME_SETTINGS, 1, new byte[0]);
                    } else if (type == FRAME_PING && (flags & 1) == 1) {
                        pingAcks++;
                    } else if (type == FRAME_PING) {
                        serverPings++;
                        if (answerPings) {
                            frame(FRAME_PING, 1, payload);
                        }
                    } else if (type == FRAME_GOAWAY && goAwayCode < 0) {
                        goAwayCode = (payload[4] & 0xff) << 24 | (payload[5] & 0xff) << 16 | (payload[6] & 0xff) << 8
                                | (payload[7] & 0xff);
                    }
                }
            } catch (EOFException | SocketException end) {
                closed = true;
            } catch (IOException e) {
                closed = true;
            }
        }

        @Override
        public void close() throws IOException {
            socket.close();
        }
    }
}
