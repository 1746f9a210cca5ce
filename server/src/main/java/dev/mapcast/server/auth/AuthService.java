package dev.mapcast.server.auth;

import dev.mapcast.proto.auth.v1.StoredToken;
import dev.mapcast.proto.v1.AddRoleRequest;
import dev.mapcast.proto.v1.AddUserRequest;
import dev.mapcast.proto.v1.AuthRole;
import dev.mapcast.proto.v1.AuthToken;
import dev.mapcast.proto.v1.AuthUser;
import dev.mapcast.proto.v1.CreateTokenRequest;
import dev.mapcast.proto.v1.CreateTokenResponse;
import dev.mapcast.proto.v1.DeleteRoleRequest;
import dev.mapcast.proto.v1.DeleteRoleResponse;
import dev.mapcast.proto.v1.DeleteUserRequest;
import dev.mapcast.proto.v1.DeleteUserResponse;
import dev.mapcast.proto.v1.GrantPermissionRequest;
import dev.mapcast.proto.v1.ListRolesRequest;
import dev.mapcast.proto.v1.ListRolesResponse;
import dev.mapcast.proto.v1.ListTokensRequest;
import dev.mapcast.proto.v1.ListTokensResponse;
import dev.mapcast.proto.v1.ListUsersRequest;
import dev.mapcast.proto.v1.ListUsersResponse;
import dev.mapcast.proto.v1.MapcastAuthGrpc;
import dev.mapcast.proto.v1.Permission;
import dev.mapcast.proto.v1.RevokePermissionRequest;
import dev.mapcast.proto.v1.RevokeTokenRequest;
import dev.mapcast.proto.v1.RevokeTokenResponse;
import dev.mapcast.proto.v1.Right;
import dev.mapcast.proto.v1.UserRoleRequest;
import dev.mapcast.proto.v1.WhoAmIRequest;
import dev.mapcast.proto.v1.WhoAmIResponse;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@code MapcastAuth} service: users, roles, permissions and tokens, changed through
 * {@link AuthStore} (so through the ordered, replicated log) and audited. Every call but WhoAmI
 * needs the admin right on a server with --auth; without --auth anyone may call them, which is how
 * users are set up before auth is turned on. Calls wait for the log: the server runs them on its worker pool.
 */
public final class AuthService extends MapcastAuthGrpc.MapcastAuthImplBase {

    private static final Logger log = LoggerFactory.getLogger(AuthService.class);
    /** Longest user or role name, in characters. */
    static final int MAX_NAME_CHARS = 128;
    /** Longest token lifetime: 10 years (a token that should never expire has ttl 0). */
    static final long MAX_TTL_SECONDS = Duration.ofDays(3650).toSeconds();

    private final AuthStore store;
    private final Authorizer authorizer;
    private final int maxPatternBytes;

    public AuthService(AuthStore store, Authorizer authorizer, int maxPatternBytes) {
        this.store = store;
        this.authorizer = authorizer;
        this.maxPatternBytes = maxPatternBytes;
    }

    @Override
    public void addUser(AddUserRequest request, StreamObserver<AuthUser> response) {
        admin(response, "add users", () -> {
            String name = checkName("name", request.getName());
            return store.update(state -> {
                if (state.users.containsKey(name)) {
                    throw alreadyExists("user \"" + name + "\" exists");
                }
                AuthUser user = AuthUser.newBuilder().setName(name).setCreatedUnixMs(System.currentTimeMillis())
                        .build();
                return new AuthStore.Edit<AuthUser>().put("user/" + name, user).answer(user);
            });
        });
    }

    @Override
    public void deleteUser(DeleteUserRequest request, StreamObserver<DeleteUserResponse> response) {
        admin(response, "delete users", () -> store.update(state -> {
            String name = request.getName();
            existingUser(state, name);
            AuthStore.Edit<DeleteUserResponse> edit = new AuthStore.Edit<DeleteUserResponse>().delete("user/" + name);
            int revoked = 0;
            for (StoredToken token : state.tokens.values()) {
                if (token.getToken().getUser().equals(name)) {
                    edit.delete("token/" + token.getToken().getId());
                    revoked++;
                }
            }
            return edit.answer(DeleteUserResponse.newBuilder().setTokensRevoked(revoked).build());
        }));
    }

