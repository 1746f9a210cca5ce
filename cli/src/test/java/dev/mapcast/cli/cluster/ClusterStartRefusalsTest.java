package dev.mapcast.cli.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.mapcast.cli.cluster.ClusterProcesses.Member;
import dev.mapcast.cli.cluster.ClusterProcesses.Run;
import dev.mapcast.client.MapcastClient;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Start-up mistakes an operator makes, each through the real {@code mapcast serve}: refused with
 * one line naming the problem and a non-zero exit, no stack trace, and the data directory as it
 * was (every file's bytes, no file added or removed).
 */
@Timeout(value = 600, unit = TimeUnit.SECONDS)  // the bound of a hung test, not of a slow machine's
class ClusterStartRefusalsTest {

    @TempDir
    Path dir;

    private int runs;

    @Test
    void mistakesAtStartAreRefusedNamingTheProblemWithTheDataUntouched() throws Exception {
        // Usage: a node id given twice in --cluster.
        Run duplicate = serve("--node-id", "a", "--cluster", "a=127.0.0.1:" + freePort() + ",a=127.0.0.1:"
                + freePort(), "--listen", "127.0.0.1:" + freePort(), "--data-dir", dir.resolve("dup").toString());
        assertRefused(duplicate, 2, "--cluster: member id 'a' given twice");
        assertFalse(Files.exists(dir.resolve("dup")), "a usage error creates no data directory");

        // A one-member cluster, m1 on list A.
        try (ClusterProcesses cluster = ClusterProcesses.start(dir.resolve("a"), 1)) {
            Member m1 = cluster.member("m1");
            try (MapcastClient c = MapcastClient.builder().target(m1.clientAddress()).deadline(Duration.ofSeconds(30))
                    .build()) {
                c.put("cfg", "k", "v");
            }

            // Another member on list B, which names m1 at its address: m1 serves another group.
            Path bDir = dir.resolve("b");
            Run mismatched = serve("--node-id", "b", "--cluster", "m1=" + m1.peerAddress() + ",b=127.0.0.1:" + freePort(),
                    "--listen", "127.0.0.1:" + freePort(), "--data-dir", bDir.toString());
            assertRefused(mismatched, 5, "member m1 at " + m1.peerAddress() + " is in another cluster");
            assertTrue(mismatched.stderr().contains("different --cluster lists"), mismatched.toString());

            // A second m1 (its own data directory): the peer port is taken.
            Run twice = serve("--node-id", "m1", "--cluster", cluster.clusterList(), "--listen", "127.0.0.1:"
                    + freePort(), "--data-dir", dir.resolve("second-m1").toString());
            assertRefused(twice, 1, "cannot listen on peer address " + m1.peerAddress());
            assertTrue(twice.stderr().contains("is member m1 already running?"), twice.toString());

            // m1's own data directory while m1 runs: locked.
            Run locked = serve("--node-id", "m1", "--cluster", cluster.clusterList(), "--listen", "127.0.0.1:"
                    + freePort(), "--data-dir", m1.dataDir.toString());
            assertRefused(locked, 5, m1.dataDir.toString());
            cluster.kill(m1);

            // m1's data directory, stopped, given to another cluster: another --cluster list, another node id.
            Map<String, String> before = files(m1.dataDir);
            Run otherList = serve("--node-id", "m1", "--cluster", cluster.clusterList() + ",m2=127.0.0.1:"
                    + freePort(), "--listen", "127.0.0.1:" + freePort(), "--data-dir", m1.dataDir.toString());
            assertRefused(otherList, 5, "does not match the cluster of data directory " + m1.dataDir);
            assertEquals(before, files(m1.dataDir), "m1's data directory after a refused start with another list");
            Run otherId = serve("--node-id", "x", "--cluster", "x=" + m1.peerAddress(), "--listen", "127.0.0.1:"
                    + freePort(), "--data-dir", m1.dataDir.toString());
            assertRefused(otherId, 5, "belongs to member m1, not to x");
            assertEquals(before, files(m1.dataDir), "m1's data directory after a refused start as x");

            // A member's data directory given to a single server.
            Run single = serve("--listen", "127.0.0.1:" + freePort(), "--data-dir", m1.dataDir.toString());
            assertRefused(single, 5, "cluster.member");
            assertEquals(before, files(m1.dataDir), "m1's data directory after a refused single server");

            // And it still starts as itself, with its data.
            cluster.restart(m1);
            cluster.awaitLeader();
            try (MapcastClient c = MapcastClient.builder().target(m1.clientAddress()).deadline(Duration.ofSeconds(30))
                    .build()) {
                assertEquals("v", new String(c.get("cfg", "k").value(), java.nio.charset.StandardCharsets.UTF_8));
            }
        }

        // A single server's data directory given to a member.
        Path singleDir = dir.resolve("single");
        int port = freePort();
        Path log = dir.resolve("single.log");
        Process server = new ProcessBuilder(ClusterProcesses.mapcast("serve", "--listen", "127.0.0.1:" + port,
                "--data-dir", singleDir.toString())).redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(log.toFile()).start();
        try {
            long deadline = System.nanoTime() + ClusterProcesses.PATIENCE.toNanos();
            while (!Files.readString(log).contains("mapcast serving on")) {
                if (!server.isAlive() || System.nanoTime() > deadline) {
                    fail("single server did not start: " + Files.readString(log));
                }
                Thread.sleep(50);
            }
            try (MapcastClient c = MapcastClient.builder().target("127.0.0.1:" + port).deadline(Duration.ofSeconds(30))
                    .build()) {
                c.put("cfg", "k", "single");
            }
        } finally {
            server.destroyForcibly();
            server.waitFor(60, TimeUnit.SECONDS);
        }
        Map<String, String> before = files(singleDir);
        Run member = serve("--node-id", "s", "--cluster", "s=127.0.0.1:" + freePort(), "--listen", "127.0.0.1:"
                + freePort(), "--data-dir", singleDir.toString());
        assertRefused(member, 5, "holds a single server's maps");
        assertEquals(before, files(singleDir), "the single server's data directory after a refused member");
    }

    private Run serve(String... args) throws IOException, InterruptedException {
        String[] all = new String[args.length + 1];
        all[0] = "serve";
        System.arraycopy(args, 0, all, 1, args.length);
        return ClusterProcesses.run(dir, "serve-" + (++runs), ClusterProcesses.mapcast(all));
    }

    /** Exit {@code code}, and one "mapcast: " line naming the problem, no stack trace. */
    private static void assertRefused(Run run, int code, String problem) {
        assertEquals(code, run.exitCode(), run.toString());
        List<String> lines = run.stderr().lines().filter(l -> l.startsWith("mapcast: ")).toList();
        assertEquals(1, lines.size(), "one 'mapcast: ' line:\n" + run);
        assertTrue(lines.get(0).contains(problem), "'" + problem + "' in: " + lines.get(0));
        assertFalse(run.stderr().contains("\tat ") || run.stderr().contains("Exception:")
                || run.stderr().contains("Exception\n"), "no stack trace:\n" + run);
    }

    /** Every regular file under {@code root}, relative, with its bytes' SHA-256. */
    private static Map<String, String> files(Path root) throws IOException {
        Map<String, String> out = new TreeMap<>();
        try (Stream<Path> walk = Files.walk(root)) {
            for (Path p : walk.filter(Files::isRegularFile).toList()) {
                try {
                    out.put(root.relativize(p).toString(), HexFormat.of().formatHex(
                            MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p))));
                } catch (java.security.NoSuchAlgorithmException e) {
                    throw new AssertionError(e);
                }
            }
        }
        return out;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}
