package dev.mapcast.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.cli.cluster.ClusterProcesses;
import dev.mapcast.cli.cluster.ClusterProcesses.Run;
import dev.mapcast.server.MapcastServer;
import dev.mapcast.server.security.TlsFiles;
import dev.mapcast.testing.TestPki;
import dev.mapcast.testing.TestPki.Ca;
import dev.mapcast.testing.TestPki.Issued;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@code mapcast} command against a server with TLS, each run its own JVM: what connects, and
 * the one line a user reads (exit 4) for each way a TLS connection fails. Bad TLS options and files
 * are usage errors (exit 2), to the client and to {@code serve}.
 */
class TlsCommandTest {

    @TempDir
    Path dir;

    private final List<MapcastServer> servers = new ArrayList<>();

    @AfterEach
    void stop() {
        servers.forEach(MapcastServer::close);
    }

    @Test
    void clientsConnectWithTheRightFilesAndReadWhyOtherwise() throws Exception {
        TestPki pki = TestPki.in(dir.resolve("pki"));
        Ca ca = pki.ca("ca");
        Ca other = pki.ca("other");
        Issued serverCert = pki.server(ca, "server");
        Issued alice = pki.client(ca, "alice");
        String tlsServer = start(TlsFiles.of(serverCert.cert(), serverCert.key(), ca.cert()));
        Issued expired = pki.expiredServer(ca, "expired");
        String expiredServer = start(TlsFiles.of(expired.cert(), expired.key(), null));
        String plainServer = start(null);
        String[] aliceTls = {"--tls-ca", ca.cert().toString(), "--tls-cert", alice.cert().toString(), "--tls-key",
            alice.key().toString()};

        assertEquals(0, mapcast("put", tlsServer, aliceTls, "m", "k", "v").exitCode());
        Run get = mapcast("get", tlsServer, aliceTls, "m", "k");
        assertEquals("v", get.stdout().strip(), get.toString());

        assertFails(4, "a server with TLS closes plaintext connections so: use --tls-ca FILE",
                mapcast("get", tlsServer, new String[0], "m", "k"));
        assertFails(4, "the server's TLS certificate is not signed by a CA this client trusts",
                mapcast("get", tlsServer, new String[] {"--tls-ca", other.cert().toString()}, "m", "k"));
        assertFails(4, "the server refused this client's TLS certificate, or its lack of one",
                mapcast("get", tlsServer, new String[] {"--tls-ca", ca.cert().toString()}, "m", "k"));
        assertFails(4, "the server's TLS certificate has expired",
                mapcast("get", expiredServer, new String[] {"--tls-ca", ca.cert().toString()}, "m", "k"));
        Issued elsewhere = pki.serverNamed(ca, "elsewhere", "config.example.com");
        String misnamed = start(TlsFiles.of(elsewhere.cert(), elsewhere.key(), null));
        assertFails(4, "the server's TLS certificate does not name the address dialled",
                mapcast("get", misnamed, new String[] {"--tls-ca", ca.cert().toString()}, "m", "k"));
        assertFails(4, "the server does not speak TLS",
                mapcast("get", plainServer, new String[] {"--tls-ca", ca.cert().toString()}, "m", "k"));

        Path missing = dir.resolve("missing.pem");
        assertFails(2, "TLS CA " + missing + ": no such file",
                mapcast("get", tlsServer, new String[] {"--tls-ca", missing.toString()}, "m", "k"));
        assertFails(2, "--tls-key needs --tls-cert",
                mapcast("get", tlsServer, new String[] {"--tls-key", alice.key().toString()}, "m", "k"));
    }

    @Test
    void serveRefusesTlsOptionsThatDoNotGoTogetherOrFilesItCannotUse() throws Exception {
        TestPki pki = TestPki.in(dir.resolve("pki"));
        Ca ca = pki.ca("ca");
        Issued serverCert = pki.server(ca, "server");
        Issued other = pki.server(ca, "other");

        assertFails(2, "--tls-cert needs --tls-key", serve("--tls-cert", serverCert.cert().toString()));
        assertFails(2, "--tls-client-ca needs --tls-cert", serve("--tls-client-ca", ca.cert().toString()));
        assertFails(2, "client auth require needs the CA that signs client certificates", serve("--tls-cert",
                serverCert.cert().toString(), "--tls-key", serverCert.key().toString(), "--tls-client-auth", "require"));
        assertFails(2, "\"sometimes\" (expected: none, optional or require)", serve("--tls-cert",
                serverCert.cert().toString(), "--tls-key", serverCert.key().toString(), "--tls-client-auth", "sometimes"));
        assertFails(2, "TLS key " + other.key() + " is not the key of certificate " + serverCert.cert(),
                serve("--tls-cert", serverCert.cert().toString(), "--tls-key", other.key().toString()));
        assertFails(2, "--peer-tls-ca applies to a cluster member", serve("--tls-cert", serverCert.cert().toString(),
                "--tls-key", serverCert.key().toString(), "--peer-tls-ca", ca.cert().toString()));
    }

    private String start(TlsFiles tls) {
        MapcastServer server = MapcastServer.builder().port(0).tls(tls).build().start();
        servers.add(server);
        return "127.0.0.1:" + server.port();
    }

    private Run mapcast(String command, String server, String[] tls, String... args) throws Exception {
        List<String> argv = new ArrayList<>(List.of(command, "--server", server, "--timeout", "10s"));
        argv.addAll(List.of(tls));
        argv.addAll(List.of(args));
        return ClusterProcesses.run(dir, command + "-" + System.nanoTime(), ClusterProcesses.mapcast(argv.toArray(String[]::new)));
    }

    private Run serve(String... args) throws Exception {
        List<String> argv = new ArrayList<>(List.of("serve", "--listen", "127.0.0.1:0", "--in-memory"));
        argv.addAll(List.of(args));
        return ClusterProcesses.run(dir, "serve-" + System.nanoTime(), ClusterProcesses.mapcast(argv.toArray(String[]::new)));
    }

    private static void assertFails(int exitCode, String message, Run run) {
        assertEquals(exitCode, run.exitCode(), run.toString());
        assertTrue(run.stderr().startsWith("mapcast: ") && run.stderr().contains(message), run.toString());
        assertTrue(!run.stderr().contains("\tat ") && !run.stderr().contains("Channel Pipeline"),
                "no stack trace, no gRPC internals: " + run.stderr());
    }
}
