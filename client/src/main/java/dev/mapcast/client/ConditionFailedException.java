package dev.mapcast.client;

import io.grpc.Status;

/** A conditional write whose condition did not hold (FAILED_PRECONDITION): nothing was written. */
public final class ConditionFailedException extends MapcastException {

    private static final long serialVersionUID = 1L;

    ConditionFailedException(Status status, Throwable cause) {
        super(status, cause);
    }
}
