package dev.mapcast.client;

import dev.mapcast.codec.PemFiles;
import io.grpc.ChannelCredentials;
import io.grpc.TlsChannelCredentials;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;

/**
 * The credentials of a TLS client, from PEM files read once, when the client is built (a problem
 * is an {@link IllegalArgumentException} naming the file). The server's certificate is checked
 * against the CA certificates given (or the JVM's trusted CAs) and must name the host dialled.
 */
final class ClientTls {

    private ClientTls() {
    }

    /**
     * @param ca CA certificates that sign the server's certificate; null: the JVM's trusted CAs
     * @param cert this client's certificate chain, or null (then {@code key} is null too)
     */
    static ChannelCredentials credentials(Path ca, Path cert, Path key) {
        TlsChannelCredentials.Builder b = TlsChannelCredentials.newBuilder();
        if (ca != null) {
            b.trustManager(PemFiles.trustManager(PemFiles.certificates(ca, "TLS CA")));
        }
        if (cert != null) {
            X509Certificate[] chain = PemFiles.certificates(cert, "TLS client certificate");
            PrivateKey privateKey = PemFiles.privateKey(key, "TLS client key");
            PemFiles.checkPair(chain[0], privateKey, cert, key);
            b.keyManager(PemFiles.keyManagers(chain, privateKey));
        }
        return b.build();
    }
}
