package dev.mapcast.cli.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.cli.cluster.ClusterProcesses.Member;
import dev.mapcast.cli.cluster.ClusterProcesses.Run;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.MapcastException;
import dev.mapcast.client.Replica;
import dev.mapcast.client.ReplicaListener;
import dev.mapcast.codec.Codec;
import dev.mapcast.codec.ProtocolHeaders;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.proto.v1.ClusterMemberStatus;
import dev.mapcast.proto.v1.ClusterStatusResponse;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.WriteRequest;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A member's life in a three-member cluster (one cluster shared by the tests, in this order; each
 * starts with every member alive): a follower killed and restarted catches up from the log; a
 * watcher whose member is killed resumes on another with no gap; members added and removed; health
 * and refusals of a member cut off from the majority (last: it kills two members).
 */
@Timeout(value = 600, unit = TimeUnit.SECONDS)  // the bound of a hung test, not of a slow machine's
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ClusterLifeTest {

    @TempDir
    static Path dir;

    private static ClusterProcesses cluster;

    @BeforeAll
    static void startCluster() throws Exception {
        cluster = ClusterProcesses.start(dir, 3);
    }

    @AfterAll
    static void stopCluster() throws InterruptedException {
        if (cluster != null) {
            cluster.close();
        }
    }

    /** Every test starts with every member alive and agreeing on a leader. */
    @BeforeEach
    void everyMemberAlive() throws Exception {
        for (Member m : cluster.members()) {
            if (!m.isAlive()) {
                cluster.restart(m);
            }
        }
        cluster.awaitLeader();
    }

    private static MapcastClient client(String targets) {
        return MapcastClient.builder().target(targets).deadline(Duration.ofSeconds(30)).build();
    }

    private static String targetsWithout(Member m) {
        return String.join(",", cluster.members().stream().filter(x -> x != m).map(Member::clientAddress).toList());
    }

    private static Member aFollower() throws Exception {
        Member leader = cluster.awaitLeader();
        return cluster.members().stream().filter(m -> m != leader).findFirst().orElseThrow();
    }

    /** Every live member has the same revision of {@code map} and the same snapshot bytes (an INSERTION-order map). */
    private static void assertSameEverywhere(String map, long revision) throws Exception {
        byte[] first = null;
        Member firstMember = null;
        for (Member m : cluster.alive()) {
            assertEquals(revision, ClusterProcesses.revision(m, map), "revision of " + map + " on " + m.id);
            byte[] bytes = cluster.snapshotBytes(m, map);
            if (first == null) {
                first = bytes;
                firstMember = m;
            } else {
                assertArrayEquals(first, bytes, "snapshot bytes of " + map + " on " + m.id + " and " + firstMember.id);
            }
        }
    }

    @Test
    @Order(1)
    void aFollowerKilledAndRestartedCatchesUpFromTheLog() throws Exception {
        Member follower = aFollower();
        long revision;
        try (MapcastClient c = client(targetsWithout(follower))) {
            for (int i = 1; i <= 30; i++) {
                c.write("log").put("k" + (i % 11), "before-" + i).order(IterationOrder.INSERTION).commit();
            }
            cluster.kill(follower);
            for (int i = 1; i <= 100; i++) {
                var w = c.write("log").put("k" + (i % 13), "while-down-" + i);
                if (i % 7 == 0) {
                    w.delete("k" + (i % 5));
                }
                w.commit();
            }
            revision = c.listMaps().stream().filter(i -> i.getName().equals("log")).findFirst().orElseThrow()
                    .getRevision();
        }
        assertEquals(130, revision);
        cluster.restart(follower);
        long leaderApplied = ClusterProcesses.appliedIndex(ClusterProcesses.status(cluster.awaitLeader()),
                cluster.awaitLeader().id);
        cluster.awaitApplied(leaderApplied);
        // ListMaps answers from the member's own applied state: it caught up by itself.
        cluster.await(follower.id + " at revision " + revision, () -> ClusterProcesses.revision(follower, "log")
                == revision);
        assertSameEverywhere("log", revision);
        String log = ClusterProcesses.logSinceStart(follower);
        assertFalse(log.contains("loaded snapshot"), "caught up from the log, not a snapshot:\n" + log);
    }

    @Test
    @Order(2)
    void aWatcherWhoseMemberIsKilledResumesOnAnotherWithNoGap() throws Exception {
        Member watched = aFollower();
        List<Long> changes = new CopyOnWriteArrayList<>();
        List<String> resyncs = new CopyOnWriteArrayList<>();
        ReplicaListener<String, String> listener = new ReplicaListener<>() {
            @Override
            public void onChange(long revision, Map<String, String> puts, Set<String> deletes) {
                changes.add(revision);
            }

            @Override
            public void onResync(long revision, ResyncReason reason) {
                resyncs.add(reason + "@" + revision);
            }
        };
        // The watched member first: the replica's stream goes there.
        String targets = watched.clientAddress() + "," + targetsWithout(watched);
        try (MapcastClient writer = client(targetsWithout(watched))) {
            writer.write("watched").put("k0", "v0").order(IterationOrder.INSERTION).commit();
            try (MapcastClient watcher = client(targets);
                    Replica<String, String> replica = watcher.replica("watched", Codec.utf8(), Codec.utf8(), listener)) {
                assertTrue(replica.awaitRevision(1, ClusterProcesses.PATIENCE), "replica synced");
                AtomicBoolean stop = new AtomicBoolean();
                AtomicLong written = new AtomicLong(1);
                AtomicReference<Throwable> writeFailure = new AtomicReference<>();
                Thread load = new Thread(() -> {
                    try {
                        for (int i = 1; !stop.get(); i++) {
                            var w = writer.write("watched").put("k" + (i % 17), "v" + i);
                            if (i % 5 == 0) {
                                w.delete("k" + (i % 3));
                            }
                            written.set(w.commit());
                        }
                    } catch (Throwable t) {
                        writeFailure.set(t);
                    }
                }, "writer");
                load.start();
                try {
                    cluster.await("50 writes seen by the replica", () -> replica.revision() >= 50);
                    cluster.kill(watched);
                    long atKill = written.get();
                    cluster.await("100 more writes after the kill", () -> written.get() >= atKill + 100
                            || writeFailure.get() != null);
                } finally {
                    stop.set(true);
                    load.join();
                }
                assertEquals(null, writeFailure.get(), "writes through the other members go on");
                long last = written.get();
                assertTrue(replica.awaitRevision(last, ClusterProcesses.PATIENCE), "replica reaches revision " + last
                        + " (at " + replica.revision() + ", resyncs " + resyncs + ")");
                assertEquals(List.of("INITIAL@1"), resyncs, "one snapshot (the first): no resync after the kill");
                for (int i = 1; i < changes.size(); i++) {
                    assertEquals(changes.get(i - 1) + 1, changes.get(i), "deltas chain: " + changes);
                }
                assertEquals(last, changes.get(changes.size() - 1));
                Replica.Stats stats = replica.stats();
                assertEquals(1, stats.snapshots(), "snapshots: " + stats);
                assertEquals(0, stats.gaps(), "gaps: " + stats);
                assertEquals(0, stats.digestMismatches(), "digest mismatches: " + stats);
                assertTrue(stats.reconnects() >= 1, "the replica reconnected: " + stats);
                Path mine = dir.resolve("replica.snap");
                replica.writeSnapshot(mine);
                Member other = cluster.alive().get(0);
                assertArrayEquals(cluster.snapshotBytes(other, "watched"), Files.readAllBytes(mine),
                        "replica's snapshot bytes equal " + other.id + "'s");
            }
        }
    }

    @Test
    @Order(3)
    void membersAreAddedAndRemovedOneChangeAtATime() throws Exception {
        Member any = cluster.members().get(0);
        try (MapcastClient c = client(cluster.targets())) {
            c.write("members").put("a", "1").order(IterationOrder.INSERTION).commit();
        }
        Member m4 = cluster.newMember("m4");
        try {
            String server = "--server=" + cluster.targets();
            // 'cluster add' first: it waits for m4, started after it, to answer and catch up.
            ProcessBuilder addCommand = new ProcessBuilder(ClusterProcesses.mapcast("cluster", "add",
                    "m4=" + m4.peerAddress(), server, "--timeout=" + ClusterProcesses.PATIENCE.toSeconds() + "s", "--json"))
                    .redirectOutput(dir.resolve("add.out").toFile()).redirectError(dir.resolve("add.err").toFile());
            Process add = addCommand.start();
            try {
                cluster.await("'cluster add' waiting for m4 to answer", () -> cluster.members().stream().anyMatch(m -> {
                    try {
                        return ClusterProcesses.logSinceStart(m).contains("add member m4: waiting for it to answer");
                    } catch (java.io.IOException e) {
                        return false;
                    }
                }) || !add.isAlive());
                assertTrue(add.isAlive(), "cluster add waits for m4: " + Files.readString(dir.resolve("add.err")));
                cluster.join(m4);
            } finally {
                if (!add.waitFor(ClusterProcesses.PATIENCE.toSeconds(), TimeUnit.SECONDS)) {
                    add.destroyForcibly();
                }
            }
            assertEquals(0, add.exitValue(), "cluster add: " + Files.readString(dir.resolve("add.err"))
                    + Files.readString(dir.resolve("add.out")));
            assertTrue(Files.readString(dir.resolve("add.out")).contains("\"id\":\"m4\""),
                    Files.readString(dir.resolve("add.out")));
            try (MapcastClient c = client(cluster.targets())) {
                c.write("members").put("b", "2").commit();
            }
            cluster.awaitStatus(s -> s.getMembersCount() == 4);
            ClusterStatusResponse four = ClusterProcesses.status(cluster.awaitLeader());
            assertEquals(List.of("m1", "m2", "m3", "m4"), four.getMembersList().stream().map(ClusterMemberStatus::getId)
                    .sorted().toList());
            long applied = ClusterProcesses.appliedIndex(ClusterProcesses.status(cluster.awaitLeader()),
                    cluster.awaitLeader().id);
            cluster.awaitApplied(applied);
            cluster.await("m4 at revision 2 of members", () -> ClusterProcesses.revision(m4, "members") == 2);
            assertSameEverywhere("members", 2);

            // Refusals: an id already in, an id not in.
            Run again = ClusterProcesses.run(dir, "add-again", ClusterProcesses.mapcast("cluster", "add",
                    "m4=127.0.0.1:1", server));
            assertEquals(3, again.exitCode(), again.toString());
            assertTrue(again.stderr().contains("member \"m4\" is already in the cluster"), again.toString());
            Run unknown = ClusterProcesses.run(dir, "remove-unknown", ClusterProcesses.mapcast("cluster", "remove", "m9",
                    server));
            assertTrue(unknown.exitCode() != 0, unknown.toString());
            assertTrue(unknown.stderr().contains("member \"m9\" is not in the cluster"), unknown.toString());
            try (MapcastClient c = client(any.clientAddress())) {
                MapcastException e = assertThrows(MapcastException.class, () -> c.removeMember("m9"));
                assertEquals(Status.Code.NOT_FOUND, e.code(), e.toString());
                e = assertThrows(MapcastException.class, () -> c.addMember("m2", "127.0.0.1:1"));
                assertEquals(Status.Code.ALREADY_EXISTS, e.code(), e.toString());
            }

            Run remove = ClusterProcesses.run(dir, "remove", ClusterProcesses.mapcast("cluster", "remove", "m4", server,
                    "--timeout=" + ClusterProcesses.PATIENCE.toSeconds() + "s"));
            assertEquals(0, remove.exitCode(), remove.toString());
        } finally {
            cluster.forget(m4);  // removed from the cluster above; if the test failed, at least not restarted
        }
        cluster.awaitStatus(s -> s.getMembersCount() == 3);
        ClusterStatusResponse three = ClusterProcesses.status(cluster.awaitLeader());
        assertEquals(List.of("m1", "m2", "m3"), three.getMembersList().stream().map(ClusterMemberStatus::getId)
                .sorted().toList());
        try (MapcastClient c = client(cluster.targets())) {
            assertEquals(3, c.write("members").put("c", "3").commit());
        }
    }

    @Test
    @Order(4)
    void aMemberCutOffFromTheMajoritySaysNotServingAndRefusesWritesAsNotApplied() throws Exception {
        for (Member m : cluster.members()) {
            assertEquals(ServingStatus.SERVING, health(m), "health of " + m.id);
        }
        // Keep the leader: it must notice it lost the majority and step down.
        Member kept = cluster.awaitLeader();
        for (Member m : cluster.members()) {
            if (m != kept) {
                cluster.kill(m);
            }
        }
        long killed = System.nanoTime();
        cluster.await(kept.id + " says NOT_SERVING", () -> health(kept) == ServingStatus.NOT_SERVING);
        long seconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - killed);
        System.out.println("NOT_SERVING " + seconds + " s after the majority was killed");
        ManagedChannel channel = ManagedChannelBuilder.forTarget(kept.clientAddress()).usePlaintext().build();
        try {
            StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> MapcastGrpc
                    .newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS).write(WriteRequest.newBuilder()
                            .setMap("cut-off").putPuts("k", com.google.protobuf.ByteString.copyFromUtf8("v")).build()));
            assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.toString());
            Metadata trailers = e.getTrailers();
            assertNotNull(trailers, e.toString());
            assertEquals("true", trailers.get(ProtocolHeaders.NOT_APPLIED), "trailer of " + e);
            assertNotNull(e.getStatus().getDescription());
            assertTrue(e.getStatus().getDescription().contains("knows no leader"), e.getStatus().getDescription());
        } finally {
            channel.shutdownNow();
        }
    }

    /** The member's answer to the standard health check of the whole server (""), or null if none. */
    private static ServingStatus health(Member m) {
        ManagedChannel channel = ManagedChannelBuilder.forTarget(m.clientAddress()).usePlaintext().build();
        try {
            return HealthGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS)
                    .check(HealthCheckRequest.newBuilder().setService("").build()).getStatus();
        } catch (StatusRuntimeException e) {
            return null;
        } finally {
            channel.shutdownNow();
        }
    }
}
