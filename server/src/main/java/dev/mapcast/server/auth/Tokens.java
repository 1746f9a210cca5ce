package dev.mapcast.server.auth;

import com.google.protobuf.ByteString;
import dev.mapcast.proto.auth.v1.StoredToken;
import dev.mapcast.proto.v1.AuthToken;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.HexFormat;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * Bearer tokens: {@code mapcast_<id>.<secret>}, a 64-bit id (public: it names the token in
 * listings, revocations and the audit log) and a 256-bit random secret.
 *
 * <p>The server keeps only HMAC-SHA256(salt, secret) with a random 16-byte salt per token. Why not
 * a slow hash (bcrypt, scrypt): those make guessing a low-entropy password from a stolen hash
 * expensive; a 256-bit random secret cannot be guessed however fast the hash, and a slow hash would
 * cost every RPC tens of milliseconds. The salt makes equal secrets (there are none) and
 * precomputed tables useless; comparison is constant-time.
 */
final class Tokens {

    static final String PREFIX = "mapcast_";
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final HexFormat HEX = HexFormat.of();

    private Tokens() {
    }

    /** A new token: what is stored, and the bearer string shown once. */
    record Issued(StoredToken stored, String bearer) {
    }

    static Issued issue(String user, long createdMillis, long expiresMillis) {
        byte[] id = new byte[8];
        byte[] secret = new byte[32];
        byte[] salt = new byte[16];
        RANDOM.nextBytes(id);
        RANDOM.nextBytes(secret);
        RANDOM.nextBytes(salt);
        String idText = HEX.formatHex(id);
        String secretText = Base64.getUrlEncoder().withoutPadding().encodeToString(secret);
        StoredToken stored = StoredToken.newBuilder()
                .setToken(AuthToken.newBuilder().setId(idText).setUser(user).setCreatedUnixMs(createdMillis)
                        .setExpiresUnixMs(expiresMillis))
                .setSalt(ByteString.copyFrom(salt))
                .setHash(ByteString.copyFrom(hmac(salt, secretText)))
                .build();
        return new Issued(stored, PREFIX + idText + "." + secretText);
    }

    /** The id of a bearer string, or null if it is not shaped as a mapcast token. */
    static String idOf(String bearer) {
        int dot = bearer.indexOf('.');
        if (!bearer.startsWith(PREFIX) || dot != PREFIX.length() + 16) {
            return null;
        }
        String id = bearer.substring(PREFIX.length(), dot);
        for (int i = 0; i < id.length(); i++) {
            if (Character.digit(id.charAt(i), 16) < 0) {
                return null;
            }
        }
        return id;
    }

    /** Whether {@code bearer} is the token {@code stored} was issued for. */
    static boolean matches(StoredToken stored, String bearer) {
        String secret = bearer.substring(bearer.indexOf('.') + 1);
        return MessageDigest.isEqual(hmac(stored.getSalt().toByteArray(), secret), stored.getHash().toByteArray());
    }

    private static byte[] hmac(byte[] salt, String secret) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(salt, "HmacSHA256"));
            return mac.doFinal(secret.getBytes(StandardCharsets.UTF_8));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is part of every JDK", e);
        }
    }
}
