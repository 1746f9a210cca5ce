package dev.mapcast.server.auth;

import io.grpc.Context;

/**
 * Who made a call, as the server authenticated it, and where from: set on the call's
 * {@link Context} by {@link AuthInterceptor} on a server with --auth (absent without).
 *
 * @param user the user name
 * @param via "token" or "certificate"
 * @param tokenId the token's id ("" for a certificate)
 * @param peer the client's address, for the audit log
 * @param method the gRPC method, for the audit log
 */
public record Caller(String user, String via, String tokenId, String peer, String method) {

    static final Context.Key<Caller> KEY = Context.key("mapcast-caller");

    /** The caller of the current call; null on a server without --auth. */
    public static Caller current() {
        return KEY.get();
    }

    /** How the audit log and error messages name it. */
    String describe() {
        return "user \"" + user + "\"";
    }
}
