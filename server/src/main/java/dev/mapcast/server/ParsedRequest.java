package dev.mapcast.server;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageLite;
import com.google.protobuf.Parser;
import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/**
 * A request as received: the parsed message, or why it could not be parsed. gRPC turns an
 * exception thrown while parsing into UNKNOWN; parsing into this instead lets the service answer
 * a malformed request (bad UTF-8 in a key, a truncated field) with INVALID_ARGUMENT.
 */
record ParsedRequest<T extends MessageLite>(T message, String error) {

    /** The message, or INVALID_ARGUMENT naming the request type and the parse error. */
    T orInvalid(String type) {
        if (error != null) {
            throw Status.INVALID_ARGUMENT.withDescription("malformed " + type + ": " + error).asRuntimeException();
        }
        return message;
    }

    static <T extends MessageLite> MethodDescriptor.Marshaller<ParsedRequest<T>> marshaller(Parser<T> parser) {
        return new MethodDescriptor.Marshaller<>() {
            @Override
            public InputStream stream(ParsedRequest<T> value) {
                return value.message().toByteString().newInput();
            }

            @Override
            public ParsedRequest<T> parse(InputStream stream) {
                try {
                    // A message of known length is read into an array of its size: parsing the
                    // stream itself would allocate a 4 KiB buffer per request.
                    T message = stream instanceof KnownLength
                            ? parser.parseFrom(stream.readNBytes(stream.available()))
                            : parser.parseFrom(stream);
                    return new ParsedRequest<>(message, null);
                } catch (InvalidProtocolBufferException e) {
                    return new ParsedRequest<>(null, e.getMessage());
                } catch (IOException e) {
                    throw new UncheckedIOException("reading a request", e);
                }
            }
        };
    }
}
