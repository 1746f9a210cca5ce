package dev.mapcast.server.security;

import dev.mapcast.codec.PemFiles;
import java.net.Socket;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * The JDK's certificate-path checks against CA certificates that can be replaced while in use. It
 * checks the other side's host name where the TLS engine asks for it: gRPC's client side does
 * (the member dialled must be named by its certificate); a server checking a client certificate
 * does not (a client certificate names a user, not a host).
 */
final class ReloadableTrust extends X509ExtendedTrustManager {

    private volatile X509ExtendedTrustManager delegate;

    ReloadableTrust(X509Certificate[] cas) {
        update(cas);
    }

    void update(X509Certificate[] cas) {
        delegate = PemFiles.trustManager(cas);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
        delegate.checkClientTrusted(chain, authType, socket);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
        delegate.checkServerTrusted(chain, authType, socket);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
        delegate.checkClientTrusted(chain, authType, engine);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
        delegate.checkServerTrusted(chain, authType, engine);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        delegate.checkClientTrusted(chain, authType);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        delegate.checkServerTrusted(chain, authType);
    }

    @Override
    public X509Certificate[] getAcceptedIssuers() {
        return delegate.getAcceptedIssuers();
    }
}
