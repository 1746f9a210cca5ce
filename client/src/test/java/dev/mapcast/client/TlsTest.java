package dev.mapcast.client;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.codec.Codec;
import dev.mapcast.server.MapcastServer;
import dev.mapcast.server.security.TlsFiles;
import dev.mapcast.server.security.TlsFiles.ClientAuth;
import dev.mapcast.testing.TestPki;
import dev.mapcast.testing.TestPki.Ca;
import dev.mapcast.testing.TestPki.Issued;
import io.grpc.Status;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * TLS between the SDK and a server, over real Netty on loopback, with certificates made in the
 * test: what connects, what is refused, and a certificate replaced while clients stay connected.
 */
class TlsTest {

    private static final Duration WAIT = Duration.ofSeconds(30);

    @TempDir
    Path dir;

    private TestPki pki;
    private Ca ca;
    private Ca otherCa;
    private Issued serverCert;
    private MapcastServer server;
    private final List<AutoCloseable> toClose = new ArrayList<>();

    @BeforeEach
    void certificates() {
        pki = TestPki.in(dir.resolve("pki"));
        ca = pki.ca("ca");
        otherCa = pki.ca("other-ca");
        serverCert = pki.server(ca, "server");
    }

    @AfterEach
    void stop() throws Exception {
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
        if (server != null) {
            server.close();
        }
    }

    @Test
    void aTlsServerServesTlsClientsOnlyAndRefusesPlaintext() {
        start(TlsFiles.of(serverCert.cert(), serverCert.key(), null));

        MapcastClient client = client(MapcastClient.builder().tls(ca.cert()));
        long revision = client.put("config", "region", "eu-west-1");
        assertEquals("eu-west-1", new String(client.get("config", "region").value(), StandardCharsets.UTF_8));
        assertTrue(revision > 0);

        MapcastException plaintext = assertThrows(MapcastException.class,
                () -> client(MapcastClient.builder()).put("config", "region", "us-east-1"));
        assertEquals(Status.Code.UNAVAILABLE, plaintext.code(), plaintext.getMessage());
        assertEquals("eu-west-1", new String(client.get("config", "region").value(), StandardCharsets.UTF_8),
                "a refused plaintext write changed nothing");
    }

    @Test
    void aClientRefusesAServerCertificateItsCaDidNotSignOrThatExpired() {
        start(TlsFiles.of(serverCert.cert(), serverCert.key(), null));
        MapcastException wrongCa = assertThrows(MapcastException.class,
                () -> client(MapcastClient.builder().tls(otherCa.cert())).put("config", "k", "v"));
        assertEquals(Status.Code.UNAVAILABLE, wrongCa.code(), wrongCa.getMessage());
        server.close();

        Issued expired = pki.expiredServer(ca, "expired");
        start(TlsFiles.of(expired.cert(), expired.key(), null));
        MapcastException refused = assertThrows(MapcastException.class,
                () -> client(MapcastClient.builder().tls(ca.cert())).put("config", "k", "v"));
        assertEquals(Status.Code.UNAVAILABLE, refused.code(), refused.getMessage());
    }

    @Test
    void aServerCertificateThatDoesNotNameTheHostDialledIsRefused() {
        Issued elsewhere = pki.serverNamed(ca, "elsewhere", "config.example.com");
        start(TlsFiles.of(elsewhere.cert(), elsewhere.key(), null));
        MapcastException refused = assertThrows(MapcastException.class,
                () -> client(MapcastClient.builder().tls(ca.cert())).put("config", "k", "v"));
        assertEquals(Status.Code.UNAVAILABLE, refused.code(), refused.getMessage());
    }

    @Test
    void requiredClientCertificatesMustBeSignedByTheClientCa() {
        start(TlsFiles.of(serverCert.cert(), serverCert.key(), ca.cert()));
        Issued alice = pki.client(ca, "alice");
        Issued mallory = pki.client(otherCa, "mallory");

        assertThrows(MapcastException.class, () -> client(MapcastClient.builder().tls(ca.cert())).put("m", "k", "none"),
                "no client certificate");
        assertThrows(MapcastException.class, () -> client(MapcastClient.builder().tls(ca.cert(), mallory.cert(),
                mallory.key())).put("m", "k", "mallory"), "a client certificate of another CA");
        MapcastClient good = client(MapcastClient.builder().tls(ca.cert(), alice.cert(), alice.key()));
        good.put("m", "k", "alice");
        assertEquals("alice", new String(good.get("m", "k").value(), StandardCharsets.UTF_8),
                "only the signed client's write applied");
    }

    @Test
    void optionalClientCertificatesLetClientsWithoutOneIn() {
        start(TlsFiles.of(serverCert.cert(), serverCert.key(), ca.cert()).withClientAuth(ClientAuth.OPTIONAL));
        client(MapcastClient.builder().tls(ca.cert())).put("m", "k", "anonymous");
        // The server names the CAs it accepts; a client whose certificate no such CA signed sends
        // none, and connects as one without.
        Issued mallory = pki.client(otherCa, "mallory");
        client(MapcastClient.builder().tls(ca.cert(), mallory.cert(), mallory.key())).put("m", "k", "no certificate sent");
        Issued alice = pki.client(ca, "alice");
        MapcastClient signed = client(MapcastClient.builder().tls(ca.cert(), alice.cert(), alice.key()));
        signed.put("m", "k", "alice");
        assertEquals("alice", new String(signed.get("m", "k").value(), StandardCharsets.UTF_8));
    }

