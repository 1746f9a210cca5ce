package dev.mapcast.client;

import io.grpc.Status;

/**
 * A conditional write whose condition did not hold (FAILED_PRECONDITION): nothing was written. Also
 * what the user and role calls fail with when asked to change the built-in role "root".
 */
public final class ConditionFailedException extends MapcastException {

    private static final long serialVersionUID = 1L;

    ConditionFailedException(Status status, Throwable cause) {
        super(status, cause);
    }
}
