package dev.mapcast.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.proto.v1.CompactRequest;
import dev.mapcast.proto.v1.GetRequest;
import dev.mapcast.proto.v1.IterationOrder;
import dev.mapcast.proto.v1.ListMapsRequest;
import dev.mapcast.proto.v1.ListMapsResponse;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.SnapshotRequest;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.proto.v1.WatchResponse;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.proto.v1.WriteResponse;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCalls;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Every bad input of DESIGN.md gets its status, with a description naming the value, and changes
 * nothing: the server's maps (ListMaps: revision, size, bytes) and the content are the same after.
 */
class BadInputTest {

    private MapcastServer server;
    private ManagedChannel channel;
    private MapcastGrpc.MapcastBlockingStub stub;

    @BeforeEach
    void start() {
        server = MapcastServer.builder().port(0).maxKeyBytes(16).maxValueBytes(32).maxWriteBytes(256)
                .maxMaps(2).maxEntriesPerMap(3).build().start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        stub = MapcastGrpc.newBlockingStub(channel);
        stub.write(WriteRequest.newBuilder().setMap("config").putPuts("a", bytes("1")).build());
    }

    @AfterEach
    void stop() {
        channel.shutdownNow();
        server.close();
    }

    @Test
    void badKeysAndValues() {
        refused(Status.Code.INVALID_ARGUMENT, "empty key", () -> write(w -> w.putPuts("", bytes("v"))));
        refused(Status.Code.INVALID_ARGUMENT, "17 bytes", () -> write(w -> w.putPuts("k".repeat(17), bytes("v"))));
        refused(Status.Code.INVALID_ARGUMENT, "33 bytes", () -> write(w -> w.putPuts("k", ByteString.copyFrom(new byte[33]))));
        refused(Status.Code.INVALID_ARGUMENT, "empty key", () -> write(w -> w.addDeletes("")));
        refused(Status.Code.INVALID_ARGUMENT, "expected_mod_revisions", () -> write(w -> w.putExpectedModRevisions("", 0)));
        refused(Status.Code.INVALID_ARGUMENT, "write of", () -> write(w -> {
            for (int i = 0; i < 10; i++) {
                w.putPuts("key" + i, ByteString.copyFrom(new byte[30]));
            }
        }));
        refused(Status.Code.INVALID_ARGUMENT, "order: 7", () -> write(w -> w.setOrderValue(7)));
        refused(Status.Code.INVALID_ARGUMENT, "empty key", () -> stub.get(GetRequest.newBuilder().setMap("config").build()));
    }

    @Test
    void badMapNames() {
        refused(Status.Code.INVALID_ARGUMENT, "map: empty", () -> stub.write(WriteRequest.newBuilder().putPuts("k", bytes("v")).build()));
        refused(Status.Code.INVALID_ARGUMENT, "map: 257 bytes",
                () -> stub.write(WriteRequest.newBuilder().setMap("m".repeat(257)).putPuts("k", bytes("v")).build()));
        refused(Status.Code.NOT_FOUND, "\"nope\"", () -> stub.get(GetRequest.newBuilder().setMap("nope").setKey("k").build()));
        refused(Status.Code.NOT_FOUND, "\"nope\"", () -> stub.compact(CompactRequest.newBuilder().setMap("nope").build()));
        refused(Status.Code.NOT_FOUND, "\"nope\"",
                () -> stub.snapshot(SnapshotRequest.newBuilder().setMap("nope").build()).hasNext());
        refused(Status.Code.NOT_FOUND, "\"nope\"",
                () -> stub.watch(WatchRequest.newBuilder().setMap("nope").build()).hasNext());
    }

