package dev.mapcast.cli;

import dev.mapcast.server.FsyncMode;
import dev.mapcast.server.MapcastServer;
import dev.mapcast.server.cluster.ClusterConfig;
import dev.mapcast.server.rpc.ConnectionLimits;
import dev.mapcast.server.security.TlsFiles;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.function.LongConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

@Command(mixinStandardHelpOptions = true, name = "serve", sortOptions = false,
        description = {
            "Runs a mapcast server in the foreground.",
            "Serves until SIGTERM or SIGINT (Ctrl-C), then shuts down gracefully: new calls are refused, watch streams end (clients resume elsewhere or "
                    + "on restart), calls in flight get --shutdown-grace; exits 0.",
            "Logs to stderr. Maps are kept in --data-dir: a write is acknowledged once it is on disk (--fsync), "
                    + "and a restart recovers every acknowledged write.",
            "Sizes in bytes (4096) or with a unit: 64KiB, 1MiB, 1GiB (binary), 64KB, 1MB (decimal); "
                    + "durations with their unit: 500ms, 30s, 2m. Every limit "
                    + "defaults to the server's own default, shown below."},
        footer = {"", "Examples:",
            "  mapcast serve",
            "  mapcast serve --data-dir /var/lib/mapcast",
            "  mapcast serve --data-dir /var/lib/mapcast --strict",
            "  mapcast serve --listen 0.0.0.0:50051 --max-value-bytes 4MiB",
            "  mapcast serve --in-memory",
            "  mapcast serve --tls-cert server.pem --tls-key server.key \\",
            "      --tls-client-ca clients-ca.pem",
            "  mapcast serve --node-id a --listen 127.0.0.1:50051 --data-dir data-a \\",
            "      --cluster a=127.0.0.1:7001,b=127.0.0.1:7002,c=127.0.0.1:7003"})
final class ServeCommand implements Callable<Integer> {

    /** Held: java.util.logging keeps only weak references to its loggers, and their levels with them. */
    private static final java.util.logging.Logger RATIS_GRPC_LOG =
            java.util.logging.Logger.getLogger("org.apache.ratis.thirdparty");

    @Spec
    CommandSpec spec;

    @Option(names = "--listen", paramLabel = "HOST:PORT", defaultValue = "127.0.0.1:50051",
            converter = HostPort.ListenConverter.class,
            description = "The address to listen on; 0.0.0.0 or :PORT for every interface, [::1]:PORT for an IPv6 "
                    + "address, port 0 for any free port "
                    + "(default: ${DEFAULT-VALUE}).")
    HostPort listen;

    @Option(names = "--data-dir", paramLabel = "DIR", defaultValue = "mapcast-data",
            description = "Where maps are kept: a write-ahead log and snapshots per map, created if missing, "
                    + "locked while this server runs (default: ./${DEFAULT-VALUE}).")
    Path dataDir;

    @Option(names = "--in-memory",
            description = "Keep maps in memory only: nothing survives a restart (tests, caches that refill).")
    boolean inMemory;

    @Option(names = "--fsync", paramLabel = "MODE", defaultValue = "always",
            converter = FsyncConverter.class,
            description = "always: a write is acknowledged once fsync put it on disk (concurrent writes share one); "
                    + "periodic: once the operating system has it, forced to disk every 100 ms: a server crash "
                    + "loses nothing acknowledged, a machine crash up to the last 100 ms (default: ${DEFAULT-VALUE}).")
    FsyncMode fsync;

    @Option(names = "--node-id", paramLabel = "ID",
            description = "This member's id in --cluster (letters, digits, '.', '_', '-').")
    String nodeId;

    @Option(names = "--cluster", paramLabel = "ID=HOST:PORT,...",
            description = "Run as a member of a cluster (Raft): every member's id and peer address. Members started "
                    + "with the same list form the cluster; a restarted member rejoins from its --data-dir. "
                    + "Writes go to any member and are acknowledged once a majority has them on disk.")
    String cluster;

