package dev.mapcast.server.security;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Objects;

/**
 * Where a server's TLS material lives, and whom it trusts. The files are PEM: the certificate
 * chain (the server's own first), a PKCS#8 private key ({@code BEGIN PRIVATE KEY}, as {@code
 * openssl genpkey} writes it), the CA certificates that sign client certificates, and, in a
 * cluster, those that sign the members' certificates. They are read again when they change,
 * checked every {@code reloadInterval} (see {@link ReloadingTls}).
 *
 * <p>In a cluster the same certificate and key secure the members' Raft traffic, mutually: each
 * member presents its certificate to the others and accepts only certificates signed by {@code
 * peerCa}, and checks that the member it connects to is named by its certificate (the host of its
 * peer address, as a DNS or IP subject alternative name). A member's certificate must therefore
 * allow both server and client authentication. Keep {@code peerCa} for members only: whoever holds a
 * certificate it signed can speak Raft to the members.
 *
 * @param clientCa null: client certificates are not asked for ({@code clientAuth} is then NONE)
 * @param peerCa null for a single server; required for a cluster member with TLS
 */
public record TlsFiles(Path cert, Path key, Path clientCa, ClientAuth clientAuth, Path peerCa, Duration reloadInterval) {

    /** Whether clients must present a certificate signed by {@link #clientCa}. */
    public enum ClientAuth {
        /** Not asked for. */
        NONE,
        /** Asked for and checked if presented; a client without one still connects. */
        OPTIONAL,
        /** Required: a client without a valid certificate fails the handshake. */
        REQUIRE
    }

    /** How often the files are checked for changes by default. */
    public static final Duration DEFAULT_RELOAD_INTERVAL = Duration.ofSeconds(5);

    public TlsFiles {
        Objects.requireNonNull(cert, "cert");
        Objects.requireNonNull(key, "key");
        Objects.requireNonNull(clientAuth, "clientAuth");
        Objects.requireNonNull(reloadInterval, "reloadInterval");
        if (clientCa == null && clientAuth != ClientAuth.NONE) {
            throw new IllegalArgumentException("client auth " + clientAuth.name().toLowerCase(Locale.ROOT)
                    + " needs the CA that signs client certificates (--tls-client-ca)");
        }
        if (reloadInterval.isNegative() || reloadInterval.isZero()) {
            throw new IllegalArgumentException("TLS reload interval: " + reloadInterval + " (expected: positive)");
        }
    }

    /**
     * A server certificate and key; client certificates required when {@code clientCa} is given
     * (as etcd's {@code --client-cert-auth}), not asked for otherwise.
     */
    public static TlsFiles of(Path cert, Path key, Path clientCa) {
        return new TlsFiles(cert, key, clientCa, clientCa == null ? ClientAuth.NONE : ClientAuth.REQUIRE, null,
                DEFAULT_RELOAD_INTERVAL);
    }

    public TlsFiles withClientAuth(ClientAuth auth) {
        return new TlsFiles(cert, key, clientCa, auth, peerCa, reloadInterval);
    }

    public TlsFiles withPeerCa(Path ca) {
        return new TlsFiles(cert, key, clientCa, clientAuth, ca, reloadInterval);
    }

    public TlsFiles withReloadInterval(Duration interval) {
        return new TlsFiles(cert, key, clientCa, clientAuth, peerCa, interval);
    }
}
