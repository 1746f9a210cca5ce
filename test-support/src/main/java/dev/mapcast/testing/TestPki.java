package dev.mapcast.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.Date;
import java.util.concurrent.atomic.AtomicLong;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.CertIOException;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * Real certificates for tests, made on the fly and written as PEM files, as an operator's own CA
 * would issue them: CAs, server (and cluster member) certificates naming 127.0.0.1 and localhost,
 * client certificates naming a user, and expired ones. EC P-256 keys, PKCS#8 PEM.
 */
public final class TestPki {

    /** A CA: its certificate file (PEM) and what signs with it. */
    public record Ca(String name, Path cert, X509Certificate certificate, KeyPair keys) {
    }

    /** An issued certificate: its file (PEM, the leaf) and its key file (PEM, PKCS#8). */
    public record Issued(String name, Path cert, Path key, X509Certificate certificate) {
    }

    private static final GeneralName[] LOOPBACK = {new GeneralName(GeneralName.iPAddress, "127.0.0.1"),
        new GeneralName(GeneralName.dNSName, "localhost")};
    private static final AtomicLong SERIAL = new AtomicLong(System.currentTimeMillis());

    private final Path dir;

    private TestPki(Path dir) {
        this.dir = dir;
    }

    /** Writes its files into {@code dir}. */
    public static TestPki in(Path dir) {
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return new TestPki(dir);
    }

    /** A self-signed CA, written to NAME.pem. */
    public Ca ca(String name) {
        KeyPair keys = keyPair();
        X500Name subject = new X500Name("CN=" + name);
        Instant now = Instant.now();
        X509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(subject, serial(), Date.from(now.minusSeconds(3600)),
                Date.from(now.plus(Duration.ofDays(30))), subject, keys.getPublic());
        try {
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
            b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
        } catch (CertIOException e) {
            throw new IllegalStateException(e);
        }
        X509Certificate cert = sign(b, keys);
        return new Ca(name, write(name + ".pem", pem("CERTIFICATE", encoded(cert))), cert, keys);
    }

    /** A server or cluster member certificate: 127.0.0.1 and localhost, server and client authentication. */
    public Issued server(Ca ca, String name) {
        return issue(ca, name, Instant.now().plus(Duration.ofDays(1)), LOOPBACK);
    }

    /** A server certificate naming only the DNS name {@code host} (not 127.0.0.1). */
    public Issued serverNamed(Ca ca, String name, String host) {
        return issue(ca, name, Instant.now().plus(Duration.ofDays(1)), new GeneralName(GeneralName.dNSName, host));
    }

    /** A server certificate that expired an hour ago. */
    public Issued expiredServer(Ca ca, String name) {
        return issue(ca, name, Instant.now().minusSeconds(3600), LOOPBACK);
    }

    /** A client certificate whose common name is {@code user}; no host names. */
    public Issued client(Ca ca, String user) {
        return issue(ca, user, Instant.now().plus(Duration.ofDays(1)));
    }

    /** {@code names}: the hosts a server certificate names; none: a client certificate. */
    private Issued issue(Ca ca, String name, Instant notAfter, GeneralName... names) {
        boolean server = names.length > 0;
        KeyPair keys = keyPair();
        Instant notBefore = notAfter.isBefore(Instant.now()) ? notAfter.minus(Duration.ofDays(1))
                : Instant.now().minusSeconds(3600);
        X509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(ca.certificate(), serial(), Date.from(notBefore),
                Date.from(notAfter), new X500Name("CN=" + name), keys.getPublic());
        try {
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
            b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyAgreement));
            if (server) {
                b.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(
                        new KeyPurposeId[] {KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth}));
                b.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(names));
            } else {
                b.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(KeyPurposeId.id_kp_clientAuth));
            }
        } catch (CertIOException e) {
            throw new IllegalStateException(e);
        }
        X509Certificate cert = sign(b, ca.keys());
        Path certFile = write(name + ".pem", pem("CERTIFICATE", encoded(cert)));
        Path keyFile = write(name + ".key", pem("PRIVATE KEY", keys.getPrivate().getEncoded()));
        return new Issued(name, certFile, keyFile, cert);
    }

    private static KeyPair keyPair() {
        try {
            KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
            g.initialize(new ECGenParameterSpec("secp256r1"));
            return g.generateKeyPair();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    private static X509Certificate sign(X509v3CertificateBuilder b, KeyPair signer) {
        try {
            return new JcaX509CertificateConverter().getCertificate(
                    b.build(new JcaContentSignerBuilder("SHA256withECDSA").build(signer.getPrivate())));
        } catch (OperatorCreationException | GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    private static BigInteger serial() {
        return BigInteger.valueOf(SERIAL.incrementAndGet());
    }

    private static byte[] encoded(X509Certificate cert) {
        try {
            return cert.getEncoded();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String pem(String type, byte[] der) {
        return "-----BEGIN " + type + "-----\n" + Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(der)
                + "\n-----END " + type + "-----\n";
    }

    private Path write(String file, String content) {
        try {
            return Files.writeString(dir.resolve(file), content, StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