    @Override
    public void listUsers(ListUsersRequest request, StreamObserver<ListUsersResponse> response) {
        admin(response, "list users", () -> new AuthStore.Applied<>(ListUsersResponse.newBuilder()
                .addAllUsers(store.latest().users.values()).build(), 0, List.of()));
    }

    @Override
    public void grantRole(UserRoleRequest request, StreamObserver<AuthUser> response) {
        admin(response, "grant roles", () -> store.update(state -> {
            AuthUser user = existingUser(state, request.getUser());
            existingRole(state, request.getRole());
            if (user.getRolesList().contains(request.getRole())) {
                return new AuthStore.Edit<AuthUser>().answer(user);
            }
            AuthUser changed = user.toBuilder().addRoles(request.getRole()).build();
            return new AuthStore.Edit<AuthUser>().put("user/" + user.getName(), changed).answer(changed);
        }));
    }

    @Override
    public void revokeRole(UserRoleRequest request, StreamObserver<AuthUser> response) {
        admin(response, "revoke roles", () -> store.update(state -> {
            AuthUser user = existingUser(state, request.getUser());
            if (!user.getRolesList().contains(request.getRole())) {
                throw Status.NOT_FOUND.withDescription("user \"" + user.getName() + "\" does not have role \""
                        + request.getRole() + "\" (its roles: " + user.getRolesList() + ")").asRuntimeException();
            }
            AuthUser changed = withoutRole(user, request.getRole());
            return new AuthStore.Edit<AuthUser>().put("user/" + user.getName(), changed).answer(changed);
        }));
    }

    @Override
    public void addRole(AddRoleRequest request, StreamObserver<AuthRole> response) {
        admin(response, "add roles", () -> {
            String name = checkName("name", request.getName());
            return store.update(state -> {
                if (state.roles.containsKey(name)) {
                    throw alreadyExists("role \"" + name + "\" exists");
                }
                AuthRole role = AuthRole.newBuilder().setName(name).build();
                return new AuthStore.Edit<AuthRole>().put("role/" + name, role).answer(role);
            });
        });
    }

    @Override
    public void deleteRole(DeleteRoleRequest request, StreamObserver<DeleteRoleResponse> response) {
        admin(response, "delete roles", () -> store.update(state -> {
            String name = request.getName();
            changeableRole(state, name);
            AuthStore.Edit<DeleteRoleResponse> edit = new AuthStore.Edit<DeleteRoleResponse>().delete("role/" + name);
            int changed = 0;
            for (AuthUser user : state.users.values()) {
                if (user.getRolesList().contains(name)) {
                    edit.put("user/" + user.getName(), withoutRole(user, name));
                    changed++;
                }
            }
            return edit.answer(DeleteRoleResponse.newBuilder().setUsersChanged(changed).build());
        }));
    }

    @Override
    public void listRoles(ListRolesRequest request, StreamObserver<ListRolesResponse> response) {
        admin(response, "list roles", () -> new AuthStore.Applied<>(ListRolesResponse.newBuilder()
                .addAllRoles(store.latest().roles.values()).build(), 0, List.of()));
    }

    @Override
    public void grantPermission(GrantPermissionRequest request, StreamObserver<AuthRole> response) {
        admin(response, "grant permissions", () -> {
            Permission permission = request.getPermission();
            checkPattern(permission.getPattern());
            if (permission.getRight() != Right.RIGHT_READ && permission.getRight() != Right.RIGHT_WRITE
                    && permission.getRight() != Right.RIGHT_READWRITE) {
                throw invalid("permission.right: " + permission.getRightValue()
                        + " (expected: RIGHT_READ, RIGHT_WRITE or RIGHT_READWRITE)");
            }
            return store.update(state -> {
                AuthRole role = changeableRole(state, request.getRole());
                AuthRole out = withoutPattern(role, permission.getPattern()).toBuilder().addPermissions(permission)
                        .build();
                return new AuthStore.Edit<AuthRole>().put("role/" + role.getName(), out).answer(out);
            });
        });
    }

