package dev.mapcast.cli.cluster;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.mapcast.cli.Main;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.proto.v1.ClusterMemberStatus;
import dev.mapcast.proto.v1.ClusterStatusResponse;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.function.UnaryOperator;
import java.util.stream.Collectors;

/**
 * A cluster of {@code mapcast serve} JVMs, started as the command is (the same main class, flags
 * and data directories), each killed with SIGKILL, frozen with SIGSTOP, or stopped and started
 * again as a test asks. Members run on loopback unless given a {@link Placement} (another host
 * address, and a command prefix such as {@code ip netns exec NS}: see {@link NetworkNamespaces}).
 * Ports are chosen free up front and kept across restarts, so clients keep one target list. Logs
 * go to {@code <dir>/<id>.log} (appended across restarts), which a failure message quotes.
 */
public final class ClusterProcesses implements AutoCloseable {

    /** How long a member may take to start, or a cluster to elect, on a busy 2-core machine. */
    public static final Duration PATIENCE = Duration.ofSeconds(90);

    private final Path dir;
    private final List<String> extraArgs;
    /** How this harness's own clients connect (TLS options for a cluster with TLS). */
    private final UnaryOperator<MapcastClient.Builder> clientOptions;
    private final Map<String, Member> members = new LinkedHashMap<>();

    /**
     * Where a member runs: the host of its peer and client addresses, and the words put before its
     * {@code java} command (empty: run as is).
     */
    public record Placement(String host, List<String> commandPrefix) {
        public static final Placement LOOPBACK = new Placement("127.0.0.1", List.of());

        public Placement {
            commandPrefix = List.copyOf(commandPrefix);
        }
    }

    /** One member: its placement, ports and data directory stay; its process comes and goes. */
    public static final class Member {
        public final String id;
        public final Placement placement;
        public final int peerPort;
        public final int clientPort;
        public final Path dataDir;
        public final Path log;
        Process process;

        Member(String id, Placement placement, int peerPort, int clientPort, Path dataDir, Path log) {
            this.id = id;
            this.placement = placement;
            this.peerPort = peerPort;
            this.clientPort = clientPort;
            this.dataDir = dataDir;
            this.log = log;
        }

        public String clientAddress() {
            return placement.host() + ":" + clientPort;
        }

        public String peerAddress() {
            return placement.host() + ":" + peerPort;
        }

        public boolean isAlive() {
            return process != null && process.isAlive();
        }

        public long pid() {
            return process.pid();
        }
    }

    private ClusterProcesses(Path dir, List<Placement> placements, UnaryOperator<MapcastClient.Builder> clientOptions,
            List<String> extraArgs) throws IOException {
        this.dir = Files.createDirectories(dir);
        this.extraArgs = extraArgs;
        this.clientOptions = clientOptions;
        for (int i = 0; i < placements.size(); i++) {
            String id = "m" + (i + 1);
            members.put(id, new Member(id, placements.get(i), freePort(), freePort(), dir.resolve(id),
                    dir.resolve(id + ".log")));
        }
    }

    /**
     * Starts {@code size} members on loopback (ids m1, m2, ...) together with {@code extraArgs}
     * added to every {@code serve}, and waits until they have elected a leader.
     */
    public static ClusterProcesses start(Path dir, int size, String... extraArgs) throws Exception {
        return start(dir, Collections.nCopies(size, Placement.LOOPBACK), extraArgs);
    }

    /** As {@link #start(Path, int, String...)}, member m<i>i</i> placed at {@code placements[i-1]}. */
    public static ClusterProcesses start(Path dir, List<Placement> placements, String... extraArgs) throws Exception {
        return start(dir, placements, b -> b, extraArgs);
    }

    /**
     * As {@link #start(Path, int, String...)}, the harness's own clients (status, health) built
     * with {@code clientOptions} (say, the TLS options that go with {@code extraArgs}).
     */
    public static ClusterProcesses start(Path dir, int size, UnaryOperator<MapcastClient.Builder> clientOptions,
            String... extraArgs) throws Exception {
        return start(dir, Collections.nCopies(size, Placement.LOOPBACK), clientOptions, extraArgs);
    }

