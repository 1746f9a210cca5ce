package dev.mapcast.client;

import dev.mapcast.codec.PemFiles;
import io.grpc.ChannelCredentials;
import io.grpc.TlsChannelCredentials;
import java.io.IOException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.TrustManagerFactory;

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
        try {
            if (ca != null) {
                KeyStore trusted = emptyStore();
                X509Certificate[] cas = PemFiles.certificates(ca, "TLS CA");
                for (int i = 0; i < cas.length; i++) {
                    trusted.setCertificateEntry("ca-" + i, cas[i]);
                }
                TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
                tmf.init(trusted);
                b.trustManager(tmf.getTrustManagers());
            }
            if (cert != null) {
                X509Certificate[] chain = PemFiles.certificates(cert, "TLS client certificate");
                PrivateKey privateKey = PemFiles.privateKey(key, "TLS client key");
                PemFiles.checkPair(chain[0], privateKey, cert, key);
                KeyStore identity = emptyStore();
                char[] none = new char[0];
                identity.setKeyEntry("client", privateKey, none, chain);
                KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
                kmf.init(identity, none);
                b.keyManager(kmf.getKeyManagers());
            }
        } catch (GeneralSecurityException | IOException e) {
            throw new IllegalArgumentException("cannot use the TLS files: " + e.getMessage(), e);
        }
        return b.build();
    }

    private static KeyStore emptyStore() throws GeneralSecurityException, IOException {
        KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
        store.load(null, null);
        return store;
    }
}
