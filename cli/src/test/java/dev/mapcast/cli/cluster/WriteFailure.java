package dev.mapcast.cli.cluster;

import dev.mapcast.client.ConditionFailedException;
import dev.mapcast.client.MapcastException;
import dev.mapcast.codec.ProtocolHeaders;
import io.grpc.Status;

/**
 * What a client can tell of a write that threw: whether it certainly did not apply, or may have.
 * The rules of {@link dev.mapcast.client.MapcastClient}'s javadoc on clusters, as a test records
 * them.
 */
enum WriteFailure {
    /** Its condition did not hold (FAILED_PRECONDITION): it saw another state, and wrote nothing. */
    CONDITION_FAILED,
    /** Refused before it was proposed (UNAVAILABLE with the mapcast-not-applied trailer): never applies. */
    NOT_APPLIED,
    /** UNAVAILABLE without that trailer, DEADLINE_EXCEEDED, CANCELLED: it may have applied, or may still. */
    UNKNOWN,
    /** Any other status: a write a healthy cluster should not refuse; the test reports it. */
    UNEXPECTED;

    static WriteFailure of(MapcastException e) {
        if (e instanceof ConditionFailedException) {
            return CONDITION_FAILED;
        }
        return switch (e.code()) {
            case UNAVAILABLE -> ProtocolHeaders.notApplied(Status.trailersFromThrowable(e)) ? NOT_APPLIED : UNKNOWN;
            case DEADLINE_EXCEEDED, CANCELLED -> UNKNOWN;
            default -> UNEXPECTED;
        };
    }
}
