package dev.mapcast.cli;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/** Running commands as a user would, for the CLI's tests: to completion, or in the background. */
final class Processes {

    private Processes() {
    }

    /** What a finished command gave: its exit code and output. */
    record Result(int exitCode, byte[] stdoutBytes, String stdout, String stderr) {
        List<String> lines() {
            return stdout.lines().toList();
        }

        @Override
        public String toString() {
            return "exit " + exitCode + "\n--- stdout\n" + stdout + "--- stderr\n" + stderr;
        }
    }

    /**
     * Runs {@code command} to completion (30 s at most) with {@code stdin} (may be null), its
     * output going to the files {@code out} and {@code err}; {@code what} names it in failures.
     */
    static Result run(ProcessBuilder command, Path out, Path err, byte[] stdin, String what) {
        try {
            Process p = command.redirectOutput(out.toFile()).redirectError(err.toFile()).start();
            try (OutputStream in = p.getOutputStream()) {
                if (stdin != null) {
                    in.write(stdin);
                }
            }
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                fail(what + " did not finish; stderr: " + read(err));
            }
            byte[] stdout = Files.readAllBytes(out);
            return new Result(p.exitValue(), stdout, new String(stdout, UTF_8), read(err));
        } catch (IOException e) {
            throw new AssertionError(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /**
     * Runs {@code mapcast args} to completion in a JVM of its own (see {@link
     * dev.mapcast.cli.cluster.ClusterProcesses#mapcast}), with {@code env} and none of the test
     * machine's $MAPCAST_SERVER and $MAPCAST_TOKEN; its output goes to {@code <dir>/<name>.out} and
     * {@code .err}.
     */
    static Result mapcast(Path dir, String name, Map<String, String> env, List<String> args) {
        ProcessBuilder pb = new ProcessBuilder(dev.mapcast.cli.cluster.ClusterProcesses.mapcast(
                args.toArray(String[]::new)));
        pb.environment().remove(ClientOptions.ENV);
        pb.environment().remove(ClientOptions.TOKEN_ENV);
        pb.environment().putAll(env);
        return run(pb, dir.resolve(name + ".out"), dir.resolve(name + ".err"), null, "mapcast " + args);
    }

    /**
     * How long a test waits for a process to do what takes it well under a second on an idle
     * machine: a JVM starting, a line printed. Generous, as a passing test never waits it out, and a
     * loaded 2-core machine (a build beside it) once took over 20 s to start a server.
     */
    static final long PATIENCE_SECONDS = 90;

    /** Waits ({@link #PATIENCE_SECONDS} at most) until {@code file}, written by the running {@code p}, shows {@code what}. */
    static void awaitContent(Path file, Predicate<String> ready, Process p, String what)
            throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(PATIENCE_SECONDS);
        while (!ready.test(read(file))) {
            if (!p.isAlive()) {
                fail("exited (" + p.exitValue() + ") before " + what + ": " + read(file));
            }
            if (System.nanoTime() > deadline) {
                fail("no " + what + " in " + PATIENCE_SECONDS + " s: " + read(file));
            }
            Thread.sleep(20);
        }
    }

    /** The file's text, empty while it does not exist. */
    static String read(Path file) {
        try {
            return Files.exists(file) ? Files.readString(file, UTF_8) : "";
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }
}