    @Option(names = "--join",
            description = "This member joins a running cluster (after 'mapcast cluster add ID=HOST:PORT'); "
                    + "--cluster lists the members to reach, this one included.")
    boolean join;

    @Option(names = "--election-timeout", paramLabel = "DURATION", defaultValue = "300ms",
            converter = Converters.DurationConverter.class,
            description = "Cluster: how long a follower waits for the leader before an election (randomised up to "
                    + "twice this; default: ${DEFAULT-VALUE}).")
    Duration electionTimeout;

    @Option(names = "--snapshot-entries", paramLabel = "N", defaultValue = "100000",
            description = "Cluster: log entries between two snapshots; the log before a snapshot is purged "
                    + "(default: ${DEFAULT-VALUE}).")
    long snapshotEntries;

    @Option(names = "--tls-cert", paramLabel = "FILE",
            description = "Serve TLS only, with this certificate chain (PEM, this server's first); plaintext "
                    + "connections then fail. Read again when it changes (see --tls-reload-interval).")
    Path tlsCert;

    @Option(names = "--tls-key", paramLabel = "FILE",
            description = "The private key of --tls-cert (PEM, unencrypted PKCS#8: 'BEGIN PRIVATE KEY').")
    Path tlsKey;

    @Option(names = "--tls-client-ca", paramLabel = "FILE",
            description = "CA certificates (PEM) that sign client certificates; with it clients must present "
                    + "one (see --tls-client-auth).")
    Path tlsClientCa;

    @Option(names = "--tls-client-auth", paramLabel = "MODE", converter = ClientAuthConverter.class,
            description = "none, optional or require: whether clients must present a certificate signed by "
                    + "--tls-client-ca (default: require with --tls-client-ca, none without).")
    TlsFiles.ClientAuth tlsClientAuth;

    @Option(names = "--peer-tls-ca", paramLabel = "FILE",
            description = "Cluster with TLS: CA certificates (PEM) that sign the members' certificates. Members "
                    + "speak Raft over mutual TLS with --tls-cert and --tls-key, each naming the host of its peer "
                    + "address; keep this CA for members only.")
    Path peerTlsCa;

    @Option(names = "--tls-reload-interval", paramLabel = "DURATION", defaultValue = "5s",
            converter = Converters.DurationConverter.class,
            description = "How often the TLS files are checked for changes; a change is taken once the "
                    + "certificate and key match (default: ${DEFAULT-VALUE}).")
    Duration tlsReloadInterval;

    @Option(names = "--auth",
            description = "Require an identity on every call (a bearer token, or a client certificate whose CN "
                    + "names a user) and a right on the map it names; audit every change and every refusal. The "
                    + "first start creates user root and writes its token to <data-dir>/root.token (mode 0600). "
                    + "See 'mapcast user', 'mapcast role', 'mapcast token'.")
    boolean auth;

    @Option(names = "--audit-log", paramLabel = "FILE",
            description = "Where --auth writes its audit log, one JSON object per line (default: "
                    + "<data-dir>/audit.jsonl).")
    Path auditLog;

    @Option(names = "--audit-log-max-bytes", paramLabel = "SIZE", defaultValue = "64MiB",
            converter = Converters.ByteSizeConverter.class,
            description = "Size at which the audit log is rotated to FILE.1, FILE.2... (default: ${DEFAULT-VALUE}).")
    long auditLogMaxBytes;

    @Option(names = "--audit-log-files", paramLabel = "N", defaultValue = "10",
            description = "Rotated audit log files kept; older ones are deleted (default: ${DEFAULT-VALUE}).")
    int auditLogFiles;

    @Option(names = "--strict",
            description = "Refuse to start (exit 5, naming the file, byte and reason) if a map's files fail "
                    + "verification. Without it, such a map is quarantined: listed as damaged by 'mapcast ls', "
                    + "every call naming it refused, its files left as they are; the other maps are served.")
    boolean strict;

