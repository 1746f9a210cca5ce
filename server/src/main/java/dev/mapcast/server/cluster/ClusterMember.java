package dev.mapcast.server.cluster;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.mapcast.proto.cluster.v1.MemberStatusAnswer;
import dev.mapcast.proto.cluster.v1.MemberStatusQuery;
import dev.mapcast.proto.cluster.v1.Query;
import dev.mapcast.proto.v1.ClusterMemberStatus;
import dev.mapcast.proto.v1.ClusterStatusResponse;
import dev.mapcast.server.map.ChangeOrder;
import dev.mapcast.server.map.Limits;
import dev.mapcast.server.map.MapRegistry;
import dev.mapcast.server.security.ReloadingTls;
import dev.mapcast.server.storage.DataDirectoryLock;
import dev.mapcast.server.storage.Storage;
import dev.mapcast.server.storage.StorageException;
import io.grpc.Status;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.apache.ratis.client.RaftClient;
import org.apache.ratis.client.RaftClientConfigKeys;
import org.apache.ratis.client.retry.RequestTypeDependentRetryPolicy;
import org.apache.ratis.conf.Parameters;
import org.apache.ratis.conf.RaftProperties;
import org.apache.ratis.grpc.GrpcConfigKeys;
import org.apache.ratis.grpc.GrpcTlsConfig;
import org.apache.ratis.proto.RaftProtos.RaftClientRequestProto;
import org.apache.ratis.protocol.ClientId;
import org.apache.ratis.protocol.GroupListReply;
import org.apache.ratis.protocol.Message;
import org.apache.ratis.protocol.RaftClientReply;
import org.apache.ratis.protocol.RaftClientRequest;
import org.apache.ratis.protocol.RaftGroup;
import org.apache.ratis.protocol.RaftGroupId;
import org.apache.ratis.protocol.RaftPeer;
import org.apache.ratis.protocol.RaftPeerId;
import org.apache.ratis.protocol.exceptions.LeaderNotReadyException;
import org.apache.ratis.protocol.exceptions.ReconfigurationInProgressException;
import org.apache.ratis.retry.RetryPolicies;
import org.apache.ratis.retry.RetryPolicy;
import org.apache.ratis.server.DivisionInfo;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.RaftServerConfigKeys;
import org.apache.ratis.server.storage.RaftStorage;
import org.apache.ratis.thirdparty.com.google.protobuf.UnsafeByteOperations;
import org.apache.ratis.util.SizeInBytes;
import org.apache.ratis.util.TimeDuration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * This server as a member of a Raft group (Apache Ratis over its own gRPC, on the member's peer
 * address): starts and stops the Raft server, proposes changes (directly when it leads, else
 * through a Raft client that follows the leader), answers for the cluster's status, and changes
 * its membership.
 *
 * <p>Its data directory holds {@code cluster.member} (its id, the group id, the members as it last
 * knew them) and {@code raft/} (Ratis's log and the state machine's snapshots). A directory of
 * another member or another cluster is refused at start, as is a single server's.
 *
 * <p>Ratis settings, and why: reads are LINEARIZABLE (ReadIndex), so any member answers them; a
 * write is acknowledged once a majority has fsync'd it (unsafe and async flush off, set
 * explicitly); the log is purged up to each snapshot; election timeouts 300-600 ms by default
 * (shorter ones caused spurious elections on a busy 2-core machine).
 */
