package dev.mapcast.codec;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.codec.MessageDecoder.WatchEvent;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.proto.v1.Delta;
import dev.mapcast.proto.v1.EventBatch;
import dev.mapcast.proto.v1.Progress;
import dev.mapcast.proto.v1.WatchResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class WatchStreamReaderTest {

    private static final Delta FIRST = Delta.newBuilder().setRevision(1).setPrevRevision(0).setDigest(11)
            .putPuts("a", bytes("1")).putPuts("b", bytes("2")).build();
    private static final Delta SECOND = Delta.newBuilder().setRevision(2).setPrevRevision(1).setDigest(22)
            .putPuts("a", bytes("3")).addDeletes("b").build();

    @Test
    void aBatchOfDeltasIsReadAndAppliedWhereItLiesWithOneReaderForEveryMessage() {
        byte[] message = WatchResponse.newBuilder().setBatch(EventBatch.newBuilder()
                .addEvents(WatchResponse.newBuilder().setDelta(FIRST))
                .addEvents(WatchResponse.newBuilder().setProgress(Progress.newBuilder().setRevision(1)))
                .addEvents(WatchResponse.newBuilder().setDelta(SECOND))).build().toByteArray();
        // In the middle of a read-only direct buffer, as gRPC hands it over, with bytes either side.
        ByteBuffer buffer = ByteBuffer.allocateDirect(message.length + 10).put(new byte[7]).put(message)
                .put(new byte[3]).flip().asReadOnlyBuffer();
        int from = 7;
        int to = 7 + message.length;
        WatchStreamReader reader = new WatchStreamReader();
        try (OffHeapMap map = OffHeapMap.builder().build()) {
            assertEquals(WatchEvent.BATCH, reader.event(buffer, from, to));
            assertEquals(3, reader.startBatch(buffer, reader.bodyFrom(), reader.bodyTo()));
            long revision = 0;
            int deltas = 0;
            while (reader.nextBatched()) {
                int field = reader.event(buffer, reader.batchedFrom(), reader.batchedTo());
                if (field != WatchEvent.DELTA) {
                    assertEquals(WatchEvent.PROGRESS, field);
                    continue;
                }
                assertTrue(reader.applyDelta(buffer, reader.bodyFrom(), reader.bodyTo(), map, revision));
                assertEquals(revision, reader.prevRevision());
                revision = reader.revision();
                deltas++;
                if (revision == 1) {
                    assertEquals(11, reader.digest());
                    assertEquals(2, reader.puts());
                    assertEquals(0, reader.deletes());
                } else {
                    assertEquals(22, reader.digest());
                    assertEquals(1, reader.puts());
                    assertEquals(1, reader.deletes());
                }
            }
            assertEquals(2, deltas);
            assertEquals(2, revision);
            assertEquals(1, map.size());
            assertArrayEquals(utf8("3"), map.get(utf8("a")));
            assertNull(map.get(utf8("b")));
            assertEquals(0, buffer.position());
            assertEquals(message.length + 10, buffer.limit());
        }
    }

    @Test
    void aDeltaThatDoesNotFollowTheRevisionAppliesNothing() {
        ByteBuffer delta = ByteBuffer.wrap(SECOND.toByteArray());
        WatchStreamReader reader = new WatchStreamReader();
        try (OffHeapMap map = OffHeapMap.builder().build()) {
            map.put(utf8("b"), utf8("kept"));
            assertFalse(reader.applyDelta(delta, 0, delta.limit(), map, 5));
            assertEquals(1, reader.prevRevision());
            assertEquals(2, reader.revision());
            assertArrayEquals(utf8("kept"), map.get(utf8("b")));
            assertNull(map.get(utf8("a")));
            assertTrue(reader.applyDelta(delta, 0, delta.limit(), map, -1), "a negative revision applies any delta");
            assertNull(map.get(utf8("b")));
        }
    }

    @Test
    void malformedMessagesAreRefusedWholeWithOffsetsCountedFromTheirFirstByte() {
        byte[] good = WatchResponse.newBuilder().setDelta(FIRST).build().toByteArray();
        // A batch whose second event is cut short: refused before its first event is handed out.
        byte[] batch = WatchResponse.newBuilder().setBatch(EventBatch.newBuilder()
                .addEvents(WatchResponse.newBuilder().setDelta(FIRST))
                .addEvents(WatchResponse.newBuilder().setDelta(SECOND))).build().toByteArray();
        ByteBuffer cut = ByteBuffer.allocate(40 + batch.length).position(40).put(batch, 0, batch.length - 3).flip();
        WatchStreamReader reader = new WatchStreamReader();
        MalformedMessageException e = assertThrows(MalformedMessageException.class,
                () -> reader.event(cut, 40, cut.limit()));
        assertEquals("WatchResponse", e.messageType());
        assertEquals(1, e.offset(), e.getMessage());  // the batch's length prefix runs past the end

        ByteBuffer whole = ByteBuffer.wrap(batch);
        assertEquals(WatchEvent.BATCH, reader.event(whole, 0, batch.length));
        int bodyFrom = reader.bodyFrom();
        // Within the batch: its content cut short by three bytes.
        e = assertThrows(MalformedMessageException.class, () -> reader.startBatch(whole, bodyFrom, batch.length - 3));
        assertEquals("EventBatch", e.messageType());

        // A delta cut inside its digest, placed at offset 9 of its buffer: the offset counts from the delta.
        byte[] delta = FIRST.toByteArray();
        int digestAt = indexOf(delta, (byte) 0x29);
        ByteBuffer inside = ByteBuffer.allocate(9 + delta.length).position(9).put(delta).flip();
        try (OffHeapMap map = OffHeapMap.builder().build()) {
            e = assertThrows(MalformedMessageException.class,
                    () -> reader.applyDelta(inside, 9, 9 + digestAt + 4, map, 0));
            assertEquals("Delta", e.messageType());
            assertEquals(digestAt + 1, e.offset(), e.getMessage());
            assertEquals(0, map.size(), "a refused delta changes nothing");
        }
        assertEquals(WatchEvent.DELTA, reader.event(ByteBuffer.wrap(good), 0, good.length), "the reader goes on");
    }

    @Test
    void aRangeOutsideTheBufferIsRefusedNamingIt() {
        WatchStreamReader reader = new WatchStreamReader();
        ByteBuffer buffer = ByteBuffer.allocate(16).limit(8);
        IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> reader.event(buffer, 4, 12));
        assertTrue(e.getMessage().contains("[4, 12)") && e.getMessage().contains("8"), e.getMessage());
        assertThrows(IndexOutOfBoundsException.class, () -> reader.startBatch(buffer, -1, 2));
        assertThrows(NullPointerException.class, () -> reader.event(null, 0, 0));
    }

    private static int indexOf(byte[] bytes, byte b) {
        for (int i = 0; i < bytes.length; i++) {
            if (bytes[i] == b) {
                return i;
            }
        }
        throw new AssertionError(b + " not in " + Arrays.toString(bytes));
    }

    private static ByteString bytes(String s) {
        return ByteString.copyFromUtf8(s);
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
