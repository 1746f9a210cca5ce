package dev.mapcast.codec;

import io.grpc.Detachable;
import io.grpc.Drainable;
import io.grpc.HasByteBuffer;
import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.Objects;

/**
 * gRPC marshalling for messages the codec encodes and decodes itself, so that gRPC never builds a
 * protobuf object for them: the server sends {@code WatchResponse}s and {@code SnapshotChunk}s as the
 * bytes {@link SnapshotEncoder} and {@link DeltaEncoder} wrote, and a client applies received
 * bytes with {@link MessageDecoder} where gRPC received them.
 *
 * <p>Sending: the stream is {@link Drainable} and {@link KnownLength}, so gRPC learns the length
 * up front and takes the bytes in one bulk write. Receiving: when gRPC offers its received buffers
 * ({@link Detachable} and {@link HasByteBuffer}, as grpc-netty does) and the message lies in one
 * of them, the message is that buffer, not a copy; otherwise it is copied once into an array.
 * Close a {@link Received} message once applied, to give its buffers back to gRPC.
 */
public final class EncodedMessages {

    private EncodedMessages() {
    }

    /** The marshaller to use in the method descriptors of the codec's messages. */
    public static MethodDescriptor.Marshaller<Encoded> marshaller() {
        return Marshaller.INSTANCE;
    }

    /** A message to send: encoded bytes, heap buffer from position to limit (not copied; do not change it). */
    public static final class Encoded {
        private final ByteBuffer bytes;
        private final Received received;

        private Encoded(ByteBuffer bytes, Received received) {
            this.bytes = bytes;
            this.received = received;
        }

        public static Encoded of(ByteBuffer bytes) {
            Objects.requireNonNull(bytes, "bytes");
            if (!bytes.hasArray()) {
                throw new IllegalArgumentException("bytes: a direct or read-only buffer (expected: a heap buffer with an array)");
            }
            return new Encoded(bytes.slice(), null);
        }

        /** The message's bytes (a read-only view). */
        public ByteBuffer bytes() {
            return bytes.asReadOnlyBuffer();
        }

        /** The message's length in bytes. */
        public int size() {
            return bytes.remaining();
        }

        /** For a received message: its buffers; release them with {@link Received#close()}. */
        public Received received() {
            if (received == null) {
                throw new IllegalStateException("not a received message");
            }
            return received;
        }
    }

    /** A received message's bytes, and the gRPC buffers behind them until closed. */
    public static final class Received implements AutoCloseable {
        private final ByteBuffer bytes;
        private final InputStream owner;
        private final boolean zeroCopy;

        Received(ByteBuffer bytes, InputStream owner, boolean zeroCopy) {
            this.bytes = bytes;
            this.owner = owner;
            this.zeroCopy = zeroCopy;
        }

        /** The message, from position to limit, read-only: hand it to {@link MessageDecoder}. */
        public ByteBuffer bytes() {
            return bytes.asReadOnlyBuffer();
        }

        /** Whether the bytes are gRPC's own received buffer rather than a copy. */
        public boolean isZeroCopy() {
            return zeroCopy;
        }

        @Override
        public void close() {
            if (owner != null) {
                try {
                    owner.close();
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }
        }
    }

    private enum Marshaller implements MethodDescriptor.Marshaller<Encoded> {
        INSTANCE;

        @Override
        public InputStream stream(Encoded value) {
            return new OutgoingStream(value.bytes);
        }

        @Override
        public Encoded parse(InputStream stream) {
            try {
                InputStream owned = stream instanceof Detachable ? ((Detachable) stream).detach() : stream;
                int length = owned.available();
                if (owned instanceof HasByteBuffer && ((HasByteBuffer) owned).byteBufferSupported()) {
                    ByteBuffer first = ((HasByteBuffer) owned).getByteBuffer();
                    if (first != null && first.remaining() == length) {
                        return new Encoded(first, new Received(first, owned, true));
                    }
                }
                byte[] bytes = owned.readAllBytes();
                owned.close();
                ByteBuffer copy = ByteBuffer.wrap(bytes);
                return new Encoded(copy, new Received(copy, null, false));
            } catch (IOException e) {
                throw new UncheckedIOException("reading a received message", e);
            }
        }
    }

    /** The bytes of one outgoing message, drained to gRPC in one write. */
    private static final class OutgoingStream extends InputStream implements Drainable, KnownLength {
        private final ByteBuffer bytes;

        OutgoingStream(ByteBuffer bytes) {
            this.bytes = bytes.duplicate();
        }

        @Override
        public int drainTo(OutputStream target) throws IOException {
            int length = bytes.remaining();
            target.write(bytes.array(), bytes.arrayOffset() + bytes.position(), length);
            bytes.position(bytes.limit());
            return length;
        }

        @Override
        public int available() {
            return bytes.remaining();
        }

        @Override
        public int read() {
            return bytes.hasRemaining() ? bytes.get() & 0xFF : -1;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (!bytes.hasRemaining()) {
                return len == 0 ? 0 : -1;
            }
            int n = Math.min(len, bytes.remaining());
            bytes.get(b, off, n);
            return n;
        }
    }
}