public final class ClusterMember implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(ClusterMember.class);
    static final String RAFT_DIR = "raft";
    /** Room for the largest log entry (a restore, or packed writes) in one gRPC message. */
    static final int MAX_ENTRY_BYTES = 16 << 20;
    private static final SizeInBytes MAX_ENTRY = SizeInBytes.valueOf(MAX_ENTRY_BYTES);
    /** How long a joining member waits for a member of --cluster to tell it the group. */
    private static final Duration JOIN_WAIT = Duration.ofSeconds(60);
    /** How long a forwarded entry is tried again around an election (see {@link #forwardRetry}). */
    private static final Duration FORWARD_RETRY = Duration.ofSeconds(10);
    /** How often a follower replaces its channels to its peers (see {@link #refreshVoteChannels}). */
    private static final long CHANNEL_REFRESH_MILLIS = 500;
    private static final IOException CHANNEL_REFRESH = new IOException("refresh: channels to peers are replaced"
            + " while a leader is known");
    private static final String COMMON_POOL_PARALLELISM = "java.util.concurrent.ForkJoinPool.common.parallelism";

    static {
        // Ratis runs its steps through CompletableFuture's *Async methods on the common pool. With
        // fewer than 2 threads there (the JDK's default on a 2-core machine) the JDK starts a new
        // thread for every such step instead: 12% of a follower's CPU, measured (BENCHMARKS.md).
        // Effective only if nothing used the pool before; the JVM option always is.
        if (System.getProperty(COMMON_POOL_PARALLELISM) == null && Runtime.getRuntime().availableProcessors() <= 2) {
            System.setProperty(COMMON_POOL_PARALLELISM, "2");
        }
    }

    private final ClusterConfig config;
    private final Path dataDir;
    private final DataDirectoryLock lock;
    private final RaftGroupId groupId;
    private final RaftPeerId selfId;
    private final RaftServer server;
    private final MapStateMachine stateMachine;
    /** Forwards to the leader and retries around elections (up to about 10 s). */
    private final RaftClient client;
    private final ClientId directClientId = ClientId.randomId();
    private final AtomicLong directCallId = new AtomicLong();
    private final RaftOrder order;
    /** Whether it started from its own Raft log (a restart) rather than as a new member. */
    private final boolean recovered;
    /** Runs forwarded proposals (at most RaftOrder.MAX_IN_FLIGHT at once, and the membership changes). */
    private final ExecutorService forwarding = Executors.newCachedThreadPool(
            r -> {
                Thread t = new Thread(r, "mapcast-cluster-forward");
                t.setDaemon(true);
                return t;
            });
    private final MemberFile memberFile;
    /** The peer transport's TLS, for the Raft server and every Raft client (empty: plaintext). */
    private final Parameters peerParameters;
    /** Runs {@link #refreshVoteChannels} (see there). */
    private final ScheduledExecutorService channelRefresh = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "mapcast-cluster-channels");
        t.setDaemon(true);
        return t;
    });

    private ClusterMember(ClusterConfig config, Path dataDir, Supplier<String> clientAddress, MapRegistry maps, Limits limits,
            int chunkBytes, Executor background, ReloadingTls tls) throws IOException {
        this.config = config;
        this.peerParameters = peerParameters(tls);
        this.dataDir = dataDir.toAbsolutePath();
        Files.createDirectories(this.dataDir);
        this.lock = DataDirectoryLock.take(this.dataDir, "another mapcast server");
        boolean started = false;
        try {
            if (Files.exists(this.dataDir.resolve("maps")) || Files.exists(this.dataDir.resolve("catalog"))) {
                throw new StorageException("data directory " + this.dataDir + " holds a single server's maps; a"
                        + " cluster member starts from its own, empty, data directory (to bring maps into a cluster:"
                        + " 'mapcast snapshot save' from the single server, 'mapcast snapshot restore' to the cluster)");
            }
            checkPeerPortFree(config);
            this.memberFile = new MemberFile(this.dataDir.resolve(Storage.CLUSTER_MEMBER_FILE));
            this.selfId = RaftPeerId.valueOf(config.nodeId());
            this.groupId = RaftGroupId.valueOf(memberFile.check(config,
                    () -> discoverGroup(config, JOIN_WAIT, peerParameters)));
            Path raftDir = this.dataDir.resolve(RAFT_DIR);
            boolean existing = Files.isDirectory(raftDir.resolve(groupId.getUuid().toString()));
            this.recovered = existing;
            RaftGroup group = config.join() && !existing ? RaftGroup.valueOf(groupId) : RaftGroup.valueOf(groupId, peers(config.members()));
            RaftProperties properties = properties(config, raftDir);
            this.stateMachine = new MapStateMachine(maps, limits, chunkBytes, background, clientAddress,
                    memberFile::membersChanged);
            this.server = RaftServer.newBuilder()
                    .setServerId(selfId)
                    .setParameters(peerParameters)
                    .setGroup(group)
                    .setProperties(properties)
                    .setStateMachine(stateMachine)
                    // A restarted member recovers its log; a new one formats (Ratis's default would
                    // refuse an existing directory and linger half-started).
                    .setOption(existing ? RaftStorage.StartupOption.RECOVER : RaftStorage.StartupOption.FORMAT)
                    .build();
            RaftGroup clientGroup = RaftGroup.valueOf(groupId, peers(config.members()));
            this.client = raftClient()
                    .setRaftGroup(clientGroup)
                    .setRetryPolicy(forwardRetry())
                    .build();
            this.order = new RaftOrder(this, limits);
            try {
                server.start();
            } catch (IOException | RuntimeException e) {
                Throwable root = e;
                while (root.getCause() != null) {
                    root = root.getCause();
                }
                String why = root instanceof BindException ? root.getMessage() + " (is member " + config.nodeId()
                        + " already running?)" : root.toString();
                throw new StorageException("cluster member " + config.nodeId() + " cannot start on peer address "
                        + config.peerAddress() + ": " + why, e);
            }
            started = true;
            channelRefresh.scheduleWithFixedDelay(this::refreshVoteChannels, CHANNEL_REFRESH_MILLIS,
                    CHANNEL_REFRESH_MILLIS, TimeUnit.MILLISECONDS);
            if (ForkJoinPool.getCommonPoolParallelism() < 2) {
                log.warn("the JVM's common pool has {} thread(s): Ratis will start a thread for each of its"
                        + " asynchronous steps; start the JVM with -D{}=2", ForkJoinPool.getCommonPoolParallelism(),
                        COMMON_POOL_PARALLELISM);
            }
            log.info("cluster member {} started on peer address {} (group {}, {}; members {})", config.nodeId(),
                    config.peerAddress(), groupId.getUuid(), existing ? "recovered from " + raftDir : "new",
                    ClusterConfig.format(config.members()));
        } finally {
            if (!started) {
                lock.close();
            }
        }
    }

    /**
     * Refuses a peer address this process cannot listen on (another member, or this one started
     * twice, holds it) before anything is written: Ratis would end the JVM itself (System.exit, with
     * a stack trace) when its gRPC server cannot bind.
     */
    private static void checkPeerPortFree(ClusterConfig config) throws BindException {
        String address = config.peerAddress();
        int colon = address.lastIndexOf(':');
        try (ServerSocket probe = new ServerSocket()) {
            probe.bind(new InetSocketAddress(address.substring(0, colon), Integer.parseInt(address.substring(colon + 1))));
        } catch (IOException e) {
            BindException refused = new BindException("cluster member " + config.nodeId() + " cannot listen on peer"
                    + " address " + address + ": " + e.getMessage() + " (is member " + config.nodeId() + " already"
                    + " running?)");
            refused.initCause(e);
            throw refused;
        }
    }

    /**
     * Starts this member: checks its data directory against {@code config}, starts the Raft server
     * and, unless it joins, checks that the members it can reach form the same group.
     *
     * @throws StorageException naming the problem, for a data directory or a --cluster list that
     *     does not belong to this member, or a peer address it cannot listen on
     */
    public static ClusterMember start(ClusterConfig config, Path dataDir, Supplier<String> clientAddress, MapRegistry maps,
            Limits limits, int chunkBytes, Executor background, ReloadingTls tls) throws IOException {
        ClusterMember member = new ClusterMember(config, dataDir, clientAddress, maps, limits, chunkBytes, background,
                tls);
        try {
            if (!member.recovered) {  // a restarted member's group is the one in its data directory
                member.checkPeersAgree();
            }
        } catch (IOException | RuntimeException e) {
            member.close();
            throw e;
        }
        return member;
    }

    /** The order of changes this member gives the RPC layer. */
    public ChangeOrder order() {
        return order;
    }

    public String nodeId() {
        return config.nodeId();
    }

    Path tmpDir() {
        return dataDir.resolve(RAFT_DIR).resolve("tmp");
    }

    private RaftServer.Division division() {
        try {
            return server.getDivision(groupId);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Gives a follower fresh channels to the other followers while a leader is known. It sends them
     * nothing but votes, and a channel that once failed to connect (the peer was down) stays in
     * gRPC's reconnect backoff, doubling up to 2 minutes, after the peer is back: the next election
     * then failed at once on that channel ("UNAVAILABLE: io exception" to a live member) until the
     * backoff ran out, seconds after the leader died (BENCHMARKS.md, "A restarted member held
     * back"). Ratis resets a channel only on a leader's append errors. A reset channel connects only
     * when next used, so this costs nothing while a leader lives. The channel to the leader is left
     * alone: a follower's linearizable reads ask the leader on it. In an election (no leader known)
     * nothing is touched.
     */
    private void refreshVoteChannels() {
        try {
            RaftServer.Division d = division();
            DivisionInfo info = d.getInfo();
            if (!info.isFollower() || info.getLeaderId() == null) {
                return;
            }
            for (RaftPeer peer : d.getRaftConf().getCurrentPeers()) {
                if (!peer.getId().equals(selfId) && !peer.getId().equals(info.getLeaderId())) {
                    server.getServerRpc().handleException(peer.getId(), CHANNEL_REFRESH, true);
                }
            }
        } catch (RuntimeException e) {
            log.debug("refreshing the channels to the other members", e);
        }
    }

    /**
     * Why this member cannot take writes now, or null if it can: it must know a leader (a member
     * cut off from the majority soon knows none) and be in the group's configuration.
     */
    public String whyNotServing() {
        DivisionInfo info;
        try {
            info = division().getInfo();
        } catch (RuntimeException e) {
            return "cluster member " + config.nodeId() + " is not running";
        }
        if (!info.isAlive()) {
            return "cluster member " + config.nodeId() + " is not running";
        }
        if (division().getRaftConf().getPeer(selfId) == null) {
            return "cluster member " + config.nodeId() + " is not in the cluster's configuration (yet): add it with"
                    + " 'mapcast cluster add " + config.nodeId() + "=" + config.peerAddress() + "'";
        }
        if (info.getLeaderId() == null) {
            return "cluster member " + config.nodeId() + " knows no leader (it may be cut off from the majority, or"
                    + " an election is under way)";
        }
        return null;
    }

    /**
     * Proposes a log entry: directly when this member leads, else through the client (to the
     * leader, retried there under the client's own call id, which Ratis's retry cache keeps from
     * applying twice).
     *
     * <p>A direct proposal answered NotLeaderException is not sent again: Ratis answers so both a
     * request it refused and every request it had appended when it stepped down (say, cut off from
     * the majority). An appended entry may still be committed by the next leader, so sending it
     * again (a new call id) could apply it twice, and where no leader is reachable the client would
     * retry it for minutes, to apply it long after the caller gave up. Its outcome is unknown, and
     * the caller is told so. LeaderNotReadyException is a refusal before appending: sent again.
     */
    CompletableFuture<RaftClientReply> propose(Message message) {
        DivisionInfo info = division().getInfo();
        if (info.isLeader() && info.isLeaderReady()) {
            RaftClientRequest request = RaftClientRequest.newBuilder().setClientId(directClientId).setServerId(selfId)
                    .setGroupId(groupId).setCallId(directCallId.incrementAndGet()).setMessage(message)
                    .setType(RaftClientRequest.writeRequestType()).build();
            try {
                return server.submitClientRequestAsync(request).thenCompose(reply -> {
                    Throwable e = reply.getException();
                    if (e instanceof LeaderNotReadyException) {
                        return forward(message);  // refused before it was appended
                    }
                    return CompletableFuture.completedFuture(reply);
                });
            } catch (IOException e) {
                return forward(message);
            }
        }
        return forward(message);
    }

    /**
     * Sends an entry to the leader through the client, each on its own blocking call: the client's
     * async API orders its requests in one sliding window, where one request stuck on a dead leader
     * held up (and then failed) every later one, for up to 14 s after a leader died.
     */
    private CompletableFuture<RaftClientReply> forward(Message message) {
        CompletableFuture<RaftClientReply> reply = new CompletableFuture<>();
        try {
            forwarding.execute(() -> {
                try {
                    reply.complete(client.io().send(message));
                } catch (IOException | RuntimeException e) {
                    reply.completeExceptionally(e);
                }
            });
        } catch (java.util.concurrent.RejectedExecutionException closing) {
            reply.completeExceptionally(new IOException("cluster member " + config.nodeId() + " is closing"));
        }
        return reply;
    }

    /** Completes once this member has applied everything committed before the call (ReadIndex). */
    CompletableFuture<RaftClientReply> readIndex(Message barrier) {
        RaftClientRequest request = RaftClientRequest.newBuilder().setClientId(directClientId).setServerId(selfId)
                .setGroupId(groupId).setCallId(directCallId.incrementAndGet()).setMessage(barrier)
                .setType(RaftClientRequest.readRequestType()).build();
        try {
            return server.submitClientRequestAsync(request);
        } catch (IOException e) {
            return CompletableFuture.failedFuture(e);
        }
    }

    /** Every member as it answers for itself (within {@code timeout}); the unreachable ones say why. */
    public ClusterStatusResponse status(Duration timeout) {
        // A client per call, without retries: one that failed to reach a member stays closed to it.
        try (RaftClient statusClient = raftClient()
                .setRaftGroup(division().getGroup()).setRetryPolicy(RetryPolicies.noRetry()).build()) {
            return status(statusClient, timeout);
        } catch (IOException e) {
            throw Status.INTERNAL.withDescription("cluster status: " + describe(e)).asRuntimeException();
        }
    }

    private ClusterStatusResponse status(RaftClient statusClient, Duration timeout) {
        var division = division();
        Collection<RaftPeer> peers = division.getRaftConf().getCurrentPeers();
        Message query = Message.valueOf(UnsafeByteOperations.unsafeWrap(Query.newBuilder()
                .setStatus(MemberStatusQuery.getDefaultInstance()).build().toByteArray()));
        Map<RaftPeer, CompletableFuture<RaftClientReply>> asked = new LinkedHashMap<>();
        for (RaftPeer peer : peers) {
            if (!peer.getId().equals(selfId)) {
                asked.put(peer, statusClient.async().sendStaleRead(query, 0, peer.getId())
                        .orTimeout(timeout.toMillis(), TimeUnit.MILLISECONDS));
            }
        }
        ClusterStatusResponse.Builder out = ClusterStatusResponse.newBuilder().setAnsweredBy(config.nodeId());
        RaftPeerId leader = division.getInfo().getLeaderId();
        if (leader != null) {
            out.setLeader(leader.toString());
        }
        for (RaftPeer peer : peers) {
            ClusterMemberStatus.Builder m = ClusterMemberStatus.newBuilder().setId(peer.getId().toString())
                    .setPeerAddress(peer.getAddress());
            if (peer.getId().equals(selfId)) {
                m.mergeFrom(stateMachine.selfStatus().build());
            } else {
                try {
                    RaftClientReply reply = asked.get(peer).join();
                    if (!reply.isSuccess()) {
                        throw new IOException(describe(reply.getException()));
                    }
                    MemberStatusAnswer a = MemberStatusAnswer.parseFrom(
                            reply.getMessage().getContent().asReadOnlyByteBuffer());
                    m.setClientAddress(a.getClientAddress()).setRole(a.getRole()).setTerm(a.getTerm())
                            .setCommitIndex(a.getCommitIndex()).setAppliedIndex(a.getAppliedIndex())
                            .setLeader(a.getLeader());
                } catch (RuntimeException | IOException e) {
                    Throwable why = e.getCause() != null && e instanceof java.util.concurrent.CompletionException
                            ? e.getCause() : e;
                    m.setRole("UNREACHABLE").setProblem(why instanceof java.util.concurrent.TimeoutException
                            ? "no answer within " + timeout.toMillis() + " ms"
                            : "no answer at " + peer.getAddress() + " (down, or cut off from member " + config.nodeId()
                            + ")");
                }
            }
            out.addMembers(m);
        }
        return out.build();
    }

    /**
     * Adds a member (one change at a time); returns once it has caught up and the change is
     * committed. The new member may be started (with --join) before or after this call: the change
     * is proposed once it answers on its peer address, waiting up to {@code wait} for it (the leader
     * would give up on a member that does not answer within a few election timeouts).
     */
    public ClusterStatusResponse addMember(String id, String peerAddress, Duration wait) {
        ClusterConfig.checkAddress(peerAddress, "peer_address");
        List<RaftPeer> now = new ArrayList<>(division().getRaftConf().getCurrentPeers());
        for (RaftPeer p : now) {
            if (p.getId().toString().equals(id)) {
                throw Status.ALREADY_EXISTS.withDescription("member \"" + id + "\" is already in the cluster (at "
                        + p.getAddress() + ")").asRuntimeException();
            }
            if (p.getAddress().equals(peerAddress)) {
                throw Status.INVALID_ARGUMENT.withDescription("peer_address: " + peerAddress + " is member \""
                        + p.getId() + "\"'s").asRuntimeException();
            }
        }
        RaftPeer added = RaftPeer.newBuilder().setId(id).setAddress(peerAddress).build();
        awaitAnswer(added, wait);
        now.add(added);
        changeMembers(now, "add member \"" + id + "\"");
        return status(Duration.ofSeconds(2));
    }

    /** Waits until {@code peer} answers on its peer address (its Raft server runs), up to {@code wait}. */
    private void awaitAnswer(RaftPeer peer, Duration wait) {
        long deadline = System.nanoTime() + wait.toNanos();
        boolean logged = false;
        while (true) {
            try (RaftClient c = raftClient()
                    .setRaftGroup(RaftGroup.valueOf(RaftGroupId.randomId(), peer))
                    .setRetryPolicy(RetryPolicies.noRetry()).build()) {
                c.getGroupManagementApi(peer.getId()).list();
                return;
            } catch (IOException | RuntimeException notUpYet) {
                if (System.nanoTime() > deadline) {
                    throw Status.UNAVAILABLE.withDescription("cannot add member \"" + peer.getId() + "\": nothing"
                            + " answers at " + peer.getAddress() + " within " + wait.toSeconds() + " s (start it with"
                            + " 'mapcast serve --node-id " + peer.getId() + " --join --cluster ...'); nothing was"
                            + " changed").asRuntimeException();
                }
                if (!logged) {
                    log.info("add member {}: waiting for it to answer at {} (start it with --join)", peer.getId(),
                            peer.getAddress());
                    logged = true;
                }
            }
            try {
                Thread.sleep(200);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
            }
        }
    }

    /** Removes a member (one change at a time). */
    public ClusterStatusResponse removeMember(String id) {
        List<RaftPeer> now = new ArrayList<>(division().getRaftConf().getCurrentPeers());
        if (!now.removeIf(p -> p.getId().toString().equals(id))) {
            throw Status.NOT_FOUND.withDescription("member \"" + id + "\" is not in the cluster (members: "
                    + String.join(", ", division().getRaftConf().getCurrentPeers().stream()
                    .map(p -> p.getId().toString()).toList()) + ")").asRuntimeException();
        }
        if (now.isEmpty()) {
            throw Status.FAILED_PRECONDITION.withDescription("member \"" + id + "\" is the last one; a cluster keeps"
                    + " at least one member").asRuntimeException();
        }
        changeMembers(now, "remove member \"" + id + "\"");
        return status(Duration.ofSeconds(2));
    }

    private void changeMembers(List<RaftPeer> peers, String what) {
        RaftClientReply reply;
        try {
            reply = client.admin().setConfiguration(peers);
        } catch (ReconfigurationInProgressException e) {
            throw Status.FAILED_PRECONDITION.withDescription("cannot " + what + ": another membership change is in"
                    + " progress; one change at a time").asRuntimeException();
        } catch (IOException e) {
            throw Status.UNAVAILABLE.withDescription("cannot " + what + ": " + describe(e)).asRuntimeException();
        }
        if (!reply.isSuccess()) {
            Throwable e = reply.getException();
            Status status = e instanceof ReconfigurationInProgressException ? Status.FAILED_PRECONDITION
                    : Status.UNAVAILABLE;
            throw status.withDescription("cannot " + what + ": " + describe(e)
                    + (e instanceof ReconfigurationInProgressException ? " (one change at a time)" : ""))
                    .asRuntimeException();
        }
        log.info("cluster membership changed: {}", what);
    }

    /** A Ratis exception as one line a user can read (its class name stripped of the package). */
    static String describe(Throwable e) {
        if (e == null) {
            return "no reason given";
        }
        String message = e.getMessage();
        return e.getClass().getSimpleName() + (message == null ? "" : ": " + message);
    }

    private static List<RaftPeer> peers(Map<String, String> members) {
        List<RaftPeer> out = new ArrayList<>();
        members.forEach((id, address) -> out.add(RaftPeer.newBuilder().setId(id).setAddress(address).build()));
        return out;
    }

    private static RaftProperties properties(ClusterConfig config, Path raftDir) {
        RaftProperties p = new RaftProperties();
        RaftServerConfigKeys.setStorageDir(p, List.of(raftDir.toFile()));
        String address = config.peerAddress();
        int colon = address.lastIndexOf(':');
        GrpcConfigKeys.Server.setHost(p, address.substring(0, colon));
        GrpcConfigKeys.Server.setPort(p, Integer.parseInt(address.substring(colon + 1)));
        GrpcConfigKeys.setMessageSizeMax(p, SizeInBytes.valueOf(MAX_ENTRY.getSize() + (1 << 20)));
        RaftServerConfigKeys.Log.Appender.setBufferByteLimit(p, MAX_ENTRY);
        // The log appender's retries stay Ratis's default (1ms,10, 1s,20, 5s,1000): a member down
        // for 10 s may wait seconds after its restart to hear from the leader. Tries every 100 ms
        // removed that wait, but twice a CI run then had a restarted member never catch up
        // (ClusterKillTest: its reads timed out for 90 s; cause not found, RATIS-2506 reworked
        // appender restarts after 3.3.0). BENCHMARKS.md, "A restarted member held back".
        // Heartbeats on the append stream, not a channel of their own: a heartbeat sent on its own
        // channel names the entry after those still in flight as its previous one, so a follower
        // catching up answers INCONSISTENCY to most of them, and Ratis 3.3.0's leader then resets the
        // follower's next index over and over (RATIS-2242, unfixed): a restarted member stayed
        // hundreds of entries behind for seconds (BENCHMARKS.md, "A restarted member held back").
        GrpcConfigKeys.Server.setHeartbeatChannel(p, false);
        RaftServerConfigKeys.Log.setWriteBufferSize(p, SizeInBytes.valueOf(MAX_ENTRY_BYTES + (1 << 20)));
        RaftServerConfigKeys.Log.setSegmentSizeMax(p, MAX_ENTRY);
        RaftServerConfigKeys.Read.setOption(p, RaftServerConfigKeys.Read.Option.LINEARIZABLE);
        RaftServerConfigKeys.Read.setTimeout(p, TimeDuration.valueOf(RaftOrder.WAIT_SECONDS, TimeUnit.SECONDS));
        // Durable before acknowledged: a majority has fsync'd the entry (Ratis's defaults, said aloud).
        RaftServerConfigKeys.Log.setUnsafeFlushEnabled(p, false);
        RaftServerConfigKeys.Log.setAsyncFlushEnabled(p, false);
        long min = config.electionTimeout().toMillis();
        RaftServerConfigKeys.Rpc.setTimeoutMin(p, TimeDuration.valueOf(min, TimeUnit.MILLISECONDS));
        RaftServerConfigKeys.Rpc.setTimeoutMax(p, TimeDuration.valueOf(2 * min, TimeUnit.MILLISECONDS));
        RaftServerConfigKeys.Snapshot.setAutoTriggerEnabled(p, true);
        RaftServerConfigKeys.Snapshot.setAutoTriggerThreshold(p, config.snapshotEntries());
        RaftServerConfigKeys.Snapshot.setRetentionFileNum(p, 2);
        RaftServerConfigKeys.Log.setPurgeUptoSnapshotIndex(p, true);
        RaftServerConfigKeys.Log.setPurgeGap(p, (int) Math.min(Integer.MAX_VALUE, Math.max(1, config.snapshotEntries() / 4)));
        // Small segments when snapshots are frequent (tests), so that purging has closed segments to drop.
        if (config.snapshotEntries() < 10_000) {
            RaftServerConfigKeys.Log.setSegmentSizeMax(p, SizeInBytes.valueOf("1MB"));
        }
        return p;
    }

    /**
     * Around an election the client guesses the next leader (a member that knows it names it):
     * tries every 20 ms find it soon after it is elected, for up to {@link #FORWARD_RETRY} from the
     * first (each try bounded by the request timeout). It was 10 tries 100 ms apart: the entry in
     * flight (and every write queued behind it) waited up to a second longer than the election.
     */
    private static RetryPolicy forwardRetry() {
        RetryPolicy often = RetryPolicies.retryForeverWithSleep(TimeDuration.valueOf(20, TimeUnit.MILLISECONDS));
        RequestTypeDependentRetryPolicy.Builder b = RequestTypeDependentRetryPolicy.newBuilder();
        for (RaftClientRequestProto.TypeCase type : RaftClientRequestProto.TypeCase.values()) {
            if (type != RaftClientRequestProto.TypeCase.TYPE_NOT_SET) {
                b.setRetryPolicy(type, often).setTimeout(type,
                        TimeDuration.valueOf(FORWARD_RETRY.toMillis(), TimeUnit.MILLISECONDS));
            }
        }
        return b.build();
    }

    /** A Raft client's builder: this member's client settings and peer TLS. */
    private RaftClient.Builder raftClient() {
        return RaftClient.newBuilder().setProperties(clientProperties(config)).setParameters(peerParameters);
    }

    /**
     * Mutual TLS between members when the server has TLS: this member's certificate and key, and
     * the CA of the members' certificates ({@link ReloadingTls#peerTrustManager}); both reload with
     * the files. Ratis's gRPC client checks that the member dialled is named by its certificate.
     */
    private static Parameters peerParameters(ReloadingTls tls) {
        Parameters p = new Parameters();
        if (tls != null) {
            GrpcConfigKeys.TLS.setConf(p, new GrpcTlsConfig(tls.keyManager(), tls.peerTrustManager(), true));
        }
        return p;
    }

    private static RaftProperties clientProperties(ClusterConfig config) {
        RaftProperties p = new RaftProperties();
        GrpcConfigKeys.setMessageSizeMax(p, SizeInBytes.valueOf(MAX_ENTRY.getSize() + (1 << 20)));
        RaftClientConfigKeys.Rpc.setRequestTimeout(p, TimeDuration.valueOf(3, TimeUnit.SECONDS));
        return p;
    }

    /**
     * A joining member's group: asks the listed members which group they serve (the first that
     * answers decides), waiting up to a minute for one to answer.
     */
    static UUID discoverGroup(ClusterConfig config, Duration wait, Parameters peerParameters) throws IOException {
        long deadline = System.nanoTime() + wait.toNanos();
        RaftProperties props = clientProperties(config);
        Exception last = null;
        while (System.nanoTime() < deadline) {
            for (Map.Entry<String, String> m : config.members().entrySet()) {
                if (m.getKey().equals(config.nodeId())) {
                    continue;
                }
                RaftPeer peer = RaftPeer.newBuilder().setId(m.getKey()).setAddress(m.getValue()).build();
                try (RaftClient c = RaftClient.newBuilder().setProperties(props).setParameters(peerParameters)
                        .setRaftGroup(RaftGroup.valueOf(RaftGroupId.randomId(), peer))
                        .setRetryPolicy(RetryPolicies.noRetry()).build()) {
                    GroupListReply reply = c.getGroupManagementApi(peer.getId()).list();
                    if (!reply.getGroupIds().isEmpty()) {
                        return reply.getGroupIds().get(0).getUuid();
                    }
                } catch (IOException | RuntimeException e) {
                    // Not up yet, or too slow to answer (Ratis's gRPC throws its DEADLINE_EXCEEDED
                    // unchecked): ask again, until the minute is out.
                    last = e;
                }
            }
            try {
                Thread.sleep(500);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        throw new StorageException("--join: no member of --cluster answered within " + wait.toSeconds() + " s (" + describe(last) + "); a"
                + " joining member needs the cluster running");
    }

    /**
     * Refuses to go on if a member it reaches serves another group: their --cluster lists differ.
     * Members not up yet are not waited for.
     */
    private void checkPeersAgree() throws IOException {
        for (Map.Entry<String, String> m : config.members().entrySet()) {
            if (m.getKey().equals(config.nodeId())) {
                continue;
            }
            RaftPeer peer = RaftPeer.newBuilder().setId(m.getKey()).setAddress(m.getValue()).build();
            try (RaftClient c = raftClient()
                    .setRaftGroup(RaftGroup.valueOf(groupId, peer)).setRetryPolicy(RetryPolicies.noRetry()).build()) {
                List<RaftGroupId> theirs = c.getGroupManagementApi(peer.getId()).list().getGroupIds();
                if (!theirs.isEmpty() && !theirs.contains(groupId)) {
                    throw new StorageException("member " + m.getKey() + " at " + m.getValue() + " is in another cluster"
                            + " (group " + theirs.get(0).getUuid() + "; this member's is " + groupId.getUuid() + "): the"
                            + " members were started with different --cluster lists (this one: "
                            + ClusterConfig.format(config.members()) + ")");
                }
            } catch (StorageException e) {
                throw e;
            } catch (IOException | RuntimeException notUpYet) {
                log.debug("member {} did not answer the group check: {}", m.getKey(), describe(notUpYet));
            }
        }
    }

    @Override
    public void close() {
        channelRefresh.shutdownNow();
        forwarding.shutdownNow();
        try {
            client.close();
        } catch (IOException e) {
            log.warn("closing the cluster's clients: {}", describe(e));
        }
        try {
            server.close();
        } catch (IOException e) {
            log.warn("closing cluster member {}: {}", config.nodeId(), describe(e));
        }
        try {
            lock.close();
        } catch (IOException e) {
            log.warn("releasing the data directory lock: {}", describe(e));
        }
    }

    /**
     * {@code cluster.member}: this member's id, its group, and the members as it last knew them.
     * Checked at every start; rewritten (atomically) when the membership changes.
     */
    static final class MemberFile {
        private final Path file;

        MemberFile(Path file) {
            this.file = file;
        }

        interface GroupSource {
            UUID group() throws IOException;
        }

        /** Checks the file against {@code config} (writes it for a new member); returns the group id. */
        UUID check(ClusterConfig config, GroupSource joining) throws IOException {
            if (!Files.exists(file)) {
                UUID group = config.join() ? joining.group() : config.initialGroupId();
                write(config.nodeId(), group, ClusterConfig.format(config.members()));
                return group;
            }
            Properties p = new Properties();
            try (var in = Files.newBufferedReader(file)) {
                p.load(in);
            }
            String id = p.getProperty("node-id");
            String members = p.getProperty("members", "");
            if (!config.nodeId().equals(id)) {
                throw new StorageException("data directory " + file.getParent() + " belongs to member " + id
                        + ", not to " + config.nodeId() + " (--node-id)");
            }
            ClusterConfig recorded;
            try {
                recorded = ClusterConfig.parse(id, members, false);
            } catch (IllegalArgumentException e) {
                throw new StorageException(file + ": unreadable members list '" + members + "'");
            }
            String address = recorded.members().get(id);
            if (address != null && !address.equals(config.peerAddress())) {
                throw new StorageException("data directory " + file.getParent() + " belongs to member " + id + " at "
                        + address + "; --cluster gives it " + config.peerAddress());
            }
            if (!config.join() && !config.members().equals(recorded.members())
                    && !ClusterConfig.format(config.members()).equals(p.getProperty("initial-members"))) {
                throw new StorageException("--cluster " + ClusterConfig.format(config.members()) + " does not match"
                        + " the cluster of data directory " + file.getParent() + " (members when it last ran: "
                        + members + "); start with that list");
            }
            return UUID.fromString(p.getProperty("group"));
        }

        private void write(String id, UUID group, String members) throws IOException {
            Properties p = new Properties();
            if (Files.exists(file)) {
                try (var in = Files.newBufferedReader(file)) {
                    p.load(in);
                }
            } else {
                p.setProperty("initial-members", members);
            }
            p.setProperty("node-id", id);
            p.setProperty("group", group.toString());
            p.setProperty("members", members);
            Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
            try (var out = Files.newBufferedWriter(tmp)) {
                p.store(out, "mapcast cluster member: do not edit");
            }
            try (var ch = java.nio.channels.FileChannel.open(tmp, java.nio.file.StandardOpenOption.WRITE)) {
                ch.force(true);
            }
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        }

        /** The membership changed (a configuration entry was applied): remember it. */
        void membersChanged(Map<String, String> members) {
            try {
                Properties p = new Properties();
                try (var in = Files.newBufferedReader(file)) {
                    p.load(in);
                }
                write(p.getProperty("node-id"), UUID.fromString(p.getProperty("group")), ClusterConfig.format(members));
            } catch (IOException | RuntimeException e) {
                log.warn("cannot record the new membership in {}: {}", file, describe(e));
            }
        }
    }
}