    private static ClusterProcesses start(Path dir, List<Placement> placements,
            UnaryOperator<MapcastClient.Builder> clientOptions, String... extraArgs) throws Exception {
        ClusterProcesses c = new ClusterProcesses(dir, placements, clientOptions, List.of(extraArgs));
        try {
            for (Member m : c.members.values()) {
                c.launch(m, c.clusterList(), false);
            }
            for (Member m : c.members.values()) {
                c.awaitServing(m);
            }
            c.awaitLeader();
        } catch (Exception | Error e) {
            c.close();
            throw e;
        }
        return c;
    }

    /** The --cluster list of the members. */
    public String clusterList() {
        return members.values().stream().map(m -> m.id + "=" + m.peerAddress()).collect(Collectors.joining(","));
    }

    /** Every member's client address, as a client's target list. */
    public String targets() {
        return members.values().stream().map(Member::clientAddress).collect(Collectors.joining(","));
    }

    public Member member(String id) {
        return members.get(id);
    }

    public List<Member> members() {
        return new ArrayList<>(members.values());
    }

    /** The members alive now. */
    public List<Member> alive() {
        return members.values().stream().filter(Member::isAlive).toList();
    }

    /** The command line of {@code mapcast serve} for {@code m}. */
    public List<String> serveCommand(Member m, String cluster, boolean join) {
        List<String> cmd = new ArrayList<>(m.placement.commandPrefix());
        cmd.addAll(mapcast("serve", "--node-id", m.id, "--cluster", cluster, "--listen", m.clientAddress(),
                "--data-dir", m.dataDir.toString()));
        if (join) {
            cmd.add("--join");
        }
        cmd.addAll(extraArgs);
        return cmd;
    }

    /** The command line of {@code mapcast ARGS...}: this JVM's java and class path, the CLI's main class. */
    public static List<String> mapcast(String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        if (Runtime.version().feature() >= 23) {
            cmd.add("--sun-misc-unsafe-memory-access=allow");
            cmd.add("--enable-native-access=ALL-UNNAMED");
        }
        // C1 only: members (and CLI runs) start in a fraction of the CPU on a busy 2-core machine.
        cmd.addAll(List.of("-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
                Main.class.getName()));
        cmd.addAll(List.of(args));
        return cmd;
    }

    /** What a finished command gave. */
    public record Run(int exitCode, String stdout, String stderr) {
        @Override
        public String toString() {
            return "exit " + exitCode + "\n--- stdout\n" + stdout + "--- stderr\n" + stderr;
        }
    }

    /**
     * Runs {@code cmd} to completion ({@link #PATIENCE} at most), its output in {@code dir}'s files
     * named after {@code name}.
     */
    public static Run run(Path dir, String name, List<String> cmd) throws IOException, InterruptedException {
        Path out = dir.resolve(name + ".out");
        Path err = dir.resolve(name + ".err");
        Process p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                .redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        if (!p.waitFor(PATIENCE.toSeconds(), TimeUnit.SECONDS)) {
            p.destroyForcibly();
            p.waitFor();
            fail(name + " did not finish within " + PATIENCE + ": " + String.join(" ", cmd) + "\n"
                    + Files.readString(err));
        }
        return new Run(p.exitValue(), Files.readString(out), Files.readString(err));
    }

    private void launch(Member m, String cluster, boolean join) throws IOException {
        if (m.isAlive()) {
            throw new IllegalStateException("member " + m.id + " is already running");
        }
        Files.writeString(m.log, "---- start " + m.id + "\n", java.nio.file.StandardOpenOption.CREATE,
                java.nio.file.StandardOpenOption.APPEND);
        m.process = new ProcessBuilder(serveCommand(m, cluster, join))
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(ProcessBuilder.Redirect.appendTo(m.log.toFile())).start();
    }

    /** Waits until {@code m} says it serves (its client port is open). */
    public void awaitServing(Member m) throws Exception {
        long deadline = System.nanoTime() + PATIENCE.toNanos();
        String marker = "mapcast serving on " + m.clientAddress();
        while (true) {
            String log = Files.readString(m.log);
            int start = log.lastIndexOf("---- start " + m.id);
            if (log.indexOf(marker, Math.max(0, start)) >= 0) {
                return;
            }
            if (!m.isAlive() || System.nanoTime() > deadline) {
                fail("member " + m.id + " did not start (" + (m.isAlive() ? "still starting after " + PATIENCE
                        : "exit " + m.process.exitValue()) + "):\n" + tail(m));
            }
            Thread.sleep(50);
        }
    }

