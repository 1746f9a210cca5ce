package dev.mapcast.client;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;

/**
 * A call the server refused or could not complete: the gRPC status code and the server's
 * description (which names the bad value and the limit or expectation).
 */
public class MapcastException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final transient Status status;

    MapcastException(Status status, Throwable cause) {
        super(status.getCode() + (status.getDescription() == null ? "" : ": " + status.getDescription()), cause);
        this.status = status;
    }

    /** The status code: INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, UNAVAILABLE... */
    public Status.Code code() {
        return status.getCode();
    }

    /** The server's description, or null. */
    public String description() {
        return status.getDescription();
    }

    /** The exception for {@code status}: a {@link ConditionFailedException} for FAILED_PRECONDITION. */
    static MapcastException of(Status status, Throwable cause) {
        return status.getCode() == Status.Code.FAILED_PRECONDITION
                ? new ConditionFailedException(status, cause)
                : new MapcastException(status, cause);
    }

    /**
     * A write that failed with UNAVAILABLE after it may have reached {@code member}: whether it
     * applied is unknown, and the message says how to find out.
     */
    static MapcastException outcomeUnknown(Status status, String member, Throwable cause) {
        String why = status.getDescription() == null ? "" : status.getDescription() + "; ";
        return new MapcastException(status.withDescription(why + "the write's outcome is unknown: it may have reached "
                + member + " and applied, or may still apply. To retry safely, make it conditional (expected_revision"
                + " or expected_mod_revisions: WriteBatch.ifRevision, ifModRevision, ifAbsent) and send it again; if"
                + " that fails with FAILED_PRECONDITION, read the map to see whether the first attempt applied"),
                cause);
    }

    Status status() {
        return status;
    }

    static MapcastException of(Throwable t) {
        return of(Status.fromThrowable(t), t instanceof StatusRuntimeException || t.getCause() == null ? t : t.getCause());
    }
}