    @Test
    void malformedMessagesAreInvalidArguments() {
        // A key that is not UTF-8: map entry {key: 0xFF} in WriteRequest.puts, map "config".
        byte[] badUtf8 = {0x0A, 0x05, 0x0A, 0x01, (byte) 0xFF, 0x12, 0x00, 0x12, 0x06, 'c', 'o', 'n', 'f', 'i', 'g'};
        refused(Status.Code.INVALID_ARGUMENT, "malformed WriteRequest: puts[0].key is not valid UTF-8 (bytes 4 to 5"
                + " of the message: ff)", () -> rawWrite(badUtf8));
        // A length prefix past the end.
        byte[] truncated = {0x12, 0x7F, 'c'};
        refused(Status.Code.INVALID_ARGUMENT, "malformed WriteRequest: the message ends inside map (its length at byte 1"
                + " says 127 bytes, only 1 left)", () -> rawWrite(truncated));
        // A varint of 11 bytes in expected_revision: protobuf-java would quote its CodedInputStream.
        byte[] longVarint = {0x12, 0x01, 'c', 0x20, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0x01};
        refused(Status.Code.INVALID_ARGUMENT, "malformed WriteRequest: expected_revision: a varint longer than 10 bytes"
                + " at byte 4 (a malformed varint)", () -> rawWrite(longVarint));
    }

    @Test
    void failedConditionsChangeNothing() {
        refused(Status.Code.FAILED_PRECONDITION, "at revision 1 (expected_revision: 5)",
                () -> write(w -> w.putPuts("b", bytes("2")).setExpectedRevision(5)));
        refused(Status.Code.FAILED_PRECONDITION, "has mod_revision 1 (expected_mod_revisions: 0)",
                () -> write(w -> w.putPuts("b", bytes("2")).putExpectedModRevisions("a", 0)));
        refused(Status.Code.FAILED_PRECONDITION, "is absent (expected_mod_revisions: 1)",
                () -> write(w -> w.putPuts("b", bytes("2")).putExpectedModRevisions("zz", 1)));
        // A refused first write creates no map.
        refused(Status.Code.FAILED_PRECONDITION, "expected_revision",
                () -> stub.write(WriteRequest.newBuilder().setMap("new").putPuts("k", bytes("v")).setExpectedRevision(3).build()));
        // The conditions that hold commit.
        assertEquals(2, write(w -> w.putPuts("b", bytes("2")).setExpectedRevision(1).putExpectedModRevisions("a", 1)
                .putExpectedModRevisions("b", 0)).getRevision());
        // A deleted key is absent again: no mod_revision left behind.
        assertEquals(3, write(w -> w.addDeletes("b")).getRevision());
        var b = stub.get(GetRequest.newBuilder().setMap("config").setKey("b").build());
        assertEquals(false, b.getFound());
        assertEquals(0, b.getModRevision());
        assertEquals(4, write(w -> w.putPuts("b", bytes("again")).putExpectedModRevisions("b", 0)).getRevision());
    }

    @Test
    void limitsOnMapsAndEntries() {
        stub.write(WriteRequest.newBuilder().setMap("second").putPuts("k", bytes("v")).build());
        refused(Status.Code.RESOURCE_EXHAUSTED, "at most 2",
                () -> stub.write(WriteRequest.newBuilder().setMap("third").putPuts("k", bytes("v")).build()));
        refused(Status.Code.RESOURCE_EXHAUSTED, "would hold 4 entries",
                () -> write(w -> w.putPuts("b", bytes("")).putPuts("c", bytes("")).putPuts("d", bytes(""))));
        // Replacing an entry while deleting another stays within the limit.
        assertEquals(2, write(w -> w.putPuts("b", bytes("")).putPuts("c", bytes("")).putPuts("a", bytes("x"))).getRevision());
        assertEquals(3, write(w -> w.addDeletes("a").putPuts("d", bytes(""))).getRevision());
    }