    @Option(names = "--snapshot-log-bytes", paramLabel = "SIZE", defaultValue = "64MiB",
            converter = Converters.ByteSizeConverter.class,
            description = "Log bytes after which a map writes a snapshot and drops the older log; bounds "
                    + "restart time (default: ${DEFAULT-VALUE}).")
    long snapshotLogBytes;

    // Limits. Defaults: MapcastServer.Builder's (ServeDefaultsTest keeps them equal).
    @Option(names = "--max-key-bytes", paramLabel = "SIZE", defaultValue = "4096",
            converter = Converters.ByteSizeConverter.class,
            description = "Longest key (1 to 64KiB; default: ${DEFAULT-VALUE}).")
    long maxKeyBytes;

    @Option(names = "--max-value-bytes", paramLabel = "SIZE", defaultValue = "1MiB",
            converter = Converters.ByteSizeConverter.class,
            description = "Longest value (0 to 64MiB; default: ${DEFAULT-VALUE}).")
    long maxValueBytes;

    @Option(names = "--max-write-bytes", paramLabel = "SIZE", defaultValue = "4MiB",
            converter = Converters.ByteSizeConverter.class,
            description = "Most bytes of keys and values in one write (1 to 256MiB; default: ${DEFAULT-VALUE}).")
    long maxWriteBytes;

    @Option(names = "--max-maps", paramLabel = "N", defaultValue = "1024",
            description = "Most maps the server holds (default: ${DEFAULT-VALUE}).")
    long maxMaps;

    @Option(names = "--max-entries-per-map", paramLabel = "N", defaultValue = "10000000",
            description = "Most entries in one map (default: ${DEFAULT-VALUE}).")
    long maxEntriesPerMap;

    @Option(names = "--history-deltas", paramLabel = "N", defaultValue = "10000",
            description = "Writes kept per map for watchers that resume (default: ${DEFAULT-VALUE}).")
    long historyDeltas;

    @Option(names = "--history-bytes", paramLabel = "SIZE", defaultValue = "16MiB",
            converter = Converters.ByteSizeConverter.class,
            description = "Bytes of those writes kept per map (default: ${DEFAULT-VALUE}).")
    long historyBytes;

    @Option(names = "--watcher-queue-bytes", paramLabel = "SIZE", defaultValue = "8MiB",
            converter = Converters.ByteSizeConverter.class,
            description = "Bytes queued for one slow watcher before it is moved to a fresh snapshot "
                    + "(default: ${DEFAULT-VALUE}).")
    long watcherQueueBytes;

    @Option(names = "--slow-watcher-timeout", paramLabel = "DURATION", defaultValue = "30s",
            converter = Converters.DurationConverter.class,
            description = "How long a watcher may take nothing while changes wait before it is cut off "
                    + "with RESOURCE_EXHAUSTED (default: ${DEFAULT-VALUE}).")
    Duration slowWatcherTimeout;

    @Option(names = "--progress-interval", paramLabel = "DURATION", defaultValue = "10s",
            converter = Converters.DurationConverter.class,
            description = "How often idle watchers that ask for it get a progress event (default: ${DEFAULT-VALUE}).")
    Duration progressInterval;

    @Option(names = "--max-streams-per-connection", paramLabel = "N", defaultValue = "1000",
            description = "Calls open at once on one client connection (watches, write streams, unary calls); "
                    + "a client's next call waits for one to end (default: ${DEFAULT-VALUE}).")
    int maxStreamsPerConnection;

    @Option(names = "--max-connections", paramLabel = "N", defaultValue = "10000",
            description = "Client connections open at once; one past it is closed as soon as it is accepted "
                    + "(its client sees UNAVAILABLE and retries) (default: ${DEFAULT-VALUE}).")
    int maxConnections;

