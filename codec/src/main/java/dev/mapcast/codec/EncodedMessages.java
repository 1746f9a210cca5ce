package dev.mapcast.codec;

import io.grpc.Detachable;
import io.grpc.Drainable;
import io.grpc.HasByteBuffer;
import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import java.io.ByteArrayOutputStream;
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

    /**
     * A message to send: encoded bytes, heap buffer from position to limit (not copied; do not
     * change it), or a message written straight to gRPC's buffers when sent ({@link #writtenBy}).
     */
    public static final class Encoded {
        /**
         * The bytes; null for a message written when sent, until {@link #bytes()} asks for them.
         * Volatile: the lazily made buffer may be read by another thread (a watcher's loop).
         */
        private volatile ByteBuffer bytes;
        private final Received received;
        private final int size;
        private final Writer writer;

        private Encoded(ByteBuffer bytes, Received received) {
            this.bytes = bytes;
            this.received = received;
            this.size = bytes.remaining();
            this.writer = null;
        }

        private Encoded(int size, Writer writer) {
            this.received = null;
            this.size = size;
            this.writer = writer;
        }

        public static Encoded of(ByteBuffer bytes) {
            Objects.requireNonNull(bytes, "bytes");
            if (!bytes.hasArray()) {
                throw new IllegalArgumentException("bytes: a direct or read-only buffer (expected: a heap buffer with an array)");
            }
            return new Encoded(bytes.slice(), null);
        }

        /**
         * A message of exactly {@code size} bytes that {@code writer} writes when it is sent, straight
         * into gRPC's buffers: a message assembled from parts (a batch of events encoded once for
         * every watcher) costs no buffer and no copy of its own. The writer may run once per send,
         * and must write the same {@code size} bytes each time.
         */
        public static Encoded writtenBy(int size, Writer writer) {
            if (size < 0) {
                throw new IllegalArgumentException("size: " + size + " (expected: >= 0)");
            }
            return new Encoded(size, Objects.requireNonNull(writer, "writer"));
        }

        /** The message's bytes (a read-only view); a written message is written to a buffer first. */
        public ByteBuffer bytes() {
            return heapBytes().asReadOnlyBuffer();
        }

        /** The message's length in bytes. */
        public int size() {
            return size;
        }

        /** For a received message: its buffers; release them with {@link Received#close()}. */
        public Received received() {
            if (received == null) {
                throw new IllegalStateException("not a received message");
            }
            return received;
        }

        private ByteBuffer heapBytes() {
            ByteBuffer b = bytes;
            if (b == null) {
                ByteArrayOutputStream out = new ByteArrayOutputStream(size);
                try {
                    writeTo(out);
                } catch (IOException e) {
                    throw new UncheckedIOException("writing a message to memory", e);
                }
                b = ByteBuffer.wrap(out.toByteArray());
                bytes = b;
            }
            return b;
        }

        /** Writes the message to {@code target}; returns its length. */
        int writeTo(OutputStream target) throws IOException {
            if (writer == null) {
                target.write(bytes.array(), bytes.arrayOffset() + bytes.position(), size);
                return size;
            }
            CountingStream counted = new CountingStream(target);
            writer.writeTo(counted);
            if (counted.count != size) {
                throw new IllegalStateException("a message announced as " + size + " bytes was written as "
                        + counted.count);
            }
            return size;
        }
    }

    /** Writes a message's bytes when it is sent ({@link Encoded#writtenBy}). */
    @FunctionalInterface
    public interface Writer {
        void writeTo(OutputStream out) throws IOException;
    }

    /** Counts what a {@link Writer} writes, to hold it to the size it announced (gRPC trusts it). */
    private static final class CountingStream extends OutputStream {
        private final OutputStream target;
        private long count;

        CountingStream(OutputStream target) {
            this.target = target;
        }

        @Override
        public void write(int b) throws IOException {
            target.write(b);
            count++;
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            target.write(b, off, len);
            count += len;
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
            return new OutgoingStream(value);
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

    /**
     * One outgoing message, drained to gRPC: its bytes in one write, or its writer's writes. Read as
     * a plain stream (gRPC drains it), a written message is written to a buffer first.
     */
    private static final class OutgoingStream extends InputStream implements Drainable, KnownLength {
        private final Encoded message;
        private ByteBuffer unread;
        private boolean drained;

        OutgoingStream(Encoded message) {
            this.message = message;
        }

        @Override
        public int drainTo(OutputStream target) throws IOException {
            if (drained || unread != null) {
                throw new IllegalStateException("message already read");
            }
            drained = true;
            return message.writeTo(target);
        }

        @Override
        public int available() {
            return drained ? 0 : unread == null ? message.size() : unread.remaining();
        }

        @Override
        public int read() {
            ByteBuffer b = unread();
            return b.hasRemaining() ? b.get() & 0xFF : -1;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            ByteBuffer u = unread();
            if (!u.hasRemaining()) {
                return len == 0 ? 0 : -1;
            }
            int n = Math.min(len, u.remaining());
            u.get(b, off, n);
            return n;
        }

        private ByteBuffer unread() {
            if (unread == null) {
                unread = drained ? ByteBuffer.allocate(0) : message.heapBytes().duplicate();
            }
            return unread;
        }
    }
}
