package dev.mapcast.codec;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * TLS files in PEM, as client and server read them: certificates, and unencrypted PKCS#8 private
 * keys ({@code BEGIN PRIVATE KEY}: RSA, EC or Ed25519, what {@code openssl genpkey} writes). Every
 * problem is an {@link IllegalArgumentException} naming the file and what is wrong, with the fix
 * where there is one.
 */
public final class PemFiles {

    private static final Pattern PEM_BLOCK = Pattern.compile("-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END \\1-----");

    private PemFiles() {
    }

    /** The certificates in {@code file}, in order (a chain: the leaf first); {@code what} names it in errors. */
    public static X509Certificate[] certificates(Path file, String what) {
        byte[] bytes = read(file, what);
        try {
            List<X509Certificate> certs = new ArrayList<>();
            for (Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(new ByteArrayInputStream(bytes))) {
                certs.add((X509Certificate) c);
            }
            if (certs.isEmpty()) {
                throw new IllegalArgumentException(what + " " + file + ": no certificate in it (expected PEM:"
                        + " -----BEGIN CERTIFICATE-----)");
            }
            return certs.toArray(new X509Certificate[0]);
        } catch (CertificateException e) {
            throw new IllegalArgumentException(what + " " + file + ": not a PEM certificate (" + e.getMessage() + ")", e);
        }
    }

    /** The private key in {@code file}. */
    public static PrivateKey privateKey(Path file, String what) {
        String text = new String(read(file, what), StandardCharsets.US_ASCII);
        Matcher m = PEM_BLOCK.matcher(text);
        while (m.find()) {
            String type = m.group(1);
            if (type.equals("PRIVATE KEY")) {
                byte[] der;
                try {
                    der = Base64.getMimeDecoder().decode(m.group(2).strip());
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(what + " " + file + ": its PEM block is not base64", e);
                }
                for (String algorithm : new String[] {"RSA", "EC", "Ed25519"}) {
                    try {
                        return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(der));
                    } catch (GeneralSecurityException notThisOne) {
                        // the next algorithm
                    }
                }
                throw new IllegalArgumentException(what + " " + file + ": a PKCS#8 key of an algorithm other than RSA,"
                        + " EC or Ed25519");
            }
            if (type.endsWith("PRIVATE KEY")) {
                throw new IllegalArgumentException(what + " " + file + ": a '" + type + "' key; mapcast reads"
                        + " unencrypted PKCS#8 keys ('BEGIN PRIVATE KEY'): convert it with 'openssl pkcs8 -topk8"
                        + " -nocrypt -in " + file + " -out KEY.pem'");
            }
        }
        throw new IllegalArgumentException(what + " " + file + ": no private key in it (expected PEM:"
                + " -----BEGIN PRIVATE KEY-----)");
    }

    /**
     * Checks that {@code key} is the private key of {@code cert} (else every handshake would fail,
     * and only then); the files are named in the error.
     */
    public static void checkPair(X509Certificate cert, PrivateKey key, Path certFile, Path keyFile) {
        String algorithm = switch (key.getAlgorithm()) {
            case "RSA" -> "SHA256withRSA";
            case "EC" -> "SHA256withECDSA";
            default -> key.getAlgorithm();
        };
        byte[] probe = "mapcast key check".getBytes(StandardCharsets.US_ASCII);
        boolean matches;
        try {
            Signature sign = Signature.getInstance(algorithm);
            sign.initSign(key);
            sign.update(probe);
            byte[] signature = sign.sign();
            Signature verify = Signature.getInstance(algorithm);
            verify.initVerify(cert.getPublicKey());
            verify.update(probe);
            matches = verify.verify(signature);
        } catch (GeneralSecurityException e) {
            matches = false;
        }
        if (!matches) {
            throw new IllegalArgumentException("TLS key " + keyFile + " is not the key of certificate " + certFile
                    + " (" + cert.getSubjectX500Principal().getName() + ")");
        }
    }

    /** The JDK's certificate-path checks against {@code cas} (and the host name, where the TLS engine asks). */
    public static X509ExtendedTrustManager trustManager(X509Certificate[] cas) {
        try {
            KeyStore store = emptyStore();
            for (int i = 0; i < cas.length; i++) {
                store.setCertificateEntry("ca-" + i, cas[i]);
            }
            TrustManagerFactory f = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            f.init(store);
            for (TrustManager tm : f.getTrustManagers()) {
                if (tm instanceof X509ExtendedTrustManager x) {
                    return x;
                }
            }
            throw new IllegalStateException("the JDK offers no X509ExtendedTrustManager");
        } catch (GeneralSecurityException | IOException e) {
            throw new IllegalArgumentException("cannot trust these CA certificates: " + e.getMessage(), e);
        }
    }

    /** Presents {@code chain} (the leaf first) with its {@code key}. */
    public static KeyManager[] keyManagers(X509Certificate[] chain, PrivateKey key) {
        try {
            KeyStore identity = emptyStore();
            char[] none = new char[0];
            identity.setKeyEntry("identity", key, none, chain);
            KeyManagerFactory f = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            f.init(identity, none);
            return f.getKeyManagers();
        } catch (GeneralSecurityException | IOException e) {
            throw new IllegalArgumentException("cannot use this key and certificate: " + e.getMessage(), e);
        }
    }

    private static KeyStore emptyStore() throws GeneralSecurityException, IOException {
        KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
        store.load(null, null);
        return store;
    }

    private static byte[] read(Path file, String what) {
        try {
            return Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException(what + " " + file + ": no such file", e);
        } catch (AccessDeniedException e) {
            throw new IllegalArgumentException(what + " " + file + ": permission denied", e);
        } catch (IOException e) {
            throw new IllegalArgumentException(what + " " + file + ": cannot read it (" + e.getMessage() + ")", e);
        }
    }
}
