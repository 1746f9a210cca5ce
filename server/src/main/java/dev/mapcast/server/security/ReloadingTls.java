package dev.mapcast.server.security;

import dev.mapcast.codec.PemFiles;
import io.grpc.ServerCredentials;
import io.grpc.TlsServerCredentials;
import io.grpc.util.AdvancedTlsX509KeyManager;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManager;
import javax.net.ssl.TrustManager;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A server's TLS identity and client-certificate trust, read from {@link TlsFiles} and read again
 * when the files change, without a restart: connections open keep the certificate they
 * negotiated, new ones get the new. The files are checked every {@link TlsFiles#reloadInterval};
 * a change is taken only whole and consistent (the certificate parses, the key parses and belongs
 * to it, the CA parses), else it is logged and the previous material stays in use, so a rotation
 * that writes the certificate and the key one after the other is taken once both are in place.
 *
 * <p>Serves the client port ({@link #serverCredentials()}) and, in a cluster, the Raft peers
 * ({@link #keyManager()}, {@link #peerTrustManager()}), so both reload together.
 */
public final class ReloadingTls implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(ReloadingTls.class);

    private final TlsFiles files;
    private final AdvancedTlsX509KeyManager keyManager = new AdvancedTlsX509KeyManager();
    private final ReloadableTrust clientTrust;
    private final ReloadableTrust peerTrust;
    private final ScheduledExecutorService checker;
    private volatile X509Certificate current;
    private volatile List<Object> loadedStamp;
    private List<Object> refusedStamp;

    private ReloadingTls(TlsFiles files) {
        this.files = files;
        Material first = Material.read(files);
        this.clientTrust = first.clientCa == null ? null : new ReloadableTrust(first.clientCa);
        this.peerTrust = first.peerCa == null ? null : new ReloadableTrust(first.peerCa);
        apply(first);
        this.loadedStamp = stamp(files);
        this.checker = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "mapcast-tls-reload");
            t.setDaemon(true);
            return t;
        });
        long every = files.reloadInterval().toMillis();
        checker.scheduleWithFixedDelay(this::check, every, every, TimeUnit.MILLISECONDS);
    }

    /**
     * Reads the files and starts watching them.
     *
     * @throws IllegalArgumentException naming the file and what is wrong with it
     */
    public static ReloadingTls start(TlsFiles files) {
        ReloadingTls tls = new ReloadingTls(files);
        log.info("TLS on: certificate {} ({}), client certificates {}{}", files.cert(), describe(tls.current),
                files.clientCa() == null ? "not asked for"
                : files.clientAuth().name().toLowerCase(java.util.Locale.ROOT) + ", signed by " + files.clientCa(),
                files.peerCa() == null ? "" : "; members' certificates signed by " + files.peerCa());
        return tls;
    }

    /** Credentials for the client port. */
    public ServerCredentials serverCredentials() {
        TlsServerCredentials.Builder b = TlsServerCredentials.newBuilder().keyManager(keyManager);
        if (clientTrust != null) {
            b.trustManager(clientTrust).clientAuth(switch (files.clientAuth()) {
                case NONE -> TlsServerCredentials.ClientAuth.NONE;
                case OPTIONAL -> TlsServerCredentials.ClientAuth.OPTIONAL;
                case REQUIRE -> TlsServerCredentials.ClientAuth.REQUIRE;
            });
        }
        return b.build();
    }

    /** This server's certificate and key, as presented to clients and to the other members. */
    public KeyManager keyManager() {
        return keyManager;
    }

    /** Checks the other members' certificates; null without {@link TlsFiles#peerCa}. */
    public TrustManager peerTrustManager() {
        return peerTrust;
    }

    @Override
    public void close() {
        checker.shutdownNow();
    }

    /** Runs every reload interval: takes changed files if they are whole and consistent. */
    void check() {
        List<Object> stamp = stamp(files);
        if (Objects.equals(stamp, loadedStamp)) {
            return;
        }
        try {
            Material m = Material.read(files);
            apply(m);
            loadedStamp = stamp;
            refusedStamp = null;
            log.info("TLS files reloaded: certificate {} ({})", files.cert(), describe(m.chain[0]));
        } catch (IllegalArgumentException e) {
            if (!Objects.equals(stamp, refusedStamp)) {  // once per change, not every interval
                log.warn("TLS files changed but cannot be used yet, keeping the previous ones: {}", e.getMessage());
                refusedStamp = stamp;
            }
        }
    }

    private void apply(Material m) {
        keyManager.updateIdentityCredentials(m.chain, m.key);
        current = m.chain[0];
        if (clientTrust != null) {
            clientTrust.update(m.clientCa);
        }
        if (peerTrust != null) {
            peerTrust.update(m.peerCa);
        }
        Date notAfter = m.chain[0].getNotAfter();
        if (notAfter.before(new Date())) {
            log.warn("TLS certificate {} expired on {}: clients will refuse it", files.cert(), notAfter.toInstant());
        }
    }

    private static String describe(X509Certificate cert) {
        return cert.getSubjectX500Principal().getName() + ", valid until " + cert.getNotAfter().toInstant();
    }

    /** What tells a change: each file's modification time and size (a missing file is a change too). */
    private static List<Object> stamp(TlsFiles files) {
        List<Object> out = new ArrayList<>();
        for (Path p : new Path[] {files.cert(), files.key(), files.clientCa(), files.peerCa()}) {
            if (p == null) {
                continue;
            }
            try {
                BasicFileAttributes a = Files.readAttributes(p, BasicFileAttributes.class);
                out.add(a.lastModifiedTime().toMillis());
                out.add(a.size());
                out.add(a.fileKey());
            } catch (IOException e) {
                out.add("missing");
            }
        }
        return out;
    }

    /** The files' content, checked. */
    private record Material(X509Certificate[] chain, PrivateKey key, X509Certificate[] clientCa, X509Certificate[] peerCa) {

        static Material read(TlsFiles files) {
            X509Certificate[] chain = PemFiles.certificates(files.cert(), "TLS certificate");
            PrivateKey key = PemFiles.privateKey(files.key(), "TLS key");
            PemFiles.checkPair(chain[0], key, files.cert(), files.key());
            X509Certificate[] clientCa = files.clientCa() == null ? null
                    : PemFiles.certificates(files.clientCa(), "TLS client CA");
            X509Certificate[] peerCa = files.peerCa() == null ? null
                    : PemFiles.certificates(files.peerCa(), "TLS peer CA");
            return new Material(chain, key, clientCa, peerCa);
        }
    }
}