    @Override
    public void revokePermission(RevokePermissionRequest request, StreamObserver<AuthRole> response) {
        admin(response, "revoke permissions", () -> store.update(state -> {
            AuthRole role = changeableRole(state, request.getRole());
            AuthRole out = withoutPattern(role, request.getPattern());
            if (out.getPermissionsCount() == role.getPermissionsCount()) {
                throw Status.NOT_FOUND.withDescription("role \"" + role.getName() + "\" has no permission on pattern"
                        + " \"" + request.getPattern() + "\"").asRuntimeException();
            }
            return new AuthStore.Edit<AuthRole>().put("role/" + role.getName(), out).answer(out);
        }));
    }

    @Override
    public void createToken(CreateTokenRequest request, StreamObserver<CreateTokenResponse> response) {
        admin(response, "create tokens", () -> {
            if (request.getTtlSeconds() < 0 || request.getTtlSeconds() > MAX_TTL_SECONDS) {
                throw invalid("ttl_seconds: " + Long.toUnsignedString(request.getTtlSeconds()) + " (expected: 0 for"
                        + " no expiry, or 1 to " + MAX_TTL_SECONDS + ")");
            }
            return store.update(state -> {
                existingUser(state, request.getUser());
                return newToken(request.getUser(), request.getTtlSeconds());
            });
        });
    }

    @Override
    public void revokeToken(RevokeTokenRequest request, StreamObserver<RevokeTokenResponse> response) {
        admin(response, "revoke tokens", () -> store.update(state -> {
            StoredToken token = state.tokens.get(request.getId());
            if (token == null) {
                throw Status.NOT_FOUND.withDescription("token \"" + request.getId() + "\" does not exist (see"
                        + " 'mapcast token list')").asRuntimeException();
            }
            return new AuthStore.Edit<RevokeTokenResponse>().delete("token/" + request.getId())
                    .answer(RevokeTokenResponse.newBuilder().setToken(token.getToken()).build());
        }));
    }

    @Override
    public void listTokens(ListTokensRequest request, StreamObserver<ListTokensResponse> response) {
        admin(response, "list tokens", () -> {
            AuthState state = store.latest();
            if (!request.getUser().isEmpty()) {
                existingUser(state, request.getUser());
            }
            ListTokensResponse.Builder out = ListTokensResponse.newBuilder();
            for (StoredToken token : state.tokens.values()) {
                if (request.getUser().isEmpty() || token.getToken().getUser().equals(request.getUser())) {
                    out.addTokens(token.getToken());
                }
            }
            return new AuthStore.Applied<>(out.build(), 0, List.of());
        });
    }

    @Override
    public void whoAmI(WhoAmIRequest request, StreamObserver<WhoAmIResponse> response) {
        Caller caller = Caller.current();
        WhoAmIResponse.Builder out = WhoAmIResponse.newBuilder().setAuthEnabled(authorizer.enabled());
        if (caller != null) {
            out.setUser(caller.user()).setVia(caller.via()).setTokenId(caller.tokenId());
            AuthUser user = store.current().users.get(caller.user());
            if (user != null) {
                out.addAllRoles(user.getRolesList());
            }
        }
        response.onNext(out.build());
        response.onCompleted();
    }

    /** The edit that issues a token for {@code user} (who must exist), answering with its secret. */
    static AuthStore.Edit<CreateTokenResponse> newToken(String user, long ttlSeconds) {
        long now = System.currentTimeMillis();
        Tokens.Issued issued = Tokens.issue(user, now, ttlSeconds == 0 ? 0 : now + ttlSeconds * 1000);
        AuthToken token = issued.stored().getToken();
        return new AuthStore.Edit<CreateTokenResponse>().put("token/" + token.getId(), issued.stored())
                .answer(CreateTokenResponse.newBuilder().setToken(token).setSecret(issued.bearer()).build());
    }

