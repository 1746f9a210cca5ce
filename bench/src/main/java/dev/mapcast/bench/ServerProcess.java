package dev.mapcast.bench;

import dev.mapcast.server.MapcastServer;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A mapcast server in a JVM of its own, child of the benchmark's, for benchmarks that keep the
 * server apart from its clients as a deployment does (and as etcd, the peer, always runs). Started
 * from the benchmark's own class path with a 1 GiB heap; the child prints its port, and stops when
 * its standard input closes ({@link #close()}) or, failing that, is killed.
 */
final class ServerProcess implements AutoCloseable {

    private final Process process;
    private final int port;
    private final Thread killer;

    private ServerProcess(Process process, int port) {
        this.process = process;
        this.port = port;
        this.killer = new Thread(process::destroyForcibly, "mapcast-server-killer");
        Runtime.getRuntime().addShutdownHook(killer);
    }

    /** Starts a server on a free loopback port; {@code lingerMicros} as the builder's watchLinger, -1 for its default. */
    static ServerProcess start(int lingerMicros) throws IOException {
        String java = ProcessHandle.current().info().command().orElse("java");
        List<String> command = new ArrayList<>(List.of(java, "-Xms1g", "-Xmx1g", "-XX:MetaspaceSize=64m"));
        if (Runtime.version().feature() >= 22) {
            command.add("--enable-native-access=ALL-UNNAMED");
        }
        if (Runtime.version().feature() >= 23) {
            command.add("--sun-misc-unsafe-memory-access=allow");
        }
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName(),
                Integer.toString(lingerMicros)));
        Process process = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        // The child prints its port once serving; one that cannot start exits, ending its output.
        String line;
        while ((line = out.readLine()) != null && !line.startsWith("port ")) {
            // not the port line: keep reading
        }
        if (line == null) {
            process.destroyForcibly();
            throw new IllegalStateException("the server process did not start (exit status "
                    + (process.isAlive() ? "none yet" : process.exitValue()) + "; its log is above)");
        }
        return new ServerProcess(process, Integer.parseInt(line.substring("port ".length()).trim()));
    }

    /** The benchmark's server: in memory, on a free loopback port, the given watch linger (-1: the default). */
    static MapcastServer.Builder builder(int lingerMicros) {
        MapcastServer.Builder builder = MapcastServer.builder().host("127.0.0.1").port(0);
        if (lingerMicros >= 0) {
            builder.watchLinger(Duration.ofNanos(lingerMicros * 1000L));
        }
        return builder;
    }

    int port() {
        return port;
    }

    /** CPU time the server's process has used so far. */
    Duration cpuTime() {
        return process.info().totalCpuDuration().orElse(Duration.ZERO);
    }

    /** Closes the child's standard input (it closes its server and exits), then kills it after 10 s. */
    @Override
    public void close() {
        try {
            process.getOutputStream().close();
            process.waitFor(10, TimeUnit.SECONDS);
        } catch (IOException ignored) {
            // it is gone already
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        process.destroyForcibly();
        try {
            Runtime.getRuntime().removeShutdownHook(killer);
        } catch (IllegalStateException exiting) {
            // the hook is running
        }
    }

    /** The child: serves until its standard input ends. */
    public static final class Main {
        public static void main(String[] args) throws IOException {
            try (MapcastServer server = builder(Integer.parseInt(args[0])).build().start()) {
                System.out.println("port " + server.port());
                System.out.flush();
                while (System.in.read() >= 0) {
                    // wait for the parent to close the pipe
                }
            }
        }
    }
}
