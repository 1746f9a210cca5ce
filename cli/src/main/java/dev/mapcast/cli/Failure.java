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

    /**
     * A call to the server that failed, as the exit code and message a user can act on; {@code tls}:
     * whether the client connected with TLS; {@code tokenSource}: where the token it sent came from
     * ({@code --token}, {@code $MAPCAST_TOKEN}...), null if it sent none.
     */
    static Failure of(MapcastException e, String server, boolean tls, String tokenSource) {
        Status.Code code = e.code();
        if (code == Status.Code.UNAVAILABLE) {
            String why = tls ? tlsFailure(e) : plaintextToTls(e);
            if (why != null) {
                return new Failure(ExitCodes.UNREACHABLE, "cannot reach the server at " + server + ": " + why);
            }
        }
        String description = e.description() == null ? code.toString() : e.description();
        int newline = description.indexOf('\n');
        if (newline >= 0) {  // gRPC appends its Netty pipeline on a line of its own: not for users
            description = description.substring(0, newline);
        }
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
            // The server's reason names the token, user, right and map; say where the token came from
            // (a stale $MAPCAST_TOKEN is easy to forget), or how to send one.
            case UNAUTHENTICATED -> new Failure(ExitCodes.DENIED, description + (tokenSource != null
                    ? " (the token came from " + tokenSource + ")"
                    : description.contains("--token") ? "" : " (pass --token-file FILE, $MAPCAST_TOKEN or --token)"));
            case PERMISSION_DENIED -> new Failure(ExitCodes.DENIED, description);
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

    /** Why a TLS connection failed, in the user's terms, or null if TLS is not why. */
    private static String tlsFailure(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            String m = t.getMessage() == null ? "" : t.getMessage();
            String type = t.getClass().getSimpleName();
            if (type.equals("CertificateExpiredException")) {
                return "the server's TLS certificate has expired (" + m + ")";
            }
            if (type.equals("CertificateNotYetValidException")) {
                return "the server's TLS certificate is not valid yet (" + m + ")";
            }
            if (m.contains("unable to find valid certification path")) {
                return "the server's TLS certificate is not signed by a CA this client trusts (--tls-ca, else the"
                        + " JVM's trusted CAs)";
            }
            if (m.contains("No subject alternative") || m.contains("No name matching")) {
                return "the server's TLS certificate does not name the address dialled (" + m + ")";
            }
            if (m.contains("bad_certificate") || m.contains("certificate_required") || m.contains("unknown_ca")) {
                return "the server refused this client's TLS certificate, or its lack of one: it requires one signed"
                        + " by its --tls-client-ca (see --tls-cert and --tls-key)";
            }
            if (m.contains("not an SSL/TLS record")) {
                return "the server does not speak TLS (connect without --tls and --tls-ca)";
            }
            if (m.contains("Connection closed while performing TLS negotiation")) {
                return "the TLS handshake failed: the server closed the connection (is its certificate valid, and"
                        + " signed by a CA in --tls-ca?)";
            }
        }
        return null;
    }

    /** A plaintext client whose connection the server dropped at once: likely a TLS-only server. */
    private static String plaintextToTls(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            String m = t.getMessage() == null ? "" : t.getMessage();
            if (m.contains("Connection reset by peer") || m.contains("Network closed for unknown reason")) {
                return "the connection was closed at once (" + m + "); a server with TLS closes plaintext"
                        + " connections so: use --tls-ca FILE (or --tls)";
            }
        }
        return null;
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
