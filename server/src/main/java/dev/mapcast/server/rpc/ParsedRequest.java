package dev.mapcast.server.rpc;

import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.Parser;
import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.function.Function;

/**
 * A request as received: the parsed message, or why it could not be parsed. gRPC turns an
 * exception thrown while parsing into UNKNOWN; parsing into this instead lets the service answer
 * a malformed request (bad UTF-8 in a key, a truncated field) with INVALID_ARGUMENT.
 */
record ParsedRequest<T>(T message, String error) {

    /** The message, or INVALID_ARGUMENT naming the request type and the parse error. */
    T orInvalid(String type) {
        if (error != null) {
            throw Status.INVALID_ARGUMENT.withDescription("malformed " + type + ": " + error).asRuntimeException();
        }
        return message;
    }

    /** Reads a request from its bytes; an InvalidProtocolBufferException means it is malformed. */
    interface Decoder<T> {
        T decode(byte[] bytes) throws IOException;
    }

    /** Parses messages of {@code type}'s type; a malformed one is described by {@link MalformedMessage}. */
    @SuppressWarnings("unchecked")
    static <T extends Message> MethodDescriptor.Marshaller<ParsedRequest<T>> marshaller(T type) {
        Parser<T> parser = (Parser<T>) type.getParserForType();
        return marshaller(parser::parseFrom, value -> value.toByteString().newInput(), type.getDescriptorForType());
    }

    /**
     * Parses with {@code decoder}; {@code encoder} is for clients (tests). A message that does not
     * parse is described as a {@code type} (field, problem, byte offset).
     */
    static <T> MethodDescriptor.Marshaller<ParsedRequest<T>> marshaller(Decoder<T> decoder,
            Function<T, InputStream> encoder, Descriptor type) {
        return new MethodDescriptor.Marshaller<>() {
            @Override
            public InputStream stream(ParsedRequest<T> value) {
                return encoder.apply(value.message());
            }

            @Override
            public ParsedRequest<T> parse(InputStream stream) {
                byte[] bytes;
                try {
                    // A message of known length is read into an array of its size: reading the
                    // stream itself would allocate a 4 KiB buffer per request.
                    bytes = stream instanceof KnownLength ? stream.readNBytes(stream.available())
                            : stream.readAllBytes();
                } catch (IOException e) {
                    throw new UncheckedIOException("reading a request", e);
                }
                try {
                    return new ParsedRequest<>(decoder.decode(bytes), null);
                } catch (InvalidProtocolBufferException e) {
                    return new ParsedRequest<>(null, describe(type, bytes));
                } catch (IOException e) {
                    throw new UncheckedIOException("reading a request", e);
                }
            }
        };
    }

    /** What is wrong with {@code bytes} as a {@code type}, in the request's terms. */
    static String describe(Descriptor type, byte[] bytes) {
        String problem = MalformedMessage.describe(type, bytes);
        return problem != null ? problem : "the " + bytes.length + " bytes are not a valid " + type.getName();
    }
}