    @Test
    void aReplacedCertificateServesNewConnectionsWhileOpenOnesStay() throws Exception {
        Path cert = dir.resolve("live.pem");
        Path key = dir.resolve("live.key");
        startReloading(cert, key);

        MapcastClient old = client(MapcastClient.builder().tls(ca.cert()));
        old.put("config", "k", "before");
        Replica<String, String> replica = old.replica("config", Codec.utf8(), Codec.utf8());
        toClose.add(replica);
        replica.awaitRevision(1, WAIT);

        // A rotation to a certificate of another CA: files moved into place, the key last.
        Ca nextCa = pki.ca("next-ca");
        Issued next = pki.server(nextCa, "server-next");
        install(next, cert, key);

        await().atMost(WAIT).ignoreExceptions().until(() -> {
            try (MapcastClient fresh = MapcastClient.builder().target(target()).tls(nextCa.cert())
                    .deadline(Duration.ofSeconds(2)).build()) {
                fresh.put("config", "k", "after");
                return true;
            }
        });
        // The connection opened before the rotation still carries calls and the replica's stream.
        long revision = old.put("config", "k", "still connected");
        replica.awaitRevision(revision, WAIT);
        assertEquals("still connected", replica.get("k"));
        assertThrows(MapcastException.class, () -> client(MapcastClient.builder().tls(ca.cert())).put("config", "k", "x"),
                "a new connection trusting only the old CA is refused: it gets the new certificate");
    }

    @Test
    void aChangeThatCannotBeUsedKeepsThePreviousCertificate() throws Exception {
        Path cert = dir.resolve("live.pem");
        Path key = dir.resolve("live.key");
        startReloading(cert, key);

        // Half a rotation: a new certificate with the old key. Not taken.
        Issued next = pki.server(ca, "server-next");
        Files.copy(next.cert(), cert, StandardCopyOption.REPLACE_EXISTING);
        Thread.sleep(500);  // several reload intervals: the mismatch must be refused, not merely not seen yet
        try (MapcastClient fresh = MapcastClient.builder().target(target()).tls(ca.cert()).build()) {
            fresh.put("config", "k", "served with the previous certificate");
        }
        // The key arrives: taken.
        Files.copy(next.key(), key, StandardCopyOption.REPLACE_EXISTING);
        await().atMost(WAIT).untilAsserted(() -> assertEquals(next.certificate().getSerialNumber(),
                servedCertificateSerial()));
    }

    @Test
    void unusableFilesAreRefusedAtStartNamingTheFile() throws IOException {
        Path missing = dir.resolve("missing.pem");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> MapcastServer.builder().port(0).tls(TlsFiles.of(missing, serverCert.key(), null)).build());
        assertTrue(e.getMessage().contains(missing.toString()) && e.getMessage().contains("no such file"), e.getMessage());

        Issued other = pki.server(ca, "other");
        e = assertThrows(IllegalArgumentException.class,
                () -> MapcastServer.builder().port(0).tls(TlsFiles.of(serverCert.cert(), other.key(), null)).build());
        assertTrue(e.getMessage().contains("is not the key of certificate " + serverCert.cert()), e.getMessage());

        Path traditional = dir.resolve("rsa.key");
        Files.writeString(traditional, "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n");
        e = assertThrows(IllegalArgumentException.class,
                () -> MapcastServer.builder().port(0).tls(TlsFiles.of(serverCert.cert(), traditional, null)).build());
        assertTrue(e.getMessage().contains("openssl pkcs8 -topk8"), e.getMessage());

        e = assertThrows(IllegalArgumentException.class, () -> MapcastClient.builder().tls(missing).build());
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
    }

    /** The serial number of the certificate a new TLS connection to the server gets. */
    private java.math.BigInteger servedCertificateSerial() throws Exception {
        javax.net.ssl.SSLContext context = javax.net.ssl.SSLContext.getInstance("TLS");
        java.security.cert.X509Certificate[][] seen = new java.security.cert.X509Certificate[1][];
        context.init(null, new javax.net.ssl.TrustManager[] {new javax.net.ssl.X509TrustManager() {
            @Override
            public void checkClientTrusted(java.security.cert.X509Certificate[] chain, String authType) {
            }

            @Override
            public void checkServerTrusted(java.security.cert.X509Certificate[] chain, String authType) {
                seen[0] = chain;
            }

            @Override
            public java.security.cert.X509Certificate[] getAcceptedIssuers() {
                return new java.security.cert.X509Certificate[0];
            }
        }}, null);
        try (javax.net.ssl.SSLSocket socket = (javax.net.ssl.SSLSocket) context.getSocketFactory()
                .createSocket("127.0.0.1", server.port())) {
            socket.startHandshake();
        }
        return seen[0][0].getSerialNumber();
    }

    private static void install(Issued issued, Path cert, Path key) throws IOException {
        Path tmpCert = cert.resolveSibling(cert.getFileName() + ".tmp");
        Path tmpKey = key.resolveSibling(key.getFileName() + ".tmp");
        Files.copy(issued.cert(), tmpCert, StandardCopyOption.REPLACE_EXISTING);
        Files.copy(issued.key(), tmpKey, StandardCopyOption.REPLACE_EXISTING);
        Files.move(tmpCert, cert, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        Files.move(tmpKey, key, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    /** Serves {@link #serverCert} from {@code cert} and {@code key}, checked for changes every 100 ms. */
    private void startReloading(Path cert, Path key) throws IOException {
        install(serverCert, cert, key);
        start(TlsFiles.of(cert, key, null).withReloadInterval(Duration.ofMillis(100)));
    }

    private void start(TlsFiles tls) {
        server = MapcastServer.builder().port(0).tls(tls).build().start();
    }

    private String target() {
        return "127.0.0.1:" + server.port();
    }

    private MapcastClient client(MapcastClient.Builder b) {
        MapcastClient c = b.target(target()).deadline(Duration.ofSeconds(5)).build();
        toClose.add(c);
        return c;
    }
}
