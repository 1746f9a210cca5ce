package dev.mapcast.bench;

import com.google.protobuf.ByteString;
import io.etcd.jetcd.api.KVGrpc;
import io.etcd.jetcd.api.RangeRequest;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A single-member etcd, run as a child process for the benchmarks that measure etcd as a peer:
 * Debian's {@code etcd-server} ({@code /usr/bin/etcd}, 3.4), listening on loopback only, on two free
 * ports (client and peer), with a fresh data directory that {@link #close()} deletes.
 *
 * <p>Durability: the data directory is on {@code /dev/shm} (tmpfs), so etcd's fsyncs of its WAL and
 * of its bbolt backend return at once: the equivalent of {@code --unsafe-no-fsync}, which etcd 3.4
 * does not have (3.5 added it). mapcast's server keeps its maps in memory only, so neither side
 * pays for a disk. Every other setting is etcd's default (raft still runs: a single member commits
 * an entry once it is in its own WAL; snapshots every 100,000 entries; no auto-compaction), except
 * the log level, {@code warn}, whose output goes to {@code etcd.log} next to the data directory.
 *
 * <p>A shutdown hook kills the process and deletes the directory if the JVM exits without
 * {@link #close()} (JMH skips a trial's teardown when the benchmark throws), so that a failed fork
 * leaves no etcd and no data behind.
 */
final class EtcdServer implements AutoCloseable {

    static final Path BINARY = Path.of("/usr/bin/etcd");
    private static final Path TMPFS = Path.of("/dev/shm");
    private static final String LOOPBACK = "127.0.0.1";

    private final Path dir;
    private final Process process;
    private final int clientPort;
    private final Thread killer;

    /** CPU time the etcd process has used so far. */
    Duration cpuTime() {
        return process.info().totalCpuDuration().orElse(Duration.ZERO);
    }

    private EtcdServer(Path dir, Process process, int clientPort) {
        this.dir = dir;
        this.process = process;
        this.clientPort = clientPort;
        this.killer = new Thread(this::kill, "etcd-killer");
        Runtime.getRuntime().addShutdownHook(killer);
    }

    /** Starts etcd; it may not answer yet: see {@link #awaitReady}. */
    static EtcdServer start() throws IOException {
        if (!Files.isExecutable(BINARY)) {
            throw new IllegalStateException(BINARY + ": not found (expected: etcd 3.4; install Debian's etcd-server:"
                    + " apt-get install -y etcd-server)");
        }
        if (!Files.isDirectory(TMPFS)) {
            throw new IllegalStateException(TMPFS + ": not found (expected: a tmpfs for etcd's data directory,"
                    + " so that its fsyncs cost nothing, as mapcast's in-memory server pays none)");
        }
        Path dir = Files.createTempDirectory(TMPFS, "mapcast-etcd-");
        int[] ports = freePorts(2);
        String client = "http://" + LOOPBACK + ":" + ports[0];
        String peer = "http://" + LOOPBACK + ":" + ports[1];
        List<String> command = new ArrayList<>(List.of(BINARY.toString(),
                "--name", "bench",
                "--data-dir", dir.resolve("data").toString(),
                "--listen-client-urls", client,
                "--advertise-client-urls", client,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", "bench=" + peer,
                "--initial-cluster-state", "new",
                "--logger", "zap",
                "--log-outputs", "stderr",
                "--log-level", "warn"));
        Process process = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(dir.resolve("etcd.log").toFile())
                .start();
        return new EtcdServer(dir, process, ports[0]);
    }

    /** A new plaintext channel to the client port. */
    ManagedChannel newChannel() {
        return NettyChannelBuilder.forAddress(LOOPBACK, clientPort).usePlaintext().build();
    }

    /** Returns once etcd answers a Range on {@code channel}; throws, with etcd's log, if it does not within {@code timeout}. */
    void awaitReady(ManagedChannel channel, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        RangeRequest probe = RangeRequest.newBuilder().setKey(ByteString.copyFromUtf8("ready?")).build();
        StatusRuntimeException last = null;
        while (System.nanoTime() - deadline < 0) {
            if (!process.isAlive()) {
                throw new IllegalStateException("etcd exited with status " + process.exitValue() + "; its log:\n" + log());
            }
            try {
                KVGrpc.newBlockingStub(channel).withDeadlineAfter(1, TimeUnit.SECONDS).range(probe);
                return;
            } catch (StatusRuntimeException e) {
                last = e;
            }
            Thread.sleep(100);
        }
        throw new IllegalStateException("etcd did not answer within " + timeout + " (last: " + last + "); its log:\n" + log());
    }

    private String log() {
        try {
            return Files.readString(dir.resolve("etcd.log"), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(unreadable: " + e + ")";
        }
    }

    /** Stops etcd (SIGTERM, then SIGKILL after 10 s) and deletes its directory. */
    @Override
    public void close() {
        process.destroy();
        try {
            process.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        kill();
        try {
            Runtime.getRuntime().removeShutdownHook(killer);
        } catch (IllegalStateException shuttingDown) {
            // the hook runs anyway, and finds nothing left to do
        }
    }

    /** SIGKILL if still running, then deletes the directory; does nothing the second time. */
    private synchronized void kill() {
        if (!Files.exists(dir)) {
            return;
        }
        try {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) files.sorted(Comparator.reverseOrder())::iterator) {
                Files.delete(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("deleting " + dir, e);
        }
    }

    /** {@code count} distinct loopback ports free at the time of the call (all held open at once, then released). */
    static int[] freePorts(int count) throws IOException {
        ServerSocket[] sockets = new ServerSocket[count];
        try {
            int[] ports = new int[count];
            for (int i = 0; i < count; i++) {
                sockets[i] = new ServerSocket(0, 1, InetAddress.getByName(LOOPBACK));
                ports[i] = sockets[i].getLocalPort();
            }
            return ports;
        } finally {
            for (ServerSocket s : sockets) {
                if (s != null) {
                    s.close();
                }
            }
        }
    }
}