    @Option(names = "--min-client-ping-interval", paramLabel = "DURATION", defaultValue = "5s",
            converter = Converters.DurationConverter.class,
            description = "How often a client may send keepalive pings; one pinging faster is disconnected with "
                    + "GOAWAY too_many_pings (default: ${DEFAULT-VALUE}, as etcd).")
    Duration minClientPingInterval;

    @Option(names = "--idle-connection-timeout", paramLabel = "DURATION", defaultValue = "30m",
            converter = Converters.DurationConverter.class,
            description = "A client connection with no call open for this long is closed; the client reconnects "
                    + "when it next calls (default: ${DEFAULT-VALUE}).")
    Duration idleConnectionTimeout;

    @Option(names = "--shutdown-grace", paramLabel = "DURATION", defaultValue = "5s",
            converter = Converters.DurationConverter.class,
            description = "How long calls in flight may finish at shutdown (default: ${DEFAULT-VALUE}).")
    Duration shutdownGrace;

    private static final String RATIS_LOG_LEVEL = "org.slf4j.simpleLogger.log.org.apache.ratis";
    private static final String GRPC_LOG_LEVEL = "org.slf4j.simpleLogger.log.io.grpc";

    @Override
    public Integer call() throws InterruptedException {
        // Before the first logger exists (slf4j-simple reads its level once): the server's
        // "serving on", "stopped serving" and "closed" lines are info.
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "info");
        // Ratis says a great deal at info (140+ lines per start) and warns for every retried request
        // around an election: errors only, and mapcast logs what matters itself (unless the JVM was
        // started with -Dorg.slf4j.simpleLogger.log.org.apache.ratis=info, to follow an election).
        if (System.getProperty(RATIS_LOG_LEVEL) == null) {
            System.setProperty(RATIS_LOG_LEVEL, "error");
        }
        if (System.getProperty(GRPC_LOG_LEVEL) == null) {
            System.setProperty(GRPC_LOG_LEVEL, "warn");  // a server's gRPC warnings are worth reading
        }
        // Ratis's shaded gRPC logs through java.util.logging (an info line per start): warnings only.
        RATIS_GRPC_LOG.setLevel(java.util.logging.Level.WARNING);
        Logger log = LoggerFactory.getLogger("mapcast");

        MapcastServer.Builder b = MapcastServer.builder().host(listen.host()).port(listen.port());
        limit("--max-key-bytes", maxKeyBytes, v -> b.maxKeyBytes(toInt(v)));
        limit("--max-value-bytes", maxValueBytes, v -> b.maxValueBytes(toInt(v)));
        limit("--max-write-bytes", maxWriteBytes, v -> b.maxWriteBytes(toInt(v)));
        limit("--max-maps", maxMaps, v -> b.maxMaps(toInt(v)));
        limit("--max-entries-per-map", maxEntriesPerMap, b::maxEntriesPerMap);
        // One builder call takes both history limits: check each against its own flag first.
        limit("--history-deltas", historyDeltas, v -> b.history(toInt(v), 1));
        limit("--history-bytes", historyBytes, v -> b.history(toInt(historyDeltas), v));
        limit("--watcher-queue-bytes", watcherQueueBytes, v -> b.watcherQueue(v, slowWatcherTimeout));
        b.progressInterval(progressInterval).shutdownGrace(shutdownGrace);
        if (inMemory && spec.commandLine().getParseResult().hasMatchedOption("--data-dir")) {
            throw new ParameterException(spec.commandLine(), "--in-memory and --data-dir exclude each other");
        }
        if (cluster != null || nodeId != null || join) {
            b.cluster(clusterConfig()).dataDir(dataDir);
        } else if (!inMemory) {
            limit("--snapshot-log-bytes", snapshotLogBytes, b::snapshotLogBytes);
            b.dataDir(dataDir).fsync(fsync).strict(strict);
        }

