package dev.mapcast.codec;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.proto.v1.Delta;
import dev.mapcast.proto.v1.EventBatch;
import dev.mapcast.proto.v1.SnapshotChunk;
import dev.mapcast.proto.v1.WatchResponse;
import io.grpc.Detachable;
import io.grpc.Drainable;
import io.grpc.HasByteBuffer;
import io.grpc.KnownLength;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class EncodedMessagesTest {

    private static final byte[] MESSAGE = SnapshotChunk.newBuilder()
            .putEntries("k", ByteString.copyFromUtf8("v")).setRevision(3).setLast(true).build().toByteArray();

    @Test
    void sendingDrainsTheBytesInOneWriteWithTheLengthKnown() throws Exception {
        ByteBuffer framed = ByteBuffer.allocate(MESSAGE.length + 7);
        framed.position(7);
        framed.put(MESSAGE);
        framed.position(7);
        InputStream stream = EncodedMessages.marshaller().stream(EncodedMessages.Encoded.of(framed));
        assertTrue(stream instanceof Drainable && stream instanceof KnownLength);
        assertEquals(MESSAGE.length, stream.available());
        CountingOutput out = new CountingOutput();
        assertEquals(MESSAGE.length, ((Drainable) stream).drainTo(out));
        assertArrayEquals(MESSAGE, out.toByteArray());
        assertEquals(1, out.writes);
        assertEquals(-1, stream.read());
        InputStream again = EncodedMessages.marshaller().stream(EncodedMessages.Encoded.of(framed));
        assertArrayEquals(MESSAGE, again.readAllBytes());
    }

    @Test
    void aBatchIsWrittenStraightIntoTheSendersBuffersAsProtobufEncodesIt() throws Exception {
        WatchResponse first = WatchResponse.newBuilder().setDelta(Delta.newBuilder().setRevision(1)
                .putPuts("k", ByteString.copyFromUtf8("v"))).build();
        WatchResponse second = WatchResponse.newBuilder().setDelta(Delta.newBuilder().setRevision(2).setPrevRevision(1)
                .putPuts("k", ByteString.copyFrom(new byte[300]))).build();  // a two-byte length prefix
        byte[] expected = WatchResponse.newBuilder().setBatch(EventBatch.newBuilder().addEvents(first)
                .addEvents(second)).build().toByteArray();
        EncodedMessages.Encoded batch = EventBatchEncoder.encode(List.of(
                EncodedMessages.Encoded.of(ByteBuffer.wrap(first.toByteArray())),
                EncodedMessages.Encoded.of(ByteBuffer.wrap(second.toByteArray()))));
        assertEquals(expected.length, batch.size());
        InputStream stream = EncodedMessages.marshaller().stream(batch);
        assertEquals(expected.length, stream.available());
        CountingOutput out = new CountingOutput();
        assertEquals(expected.length, ((Drainable) stream).drainTo(out));
        assertArrayEquals(expected, out.toByteArray());
        assertEquals(-1, stream.read());
        assertArrayEquals(expected, EncodedMessages.marshaller().stream(batch).readAllBytes(), "read as a plain stream");
        assertEquals(ByteBuffer.wrap(expected), batch.bytes());
    }

    @Test
    void aWriterThatWritesOtherThanItsAnnouncedSizeIsCaughtBeforeGrpcTrustsIt() {
        EncodedMessages.Encoded lying = EncodedMessages.Encoded.writtenBy(4, target -> target.write(new byte[3]));
        InputStream stream = EncodedMessages.marshaller().stream(lying);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> ((Drainable) stream).drainTo(new ByteArrayOutputStream()));
        assertTrue(e.getMessage().contains("announced as 4 bytes was written as 3"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> EncodedMessages.Encoded.writtenBy(-1, target -> { }));
    }

    @Test
    void aReceivedBufferHoldingTheWholeMessageIsUsedInPlaceAndGivenBackOnClose() {
        ByteBuffer netty = ByteBuffer.allocateDirect(MESSAGE.length).put(MESSAGE).flip().asReadOnlyBuffer();
        BufferStream received = new BufferStream(netty, MESSAGE.length);
        EncodedMessages.Encoded message = EncodedMessages.marshaller().parse(received);
        try (EncodedMessages.Received bytes = message.received(); OffHeapMap map = OffHeapMap.builder().build()) {
            assertTrue(bytes.isZeroCopy());
            assertTrue(received.detached, "the stream must be detached to keep its buffer");
            MessageDecoder.ChunkFields fields = MessageDecoder.applySnapshotChunk(bytes.bytes(), map);
            assertEquals(3, fields.revision());
            assertArrayEquals("v".getBytes(StandardCharsets.UTF_8), map.get("k".getBytes(StandardCharsets.UTF_8)));
            assertFalse(received.closed);
        }
        assertTrue(received.closed, "closing the message gives the buffers back");
    }

    @Test
    void aMessageSplitOverBuffersOrAPlainStreamIsCopiedOnce() {
        ByteBuffer firstHalf = ByteBuffer.wrap(MESSAGE, 0, MESSAGE.length / 2).slice();
        BufferStream split = new BufferStream(firstHalf, MESSAGE.length);
        EncodedMessages.Received fromSplit = EncodedMessages.marshaller().parse(split).received();
        assertFalse(fromSplit.isZeroCopy());
        assertTrue(split.closed, "a copied stream is given back at once");
        assertEquals(ByteBuffer.wrap(MESSAGE), fromSplit.bytes());

        EncodedMessages.Received plain = EncodedMessages.marshaller().parse(new ByteArrayInputStream(MESSAGE)).received();
        assertFalse(plain.isZeroCopy());
        assertEquals(ByteBuffer.wrap(MESSAGE), plain.bytes());
        assertThrows(IllegalStateException.class, () -> EncodedMessages.Encoded.of(ByteBuffer.allocate(1)).received());
        assertThrows(IllegalArgumentException.class, () -> EncodedMessages.Encoded.of(ByteBuffer.allocateDirect(1)));
    }

    /** Stands in for grpc-netty's received stream: detachable, exposing its first buffer. */
    private static final class BufferStream extends InputStream implements Detachable, HasByteBuffer, KnownLength {
        private final ByteBuffer first;
        private final int length;
        private int read;
        boolean detached;
        boolean closed;

        BufferStream(ByteBuffer first, int length) {
            this.first = first;
            this.length = length;
        }

        @Override
        public InputStream detach() {
            detached = true;
            return this;
        }

        @Override
        public boolean byteBufferSupported() {
            return true;
        }

        @Override
        public ByteBuffer getByteBuffer() {
            return first.duplicate();
        }

        @Override
        public int available() {
            return length - read;
        }

        @Override
        public int read() {
            return read < length ? MESSAGE[read++] & 0xFF : -1;
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    private static final class CountingOutput extends ByteArrayOutputStream {
        int writes;

        @Override
        public synchronized void write(byte[] b, int off, int len) {
            writes++;
            super.write(b, off, len);
        }
    }
}