    /** Checks the caller is an admin, runs {@code body}, audits a change and answers. */
    private <T> void admin(StreamObserver<T> response, String what, Supplier<AuthStore.Applied<T>> body) {
        AuthStore.Applied<T> applied;
        try {
            authorizer.checkAdmin(what);
            applied = body.get();
        } catch (StatusRuntimeException e) {
            if (e.getStatus().getCode() != Status.Code.PERMISSION_DENIED) {
                authorizer.record("", 0, List.of(), "failed", e.getStatus().getDescription());
            }
            response.onError(e);
            return;
        } catch (RuntimeException e) {
            log.error("auth call failed", e);
            response.onError(Status.INTERNAL.withDescription("auth call failed: " + e).asRuntimeException());
            return;
        }
        if (applied.revision() != 0) {
            log.info("auth change: {} ({})", what, String.join(", ", applied.keys()));
            authorizer.recordChange("", applied.revision(), applied.keys());
        }
        response.onNext(applied.result());
        response.onCompleted();
    }

    private static AuthUser withoutRole(AuthUser user, String role) {
        List<String> roles = new ArrayList<>(user.getRolesList());
        roles.remove(role);
        return user.toBuilder().clearRoles().addAllRoles(roles).build();
    }

    private static AuthRole withoutPattern(AuthRole role, String pattern) {
        AuthRole.Builder out = role.toBuilder().clearPermissions();
        for (Permission p : role.getPermissionsList()) {
            if (!p.getPattern().equals(pattern)) {
                out.addPermissions(p);
            }
        }
        return out.build();
    }

    private static AuthUser existingUser(AuthState state, String name) {
        AuthUser user = state.users.get(name);
        if (user == null) {
            throw Status.NOT_FOUND.withDescription("user \"" + name + "\" does not exist (see 'mapcast user list')")
                    .asRuntimeException();
        }
        return user;
    }

    private static AuthRole existingRole(AuthState state, String name) {
        AuthRole role = state.roles.get(name);
        if (role == null) {
            throw Status.NOT_FOUND.withDescription("role \"" + name + "\" does not exist (see 'mapcast role list')")
                    .asRuntimeException();
        }
        return role;
    }

    private static AuthRole changeableRole(AuthState state, String name) {
        if (name.equals(AuthState.ROOT)) {
            throw Status.FAILED_PRECONDITION.withDescription("role \"root\" is built in: it has every right and"
                    + " cannot be changed or deleted").asRuntimeException();
        }
        return existingRole(state, name);
    }

    /** A user or role name: 1 to 128 characters, no control characters, no surrounding spaces. */
    static String checkName(String field, String name) {
        if (name.isEmpty() || name.length() > MAX_NAME_CHARS || !name.strip().equals(name)
                || name.chars().anyMatch(Character::isISOControl)) {
            throw invalid(field + ": \"" + name.replaceAll("\\p{Cntrl}", "?") + "\" (expected: 1 to " + MAX_NAME_CHARS
                    + " characters, no control characters, no leading or trailing spaces)");
        }
        return name;
    }

    private void checkPattern(String pattern) {
        int star = pattern.indexOf('*');
        if (pattern.isEmpty() || (star >= 0 && star != pattern.length() - 1)
                || pattern.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > maxPatternBytes) {
            throw invalid("permission.pattern: \"" + pattern + "\" (expected: a map name, or a name prefix ending"
                    + " in '*' such as \"app/prod/*\"; '*' only at the end; at most " + maxPatternBytes + " bytes)");
        }
        if (AuthStore.isReserved(pattern)) {
            throw invalid("permission.pattern: \"" + pattern + "\" names the server's reserved maps (\""
                    + AuthStore.RESERVED_PREFIX + "...\")");
        }
    }

    private static StatusRuntimeException invalid(String why) {
        return Status.INVALID_ARGUMENT.withDescription(why).asRuntimeException();
    }

    private static StatusRuntimeException alreadyExists(String why) {
        return Status.ALREADY_EXISTS.withDescription(why).asRuntimeException();
    }
}
