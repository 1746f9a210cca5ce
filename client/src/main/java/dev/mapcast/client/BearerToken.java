package dev.mapcast.client;

import io.grpc.CallCredentials;
import io.grpc.Metadata;
import java.util.concurrent.Executor;

/**
 * The token a client sends with every call, as the metadata {@code authorization: Bearer <secret>}
 * (see {@link MapcastClient.Builder#token}).
 *
 * <p>Sent whatever the transport's security level ({@link RequestInfo#getSecurityLevel()}): over
 * plaintext anyone on the path can read the secret, and that is the caller's choice to make (a
 * server on loopback, or behind a proxy that terminates TLS). gRPC-Java leaves the check to the
 * credentials (its Google credentials refuse plaintext); these make none.
 */
final class BearerToken extends CallCredentials {

    static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

    private static final String EXPECTED = "(expected: a token's secret as 'mapcast token create' prints it, printable"
            + " ASCII without spaces)";

    /** {@code "Bearer " + secret}. */
    private final String value;

    private BearerToken(String value) {
        this.value = value;
    }

    /**
     * The credentials for {@code secret}; an {@link IllegalArgumentException} that says what is wrong
     * with it, never showing it (it may be a real secret with a typo, in a log).
     */
    static BearerToken of(String secret) {
        if (secret == null || secret.isBlank()) {
            throw new IllegalArgumentException("token: " + (secret == null ? "null " : "blank ") + EXPECTED);
        }
        for (int i = 0; i < secret.length(); i++) {
            char c = secret.charAt(i);
            // What an ASCII header value may hold; a space or a newline would change the header's meaning.
            if (c <= ' ' || c >= 0x7f) {
                throw new IllegalArgumentException(String.format("token: character U+%04X at index %d of %d %s",
                        (int) c, i, secret.length(), EXPECTED));
            }
        }
        return new BearerToken("Bearer " + secret);
    }

    @Override
    public void applyRequestMetadata(RequestInfo requestInfo, Executor appExecutor, MetadataApplier applier) {
        Metadata headers = new Metadata();  // the applier takes it: a fresh one per call
        headers.put(AUTHORIZATION, value);
        applier.apply(headers);
    }

    @Override
    public String toString() {
        return "BearerToken[secret hidden]";
    }
}
