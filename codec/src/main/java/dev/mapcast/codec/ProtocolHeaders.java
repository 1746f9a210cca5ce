package dev.mapcast.codec;

import io.grpc.Metadata;

/** gRPC metadata keys of the mapcast protocol, shared by the server and the clients. */
public final class ProtocolHeaders {

    /**
     * On an UNAVAILABLE status of a write (Write, WriteStream, Compact, Restore, DeleteMap), value
     * {@code "true"}: the server refused the write before proposing or applying it, so it did not
     * and never will apply (say, a cluster member cut off from the majority). A client may send it
     * again, to another member. Without this key an UNAVAILABLE write has an unknown outcome.
     */
    public static final Metadata.Key<String> NOT_APPLIED =
            Metadata.Key.of("mapcast-not-applied", Metadata.ASCII_STRING_MARSHALLER);

    /** The value of {@link #NOT_APPLIED} that says so. */
    public static final String TRUE = "true";

    private ProtocolHeaders() {
    }

    /** Whether {@code trailers} (null: none) say the write was never applied nor proposed. */
    public static boolean notApplied(Metadata trailers) {
        return trailers != null && TRUE.equals(trailers.get(NOT_APPLIED));
    }
}
