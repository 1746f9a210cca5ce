package dev.mapcast.server;

import io.grpc.MethodDescriptor;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/** Sends requests as given bytes: how the tests send what no generated client would. */
final class RawBytes implements MethodDescriptor.Marshaller<byte[]> {

    /** {@code method} with raw bytes as its request. */
    static <Q, R> MethodDescriptor<byte[], R> requests(MethodDescriptor<Q, R> method) {
        return method.toBuilder(new RawBytes(), method.getResponseMarshaller()).build();
    }

    @Override
    public InputStream stream(byte[] value) {
        return new ByteArrayInputStream(value);
    }

    @Override
    public byte[] parse(InputStream stream) {
        try {
            return stream.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
