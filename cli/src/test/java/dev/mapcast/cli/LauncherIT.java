package dev.mapcast.cli;

import static dev.mapcast.cli.Processes.awaitContent;
import static dev.mapcast.cli.Processes.read;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.cli.Processes.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ./mapcast} itself, as the README's quick start runs it: a server it starts answers the
 * client commands it runs, with the JVM options it sets and the user's {@code MAPCAST_JAVA_OPTS}.
 * An integration test: it runs after {@code package}, on the {@code cli/target/mapcast.jar} that
 * build made (so the launcher has nothing to build).
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class LauncherIT {

    private static final Path LAUNCHER = Path.of(System.getProperty("mapcast.launcher", "../mapcast"))
            .toAbsolutePath().normalize();

    @TempDir
    Path tmp;

    @Test
    void theQuickStartServesAndAnswersThroughTheLauncher() throws Exception {
        Path log = tmp.resolve("serve.log");
        ProcessBuilder serve = launcher(Map.of(), "serve", "--in-memory", "--listen", "127.0.0.1:0")
                .redirectOutput(tmp.resolve("serve.out").toFile()).redirectError(log.toFile());
        Process server = serve.start();
        try {
            awaitContent(log, s -> ServingLine.in(s) != null, server, "the serving line");
            Map<String, String> env = Map.of("MAPCAST_SERVER", ServingLine.in(read(log)).address());
            assertOk("1", run(env, "put", "config", "region", "eu-west-1"));  // the revision
            assertOk("eu-west-1", run(env, "get", "config", "region"));
            assertTrue(run(env, "ls").stdout().lines().anyMatch(l -> l.startsWith("config ")), "ls lists the map");
        } finally {
            server.destroy();  // SIGTERM: a graceful stop
            if (!server.waitFor(30, TimeUnit.SECONDS)) {
                server.destroyForcibly().waitFor();  // then the exit code below is not 0
            }
        }
        assertEquals(0, server.exitValue(), () -> "a graceful stop on SIGTERM: " + read(log));
    }

    @Test
    void setsTheMetaspaceThresholdAndLetsTheUsersJvmOptionsWin() {
        Result defaults = run(Map.of("MAPCAST_JAVA_OPTS", "-XX:+PrintCommandLineFlags"), "--version");
        assertEquals(0, defaults.exitCode(), defaults::toString);
        assertTrue(defaults.stdout().contains("-XX:MetaspaceSize=67108864"), defaults::toString);
        assertTrue(defaults.stdout().contains("mapcast "), defaults::toString);

        Result mine = run(Map.of("MAPCAST_JAVA_OPTS", "-XX:MetaspaceSize=32m  -XX:+PrintCommandLineFlags"), "--version");
        assertEquals(0, mine.exitCode(), mine::toString);
        assertTrue(mine.stdout().contains("-XX:MetaspaceSize=33554432"), mine::toString);
    }

    @Test
    void aBadJvmOptionFailsWithTheJvmsMessageAndRunsNothing() {
        Result r = run(Map.of("MAPCAST_JAVA_OPTS", "-XX:NoSuchOption"), "--version");
        assertNotEquals(0, r.exitCode(), r::toString);
        assertTrue(r.stderr().contains("Unrecognized VM option 'NoSuchOption'"), r::toString);
        assertEquals("", r.stdout(), r::toString);
    }

    private ProcessBuilder launcher(Map<String, String> env, String... args) {
        assertTrue(Files.isExecutable(LAUNCHER), "the launcher: " + LAUNCHER);
        List<String> command = new ArrayList<>(List.of(LAUNCHER.toString()));
        command.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(command).directory(tmp.toFile());
        pb.environment().remove("MAPCAST_JAVA_OPTS");  // the machine's own settings must not leak in
        pb.environment().remove("MAPCAST_SERVER");
        pb.environment().putAll(env);
        return pb;
    }

    private Result run(Map<String, String> env, String... args) {
        String name = String.join("-", args).replaceAll("[^A-Za-z0-9-]", "_");
        return Processes.run(launcher(env, args), tmp.resolve(name + ".out"), tmp.resolve(name + ".err"), null,
                "./mapcast " + String.join(" ", args));
    }

    /** Exit 0, {@code stdout} as the only line, nothing on stderr: what a script relies on. */
    private static void assertOk(String stdout, Result r) {
        assertEquals(0, r.exitCode(), r::toString);
        assertEquals(stdout + "\n", r.stdout(), r::toString);
        assertEquals("", r.stderr(), r::toString);
    }
}
