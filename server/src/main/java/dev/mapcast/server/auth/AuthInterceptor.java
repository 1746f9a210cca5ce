package dev.mapcast.server.auth;

import dev.mapcast.proto.auth.v1.StoredToken;
import dev.mapcast.proto.v1.MapcastAuthGrpc;
import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.List;
import java.util.Locale;
import javax.naming.InvalidNameException;
import javax.naming.ldap.LdapName;
import javax.naming.ldap.Rdn;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;

/**
 * Authenticates every call of the services it wraps (mapcast's own; health and reflection stay
 * open) before any of the call's messages is read: a bearer token ({@code authorization: Bearer
 * ...}) names its user; else a verified client certificate's subject CN is the user name, which
 * must exist. No credentials, or bad ones: UNAUTHENTICATED, audited. The caller goes on the call's
 * {@link Context} ({@link Caller#current}) for {@link Authorizer}.
 */
public final class AuthInterceptor implements ServerInterceptor {

    static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization",
            Metadata.ASCII_STRING_MARSHALLER);
    private static final String BEARER = "bearer ";

    private final AuthStore store;
    private final Authorizer authorizer;

    public AuthInterceptor(AuthStore store, Authorizer authorizer) {
        this.store = store;
        this.authorizer = authorizer;
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
            ServerCallHandler<Q, R> next) {
        String method = call.getMethodDescriptor().getFullMethodName();
        String peer = peer(call.getAttributes().get(Grpc.TRANSPORT_ATTR_REMOTE_ADDR));
        Caller caller;
        try {
            caller = authenticate(call, headers, method, peer);
        } catch (StatusRuntimeException e) {
            if (method.equals(MapcastAuthGrpc.getWhoAmIMethod().getFullMethodName())) {
                return next.startCall(call, headers);  // open: it says who the server takes you for
            }
            authorizer.record(new Caller("", "", "", peer, method), "", 0, List.of(), "unauthenticated",
                    e.getStatus().getDescription());
            call.close(e.getStatus(), new Metadata());
            return new ServerCall.Listener<>() { };
        }
        return Contexts.interceptCall(Context.current().withValue(Caller.KEY, caller), call, headers, next);
    }

    private Caller authenticate(ServerCall<?, ?> call, Metadata headers, String method, String peer) {
        String authorization = headers.get(AUTHORIZATION);
        if (authorization != null) {
            if (!authorization.regionMatches(true, 0, BEARER, 0, BEARER.length())) {
                throw unauthenticated("authorization header: expected \"Bearer <token>\"");
            }
            StoredToken token = store.current().authenticate(authorization.substring(BEARER.length()).strip(),
                    System.currentTimeMillis());
            return new Caller(token.getToken().getUser(), "token", token.getToken().getId(), peer, method);
        }
        String cn = certificateName(call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION));
        if (cn != null) {
            String why = store.current().whyNotLive("", cn, System.currentTimeMillis());
            if (why != null) {
                throw unauthenticated("client certificate CN \"" + cn + "\" names no user (an admin adds it with"
                        + " 'mapcast user add " + cn + "')");
            }
            return new Caller(cn, "certificate", "", peer, method);
        }
        throw unauthenticated("no credentials: send a bearer token (--token, $MAPCAST_TOKEN) or a client"
                + " certificate");
    }

    /** The CN of the verified client certificate's subject; null without one. */
    private static String certificateName(SSLSession session) {
        if (session == null) {
            return null;
        }
        Certificate[] chain;
        try {
            chain = session.getPeerCertificates();
        } catch (SSLPeerUnverifiedException none) {
            return null;
        }
        if (chain.length == 0 || !(chain[0] instanceof X509Certificate cert)) {
            return null;
        }
        try {
            List<Rdn> rdns = new LdapName(cert.getSubjectX500Principal().getName()).getRdns();
            for (int i = rdns.size() - 1; i >= 0; i--) {  // the most specific CN
                if (rdns.get(i).getType().toUpperCase(Locale.ROOT).equals("CN")) {
                    return rdns.get(i).getValue().toString();
                }
            }
        } catch (InvalidNameException e) {
            return null;
        }
        return null;
    }

    private static String peer(SocketAddress address) {
        if (address instanceof InetSocketAddress inet) {
            String host = inet.getAddress() == null ? inet.getHostString() : inet.getAddress().getHostAddress();
            return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + inet.getPort();
        }
        return String.valueOf(address);
    }

    private static StatusRuntimeException unauthenticated(String why) {
        return Status.UNAUTHENTICATED.withDescription(why).asRuntimeException();
    }
}
