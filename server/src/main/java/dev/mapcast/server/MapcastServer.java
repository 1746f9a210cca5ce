package dev.mapcast.server;

import dev.mapcast.codec.SnapshotEncoder;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.server.auth.AuditLog;
import dev.mapcast.server.auth.AuthInterceptor;
import dev.mapcast.server.auth.AuthService;
import dev.mapcast.server.auth.AuthStore;
import dev.mapcast.server.auth.Authorizer;
import dev.mapcast.server.auth.RootBootstrap;
import dev.mapcast.server.map.ChangeOrder;
import dev.mapcast.server.map.HostedMap;
import dev.mapcast.server.cluster.ClusterConfig;
import dev.mapcast.server.cluster.ClusterMember;
import dev.mapcast.server.map.Limits;
import dev.mapcast.server.map.LocalOrder;
import dev.mapcast.server.map.MapRegistry;
import dev.mapcast.server.rpc.ClusterService;
import dev.mapcast.server.rpc.ConnectionLimits;
import dev.mapcast.server.rpc.MapcastService;
import dev.mapcast.server.rpc.ParsedService;
import dev.mapcast.server.rpc.ServerEventLoops;
import dev.mapcast.server.security.ReloadingTls;
import dev.mapcast.server.security.TlsFiles;
import dev.mapcast.server.storage.Storage;
import io.grpc.Server;
import io.grpc.ServerInterceptors;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The mapcast server: the contract's {@code mapcast.v1.Mapcast} service over gRPC on Netty, with
 * the standard health service ({@code grpc.health.v1}) and server reflection.
 *
 * <pre>{@code
 * try (MapcastServer server = MapcastServer.builder().port(50051).build().start()) {
 *     server.awaitTermination();
 * }
 * }</pre>
 *
 * <p>Limits have sane defaults and are builder settings; a request over one is refused whole, with
 * a status naming the value and the limit. {@link #close()} shuts down gracefully: new calls are
 * refused, watch streams end with UNAVAILABLE (clients resume elsewhere or on restart), write
 * streams end with UNAVAILABLE once the writes they have read are answered, calls in
 * flight get the grace period, and then the maps' memory is freed. {@link #stop()} and
 * {@link #start()} restart serving in the same process with the maps kept.
 *
 * <p>With {@link Builder#dataDir} the maps are durable: each map's changes go to a write-ahead log
 * ({@link WriteAheadLog}, group commit) and periodic snapshots ({@link MapStore}); a Write is
 * acknowledged once on disk ({@link FsyncMode}); {@link Builder#build()} recovers every map.
 */
public final class MapcastServer implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(MapcastServer.class);

    /** How often {@link FsyncMode#PERIODIC} forces the logs. */
    static final long PERIODIC_FSYNC_MILLIS = 100;

    private final MapRegistry maps;
    /** Null without TLS. */
    private final ReloadingTls tls;
    private Storage storage;
    /** Null for a single server. */
    private final ClusterMember member;
    private final ScheduledExecutorService storageTasks;
    private final MapcastService service;
    private final AuthStore authStore;
    private final Authorizer authorizer;
    /** Null without --auth. */
    private final AuditLog audit;
    private final Path dataDir;
    private ScheduledFuture<?> sweep;
    private final String host;
    private int port;
    private Server server;
    private final ServerEventLoops loops;
    /** Work that may wait on a lock or a disk, kept off the event loops (see {@link MapcastService}). */
    private final ExecutorService pool;
    private final ScheduledExecutorService ticker;
    private final HealthStatusManager health = new HealthStatusManager();
    private final Limits limits;
    private final ConnectionLimits connectionLimits;
    private final Duration shutdownGrace;
    private final CountDownLatch terminated = new CountDownLatch(1);
    private ScheduledFuture<?> tick;
    private boolean closed;
    private boolean everStarted;

    private MapcastServer(Builder b) {
        this.limits = b.limits;
        this.connectionLimits = b.connectionLimits;
        this.shutdownGrace = b.shutdownGrace;
        this.storageTasks = Executors.newSingleThreadScheduledExecutor(daemonThreads("mapcast-storage"));
        this.host = b.host;
        this.port = b.port;
        MapRegistry registry = null;
        ClusterMember clusterMember = null;
        ReloadingTls reloadingTls = null;
        AuditLog auditLog = null;
        try {
            reloadingTls = b.tls == null ? null : ReloadingTls.start(b.tls);
            if (b.cluster == null) {
                this.storage = b.dataDir == null ? null : Storage.open(b.dataDir, b.fsync, b.snapshotLogBytes);
                registry = new MapRegistry(limits, b.chunkBytes, storage, storageTasks, b.strict);
            } else {
                // The Raft log and the state machine's snapshots are what is durable: maps in memory.
                registry = new MapRegistry(limits, b.chunkBytes, null, storageTasks, b.strict);
                Path dir = b.dataDir == null ? Path.of("mapcast-data") : b.dataDir;
                clusterMember = ClusterMember.start(b.cluster, dir, () -> host + ":" + port(), registry, limits,
                        b.chunkBytes, storageTasks, reloadingTls);
            }
            if (b.auth) {  // after the data directory is made and locked
                auditLog = AuditLog.open(b.auditFile != null ? b.auditFile : b.dataDir.resolve("audit.jsonl"),
                        b.auditRotateBytes, b.auditKeepFiles);
            }
        } catch (IOException | RuntimeException e) {
            storageTasks.shutdownNow();
            if (auditLog != null) {
                auditLog.close();
            }
            if (reloadingTls != null) {
                reloadingTls.close();
            }
            if (registry != null) {
                registry.close();
            }
            closeStorage();
            if (e instanceof IOException io) {
                throw new UncheckedIOException(e.getMessage(), io);
            }
            throw (RuntimeException) e;
        }
        this.maps = registry;
        this.member = clusterMember;
        this.tls = reloadingTls;
        if (storage != null && b.fsync == FsyncMode.PERIODIC) {
            storageTasks.scheduleWithFixedDelay(() -> maps.all().forEach(HostedMap::forceLog),
                    PERIODIC_FSYNC_MILLIS, PERIODIC_FSYNC_MILLIS, TimeUnit.MILLISECONDS);
        }
        if (storage != null) {
            storageTasks.scheduleWithFixedDelay(() -> maps.all().forEach(m -> {
                try {
                    m.retryStorage();
                } catch (RuntimeException e) {  // a bug: it must not end the retries of every map
                    log.error("retrying the log of map \"{}\"", m.name, e);
                }
            }), Storage.RETRY_MILLIS, Storage.RETRY_MILLIS, TimeUnit.MILLISECONDS);
        }
        this.loops = new ServerEventLoops(Runtime.getRuntime().availableProcessors());
        // Unbounded, as gRPC's default executor: durable writes wait here for their fsync, and
        // only writes waiting together share one (group commit).
        this.pool = Executors.newCachedThreadPool(daemonThreads("mapcast-worker"));
        this.ticker = Executors.newSingleThreadScheduledExecutor(daemonThreads("mapcast-ticker"));
        ChangeOrder order = member == null ? new LocalOrder(maps, pool) : member.order();
        this.audit = auditLog;
        this.dataDir = b.dataDir == null ? Path.of("mapcast-data") : b.dataDir;
        this.authStore = new AuthStore(maps, order, limits);
        this.authorizer = new Authorizer(authStore, limits, audit);
        this.service = new MapcastService(maps, order, limits, loops, pool, authorizer);
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * Binds the address and starts serving; throws {@link UncheckedIOException} if it cannot bind.
     * After {@link #stop()} it serves the same maps again, on the same port.
     */
    public synchronized MapcastServer start() {
        if (closed) {
            throw new IllegalStateException("server is closed");
        }
        if (server != null) {
            throw new IllegalStateException("server is already serving on " + addressText());
        }
        InetSocketAddress address = new InetSocketAddress(host, port);
        Server s = connectionLimits.applyTo(loops.configure(tls == null ? NettyServerBuilder.forAddress(address)
                        : NettyServerBuilder.forAddress(address, tls.serverCredentials()),
                        connectionLimits.maxConnections()))
                // Room for a Write of maxWriteBytes of keys and values plus its framing.
                .maxInboundMessageSize(limits.maxWriteBytes() + 64 * 1024)
                // A fixed window: no BDP-probing PING with every read, as auto-tuning does.
                .flowControlWindow(1024 * 1024)
                .addService(authenticated(service.definition()))
                .addService(authenticated(ParsedService.of(new ClusterService(member, authorizer).bindService(), pool)))
                .addService(authenticated(ParsedService.of(new AuthService(authStore, authorizer,
                        limits.maxMapNameBytes()).bindService(), pool)))
                .addService(health.getHealthService())
                .addService(ProtoReflectionServiceV1.newInstance())
                .build();
        try {
            s.start();
        } catch (IOException e) {
            Throwable root = e;
            while (root.getCause() != null) {
                root = root.getCause();
            }
            throw new UncheckedIOException("cannot listen on " + addressText(host, port) + ": " + root.getMessage(), e);
        }
        server = s;
        everStarted = true;
        port = port();  // a restart binds the port chosen the first time
        updateHealth();
        if (tick == null) {
            long tickNanos = Math.min(TimeUnit.SECONDS.toNanos(1), limits.progressInterval().toNanos() / 2);
            tick = ticker.scheduleWithFixedDelay(this::tick, tickNanos, tickNanos, TimeUnit.NANOSECONDS);
        }
        if (audit != null && sweep == null) {
            log.info("auth on: every call needs a token or a client certificate; audit log {}", audit.file());
            bootstrapRoot();
            // Revocations reach open streams within a second: a sweep checks them 5 times a second.
            sweep = ticker.scheduleWithFixedDelay(authorizer::sweep, 200, 200, TimeUnit.MILLISECONDS);
        }
        log.info("mapcast serving on {} ({}{}{}); {}", addressText(), transport(), tls == null ? "" : ", TLS",
                audit == null ? "" : ", auth",
                member != null ? "cluster member " + member.nodeId()
                : storage == null ? "maps in memory only"
                : "maps kept in " + storage.dataDir + " (fsync " + storage.mode.name().toLowerCase(Locale.ROOT) + ")");
        return this;
    }

    /**
     * Stops serving (watch streams end with UNAVAILABLE, write streams too once the writes they
     * have read are answered, calls in flight get the grace period) and
     * keeps the maps, their revisions and history in memory, so that {@link #start()} serves them
     * again: clients reconnect and resume. Idempotent.
     */
    public synchronized void stop() {
        if (server == null) {
            return;
        }
        health.setStatus("", ServingStatus.NOT_SERVING);
        health.setStatus(MapcastGrpc.SERVICE_NAME, ServingStatus.NOT_SERVING);
        server.shutdown();
        for (HostedMap map : maps.all()) {
            map.endWatchers(MapRegistry.SHUTTING_DOWN);
        }
        maps.endWaiting(MapRegistry.SHUTTING_DOWN);
        service.endWriteStreams(MapRegistry.SHUTTING_DOWN);
        try {
            if (!server.awaitTermination(shutdownGrace.toNanos(), TimeUnit.NANOSECONDS)) {
                server.shutdownNow();
                server.awaitTermination(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            server.shutdownNow();
            Thread.currentThread().interrupt();
        }
        server = null;
        log.info("mapcast stopped serving");
    }

    /** The port bound (useful with port 0). */
    public synchronized int port() {
        return server == null ? port : ((InetSocketAddress) server.getListenSockets().get(0)).getPort();
    }

    /**
     * The Netty transport it serves on: "epoll" (native, where Netty's library loads: Linux on
     * x86-64) or "nio" (elsewhere, or with {@code -Dio.netty.transport.noNative=true}).
     */
    public String transport() {
        return ServerEventLoops.transport();
    }

    /** Waits until the server is closed. */
    public void awaitTermination() throws InterruptedException {
        terminated.await();
    }

    /** Ends every watch stream, shuts down within the grace period and frees the maps. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        stop();
        closed = true;
        health.enterTerminalState();
        ticker.shutdownNow();
        // The pool before the loops: a write still committing there (say, waiting for its fsync
        // after its client gave up) answers through its connection's loop, which must still run.
        try {
            pool.shutdown();
            if (!pool.awaitTermination(5, TimeUnit.SECONDS)) {
                log.warn("stream senders still running after shutdown; freeing maps anyway");
            }
        } catch (InterruptedException e) {
            pool.shutdownNow();
            Thread.currentThread().interrupt();
        }
        loops.close();
        storageTasks.shutdown();
        try {
            if (!storageTasks.awaitTermination(60, TimeUnit.SECONDS)) {
                log.warn("a snapshot is still being written; closing anyway (recovery does not need it)");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (member != null) {
            member.close();
        }
        if (audit != null) {
            audit.close();
        }
        if (tls != null) {
            tls.close();
        }
        maps.close();
        closeStorage();
        terminated.countDown();
        if (everStarted) {
            log.info("mapcast closed");
        }
    }

    /** With --auth, the services that need an identity (health and reflection stay open). */
    private ServerServiceDefinition authenticated(ServerServiceDefinition service) {
        return audit == null ? service : ServerInterceptors.intercept(service,
                new AuthInterceptor(authStore, authorizer));
    }

    /**
     * Creates user root on the first start with --auth. A single server does it before it serves; a
     * cluster member in the background, once its group has a leader to take the write.
     */
    private void bootstrapRoot() {
        if (member == null) {
            try {
                RootBootstrap.run(authStore, dataDir);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot write " + dataDir.resolve(RootBootstrap.TOKEN_FILE) + ": "
                        + e.getMessage(), e);
            }
            return;
        }
        pool.execute(() -> {
            while (!closed) {
                try {
                    RootBootstrap.run(authStore, dataDir);
                    return;
                } catch (IOException e) {
                    log.error("cannot write {}: {}", dataDir.resolve(RootBootstrap.TOKEN_FILE), e.getMessage());
                    return;
                } catch (RuntimeException notYet) {  // no leader yet, or this member is catching up
                    log.debug("creating user root: {}; retrying", notYet.getMessage());
                }
                try {
                    Thread.sleep(500);
                } catch (InterruptedException e) {
                    return;
                }
            }
        });
    }

    /**
     * SERVING while this server takes writes: always for a single server; for a cluster member,
     * only while it is in a group with a leader (see {@link ClusterMember#whyNotServing}).
     */
    private synchronized void updateHealth() {
        if (server == null) {
            return;
        }
        ServingStatus status = member == null || member.whyNotServing() == null ? ServingStatus.SERVING
                : ServingStatus.NOT_SERVING;
        health.setStatus("", status);
        health.setStatus(MapcastGrpc.SERVICE_NAME, status);
    }

    /** Bytes queued for watchers across every map (what a slow watcher can cost; see the limits). */
    public long queuedWatcherBytes() {
        long sum = 0;
        for (HostedMap map : maps.all()) {
            sum += map.queuedBytes();
        }
        return sum;
    }

    /** The hosted map (tests reach into it, as a long write or restore would hold its lock). */
    HostedMap hosted(String map) {
        return maps.existing(map);
    }

    /** Watch streams open, across every map. */
    public int watcherCount() {
        int sum = 0;
        for (HostedMap map : maps.all()) {
            sum += map.watcherCount();
        }
        return sum;
    }

    private void tick() {
        updateHealth();
        long now = System.nanoTime();
        long progress = limits.progressInterval().toNanos();
        for (HostedMap map : maps.all()) {
            map.tick(now, progress);
        }
        maps.tick();
    }

    private void closeStorage() {
        if (storage != null) {
            try {
                storage.close();
            } catch (IOException e) {
                log.warn("releasing the data directory lock", e);
            }
            storage = null;
        }
    }

    private String addressText() {
        return addressText(host, port());
    }

    /** HOST:PORT, an IPv6 host in brackets ({@code [::1]:50051}), as --listen takes it. */
    private static String addressText(String host, int port) {
        return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
    }

    private static ThreadFactory daemonThreads(String prefix) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, prefix + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    /** Settings for a server; every one has a default. */
    public static final class Builder {
        private String host = "127.0.0.1";
        private int port = 50051;
        private int chunkBytes = SnapshotEncoder.DEFAULT_CHUNK_BYTES;
        private Duration shutdownGrace = Duration.ofSeconds(5);
        private Limits limits;
        private int maxKeyBytes = Limits.DEFAULTS.maxKeyBytes();
        private int maxValueBytes = Limits.DEFAULTS.maxValueBytes();
        private int maxWriteBytes = Limits.DEFAULTS.maxWriteBytes();
        private int maxMaps = Limits.DEFAULTS.maxMaps();
        private long maxEntriesPerMap = Limits.DEFAULTS.maxEntriesPerMap();
        private int historyDeltas = Limits.DEFAULTS.historyDeltas();
        private long historyBytes = Limits.DEFAULTS.historyBytes();
        private long watcherQueueBytes = Limits.DEFAULTS.watcherQueueBytes();
        private Duration slowWatcherTimeout = Limits.DEFAULTS.slowWatcherTimeout();
        private Duration progressInterval = Limits.DEFAULTS.progressInterval();
        private Duration watchLinger = Limits.DEFAULTS.watchLinger();
        private Path dataDir;
        private FsyncMode fsync = FsyncMode.ALWAYS;
        private long snapshotLogBytes = 64L * 1024 * 1024;
        private boolean strict;
        private ClusterConfig cluster;
        private TlsFiles tls;
        private ConnectionLimits connectionLimits = ConnectionLimits.DEFAULTS;
        private boolean auth;
        private Path auditFile;
        private long auditRotateBytes = 64L * 1024 * 1024;
        private int auditKeepFiles = 10;

        private Builder() {
        }

        /** The address to listen on (default 127.0.0.1; "0.0.0.0" for every interface). */
        public Builder host(String host) {
            this.host = Objects.requireNonNull(host, "host");
            return this;
        }

        /** The port (default 50051; 0 picks a free one, see {@link #port()}). */
        public Builder port(int port) {
            this.port = (int) check("port", port, 0, 65535);
            return this;
        }

        /** Longest key in bytes (default 4096, at most 65536). */
        public Builder maxKeyBytes(int bytes) {
            this.maxKeyBytes = (int) check("maxKeyBytes", bytes, 1, OffHeapMap.MAX_KEY_LENGTH_LIMIT);
            return this;
        }

        /** Longest value in bytes (default 1 MiB, at most 64 MiB). */
        public Builder maxValueBytes(int bytes) {
            this.maxValueBytes = (int) check("maxValueBytes", bytes, 0, 64 * 1024 * 1024);
            return this;
        }

        /** Most bytes of keys and values in one Write (default 4 MiB, at most 256 MiB). */
        public Builder maxWriteBytes(int bytes) {
            this.maxWriteBytes = (int) check("maxWriteBytes", bytes, 1, 256 * 1024 * 1024);
            return this;
        }

        /** Most maps the server holds (default 1024). */
        public Builder maxMaps(int maps) {
            this.maxMaps = (int) check("maxMaps", maps, 1, Integer.MAX_VALUE);
            return this;
        }

        /** Most entries in one map (default 10 million). */
        public Builder maxEntriesPerMap(long entries) {
            this.maxEntriesPerMap = check("maxEntriesPerMap", entries, 1, Long.MAX_VALUE);
            return this;
        }

        /** Deltas and bytes of history kept per map for resuming watchers (default 10,000 and 16 MiB). */
        public Builder history(int deltas, long bytes) {
            this.historyDeltas = (int) check("history deltas", deltas, 1, Integer.MAX_VALUE);
            this.historyBytes = check("history bytes", bytes, 1, Long.MAX_VALUE);
            return this;
        }

        /**
         * Bytes queued for one watcher before it is moved to a fresh snapshot (default 8 MiB), and how
         * long a watcher may take nothing while changes wait before it is ended with
         * RESOURCE_EXHAUSTED (default 30 s).
         */
        public Builder watcherQueue(long bytes, Duration slowWatcherTimeout) {
            this.watcherQueueBytes = check("watcher queue bytes", bytes, 1, Long.MAX_VALUE);
            this.slowWatcherTimeout = positive("slowWatcherTimeout", slowWatcherTimeout);
            return this;
        }

        /** How often an idle watcher that asked for progress notifications gets one (default 10 s). */
        public Builder progressInterval(Duration interval) {
            this.progressInterval = positive("progressInterval", interval);
            return this;
        }

        /**
         * How long a delta may wait for others bound to the same watcher when that watcher was sent
         * something less than this ago (default 1 ms; zero sends every delta at once). Under a high
         * write rate it bounds the writes per watcher connection to one per linger, which is what lets
         * the server feed many watchers; at a low rate nothing waits.
         */
        public Builder watchLinger(Duration linger) {
            Objects.requireNonNull(linger, "linger");
            if (linger.isNegative() || linger.compareTo(Duration.ofSeconds(1)) > 0) {
                throw new IllegalArgumentException("watchLinger: " + linger + " (expected: 0 to 1 s)");
            }
            this.watchLinger = linger;
            return this;
        }

        /** Entry bytes per snapshot chunk (default 1 MiB, at most 3 MiB: under gRPC's 4 MiB inbound default). */
        public Builder snapshotChunkBytes(int bytes) {
            this.chunkBytes = (int) check("snapshotChunkBytes", bytes, 1, 3 * 1024 * 1024);
            return this;
        }

        /**
         * Keeps the maps in {@code dir} (created if missing): a write-ahead log and snapshots per
         * map, recovered when the server is built. Default: none, maps in memory only.
         */
        public Builder dataDir(Path dir) {
            this.dataDir = Objects.requireNonNull(dir, "dir");
            return this;
        }

        /** When a Write is acknowledged relative to the disk (default {@link FsyncMode#ALWAYS}). */
        public Builder fsync(FsyncMode mode) {
            this.fsync = Objects.requireNonNull(mode, "mode");
            return this;
        }

        /** Log bytes after which a map writes a snapshot and drops its older log (default 64 MiB). */
        public Builder snapshotLogBytes(long bytes) {
            this.snapshotLogBytes = check("snapshotLogBytes", bytes, 1, Long.MAX_VALUE);
            return this;
        }

        /**
         * What a map whose files fail verification at start does to the start (default false): by
         * default it is quarantined (listed by ListMaps with why, every call naming it refused with
         * FAILED_PRECONDITION, its files left as they are) and the other maps are served; with
         * {@code true}, {@link #build()} fails, naming the file, the byte and what is wrong.
         */
        public Builder strict(boolean strict) {
            this.strict = strict;
            return this;
        }

        /**
         * Makes this server a member of a cluster (null, the default: a single server). Its maps
         * are then kept by the Raft group: the data directory holds this member's Raft log and
         * snapshots (a single server's data directory is refused), and {@link #fsync} does not
         * apply (a write is acknowledged once a majority has fsync'd it).
         */
        public Builder cluster(ClusterConfig cluster) {
            this.cluster = cluster;
            return this;
        }

        /**
         * Serves TLS only (null, the default: plaintext): the certificate and key, and optionally the
         * CA of client certificates and whether they are required. The files are read again when
         * they change (see {@link ReloadingTls}). A cluster member also secures its Raft traffic
         * with them, and needs {@link TlsFiles#peerCa} for that.
         */
        public Builder tls(TlsFiles tls) {
            this.tls = tls;
            return this;
        }

        /** Streams, pings, idle and dead connections (default {@link ConnectionLimits#DEFAULTS}). */
        public Builder connectionLimits(ConnectionLimits limits) {
            this.connectionLimits = Objects.requireNonNull(limits, "limits");
            return this;
        }

        /**
         * Authenticates and authorizes every call (default false): see the README's "Security". Needs
         * {@link #dataDir}: the first start writes user root's token to {@code root.token} there, and
         * the audit log goes to {@code audit.jsonl} there unless {@link #auditLog} says otherwise.
         */
        public Builder auth(boolean auth) {
            this.auth = auth;
            return this;
        }

        /**
         * Where the audit log of a server with {@link #auth} goes (default: {@code audit.jsonl} in the
         * data directory), the size at which it is rotated (default 64 MiB) and how many rotated files
         * are kept (default 10).
         */
        public Builder auditLog(Path file, long rotateBytes, int keepFiles) {
            this.auditFile = file;
            this.auditRotateBytes = check("audit log rotate bytes", rotateBytes, 1024, Long.MAX_VALUE);
            this.auditKeepFiles = (int) check("audit log files kept", keepFiles, 1, 1000);
            return this;
        }

        /** How long close() lets calls in flight finish before cancelling them (default 5 s). */
        public Builder shutdownGrace(Duration grace) {
            this.shutdownGrace = Objects.requireNonNull(grace, "grace");
            return this;
        }

        /**
         * Builds the server; with a data directory, recovers its maps first.
         *
         * @throws UncheckedIOException if the data directory cannot be used, or, with {@link #strict},
         *     a map in it cannot be recovered (the message names the file, the byte and what is wrong)
         */
        public MapcastServer build() {
            if (auth && dataDir == null) {
                throw new IllegalArgumentException("auth needs a data directory: user root's token and the audit log"
                        + " are written there");
            }
            if (cluster != null && tls != null && tls.peerCa() == null) {
                throw new IllegalArgumentException("a cluster member with TLS needs the CA that signs the members'"
                        + " certificates (--peer-tls-ca): members authenticate each other with it");
            }
            limits = new Limits(maxKeyBytes, maxValueBytes, maxWriteBytes, Limits.DEFAULTS.maxMapNameBytes(), maxMaps,
                    maxEntriesPerMap, historyDeltas, historyBytes, watcherQueueBytes, slowWatcherTimeout,
                    progressInterval, watchLinger);
            return new MapcastServer(this);
        }

        private static long check(String name, long value, long min, long max) {
            if (value < min || value > max) {
                throw new IllegalArgumentException(name + ": " + value + " (expected: " + min + " to " + max + ")");
            }
            return value;
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
