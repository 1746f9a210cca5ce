package dev.mapcast.cli.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.cli.cluster.ClusterProcesses.Member;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.core.IterationOrder;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A follower down long enough for the leader to snapshot and purge the log it missed catches up
 * by snapshot installation, and ends with the others' content byte for byte: compact_revision
 * included, although the members' delta histories (bounded at 100 deltas here) begin at different
 * revisions (the leader's was purged by its bound; the follower's begins at the installed snapshot).
 */
@Timeout(value = 600, unit = TimeUnit.SECONDS)  // the bound of a hung test, not of a slow machine's
class ClusterSnapshotInstallTest {

    private static final Pattern SEGMENT = Pattern.compile("log_(?:inprogress_)?(\\d+)(?:-(\\d+))?");

    @TempDir
    Path dir;

    @Test
    void aFollowerBehindThePurgedLogCatchesUpBySnapshot() throws Exception {
        try (ClusterProcesses cluster = ClusterProcesses.start(dir, 3, "--snapshot-entries", "50",
                "--history-deltas", "100")) {
            Member leader = cluster.awaitLeader();
            Member follower = cluster.members().stream().filter(m -> m != leader).findFirst().orElseThrow();
            String others = String.join(",", cluster.members().stream().filter(m -> m != follower)
                    .map(Member::clientAddress).toList());
            // 8 KiB values: 300 writes fill more than one 1 MB log segment (segments are purged whole).
            String value = "x".repeat(8 * 1024);
            try (MapcastClient c = MapcastClient.builder().target(others).deadline(Duration.ofSeconds(30)).build()) {
                for (int i = 1; i <= 10; i++) {
                    c.write("big").put("k" + i, value + i).order(IterationOrder.INSERTION).commit();
                }
                cluster.awaitApplied(ClusterProcesses.appliedIndex(ClusterProcesses.status(leader), leader.id));
                long followerIndex = ClusterProcesses.appliedIndex(ClusterProcesses.status(follower), follower.id);
                assertTrue(snapshots(follower).isEmpty(), "no snapshot of its own before the kill (50 entries not"
                        + " reached): " + snapshots(follower));
                cluster.kill(follower);
                for (int i = 11; i <= 300; i++) {
                    var w = c.write("big").put("k" + (i % 97), value + i);
                    if (i % 10 == 0) {
                        w.delete("k" + (i % 7));
                    }
                    w.commit();
                }
                Member now = cluster.awaitLeader();
                cluster.await("a snapshot on leader " + now.id + " and its log purged past index " + followerIndex,
                        () -> !snapshots(now).isEmpty() && firstLogIndex(now) > followerIndex + 1);
                System.out.println("leader " + now.id + ": snapshots " + snapshots(now) + ", log starts at "
                        + firstLogIndex(now) + "; follower " + follower.id + " stopped at " + followerIndex);

                cluster.restart(follower);
                long applied = ClusterProcesses.appliedIndex(ClusterProcesses.status(now), now.id);
                cluster.awaitApplied(applied);
                cluster.await(follower.id + " at revision 300", () -> ClusterProcesses.revision(follower, "big")
                        == 300);
                String log = ClusterProcesses.logSinceStart(follower);
                assertTrue(log.contains("loaded snapshot"), "caught up by installing a snapshot:\n" + log);
                assertFalse(snapshots(follower).isEmpty(), "the installed snapshot is in " + follower.id
                        + "'s state machine directory");
                byte[] reference = cluster.snapshotBytes(now, "big");
                for (Member m : cluster.members()) {
                    assertEquals(300, ClusterProcesses.revision(m, "big"), "revision on " + m.id);
                    assertArrayEquals(reference, cluster.snapshotBytes(m, "big"), "snapshot bytes of " + m.id);
                }
                // And it goes on from there: writes after the install reach it. 30 of them: the leader's
                // history passes its bound again (it purges every 26 deltas), the follower's does not.
                assertEquals(301, c.write("big").put("after", "install").commit());
                for (int i = 302; i <= 330; i++) {
                    c.write("big").put("after", "install " + i).commit();
                }
                cluster.await(follower.id + " at revision 330", () -> ClusterProcesses.revision(follower, "big")
                        == 330);
                byte[] after = cluster.snapshotBytes(now, "big");
                for (Member m : cluster.members()) {
                    assertArrayEquals(after, cluster.snapshotBytes(m, "big"), "snapshot bytes of " + m.id
                            + " at revision 330");
                }
                assertTrue(follower.isAlive(), "the follower still runs after installing:\n"
                        + ClusterProcesses.tail(follower));
            }
        }
    }

    /** The snapshot directories in the member's state machine directory. */
    private static List<String> snapshots(Member m) {
        try (Stream<Path> list = Files.list(ClusterProcesses.groupDir(m).resolve("sm"))) {
            return list.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("snapshot-")).sorted().toList();
        } catch (IOException e) {
            return List.of();
        }
    }

    /** The first log index the member's Raft log still holds (its oldest segment's start). */
    private static long firstLogIndex(Member m) {
        try (Stream<Path> list = Files.list(ClusterProcesses.groupDir(m).resolve("current"))) {
            return list.map(p -> SEGMENT.matcher(p.getFileName().toString())).filter(Matcher::matches)
                    .mapToLong(x -> Long.parseLong(x.group(1))).min().orElse(-1);
        } catch (IOException e) {
            return -1;
        }
    }
}