    /** SIGKILL: no shutdown hook, nothing flushed. */
    public void kill(Member m) throws InterruptedException {
        if (m.process != null) {
            m.process.destroyForcibly();
            assertTrue(m.process.waitFor(60, TimeUnit.SECONDS), "member " + m.id + " exits after SIGKILL");
        }
    }

    /**
     * SIGSTOP: the member is frozen, alive to the kernel (its sockets stay open, peers' packets are
     * acknowledged by TCP and queue up) but answers nothing until {@link #resume}.
     */
    public void freeze(Member m) throws Exception {
        signal(m, "STOP");
    }

    /** SIGCONT: a frozen member goes on where it was. */
    public void resume(Member m) throws Exception {
        signal(m, "CONT");
    }

    private static void signal(Member m, String signal) throws Exception {
        Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(m.pid())).redirectErrorStream(true).start();
        String out = new String(kill.getInputStream().readAllBytes());
        assertTrue(kill.waitFor(30, TimeUnit.SECONDS) && kill.exitValue() == 0,
                "kill -" + signal + " " + m.pid() + " (member " + m.id + "): " + out);
    }

    /** Starts a stopped or killed member again on its data directory. */
    public void restart(Member m) throws Exception {
        launch(m, clusterList(), false);
        awaitServing(m);
    }

    /** Adds a member (not started): it gets ports and a data directory. */
    public Member newMember(String id) throws IOException {
        Member m = new Member(id, Placement.LOOPBACK, freePort(), freePort(), dir.resolve(id),
                dir.resolve(id + ".log"));
        members.put(id, m);
        return m;
    }

    /** Starts a member added with {@link #newMember} with {@code --join}. */
    public void join(Member m) throws Exception {
        launch(m, clusterList(), true);
        awaitServing(m);
    }

    /** Forgets a member (after 'cluster remove'); kills it if alive. */
    public void forget(Member m) throws InterruptedException {
        kill(m);
        members.remove(m.id);
    }

    /**
     * The status as the given member answers it (null if it does not answer within 15 s: a member
     * answers only after asking every peer, so one peer cut off makes it slow).
     */
    public static ClusterStatusResponse status(Member m) {
        return status(m, b -> b);
    }

    private static ClusterStatusResponse status(Member m, UnaryOperator<MapcastClient.Builder> clientOptions) {
        try (MapcastClient c = clientOptions.apply(MapcastClient.builder().target(m.clientAddress())
                .deadline(Duration.ofSeconds(15))).build()) {
            return c.clusterStatus();
        } catch (RuntimeException e) {
            return null;
        }
    }

    /**
     * What the member's gRPC health service says of the whole server (service ""), or null if it
     * does not answer within 5 s.
     */
    public static ServingStatus health(Member m) {
        ManagedChannel channel = ManagedChannelBuilder.forTarget(m.clientAddress()).usePlaintext().build();
        try {
            return HealthGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS)
                    .check(HealthCheckRequest.getDefaultInstance()).getStatus();
        } catch (StatusRuntimeException e) {
            return null;
        } finally {
            channel.shutdownNow();
        }
    }

    /**
     * Waits until every live member names the same leader, itself alive and in the answers, and
     * returns it.
     */
    public Member awaitLeader() throws Exception {
        return awaitStatus(s -> true);
    }

    /**
     * Waits until every member of {@code among} (say the majority side of a partition) names the
     * same leader, itself one of {@code among} and alive, and returns it.
     */
    public Member awaitLeader(Collection<Member> among) throws Exception {
        return awaitStatus(among, s -> true);
    }

    /** As {@link #awaitLeader}, once the agreed status also passes {@code condition}. */
    public Member awaitStatus(Predicate<ClusterStatusResponse> condition) throws Exception {
        return awaitStatus(null, condition);
    }

    private Member awaitStatus(Collection<Member> among, Predicate<ClusterStatusResponse> condition) throws Exception {
        long deadline = System.nanoTime() + PATIENCE.toNanos();
        String last = "";
        while (System.nanoTime() < deadline) {
            String leader = null;
            boolean agreed = true;
            ClusterStatusResponse any = null;
            List<Member> asked = among == null ? alive() : List.copyOf(among);
            for (Member m : asked) {
                ClusterStatusResponse s = status(m, clientOptions);
                if (s == null || s.getLeader().isEmpty() || (leader != null && !leader.equals(s.getLeader()))) {
                    agreed = false;
                    last = m.id + ": " + (s == null ? "no answer" : "leader '" + s.getLeader() + "'");
                    break;
                }
                leader = s.getLeader();
                any = s;
            }
            if (agreed && leader != null && members.containsKey(leader) && members.get(leader).isAlive()
                    && asked.contains(members.get(leader)) && condition.test(any)) {
                return members.get(leader);
            }
            Thread.sleep(100);
        }
        fail("no agreed leader within " + PATIENCE + " (last: " + last + ")\n" + tails());
        return null;
    }

    /** Waits until every live member has applied at least {@code index}. */
    public void awaitApplied(long index) throws Exception {
        awaitStatus(s -> s.getMembersList().stream().filter(m -> members.containsKey(m.getId())
                && members.get(m.getId()).isAlive()).allMatch(m -> m.getAppliedIndex() >= index));
    }

    /** Waits ({@link #PATIENCE} at most) until {@code condition} holds; {@code what} names it in the failure. */
    public void await(String what, java.util.function.BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + PATIENCE.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("not within " + PATIENCE + ": " + what + "\n" + tails());
            }
            Thread.sleep(50);
        }
    }

    /** What {@code m} logged since it was last started. */
    public static String logSinceStart(Member m) throws IOException {
        String log = Files.readString(m.log);
        return log.substring(Math.max(0, log.lastIndexOf("---- start " + m.id)));
    }

    /** The Raft group's directory in {@code m}'s data directory ({@code <dataDir>/raft/<group id>}). */
    public static Path groupDir(Member m) throws IOException {
        try (var list = Files.list(m.dataDir.resolve("raft"))) {
            List<Path> groups = list.filter(p -> p.getFileName().toString().matches("[0-9a-f-]{36}")).toList();
            assertTrue(groups.size() == 1, "one Raft group directory in " + m.dataDir + ": " + groups);
            return groups.get(0);
        }
    }

    /** A map's revision as {@code m} lists it (its own applied state; no read barrier). */
    public static long revision(Member m, String map) {
        try (MapcastClient c = MapcastClient.builder().target(m.clientAddress()).deadline(Duration.ofSeconds(30))
                .build()) {
            return c.listMaps().stream().filter(i -> i.getName().equals(map)).mapToLong(i -> i.getRevision())
                    .findFirst().orElse(-1);
        }
    }

    /** The bytes of a map's snapshot saved from {@code m} (identical on every member for an INSERTION-order map). */
    public byte[] snapshotBytes(Member m, String map) throws IOException {
        Path file = dir.resolve(m.id + "-" + map + "-" + System.nanoTime() + ".snap");
        try (MapcastClient c = MapcastClient.builder().target(m.clientAddress()).deadline(Duration.ofSeconds(30))
                .build()) {
            c.saveSnapshot(map, file);
            return Files.readAllBytes(file);
        } finally {
            Files.deleteIfExists(file);
        }
    }

    /** The last lines of a member's log. */
    public static String tail(Member m) {
        try {
            List<String> lines = Files.readAllLines(m.log);
            return "--- " + m.id + " log (last 40 lines):\n"
                    + String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
        } catch (IOException e) {
            return "--- " + m.id + ": no log (" + e.getMessage() + ")";
        }
    }

    public String tails() {
        return members.values().stream().map(ClusterProcesses::tail).collect(Collectors.joining("\n"));
    }

    /** The applied index of {@code m} as the leader... as {@code m} itself reports. */
    public static long appliedIndex(ClusterStatusResponse s, String id) {
        return s.getMembersList().stream().filter(x -> x.getId().equals(id)).mapToLong(ClusterMemberStatus::getAppliedIndex)
                .findFirst().orElse(-1);
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    @Override
    public void close() throws InterruptedException {
        for (Member m : members.values()) {
            kill(m);
        }
    }
}
