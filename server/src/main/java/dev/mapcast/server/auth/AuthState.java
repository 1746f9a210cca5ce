package dev.mapcast.server.auth;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.mapcast.proto.auth.v1.StoredToken;
import dev.mapcast.proto.v1.AuthRole;
import dev.mapcast.proto.v1.AuthUser;
import dev.mapcast.proto.v1.Permission;
import dev.mapcast.proto.v1.Right;
import io.grpc.Status;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Users, roles and tokens as of one revision of the auth map: immutable, rebuilt by
 * {@link AuthStore} when the map changes. Keys of the auth map: {@code user/NAME} (an
 * {@link AuthUser}), {@code role/NAME} (an {@link AuthRole}), {@code token/ID} (a
 * {@link StoredToken}). The role "root" is built in: readwrite on every map, and admin.
 */
final class AuthState {

    static final String ROOT = "root";
    static final AuthRole ROOT_ROLE = AuthRole.newBuilder().setName(ROOT).setAdmin(true)
            .addPermissions(Permission.newBuilder().setPattern("*").setRight(Right.RIGHT_READWRITE)).build();
    static final AuthState EMPTY = new AuthState(0, Map.of());

    /** The auth map's revision this state is of (0: the map does not exist). */
    final long revision;
    final Map<String, AuthUser> users = new TreeMap<>();
    final Map<String, AuthRole> roles = new TreeMap<>();
    final Map<String, StoredToken> tokens = new TreeMap<>();

    AuthState(long revision, Map<String, byte[]> entries) {
        this.revision = revision;
        roles.put(ROOT, ROOT_ROLE);
        try {
            for (Map.Entry<String, byte[]> e : entries.entrySet()) {
                String key = e.getKey();
                if (key.startsWith("user/")) {
                    users.put(key.substring(5), AuthUser.parseFrom(e.getValue()));
                } else if (key.startsWith("role/")) {
                    roles.put(key.substring(5), AuthRole.parseFrom(e.getValue()));
                } else if (key.startsWith("token/")) {
                    tokens.put(key.substring(6), StoredToken.parseFrom(e.getValue()));
                }
            }
        } catch (InvalidProtocolBufferException e) {
            // Only the server writes the auth map; a record it cannot read is a bug, not input.
            throw new IllegalStateException("auth map at revision " + revision + " holds a record that does not parse",
                    e);
        }
    }

    static AuthState of(long revision, List<Map.Entry<byte[], byte[]>> entries) {
        Map<String, byte[]> byKey = new TreeMap<>();
        for (Map.Entry<byte[], byte[]> e : entries) {
            byKey.put(new String(e.getKey(), StandardCharsets.UTF_8), e.getValue());
        }
        return new AuthState(revision, byKey);
    }

    /** The token's record if {@code bearer} is a live token, else UNAUTHENTICATED saying why. */
    StoredToken authenticate(String bearer, long nowMillis) {
        String id = Tokens.idOf(bearer);
        if (id == null) {
            throw unauthenticated("the bearer token is not a mapcast token (expected: mapcast_<id>.<secret>, as"
                    + " 'mapcast token create' prints it)");
        }
        StoredToken stored = tokens.get(id);
        if (stored == null || !Tokens.matches(stored, bearer)) {
            throw unauthenticated("token " + id + " is not valid (revoked, or never issued by this cluster)");
        }
        String why = whyNotLive(stored.getToken().getId(), stored.getToken().getUser(), nowMillis);
        if (why != null) {
            throw unauthenticated(why);
        }
        return stored;
    }

    /** Null if the user still exists and the token (if any, "" for none) is still live; else why not. */
    String whyNotLive(String tokenId, String user, long nowMillis) {
        if (!tokenId.isEmpty()) {
            StoredToken stored = tokens.get(tokenId);
            if (stored == null) {
                return "token " + tokenId + " was revoked";
            }
            long expires = stored.getToken().getExpiresUnixMs();
            if (expires != 0 && nowMillis >= expires) {
                return "token " + tokenId + " expired at " + Instant.ofEpochMilli(expires);
            }
        }
        if (!users.containsKey(user)) {
            return "user \"" + user + "\" does not exist" + (tokenId.isEmpty() ? "" : " (any more)");
        }
        return null;
    }

    /** Whether {@code user} may use {@code right} (READ or WRITE) on {@code map}. */
    boolean allows(String user, Right right, String map) {
        for (AuthRole role : rolesOf(user)) {
            for (Permission p : role.getPermissionsList()) {
                if (covers(p.getRight(), right) && matches(p.getPattern(), map)) {
                    return true;
                }
            }
        }
        return false;
    }

    boolean isAdmin(String user) {
        for (AuthRole role : rolesOf(user)) {
            if (role.getAdmin()) {
                return true;
            }
        }
        return false;
    }

    private List<AuthRole> rolesOf(String user) {
        AuthUser u = users.get(user);
        if (u == null) {
            return Collections.emptyList();
        }
        return u.getRolesList().stream().map(roles::get).filter(r -> r != null).toList();
    }

    private static boolean covers(Right granted, Right wanted) {
        return granted == wanted || granted == Right.RIGHT_READWRITE;
    }

    /** A pattern is a map name, or a prefix ending in '*'. */
    static boolean matches(String pattern, String map) {
        return pattern.endsWith("*") ? map.startsWith(pattern.substring(0, pattern.length() - 1))
                : pattern.equals(map);
    }

    private static RuntimeException unauthenticated(String why) {
        return Status.UNAUTHENTICATED.withDescription(why).asRuntimeException();
    }
}