        b.tls(tlsFiles());
        if (auth) {
            if (inMemory) {
                throw new ParameterException(spec.commandLine(), "--auth needs a data directory (--data-dir; not "
                        + "--in-memory): users, roles and tokens are kept there, and user root's token is written there");
            }
            limit("--audit-log-max-bytes", auditLogMaxBytes, v -> b.auditLog(auditLog, v, auditLogFiles));
            limit("--audit-log-files", (long) auditLogFiles, v -> b.auditLog(auditLog, auditLogMaxBytes, toInt(v)));
            b.auth(true);
        } else {
            for (String authOnly : new String[] {"--audit-log", "--audit-log-max-bytes", "--audit-log-files"}) {
                if (spec.commandLine().getParseResult().hasMatchedOption(authOnly)) {
                    throw new ParameterException(spec.commandLine(), authOnly + " needs --auth");
                }
            }
        }
        try {
            b.connectionLimits(ConnectionLimits.DEFAULTS.withMaxStreamsPerConnection(maxStreamsPerConnection)
                    .withMinClientPingInterval(minClientPingInterval).withIdleTimeout(idleConnectionTimeout)
                    .withMaxConnections(maxConnections));
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), e.getMessage()
                    .replace("maxStreamsPerConnection", "--max-streams-per-connection")
                    .replace("maxConnections", "--max-connections")
                    .replace("minClientPingInterval", "--min-client-ping-interval")
                    .replace("idleTimeout", "--idle-connection-timeout"));
        }

        MapcastServer server;
        try {
            server = b.build();
        } catch (IllegalArgumentException e) {  // a TLS file that cannot be used, named
            throw new Failure(ExitCodes.USAGE, e.getMessage());
        } catch (UncheckedIOException e) {
            if (e.getCause() instanceof java.net.BindException) {
                throw new Failure(ExitCodes.CANNOT_LISTEN, e.getMessage());  // a member's peer address
            }
            throw new Failure(ExitCodes.STORAGE, (cluster != null ? "cannot start cluster member " + nodeId
                    : "cannot use data directory " + dataDir.toAbsolutePath()) + ": " + e.getMessage());
        }
        try {
            server.start();
        } catch (UncheckedIOException e) {
            server.close();
            // Netty says "Failed to bind to address"; why (in use, not local...) is in the cause.
            Throwable root = e;
            while (root.getCause() != null && root.getCause() != root) {
                root = root.getCause();
            }
            String why = root == e || root.getMessage() == null || e.getMessage().contains(root.getMessage())
                    ? "" : " (" + root.getMessage() + ")";
            throw new Failure(ExitCodes.CANNOT_LISTEN, e.getMessage() + why);
        }
        // On SIGTERM/SIGINT the JVM runs shutdown hooks and would exit 128+signal (143, 130); a
        // stop asked for by a signal is the normal way to end a server, so once it has closed
        // cleanly the hook ends the JVM with 0 itself. (The main thread, back from
        // awaitTermination, blocks in System.exit meanwhile: the JVM is already shutting down.)
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            log.info("shutting down: refusing new calls, ending watch streams, {} ms for calls in flight",
                    shutdownGrace.toMillis());
            server.close();
            System.out.flush();
            System.err.flush();
            Runtime.getRuntime().halt(ExitCodes.OK);
        }, "mapcast-shutdown"));
        server.awaitTermination();
        return ExitCodes.OK;
    }

    /** The --tls-* and --peer-tls-ca options, checked together; null without --tls-cert. */
    private TlsFiles tlsFiles() {
        var parsed = spec.commandLine().getParseResult();
        if (tlsCert == null) {
            for (String needsCert : new String[] {"--tls-key", "--tls-client-ca", "--tls-client-auth", "--peer-tls-ca",
                "--tls-reload-interval"}) {
                if (parsed.hasMatchedOption(needsCert)) {
                    throw new ParameterException(spec.commandLine(), needsCert + " needs --tls-cert (and --tls-key)");
                }
            }
            return null;
        }
        if (tlsKey == null) {
            throw new ParameterException(spec.commandLine(), "--tls-cert needs --tls-key (its private key)");
        }
        if (peerTlsCa != null && cluster == null) {
            throw new ParameterException(spec.commandLine(), "--peer-tls-ca applies to a cluster member (--cluster)");
        }
        if (cluster != null && peerTlsCa == null) {
            throw new ParameterException(spec.commandLine(), "a cluster member with --tls-cert needs --peer-tls-ca (the"
                    + " CA of the members' certificates): members authenticate each other with it");
        }
        try {
            TlsFiles files = TlsFiles.of(tlsCert, tlsKey, tlsClientCa).withPeerCa(peerTlsCa)
                    .withReloadInterval(tlsReloadInterval);
            return tlsClientAuth == null ? files : files.withClientAuth(tlsClientAuth);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), e.getMessage());
        }
    }

    /** none, optional or require, any case. */
    static final class ClientAuthConverter implements picocli.CommandLine.ITypeConverter<TlsFiles.ClientAuth> {
        @Override
        public TlsFiles.ClientAuth convert(String value) {
            for (TlsFiles.ClientAuth mode : TlsFiles.ClientAuth.values()) {
                if (mode.name().equalsIgnoreCase(value)) {
                    return mode;
                }
            }
            throw new picocli.CommandLine.TypeConversionException("\"" + value + "\" (expected: none, optional or"
                    + " require)");
        }
    }

    /** --node-id, --cluster and --join, checked: a usage error names the bad value. */
    private ClusterConfig clusterConfig() {
        var parsed = spec.commandLine().getParseResult();
        if (cluster == null || nodeId == null) {
            throw new ParameterException(spec.commandLine(), cluster == null
                    ? "--node-id and --join need --cluster (every member's ID=HOST:PORT)"
                    : "--cluster needs --node-id (this member's id in the list)");
        }
        for (String single : new String[] {"--in-memory", "--fsync", "--strict", "--snapshot-log-bytes"}) {
            if (parsed.hasMatchedOption(single)) {
                throw new ParameterException(spec.commandLine(), single + " does not apply to a cluster member (its "
                        + "Raft log is in --data-dir, and a write is acknowledged once a majority has fsync'd it)");
            }
        }
        try {
            return ClusterConfig.parse(nodeId, cluster, join).withElectionTimeout(electionTimeout)
                    .withSnapshotEntries(snapshotEntries);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), e.getMessage());
        }
    }

    /** Sets one limit; the builder's complaint becomes a usage error naming the flag and the value given. */
    private void limit(String flag, long value, LongConsumer setter) {
        try {
            setter.accept(value);
        } catch (IllegalArgumentException e) {
            // "maxKeyBytes: 0 (expected: 1 to 65536)" -> "--max-key-bytes: 0 (expected: 1 to 65536)"
            String message = e.getMessage();
            int expected = message.indexOf(" (expected");
            throw new ParameterException(spec.commandLine(),
                    flag + ": " + value + (expected < 0 ? " (" + message + ")" : message.substring(expected)));
        }
    }

    /** "always" or "periodic", any case. */
    static final class FsyncConverter implements picocli.CommandLine.ITypeConverter<FsyncMode> {
        @Override
        public FsyncMode convert(String value) {
            for (FsyncMode mode : FsyncMode.values()) {
                if (mode.name().equalsIgnoreCase(value)) {
                    return mode;
                }
            }
            throw new picocli.CommandLine.TypeConversionException("\"" + value + "\" (expected: always or periodic)");
        }
    }

    /** Past int range: the builder's range check reports it (with the value given, see limit). */
    private static int toInt(long v) {
        return (int) Math.max(Integer.MIN_VALUE, Math.min(Integer.MAX_VALUE, v));
    }
}
