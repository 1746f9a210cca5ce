package dev.mapcast.cli.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.cli.cluster.ClusterProcesses.Member;
import dev.mapcast.cli.cluster.ClusterProcesses.Run;
import dev.mapcast.codec.PemFiles;
import dev.mapcast.testing.TestPki;
import dev.mapcast.testing.TestPki.Ca;
import dev.mapcast.testing.TestPki.Issued;
import java.io.IOException;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Three {@code mapcast serve} processes with TLS: clients must present a certificate of the client
 * CA, and the members speak Raft to each other over mutual TLS with certificates of the member CA,
 * which a client certificate cannot stand in for.
 */
class ClusterTlsTest {

    @TempDir
    Path dir;

    @Test
    void membersSpeakMutualTlsAndClientsNeedACertificate() throws Exception {
        TestPki pki = TestPki.in(dir.resolve("pki"));
        Ca memberCa = pki.ca("member-ca");
        Ca clientCa = pki.ca("client-ca");
        Issued memberCert = pki.server(memberCa, "member");  // names 127.0.0.1: every member here can use it
        Issued alice = pki.client(clientCa, "alice");
        List<String> clientTls = List.of("--tls-ca", memberCa.cert().toString(), "--tls-cert", alice.cert().toString(),
                "--tls-key", alice.key().toString());

        try (ClusterProcesses cluster = ClusterProcesses.start(dir.resolve("cluster"), 3,
                b -> b.tls(memberCa.cert(), alice.cert(), alice.key()),
                "--tls-cert", memberCert.cert().toString(), "--tls-key", memberCert.key().toString(),
                "--tls-client-ca", clientCa.cert().toString(), "--peer-tls-ca", memberCa.cert().toString())) {
            Member leader = cluster.awaitLeader();
            Member follower = cluster.members().stream().filter(m -> m != leader).findFirst().orElseThrow();

            // A write to a follower reaches the leader (forwarded over the members' TLS) and every member.
            Run put = cli("put", follower, clientTls, "put", "app", "region", "eu-west-1");
            assertEquals(0, put.exitCode(), put.toString());
            for (Member m : cluster.members()) {
                Run get = cli("get-" + m.id, m, clientTls, "get", "app", "region");
                assertEquals(0, get.exitCode(), get.toString());
                assertEquals("eu-west-1", get.stdout().strip(), m.id);
            }

            // A client without the member CA, or without a certificate, gets one line and exit 4.
            Run plain = cli("plain", follower, List.of(), "get", "app", "region");
            assertEquals(4, plain.exitCode(), plain.toString());
            assertOneLine(plain);
            Run noCert = cli("no-cert", follower, List.of("--tls-ca", memberCa.cert().toString()), "get", "app",
                    "region");
            assertEquals(4, noCert.exitCode(), noCert.toString());
            assertOneLine(noCert);

            // The peer port takes member certificates only: not a client's, not none.
            int peerPort = follower.peerPort;
            assertTrue(handshake(peerPort, memberCa, memberCert), "a member's certificate is accepted");
            assertFalse(handshake(peerPort, memberCa, alice), "a client certificate is refused on the peer port");
            assertFalse(handshake(peerPort, memberCa, null), "no certificate is refused on the peer port");
        }
    }

    /** {@code mapcast COMMAND --server M --timeout 10s TLS... ARGS...}, run to completion. */
    private Run cli(String name, Member m, List<String> tls, String command, String... args)
            throws IOException, InterruptedException {
        List<String> argv = new ArrayList<>(List.of(command, "--server", m.clientAddress(), "--timeout", "10s"));
        argv.addAll(tls);
        argv.addAll(List.of(args));
        return ClusterProcesses.run(dir, name, ClusterProcesses.mapcast(argv.toArray(String[]::new)));
    }

    private static void assertOneLine(Run run) {
        assertTrue(run.stderr().startsWith("mapcast: ") && run.stderr().strip().lines().count() == 1,
                "one line, no stack trace: " + run.stderr());
    }

    /** Whether a TLS handshake with the peer port succeeds presenting {@code identity} (null: none). */
    private static boolean handshake(int port, Ca trusted, Issued identity) throws Exception {
        KeyManager[] identityKeys = identity == null ? null : PemFiles.keyManagers(
                new X509Certificate[] {identity.certificate()}, PemFiles.privateKey(identity.key(), "key"));
        SSLContext context = SSLContext.getInstance("TLSv1.3");
        context.init(identityKeys, new TrustManager[] {PemFiles.trustManager(new X509Certificate[] {
            trusted.certificate()})}, null);
        try (SSLSocket socket = (SSLSocket) context.getSocketFactory().createSocket("127.0.0.1", port)) {
            socket.setSoTimeout(10_000);
            socket.setEnabledProtocols(new String[] {"TLSv1.3"});
            socket.setSSLParameters(withAlpn(socket));
            socket.startHandshake();
            // TLS 1.3: the server checks the client's certificate after the client thinks it is done;
            // a refusal arrives as an alert on the first read.
            socket.getOutputStream().write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            socket.getOutputStream().write(new byte[] {0, 0, 0, 4, 0, 0, 0, 0, 0});  // an empty SETTINGS frame
            socket.getOutputStream().flush();
            return socket.getInputStream().read() >= 0;
        } catch (SSLException | java.net.SocketException e) {
            return false;
        }
    }

    private static javax.net.ssl.SSLParameters withAlpn(SSLSocket socket) {
        javax.net.ssl.SSLParameters p = socket.getSSLParameters();
        p.setApplicationProtocols(new String[] {"h2"});
        return p;
    }

    @Test
    void aClusterMemberWithTlsNeedsThePeerCa() throws Exception {
        TestPki pki = TestPki.in(dir.resolve("pki"));
        Issued cert = pki.server(pki.ca("ca"), "member");
        Run run = ClusterProcesses.run(dir, "no-peer-ca", ClusterProcesses.mapcast("serve", "--node-id", "a",
                "--cluster", "a=127.0.0.1:1", "--data-dir", dir.resolve("a").toString(), "--tls-cert",
                cert.cert().toString(), "--tls-key", cert.key().toString()));
        assertEquals(2, run.exitCode(), run.toString());
        assertTrue(run.stderr().contains("--peer-tls-ca"), run.stderr());
    }
}
