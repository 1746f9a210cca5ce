package dev.mapcast.client;

import dev.mapcast.client.Failover.Kind;
import dev.mapcast.codec.Codec;
import dev.mapcast.codec.EncodedMessages;
import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.codec.EncodedMethods;
import dev.mapcast.codec.SnapshotFileInfo;
import dev.mapcast.codec.SnapshotFileWriter;
import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.codec.MessageDecoder;
import dev.mapcast.codec.SnapshotStreamException;
import dev.mapcast.proto.v1.AddMemberRequest;
import dev.mapcast.proto.v1.AddRoleRequest;
import dev.mapcast.proto.v1.AddUserRequest;
import dev.mapcast.proto.v1.AuthRole;
import dev.mapcast.proto.v1.AuthToken;
import dev.mapcast.proto.v1.AuthUser;
import dev.mapcast.proto.v1.ClusterStatusRequest;
import dev.mapcast.proto.v1.ClusterStatusResponse;
import dev.mapcast.proto.v1.CompactRequest;
import dev.mapcast.proto.v1.CreateTokenRequest;
import dev.mapcast.proto.v1.CreateTokenResponse;
import dev.mapcast.proto.v1.DeleteRoleRequest;
import dev.mapcast.proto.v1.DeleteRoleResponse;
import dev.mapcast.proto.v1.DeleteUserRequest;
import dev.mapcast.proto.v1.DeleteUserResponse;
import dev.mapcast.proto.v1.GrantPermissionRequest;
import dev.mapcast.proto.v1.ListRolesRequest;
import dev.mapcast.proto.v1.ListTokensRequest;
import dev.mapcast.proto.v1.ListUsersRequest;
import dev.mapcast.proto.v1.MapcastAuthGrpc;
import dev.mapcast.proto.v1.MapcastClusterGrpc;
import dev.mapcast.proto.v1.RemoveMemberRequest;
import dev.mapcast.proto.v1.DeleteMapRequest;
import dev.mapcast.proto.v1.Compaction;
import dev.mapcast.proto.v1.GetRequest;
import dev.mapcast.proto.v1.GetResponse;
import dev.mapcast.proto.v1.ListMapsRequest;
import dev.mapcast.proto.v1.MapInfo;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.Permission;
import dev.mapcast.proto.v1.RevokePermissionRequest;
import dev.mapcast.proto.v1.RevokeTokenRequest;
import dev.mapcast.proto.v1.Right;
import dev.mapcast.proto.v1.UserRoleRequest;
import dev.mapcast.proto.v1.WhoAmIRequest;
import dev.mapcast.proto.v1.WhoAmIResponse;
import dev.mapcast.proto.v1.RestoreRequest;
import dev.mapcast.proto.v1.RestoreResponse;
import dev.mapcast.proto.v1.SnapshotRequest;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.proto.v1.WriteResponse;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A client of a mapcast server: writes, reads, and live replicas.
 *
 * <pre>{@code
 * try (MapcastClient client = MapcastClient.builder().target("127.0.0.1:50051").build()) {
 *     long revision = client.put("config", "region", "eu-west-1");
 *     try (Replica<String, String> config = client.replica("config", Codec.utf8(), Codec.utf8())) {
 *         config.awaitRevision(revision, Duration.ofSeconds(5));
 *         String region = config.get("region");
 *     }
 * }
 * }</pre>
 *
 * <p>Thread-safe; one client (one connection) is meant to be shared. Calls fail with a
 * {@link MapcastException} carrying the server's status; a replica reconnects by itself.
 *
 * <p>Writes, blocking or not, share one WriteStream (a mapcast addition to the contract), so a
 * write costs a message each way rather than a call; each keeps the builder's deadline. Writes in
 * flight together may apply in any order, as separate calls may: wait for a write's revision
 * before sending one that must come after it. Against a server without WriteStream the client
 * sends Write calls instead.
 *
 * <p><b>Clusters.</b> The target may list the members of a cluster, {@code "h1:p1,h2:p2,h3:p3"}:
 * the client holds one connection per member and sends calls to a current member. When a member
 * fails (UNAVAILABLE), it fails over to the next member, round the list, by these rules:
 * <ul>
 * <li>Reads ({@link #get}, {@link #listMaps}, the start of {@link #saveSnapshot}) are sent again to
 *     the next member, each member at most once per call, within the call's deadline.
 * <li>Writes ({@link WriteBatch#commit}, {@link #compact}, {@link #restoreSnapshot},
 *     {@link #deleteMap}) are sent again to the next member only when they certainly did not apply:
 *     the member answered UNAVAILABLE with the trailer
 *     {@link dev.mapcast.codec.ProtocolHeaders#NOT_APPLIED} (it refused the write before proposing
 *     it, say a member cut off from the majority), or the call never had a connection to the member
 *     (nothing of it was sent). Every other UNAVAILABLE write, say one in flight when its member
 *     died, has an unknown outcome: it may have applied, or may still apply. It fails with a
 *     {@link MapcastException} (UNAVAILABLE) that says so, and the next call goes to the next member.
 *     To retry it safely, make it conditional ({@link WriteBatch#ifRevision},
 *     {@link WriteBatch#ifModRevision}, {@link WriteBatch#ifAbsent}, or
 *     {@link #deleteMap(String, long)}) and send it again: if that fails with
 *     {@link ConditionFailedException}, read the map to see whether the first attempt applied.
 * <li>A {@link Replica} whose stream ends UNAVAILABLE reconnects to the next member and resumes
 *     after its revision: members share revisions, so no snapshot is needed.
 * </ul>
 * A single {@code host:port}, or a gRPC target with a scheme ({@code dns:///host:port}), is one
 * member, as before.
 *
 * <p><b>Authentication.</b> Against a server started with {@code --auth}, a client proves who it is
 * with a token ({@link Builder#token}, sent with every call, streams and failover included) or a
 * TLS client certificate whose CN is the user's name ({@link Builder#tls(Path, Path, Path)}). A call
 * without valid credentials fails with a {@link MapcastException} UNAUTHENTICATED, one the user may
 * not make with PERMISSION_DENIED; {@link MapcastException#description()} is the server's reason
 * (which token, which user, which map). A {@link Replica} whose stream is refused so keeps retrying
 * with backoff, as after any other failure, and logs the reason: a grant or a token may be on its
 * way (in a cluster a new token reaches each member a moment apart). Users, roles, rights and tokens
 * are managed with {@link #addUser}, {@link #addRole}, {@link #grantPermission}, {@link #createToken}
 * and the calls beside them: with the admin right (the built-in role "root") on a server with
 * {@code --auth}, by anyone on a server without it (so that they can be set up beforehand).
 */
public final class MapcastClient implements AutoCloseable {

    /** The default server address, as {@code mapcast serve} listens by default. */
    public static final String DEFAULT_TARGET = "127.0.0.1:50051";

    private final Members members;
    private final Failover failover;
    private final Duration deadline;
    private final Duration initialBackoff;
    private final Duration maxBackoff;
    private final ScheduledExecutorService timer;
    private final WriteStream writes;
    private final ExecutorService listenerPool;
    private final double replicaCompactionThreshold;

    private MapcastClient(Builder b) {
        this.members = b.channel != null ? Members.of(b.channel, b.token) : Members.connect(b.target,
                b.maxInboundMessageBytes, b.tls ? ClientTls.credentials(b.tlsCa, b.tlsCert, b.tlsKey) : null, b.token);
        this.deadline = b.deadline;
        this.failover = new Failover(members, b.deadline);
        this.initialBackoff = b.initialBackoff;
        this.maxBackoff = b.maxBackoff;
        this.replicaCompactionThreshold = b.replicaCompactionThreshold;
        ScheduledThreadPoolExecutor timer = new ScheduledThreadPoolExecutor(1, daemonThreads("mapcast-client-timer"));
        timer.setRemoveOnCancelPolicy(true);  // every write's deadline is a task, nearly always cancelled
        this.timer = timer;
        this.writes = new WriteStream(this, this::commitUnary, b.writeStreamIdleTimeout);
        this.listenerPool = Executors.newCachedThreadPool(daemonThreads("mapcast-client-listener"));
    }

    private static ThreadFactory daemonThreads(String prefix) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, prefix + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Starts a batch of puts, deletes and conditions for one map; see {@link WriteBatch}. */
    public WriteBatch write(String map) {
        return new WriteBatch(this, map);
    }

    /** Puts one key; returns the revision created. */
    public long put(String map, String key, byte[] value) {
        return write(map).put(key, value).commit();
    }

    /** Puts one key with a UTF-8 string value; returns the revision created. */
    public long put(String map, String key, String value) {
        return write(map).put(key, value).commit();
    }

    /** Deletes keys (absent ones are ignored) as one write; returns the revision created. */
    public long delete(String map, String... keys) {
        WriteBatch batch = write(map);
        for (String key : keys) {
            batch.delete(key);
        }
        return batch.commit();
    }

    /**
     * Deletes a map: its entries, history and files, durably. Its replicas report it to their
     * listeners ({@link ReplicaListener#onDeleted}) and wait for the map to be created again; a
     * later write that puts a key creates it anew (another incarnation, from revision 1).
     *
     * @return the revision the map had when it was deleted
     * @throws MapcastException NOT_FOUND if the map does not exist
     */
    public long deleteMap(String map) {
        return deleteMap(map, 0);
    }

    /**
     * {@link #deleteMap(String)} only while the map is at {@code expectedRevision} (0: any); else
     * {@link ConditionFailedException} and nothing is deleted.
     */
    public long deleteMap(String map, long expectedRevision) {
        if (expectedRevision < 0) {
            throw new IllegalArgumentException("expectedRevision: " + expectedRevision + " (expected: >= 0)");
        }
        return failover.blocking(MapcastGrpc.getDeleteMapMethod(), DeleteMapRequest.newBuilder()
                .setMap(Objects.requireNonNull(map, "map")).setExpectedRevision(expectedRevision).build(), Kind.WRITE)
                .getRevision();
    }

    /** Reads one key from the server (a replica reads locally). NOT_FOUND if the map does not exist. */
    public GetResult get(String map, String key) {
        GetResponse r = failover.blocking(MapcastGrpc.getGetMethod(),
                GetRequest.newBuilder().setMap(map).setKey(key).build(), Kind.READ);
        return new GetResult(r.getFound(), r.getValue().toByteArray(), r.getModRevision(), r.getRevision(),
                r.getIncarnation());
    }

    /** The server's maps with their revision, size and memory figures, by name. */
    public List<MapInfo> listMaps() {
        return failover.blocking(MapcastGrpc.getListMapsMethod(), ListMapsRequest.getDefaultInstance(), Kind.READ)
                .getMapsList();
    }

    /**
     * A cluster's members as each answers for itself (any member answers): role, term, commit and
     * applied index, and the leader. FAILED_PRECONDITION from a single server.
     */
    public ClusterStatusResponse clusterStatus() {
        return failover.blocking(MapcastClusterGrpc.getStatusMethod(), ClusterStatusRequest.getDefaultInstance(),
                Kind.READ);
    }

    /**
     * Adds a member to the cluster (one change at a time), then start it with {@code --join}; returns
     * once it has caught up and the change is committed.
     */
    public ClusterStatusResponse addMember(String id, String peerAddress) {
        return failover.blocking(MapcastClusterGrpc.getAddMemberMethod(), AddMemberRequest.newBuilder()
                .setId(Objects.requireNonNull(id, "id")).setPeerAddress(Objects.requireNonNull(peerAddress,
                        "peerAddress")).build(), Kind.WRITE);
    }

    /** Removes a member from the cluster (one change at a time). */
    public ClusterStatusResponse removeMember(String id) {
        return failover.blocking(MapcastClusterGrpc.getRemoveMemberMethod(), RemoveMemberRequest.newBuilder()
                .setId(Objects.requireNonNull(id, "id")).build(), Kind.WRITE);
    }

    // ---- users, roles and tokens (the MapcastAuth service) ----

    /**
     * Adds a user, with no role. ALREADY_EXISTS if there is one of that name; INVALID_ARGUMENT for a
     * name the server refuses.
     */
    public AuthUser addUser(String name) {
        return failover.blocking(MapcastAuthGrpc.getAddUserMethod(), AddUserRequest.newBuilder()
                .setName(Objects.requireNonNull(name, "name")).build(), Kind.WRITE);
    }

    /** Deletes a user and revokes its tokens; the answer counts them. NOT_FOUND for an unknown user. */
    public DeleteUserResponse deleteUser(String name) {
        return failover.blocking(MapcastAuthGrpc.getDeleteUserMethod(), DeleteUserRequest.newBuilder()
                .setName(Objects.requireNonNull(name, "name")).build(), Kind.WRITE);
    }

    /** Every user, with its roles. */
    public List<AuthUser> listUsers() {
        return failover.blocking(MapcastAuthGrpc.getListUsersMethod(), ListUsersRequest.getDefaultInstance(),
                Kind.READ).getUsersList();
    }

    /** Gives {@code user} the role {@code role}; the user as it is now. NOT_FOUND for either unknown. */
    public AuthUser grantRole(String user, String role) {
        return failover.blocking(MapcastAuthGrpc.getGrantRoleMethod(), userRole(user, role), Kind.WRITE);
    }

    /** Takes the role {@code role} from {@code user}; the user as it is now. */
    public AuthUser revokeRole(String user, String role) {
        return failover.blocking(MapcastAuthGrpc.getRevokeRoleMethod(), userRole(user, role), Kind.WRITE);
    }

    private static UserRoleRequest userRole(String user, String role) {
        return UserRoleRequest.newBuilder().setUser(Objects.requireNonNull(user, "user"))
                .setRole(Objects.requireNonNull(role, "role")).build();
    }

    /** Adds a role, with no right. ALREADY_EXISTS if there is one of that name. */
    public AuthRole addRole(String name) {
        return failover.blocking(MapcastAuthGrpc.getAddRoleMethod(), AddRoleRequest.newBuilder()
                .setName(Objects.requireNonNull(name, "name")).build(), Kind.WRITE);
    }

    /**
     * Deletes a role and takes it from every user that has it; the answer counts them.
     * FAILED_PRECONDITION (a {@link ConditionFailedException}) for the built-in role "root".
     */
    public DeleteRoleResponse deleteRole(String name) {
        return failover.blocking(MapcastAuthGrpc.getDeleteRoleMethod(), DeleteRoleRequest.newBuilder()
                .setName(Objects.requireNonNull(name, "name")).build(), Kind.WRITE);
    }

    /** Every role, with its rights ("root" among them, {@link AuthRole#getAdmin()} true). */
    public List<AuthRole> listRoles() {
        return failover.blocking(MapcastAuthGrpc.getListRolesMethod(), ListRolesRequest.getDefaultInstance(),
                Kind.READ).getRolesList();
    }

    /**
     * Gives {@code role} the right {@code right} on the maps {@code pattern} names: a map name, or a
     * prefix ending in {@code *} ({@code "app/prod/*"}; {@code "*"} is every map). Replaces the right
     * the role had on that same pattern; the role as it is now. INVALID_ARGUMENT for a pattern the
     * server refuses.
     */
    public AuthRole grantPermission(String role, Right right, String pattern) {
        Objects.requireNonNull(right, "right");
        if (right == Right.RIGHT_UNSPECIFIED || right == Right.UNRECOGNIZED) {
            throw new IllegalArgumentException("right: " + right + " (expected: RIGHT_READ, RIGHT_WRITE or"
                    + " RIGHT_READWRITE)");
        }
        return failover.blocking(MapcastAuthGrpc.getGrantPermissionMethod(), GrantPermissionRequest.newBuilder()
                .setRole(Objects.requireNonNull(role, "role")).setPermission(Permission.newBuilder()
                        .setPattern(Objects.requireNonNull(pattern, "pattern")).setRight(right)).build(), Kind.WRITE);
    }

    /** Takes from {@code role} its right on {@code pattern} (as granted); the role as it is now. */
    public AuthRole revokePermission(String role, String pattern) {
        return failover.blocking(MapcastAuthGrpc.getRevokePermissionMethod(), RevokePermissionRequest.newBuilder()
                .setRole(Objects.requireNonNull(role, "role")).setPattern(Objects.requireNonNull(pattern, "pattern"))
                .build(), Kind.WRITE);
    }

    /**
     * Creates a token for {@code user}, valid for {@code ttl} (rounded up to whole seconds; null: it
     * never expires). The answer holds its secret, for {@link Builder#token}: the only time it is
     * shown (the server keeps a salted hash of it).
     *
     * @throws IllegalArgumentException if {@code ttl} is not positive
     */
    public CreateTokenResponse createToken(String user, Duration ttl) {
        long seconds = 0;
        if (ttl != null) {
            if (ttl.isNegative() || ttl.isZero()) {
                throw new IllegalArgumentException("ttl: " + ttl + " (expected: positive, or null for a token that"
                        + " never expires)");
            }
            seconds = ttl.getSeconds() + (ttl.getNano() > 0 ? 1 : 0);
        }
        return failover.blocking(MapcastAuthGrpc.getCreateTokenMethod(), CreateTokenRequest.newBuilder()
                .setUser(Objects.requireNonNull(user, "user")).setTtlSeconds(seconds).build(), Kind.WRITE);
    }

    /** Revokes the token {@code id} (its id, not its secret); the token revoked. NOT_FOUND for an unknown id. */
    public AuthToken revokeToken(String id) {
        return failover.blocking(MapcastAuthGrpc.getRevokeTokenMethod(), RevokeTokenRequest.newBuilder()
                .setId(Objects.requireNonNull(id, "id")).build(), Kind.WRITE).getToken();
    }

    /** The tokens of {@code user} ({@code ""}: every user's), without their secrets. */
    public List<AuthToken> listTokens(String user) {
        return failover.blocking(MapcastAuthGrpc.getListTokensMethod(), ListTokensRequest.newBuilder()
                .setUser(Objects.requireNonNull(user, "user")).build(), Kind.READ).getTokensList();
    }

    /**
     * Who the server takes this client to be: the user, whether by token or certificate, the token's
     * id, the roles. Open to any caller; {@code auth_enabled} false from a server without {@code --auth}.
     */
    public WhoAmIResponse whoAmI() {
        return failover.blocking(MapcastAuthGrpc.getWhoAmIMethod(), WhoAmIRequest.getDefaultInstance(), Kind.READ);
    }

    /** Compacts a map through {@code revision} (0: its current revision); its watchers are told. */
    public Compaction compact(String map, long revision) {
        return failover.blocking(MapcastGrpc.getCompactMethod(),
                CompactRequest.newBuilder().setMap(map).setRevision(revision).build(), Kind.WRITE).getCompaction();
    }

    /**
     * Saves a map's snapshot from the server to a snapshot file, streaming: the server's chunks are
     * written as they arrive, one at a time (constant memory whatever the map's size), and verified
     * (see {@link SnapshotFileWriter}); the file appears under its name only once complete, forced
     * to disk. For an INSERTION-order map, the file is byte for byte what
     * {@link dev.mapcast.codec.SnapshotFiles#write} makes of the server's map.
     *
     * @throws MapcastException NOT_FOUND for an unknown map; DEADLINE_EXCEEDED when no chunk comes
     *     within the client's deadline (which bounds the wait for each chunk, not the whole save)
     * @throws SnapshotStreamException if the server's chunks fail verification; nothing is written
     * @throws IOException if the file cannot be written; nothing is written
     */
    public SnapshotFileInfo saveSnapshot(String map, Path file, SnapshotProgress progress) throws IOException {
        Objects.requireNonNull(map, "map");
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(progress, "progress");
        // Each message is asked for once the previous one is written: at most one chunk is held.
        BlockingQueue<Object> received = new LinkedBlockingQueue<>();  // Encoded chunks, then Ended
        long firstChunkBy = System.nanoTime() + deadline.toNanos();
        int member = members.current();
        int tries = 1;
        ClientCall<SnapshotRequest, Encoded> call = startSnapshot(member, map, received);
        boolean done = false;
        try (SnapshotFileWriter writer = new SnapshotFileWriter(file)) {
            while (true) {
                Object next = received.poll(deadline.toNanos(), TimeUnit.NANOSECONDS);
                if (next == null) {
                    throw new MapcastException(Status.DEADLINE_EXCEEDED.withDescription("no snapshot chunk of map \""
                            + map + "\" within " + deadline.toMillis() + " ms"), null);
                }
                if (next instanceof Ended ended) {
                    Status status = ended.status();
                    if (status.getCode() == Status.Code.UNAVAILABLE) {
                        members.failed(member);
                        // Nothing written yet: the snapshot can start again on the next member.
                        if (writer.bytes() == 0 && tries < members.size() && System.nanoTime() < firstChunkBy) {
                            member = (member + 1) % members.size();
                            tries++;
                            call = startSnapshot(member, map, received);
                            continue;
                        }
                    }
                    done = true;
                    if (!status.isOk()) {
                        throw MapcastException.of(status.asRuntimeException());
                    }
                    return writer.finish();
                }
                try (EncodedMessages.Received chunk = ((Encoded) next).received()) {
                    writer.append(chunk.bytes());
                }
                progress.onChunk(writer.entries(), writer.announcedEntries(), writer.bytes());
                call.request(1);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while saving a snapshot of map \"" + map + "\"");
        } finally {
            if (!done) {
                call.cancel("the snapshot is not being saved any more", null);
                // Buffers of chunks received meanwhile go back to gRPC.
                for (Object left : received) {
                    if (left instanceof Encoded message) {
                        message.received().close();
                    }
                }
            }
        }
    }

    /** How a call ended, as its listener puts it in a queue of answers. */
    private record Ended(Status status, Metadata trailers) {
    }

    /** Starts a Snapshot call on {@code member}; its chunks, then how it ended, go to {@code received}. */
    private ClientCall<SnapshotRequest, Encoded> startSnapshot(int member, String map, BlockingQueue<Object> received) {
        ClientCall<SnapshotRequest, Encoded> call = members.newCall(member, EncodedMethods.snapshot(),
                CallOptions.DEFAULT);
        call.start(new ClientCall.Listener<>() {
            @Override
            public void onMessage(Encoded message) {
                received.add(message);
            }

            @Override
            public void onClose(Status status, Metadata trailers) {
                received.add(new Ended(status, trailers));
            }
        }, new Metadata());
        call.sendMessage(SnapshotRequest.newBuilder().setMap(map).build());
        call.halfClose();
        call.request(1);
        return call;
    }

    /** {@link #saveSnapshot(String, Path, SnapshotProgress)} without progress. */
    public SnapshotFileInfo saveSnapshot(String map, Path file) throws IOException {
        return saveSnapshot(map, file, (entries, totalEntries, bytes) -> { });
    }

    /** What a restore did: the revision it created and the entries the map now holds. */
    public record Restored(long revision, long entries) {
    }

    /**
     * Replaces the whole content of {@code map} (created if absent) with a snapshot file's, as one
     * new revision; watchers of the map are moved to it. The file is streamed (memory bounded by
     * one chunk) and verified as it goes; if it turns out bad, or anything fails, the call is
     * cancelled and the server changes nothing. The server checks every chunk again.
     *
     * @throws java.io.IOException if the file cannot be read or is not a valid snapshot file
     *     ({@link dev.mapcast.codec.SnapshotFileException}, naming the byte)
     * @throws MapcastException if the server refuses it (order mismatch, limits) or cannot be reached
     */
    public Restored restoreSnapshot(String map, Path file, SnapshotProgress progress) throws IOException {
        Objects.requireNonNull(map, "map");
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(progress, "progress");
        int member = members.current();
        for (int tries = 1; ; tries++) {
            Restored restored = restoreOn(member, map, file, progress, tries == members.size());
            if (restored != null) {
                return restored;
            }
            member = (member + 1) % members.size();  // refused before it applied: the file again, to the next one
        }
    }

    /**
     * One restore call to {@code member}; null if that member refused it in a way that certainly
     * left the map unchanged (see {@link Failover#mayRetry}) and {@code lastTry} is false.
     */
    private Restored restoreOn(int member, String map, Path file, SnapshotProgress progress, boolean lastTry)
            throws IOException {
        BlockingQueue<Object> answers = new LinkedBlockingQueue<>();  // the RestoreResponse, then Ended
        Object ready = new Object();
        ClientCall<RestoreRequest, RestoreResponse> call = members.newCall(member,
                MapcastGrpc.getRestoreMethod(), CallOptions.DEFAULT);
        boolean done = false;
        try {
            call.start(new ClientCall.Listener<>() {
                @Override
                public void onMessage(RestoreResponse message) {
                    answers.add(message);
                }

                @Override
                public void onReady() {
                    synchronized (ready) {
                        ready.notifyAll();
                    }
                }

                @Override
                public void onClose(Status status, Metadata trailers) {
                    answers.add(new Ended(status, trailers));
                    onReady();
                }
            }, new Metadata());
            call.request(1);
            long[] sent = new long[3];  // entries, total entries, bytes
            SnapshotFiles.inspect(file, null, chunk -> {
                MessageDecoder.ChunkFields fields = MessageDecoder.peekSnapshotChunk(chunk.duplicate());
                sent[0] += fields.entries();
                sent[1] = fields.totalEntries();
                sent[2] += chunk.remaining();
                awaitReady(call, ready, answers, map);
                call.sendMessage(RestoreRequest.newBuilder().setMap(map)
                        .setSnapshotChunk(com.google.protobuf.ByteString.copyFrom(chunk)).build());
                progress.onChunk(sent[0], sent[1], sent[2]);
            });
            call.halfClose();
            RestoreResponse response = null;
            while (true) {
                // Past the last chunk the server swaps the map in and writes it to disk: more than one round trip.
                Object next = answers.poll(Math.max(deadline.toNanos(), TimeUnit.MINUTES.toNanos(1)),
                        TimeUnit.NANOSECONDS);
                if (next == null) {
                    throw new MapcastException(Status.DEADLINE_EXCEEDED.withDescription("no answer to the restore of"
                            + " map \"" + map + "\" within " + Math.max(deadline.toSeconds(), 60) + " s"), null);
                }
                if (next instanceof RestoreResponse r) {
                    response = r;
                } else {
                    done = true;
                    Ended ended = (Ended) next;
                    Status status = ended.status();
                    if (status.isOk()) {
                        return new Restored(response.getRevision(), response.getEntries());
                    }
                    if (status.getCode() != Status.Code.UNAVAILABLE) {
                        throw MapcastException.of(status.asRuntimeException());
                    }
                    members.failed(member);
                    if (!Failover.mayRetry(Kind.WRITE, status, ended.trailers(), call)) {
                        throw MapcastException.outcomeUnknown(status, members.target(member), null);
                    }
                    if (lastTry) {
                        throw MapcastException.of(status.asRuntimeException());
                    }
                    return null;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while restoring map \"" + map + "\"");
        } finally {
            if (!done) {
                call.cancel("the restore did not complete on this side", null);
            }
        }
    }

    /** {@link #restoreSnapshot(String, Path, SnapshotProgress)} without progress. */
    public Restored restoreSnapshot(String map, Path file) throws IOException {
        return restoreSnapshot(map, file, (entries, totalEntries, bytes) -> { });
    }

    /** Waits until the call can take another message without buffering (or has ended, which sending then reports). */
    private void awaitReady(ClientCall<?, ?> call, Object ready, BlockingQueue<Object> answers, String map) {
        long deadlineAt = System.nanoTime() + deadline.toNanos();
        synchronized (ready) {
            while (!call.isReady() && answers.stream().noneMatch(a -> a instanceof Ended)) {
                long left = deadlineAt - System.nanoTime();
                if (left <= 0) {
                    throw new MapcastException(Status.DEADLINE_EXCEEDED.withDescription("the server took no more of"
                            + " the restore of map \"" + map + "\" for " + deadline.toMillis() + " ms"), null);
                }
                try {
                    ready.wait(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new MapcastException(Status.CANCELLED.withDescription("interrupted"), e);
                }
            }
        }
    }

    /**
     * A live local copy of a map, kept in sync in the background: it starts with a snapshot, then
     * follows every change; see {@link Replica}. Close it to stop following and free its memory.
     */
    public <K, V> Replica<K, V> replica(String map, Codec<K> keys, Codec<V> values) {
        return replica(map, keys, values, null);
    }

    /** A replica with a listener registered before the first snapshot, so it misses nothing. */
    public <K, V> Replica<K, V> replica(String map, Codec<K> keys, Codec<V> values, ReplicaListener<K, V> listener) {
        Replica<K, V> replica = newReplica(map, keys, values, listener);
        replica.start();
        return replica;
    }

    private <K, V> Replica<K, V> newReplica(String map, Codec<K> keys, Codec<V> values,
            ReplicaListener<K, V> listener) {
        Replica<K, V> replica = new Replica<>(this, Objects.requireNonNull(map, "map"),
                Objects.requireNonNull(keys, "keys"), Objects.requireNonNull(values, "values"));
        if (listener != null) {
            replica.addListener(listener);
        }
        return replica;
    }

    /**
     * A replica that starts from a snapshot file (one {@link Replica#writeSnapshot} or
     * {@code mapcast snapshot save} wrote) and then resumes from the file's revision: only the
     * changes since then come over the network, when the server still has them (otherwise it sends
     * a snapshot, as for any replica that fell behind). The file is verified whole first.
     *
     * @throws java.io.IOException if the file cannot be read or is not a valid snapshot file (the
     *     message names the byte); nothing is started
     * @throws IllegalArgumentException if the file holds another map
     */
    public <K, V> Replica<K, V> replica(String map, Codec<K> keys, Codec<V> values, ReplicaListener<K, V> listener,
            Path warmStartFile) throws java.io.IOException {
        Replica<K, V> replica = newReplica(map, keys, values, listener);
        try {
            replica.warmStart(Objects.requireNonNull(warmStartFile, "warmStartFile"));
        } catch (java.io.IOException | RuntimeException e) {
            replica.close();
            throw e;
        }
        replica.start();
        return replica;
    }

    @Override
    public void close() {
        writes.close();
        timer.shutdownNow();
        listenerPool.shutdown();
        members.close();
    }

    /** Waits for {@link #commitAsync}; a failure is thrown from the calling thread, its cause the original. */
    long commit(WriteRequest request) {
        try {
            return commitAsync(request).get();
        } catch (ExecutionException e) {
            MapcastException failure = (MapcastException) e.getCause();
            throw MapcastException.of(failure.status(), failure);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MapcastException(Status.CANCELLED.withDescription(
                    "interrupted while waiting for the write to map \"" + request.getMap() + "\"; it may still apply"), e);
        }
    }

    /** Sends a write on the client's write stream (see {@link WriteStream}). */
    CompletableFuture<Long> commitAsync(WriteRequest request) {
        return writes.send(request);
    }

    /** Whether the write stream is open: tests wait for the end of one a server stopping ended. */
    boolean writeStreamOpen() {
        return writes.isOpen();
    }

    /** A write as a Write call: for servers without WriteStream. Completes on the network thread (see commitAsync's doc). */
    private CompletableFuture<Long> commitUnary(WriteRequest request) {
        return failover.async(MapcastGrpc.getWriteMethod(), request, Kind.WRITE).thenApply(WriteResponse::getRevision);
    }

    Members members() {
        return members;
    }

    ScheduledExecutorService timer() {
        return timer;
    }

    /** How long a call may take (the builder's deadline). */
    Duration deadline() {
        return deadline;
    }

    /** Where replicas run their listeners (each replica in order, through its own sequential executor). */
    Executor listenerPool() {
        return listenerPool;
    }

    Duration initialBackoff() {
        return initialBackoff;
    }

    Duration maxBackoff() {
        return maxBackoff;
    }

    double replicaCompactionThreshold() {
        return replicaCompactionThreshold;
    }

    /** Settings for a client; every one has a default. */
    public static final class Builder {
        private String target = DEFAULT_TARGET;
        private ManagedChannel channel;
        private Duration deadline = Duration.ofSeconds(10);
        private Duration initialBackoff = Duration.ofMillis(100);
        private Duration maxBackoff = Duration.ofSeconds(5);
        private int maxInboundMessageBytes = 128 * 1024 * 1024;
        private double replicaCompactionThreshold = 0.8;
        private Duration writeStreamIdleTimeout = Duration.ofSeconds(30);
        private boolean tls;
        private Path tlsCa;
        private Path tlsCert;
        private Path tlsKey;
        private BearerToken token;

        private Builder() {
        }

        /**
         * The server, as {@code host:port} or any gRPC target (default 127.0.0.1:50051); or the
         * members of a cluster as a comma-separated list, {@code "h1:p1,h2:p2,h3:p3"} (see the
         * class comment for failover).
         */
        public Builder target(String target) {
            this.target = Objects.requireNonNull(target, "target");
            return this;
        }

        /**
         * Connects over TLS, checking the server's certificate against the CA certificates in
         * {@code caFile} (PEM; null: the JVM's trusted CAs). The certificate must name the host
         * dialled (a DNS name, or an IP address as an IP subject alternative name).
         */
        public Builder tls(Path caFile) {
            this.tls = true;
            this.tlsCa = caFile;
            return this;
        }

        /**
         * Connects over TLS as {@link #tls(Path)}, presenting a client certificate: its chain
         * ({@code certFile}, PEM, this client's first) and its private key ({@code keyFile}, PEM,
         * unencrypted PKCS#8), for servers that require one ({@code --tls-client-ca}).
         */
        public Builder tls(Path caFile, Path certFile, Path keyFile) {
            tls(caFile);
            this.tlsCert = Objects.requireNonNull(certFile, "certFile");
            this.tlsKey = Objects.requireNonNull(keyFile, "keyFile");
            return this;
        }

        /**
         * Sends {@code token}, a token's secret ({@link #createToken}, {@code mapcast token create}),
         * with every call as the metadata {@code authorization: Bearer <token>}: unary calls, the
         * write stream, replicas' streams, snapshots and restores, on every member of a cluster.
         *
         * <p>It is sent over plaintext connections too (a server on loopback, or behind a proxy
         * that terminates TLS), where anyone on the network path can read it and call as its user
         * until it is revoked: across a network, use {@link #tls(Path)}.
         *
         * @throws IllegalArgumentException if it is null, blank, or holds a character a header
         *     cannot carry (the message never shows the token)
         */
        public Builder token(String token) {
            this.token = BearerToken.of(token);
            return this;
        }

        /** A channel of your own (TLS, interceptors...), which close() leaves open. */
        public Builder channel(ManagedChannel channel) {
            this.channel = Objects.requireNonNull(channel, "channel");
            return this;
        }

        /** Deadline of each unary call and of each write (default 10 s). */
        public Builder deadline(Duration deadline) {
            this.deadline = positive("deadline", deadline);
            return this;
        }

        /** Reconnection backoff of replicas: first wait and cap, doubled with jitter (default 100 ms, 5 s). */
        public Builder reconnectBackoff(Duration initial, Duration max) {
            this.initialBackoff = positive("initial backoff", initial);
            this.maxBackoff = positive("max backoff", max);
            if (max.compareTo(initial) < 0) {
                throw new IllegalArgumentException("max backoff: " + max + " (expected: at least the initial " + initial + ")");
            }
            return this;
        }

        /** Largest message accepted from the server (default 128 MiB: a snapshot chunk holds at least one entry). */
        public Builder maxInboundMessageBytes(int bytes) {
            if (bytes < 1024) {
                throw new IllegalArgumentException("maxInboundMessageBytes: " + bytes + " (expected: >= 1024)");
            }
            this.maxInboundMessageBytes = bytes;
            return this;
        }

        /**
         * The dead fraction of a segment of a replica's map at which it is compacted (default 0.8; the
         * map's own default is 0.5). A replica applies every change the server makes, so it trades
         * memory held by overwritten records for less copying: at 0.8 a segment is compacted once it
         * is 80% dead, moving at most a fifth of it, rather than half. The replication benchmark runs
         * several times faster with it when 50 replicas share one machine.
         */
        public Builder replicaCompactionThreshold(double deadFraction) {
            if (!(deadFraction > 0 && deadFraction <= 1)) {
                throw new IllegalArgumentException("replicaCompactionThreshold: " + deadFraction
                        + " (expected: > 0 and <= 1)");
            }
            this.replicaCompactionThreshold = deadFraction;
            return this;
        }

        /**
         * How long the write stream stays open with no write in flight (default 30 s). Then it is
         * closed, so that a client that wrote once does not hold its connection open for good (a
         * channel with an open call never idles); the next write opens a new one.
         */
        public Builder writeStreamIdleTimeout(Duration idle) {
            this.writeStreamIdleTimeout = positive("writeStreamIdleTimeout", idle);
            return this;
        }

        public MapcastClient build() {
            return new MapcastClient(this);
        }

        private static Duration positive(String name, Duration d) {
            Objects.requireNonNull(d, name);
            if (d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException(name + ": " + d + " (expected: positive)");
            }
            return d;
        }
    }
}