    @Test
    void compactBeyondTheRevisionIsRefused() {
        WatchStream watch = WatchStream.start(channel, WatchRequest.newBuilder().setMap("config").setAfterRevision(1)
                .build());
        watch.await(WatchResponse::hasProgress);  // resumed: a compaction now would reach it
        refused(Status.Code.INVALID_ARGUMENT, "revision: 9",
                () -> stub.compact(CompactRequest.newBuilder().setMap("config").setRevision(9).build()));
        // uint64 revisions of 2^63 and more are beyond the revision too, not below it.
        refused(Status.Code.INVALID_ARGUMENT,
                "revision: 9223372036854775808 (expected: 0 or at most the revision of map \"config\", 1)",
                () -> stub.compact(CompactRequest.newBuilder().setMap("config").setRevision(Long.MIN_VALUE).build()));
        refused(Status.Code.INVALID_ARGUMENT,
                "revision: 18446744073709551615 (expected: 0 or at most the revision of map \"config\", 1)",
                () -> stub.compact(CompactRequest.newBuilder().setMap("config").setRevision(-1).build()));
        refused(Status.Code.NOT_FOUND, "\"nope\"",
                () -> stub.compact(CompactRequest.newBuilder().setMap("nope").setRevision(-1).build()));
        // The watcher was told of no compaction: the next thing it gets is the next write.
        write(w -> w.putPuts("b", bytes("2")));
        watch.await(e -> e.hasDelta() && e.getDelta().getRevision() == 2);
        assertTrue(watch.events.stream().noneMatch(WatchResponse::hasCompaction), () -> "saw " + watch.kinds());
        watch.cancel();
    }

    @Test
    void writesAreNormalised() {
        // A key both put and deleted is deleted; a repeated delete counts once; deleting an absent key is a no-op.
        long r = write(w -> w.putPuts("x", bytes("1")).putPuts("y", bytes("2")).addDeletes("x").addDeletes("x")
                .addDeletes("absent")).getRevision();
        assertEquals(2, r);
        assertTrue(!stub.get(GetRequest.newBuilder().setMap("config").setKey("x").build()).getFound());
        var y = stub.get(GetRequest.newBuilder().setMap("config").setKey("y").build());
        assertEquals(2, y.getModRevision());
        assertEquals(2, y.getRevision());
        // An empty write is refused; a write of only deletes of absent keys is still one revision.
        refused(Status.Code.INVALID_ARGUMENT, "a write needs at least one put or delete (map \"config\"",
                () -> write(w -> { }));
        refused(Status.Code.INVALID_ARGUMENT, "a write needs at least one put or delete",
                () -> write(w -> w.putExpectedModRevisions("y", 2)));
        assertEquals(3, write(w -> w.addDeletes("absent")).getRevision());
        var yLater = stub.get(GetRequest.newBuilder().setMap("config").setKey("y").build());
        assertEquals(2, yLater.getModRevision());
        assertEquals(3, yLater.getRevision());
        // The order of an existing map does not change.
        write(w -> w.setOrder(IterationOrder.ITERATION_ORDER_INSERTION).putPuts("z", bytes("3")));
        assertEquals(IterationOrder.ITERATION_ORDER_HASH, stub.listMaps(ListMapsRequest.getDefaultInstance()).getMaps(0).getOrder());
    }

    private WriteResponse write(java.util.function.Consumer<WriteRequest.Builder> fill) {
        WriteRequest.Builder b = WriteRequest.newBuilder().setMap("config");
        fill.accept(b);
        return stub.write(b.build());
    }

    private Object rawWrite(byte[] request) {
        return ClientCalls.blockingUnaryCall(channel, RawBytes.requests(MapcastGrpc.getWriteMethod()), CallOptions.DEFAULT,
                request);
    }

    /** Asserts the status and description, and that nothing changed. */
    private void refused(Status.Code code, String inDescription, Executable call) {
        ListMapsResponse before = stub.listMaps(ListMapsRequest.getDefaultInstance());
        var content = stub.get(GetRequest.newBuilder().setMap("config").setKey("a").build());
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call);
        assertEquals(code, e.getStatus().getCode(), e.getStatus().toString());
        assertTrue(e.getStatus().getDescription() != null && e.getStatus().getDescription().contains(inDescription),
                "description \"" + e.getStatus().getDescription() + "\" names \"" + inDescription + "\"");
        assertEquals(before, stub.listMaps(ListMapsRequest.getDefaultInstance()), "nothing changed");
        assertEquals(content, stub.get(GetRequest.newBuilder().setMap("config").setKey("a").build()));
    }

    private static ByteString bytes(String s) {
        return ByteString.copyFromUtf8(s);
    }

}
