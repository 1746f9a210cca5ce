package dev.mapcast.cli;

import dev.mapcast.client.MapcastException;
import io.grpc.Status;

/**
 * An expected failure of a command: Main prints {@code mapcast: <message>} on stderr, no stack
 * trace, and exits with {@link #exitCode()}.
 */
final class Failure extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final int exitCode;

    Failure(int exitCode, String message) {
        super(message, null, false, false);
        this.exitCode = exitCode;
    }

    int exitCode() {
        return exitCode;
    }

    /** A call to the server that failed, as the exit code and message a user can act on. */
    static Failure of(MapcastException e, String server) {
        Status.Code code = e.code();
        String description = e.description() == null ? code.toString() : e.description();
        if (code == Status.Code.INTERNAL && (description.equals("http2 exception") || causedBy(e, "Http2Exception"))) {
            // Its first bytes were no HTTP/2 frame: an HTTP/1 server, a database, ...
            return new Failure(ExitCodes.UNREACHABLE, "the server at " + server + " is not a mapcast server: it does"
                    + " not speak gRPC (its answer was not HTTP/2)");
        }
        if (code == Status.Code.UNIMPLEMENTED && description.startsWith("Method not found: ")) {
            return new Failure(ExitCodes.UNREACHABLE, "the server at " + server + " is not a mapcast server, or one"
                    + " too old for this command (" + description + ")");
        }
        return switch (code) {
            case NOT_FOUND -> new Failure(ExitCodes.NOT_FOUND, description);
            // A quarantined map is no failed --if-... condition: the server refuses it whatever is asked.
            case FAILED_PRECONDITION -> description.contains(" is damaged and quarantined: ")
                    ? new Failure(ExitCodes.REFUSED, "refused by the server: " + description)
                    : new Failure(ExitCodes.NOT_FOUND, "condition failed: " + description);
            case UNAVAILABLE -> new Failure(ExitCodes.UNREACHABLE,
                    "cannot reach the server at " + server + ": " + withCause(description, e));
            case DEADLINE_EXCEEDED -> new Failure(ExitCodes.UNREACHABLE,
                    "no answer from the server at " + server + " in time (see --timeout): " + description);
            default -> new Failure(ExitCodes.REFUSED, "refused by the server: " + code + ": " + description);
        };
    }

    /** gRPC says "io exception"; the reason (connection refused, unknown host...) is in the cause. */
    private static String withCause(String description, Throwable e) {
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String reason = root == e ? null : root.getMessage();
        return reason == null || description.contains(reason) || reason.endsWith(description) ? description
                : description + " (" + reason + ")";
    }

    private static boolean causedBy(Throwable e, String simpleName) {
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t.getClass().getSimpleName().equals(simpleName)) {
                return true;
            }
        }
        return false;
    }
}
