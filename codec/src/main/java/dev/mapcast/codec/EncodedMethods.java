package dev.mapcast.codec;

import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.SnapshotRequest;
import dev.mapcast.proto.v1.WatchRequest;
import io.grpc.MethodDescriptor;

/**
 * The contract's entry-carrying streaming methods with {@link EncodedMessages} responses: the same
 * names and request types as the generated {@code MapcastGrpc} descriptors, but the responses are
 * the codec's bytes, never protobuf objects. The server binds these and the client calls them, so
 * both sides take the zero-copy path; any other client sees ordinary protobuf messages.
 */
public final class EncodedMethods {

    private static final MethodDescriptor<WatchRequest, Encoded> WATCH = MapcastGrpc.getWatchMethod()
            .toBuilder(MapcastGrpc.getWatchMethod().getRequestMarshaller(), EncodedMessages.marshaller())
            .build();
    private static final MethodDescriptor<SnapshotRequest, Encoded> SNAPSHOT = MapcastGrpc.getSnapshotMethod()
            .toBuilder(MapcastGrpc.getSnapshotMethod().getRequestMarshaller(), EncodedMessages.marshaller())
            .build();

    private EncodedMethods() {
    }

    /** {@code Watch}: each response is one encoded {@code WatchResponse}. */
    public static MethodDescriptor<WatchRequest, Encoded> watch() {
        return WATCH;
    }

    /** {@code Snapshot}: each response is one encoded {@code SnapshotChunk}. */
    public static MethodDescriptor<SnapshotRequest, Encoded> snapshot() {
        return SNAPSHOT;
    }
}
