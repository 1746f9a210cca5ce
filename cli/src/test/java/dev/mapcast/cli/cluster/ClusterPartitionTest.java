package dev.mapcast.cli.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.cli.cluster.ClusterProcesses.Member;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.MapcastException;
import dev.mapcast.codec.ProtocolHeaders;
import dev.mapcast.proto.v1.GetRequest;
import dev.mapcast.proto.v1.GetResponse;
import dev.mapcast.proto.v1.ListMapsRequest;
import dev.mapcast.proto.v1.MapInfo;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.WriteRequest;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A leader cut off from the other two members: it steps down, says NOT_SERVING and refuses writes
 * (UNAVAILABLE with a description; once it knows no leader, with the {@code mapcast-not-applied}
 * trailer, so a client retries elsewhere); the majority elects a leader and goes on; once the
 * fault ends every member converges to the majority's history, and no acknowledged write is lost.
 *
 * <p>Two faults: a real network partition (each member in a network namespace of its own, the
 * leader's packets to and from the others dropped; needs root and iproute2, skipped with the
 * reason otherwise), and one that needs nothing (the two followers frozen with SIGSTOP: the leader
 * is alive but alone, its connections open and unanswered).
 */
class ClusterPartitionTest {

    private static final String MAP = "cfg";
    /**
     * How soon a leader alone must say NOT_SERVING: Ratis steps down once no majority answered
     * within its longest election timeout (600 ms here), health follows within a tick (1 s); the
     * rest is room for a busy 2-core machine.
     */
    private static final Duration STEP_DOWN_LIMIT = Duration.ofSeconds(6);
    /** A write to one member gets its answer within this (it is refused, or it is acknowledged). */
    private static final Duration WRITE_DEADLINE = Duration.ofSeconds(20);

    @TempDir
    Path dir;

    @Test
    void leaderCutOffByTheNetworkRefusesWritesAndTheMajorityGoesOn() throws Exception {
        String why = NetworkNamespaces.whyUnavailable();
        assumeTrue(why == null, () -> "no network namespaces here: " + why + " (the Ratis-level fault,"
                + " leaderAloneWhileItsFollowersAreFrozenStepsDownAndRefusesWrites, runs instead)");
        try (NetworkNamespaces net = NetworkNamespaces.create(3);
                ClusterProcesses cluster = ClusterProcesses.start(dir,
                        List.of(net.placement(0), net.placement(1), net.placement(2)))) {
            Ledger ledger = new Ledger();
            Member leader = cluster.awaitLeader();
            List<Member> majority = others(cluster, leader);
            ledger.writeAcknowledged(cluster.targets(), "before", 10);

            net.isolate(cluster.members().indexOf(leader));
            long cut = System.nanoTime();
            // Sent at once: the old leader still leads, appends it and waits for a majority.
            StatusRuntimeException inFlight = rawWrite(leader, "minority-0");
            assertRefused(inFlight, "a write to the cut-off leader", false);
            ledger.absent("minority-0");  // its packets never left the leader's namespace
            awaitStepDown(cluster, leader, cut);
            for (int i = 1; i <= 3; i++) {
                assertRefused(rawWrite(leader, "minority-" + i), "a write to the cut-off member after it stepped down",
                        true);
                ledger.absent("minority-" + i);
            }

            Member newLeader = cluster.awaitLeader(majority);
            assertNotEquals(leader.id, newLeader.id);
            for (Member m : majority) {
                assertEquals(ServingStatus.SERVING, awaitHealth(m, ServingStatus.SERVING), "health of " + m.id);
            }
            ledger.writeAcknowledged(targets(majority), "during", 10);
            // Still cut off, still refusing, while the majority moves on.
            assertRefused(rawWrite(leader, "minority-4"), "a write to the cut-off member", true);
            ledger.absent("minority-4");

            net.heal();
            cluster.awaitLeader();
            assertEquals(ServingStatus.SERVING, awaitHealth(leader, ServingStatus.SERVING),
                    "health of the old leader after healing");
            ledger.writeAcknowledged(cluster.targets(), "after", 5);
            ledger.assertConverged(cluster);
        }
    }

    @Test
    void leaderAloneWhileItsFollowersAreFrozenStepsDownAndRefusesWrites() throws Exception {
        try (ClusterProcesses cluster = ClusterProcesses.start(dir, 3)) {
            Ledger ledger = new Ledger();
            Member leader = cluster.awaitLeader();
            List<Member> followers = others(cluster, leader);
            ledger.writeAcknowledged(cluster.targets(), "before", 10);

            try {
                for (Member f : followers) {
                    cluster.freeze(f);
                }
                long frozen = System.nanoTime();
                StatusRuntimeException inFlight = rawWrite(leader, "alone-0");
                assertRefused(inFlight, "a write to the leader whose followers are frozen", false);
                // Appended by the old leader, maybe queued in a frozen follower's socket: unknown,
                // unless refused before it was proposed.
                if (ProtocolHeaders.notApplied(Status.trailersFromThrowable(inFlight))) {
                    ledger.absent("alone-0");
                } else {
                    ledger.unknown("alone-0");
                }
                awaitStepDown(cluster, leader, frozen);
                for (int i = 1; i <= 3; i++) {
                    assertRefused(rawWrite(leader, "alone-" + i), "a write to the member alone after it stepped down",
                            true);
                    ledger.absent("alone-" + i);
                }
            } finally {
                for (Member f : followers) {
                    cluster.resume(f);
                }
            }

            cluster.awaitLeader();
            for (Member m : cluster.members()) {
                assertEquals(ServingStatus.SERVING, awaitHealth(m, ServingStatus.SERVING), "health of " + m.id);
            }
            ledger.writeAcknowledged(cluster.targets(), "after", 10);
            ledger.assertConverged(cluster);
        }
    }

    private static List<Member> others(ClusterProcesses cluster, Member m) {
        return cluster.members().stream().filter(x -> x != m).toList();
    }

    private static String targets(List<Member> members) {
        return members.stream().map(Member::clientAddress).collect(Collectors.joining(","));
    }

    /**
     * Waits until {@code m}'s health says NOT_SERVING (it knows no leader: it stepped down), and
     * checks this took at most {@link #STEP_DOWN_LIMIT} from {@code faultStart}. (Health, not
     * 'cluster status': a member cut off answers that only after its peers' timeouts.)
     */
    private static void awaitStepDown(ClusterProcesses cluster, Member m, long faultStart) throws Exception {
        ServingStatus health = awaitHealth(m, ServingStatus.NOT_SERVING);
        Duration took = Duration.ofNanos(System.nanoTime() - faultStart);
        assertEquals(ServingStatus.NOT_SERVING, health, "health of member " + m.id + ", alone\n" + cluster.tails());
        System.out.println("member " + m.id + " stepped down (NOT_SERVING) " + took.toMillis() + " ms after the fault");
        assertTrue(took.compareTo(STEP_DOWN_LIMIT) <= 0, "member " + m.id + " said NOT_SERVING " + took.toMillis()
                + " ms after the fault (expected: within " + STEP_DOWN_LIMIT.toMillis() + " ms)");
    }

    /** Polls {@code m}'s health until it says {@code expected} (or patience runs out); returns the last answer. */
    private static ServingStatus awaitHealth(Member m, ServingStatus expected) throws InterruptedException {
        long deadline = System.nanoTime() + ClusterProcesses.PATIENCE.toNanos();
        ServingStatus last;
        do {
            last = ClusterProcesses.health(m);
            if (last == expected) {
                break;
            }
            Thread.sleep(100);
        } while (System.nanoTime() < deadline);
        return last;
    }

    /**
     * A write of {@code key} to {@code m} alone over a plain stub (what any gRPC client sees: no
     * failover), expected to be refused; the refusal.
     */
    private static StatusRuntimeException rawWrite(Member m, String key) {
        ManagedChannel channel = ManagedChannelBuilder.forTarget(m.clientAddress()).usePlaintext().build();
        try {
            long revision = MapcastGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(WRITE_DEADLINE.toMillis(), TimeUnit.MILLISECONDS)
                    .write(WriteRequest.newBuilder().setMap(MAP).putPuts(key, ByteString.copyFromUtf8(value(key))).build())
                    .getRevision();
            fail("member " + m.id + " acknowledged " + key + " at revision " + revision + " though it is cut off from"
                    + " the majority");
            return null;
        } catch (StatusRuntimeException e) {
            return e;
        } finally {
            channel.shutdownNow();
        }
    }

    /** UNAVAILABLE with a description, and with the not-applied trailer if {@code notApplied}. */
    private static void assertRefused(StatusRuntimeException e, String what, boolean notApplied) {
        Status s = e.getStatus();
        String seen = what + " failed with " + s + (e.getTrailers() == null ? "" : " trailers " + e.getTrailers());
        assertEquals(Status.Code.UNAVAILABLE, s.getCode(), seen);
        assertTrue(s.getDescription() != null && !s.getDescription().isBlank(), seen + ": no description");
        if (notApplied) {
            assertTrue(ProtocolHeaders.notApplied(e.getTrailers()), seen + ": no " + ProtocolHeaders.NOT_APPLIED.name()
                    + " trailer");
        }
        System.out.println(seen);
    }

    private static String value(String key) {
        return "value of " + key;
    }

    /**
     * The writes of a test and what became of them: acknowledged (with their revision), refused
     * before they were proposed or never beyond a cut-off member (must be absent), or of unknown
     * outcome. One key per write, all in one map, so a member's revision counts the writes it
     * applied.
     */
    private static final class Ledger {
        final Map<String, Long> acknowledged = new LinkedHashMap<>();
        final Set<String> absent = new LinkedHashSet<>();
        final Set<String> unknown = new LinkedHashSet<>();

        void absent(String key) {
            absent.add(key);
        }

        void unknown(String key) {
            unknown.add(key);
        }

        /**
         * Writes keys {@code phase-0, phase-1, ...} through a client of {@code targets} until
         * {@code count} are acknowledged; a write of unknown outcome (a leader change on a busy
         * machine) is noted and the next one sent.
         */
        void writeAcknowledged(String targets, String phase, int count) {
            try (MapcastClient c = MapcastClient.builder().target(targets).deadline(Duration.ofSeconds(30)).build()) {
                int acked = 0;
                for (int i = 0; acked < count; i++) {
                    assertTrue(i < 3 * count, phase + ": only " + acked + " of " + (3 * count) + " writes acknowledged"
                            + " (unknown: " + unknown + ")");
                    String key = phase + "-" + i;
                    try {
                        acknowledged.put(key, c.put(MAP, key, value(key)));
                        acked++;
                    } catch (MapcastException e) {
                        assertEquals(Status.Code.UNAVAILABLE, e.code(), key + ": " + e.getMessage());
                        unknown.add(key);
                    }
                }
            }
        }

        /**
         * Every member reaches the same revision, holds every acknowledged write at the revision it
         * was acknowledged with and none of the absent ones, and saves byte-identical snapshots.
         */
        void assertConverged(ClusterProcesses cluster) throws Exception {
            Map<String, Long> revisions = awaitSameRevision(cluster);
            List<String> applied = new ArrayList<>(acknowledged.keySet());
            Member first = cluster.members().get(0);
            for (String key : unknown) {
                if (localGet(first, key).getFound()) {
                    applied.add(key);
                }
            }
            for (Member m : cluster.members()) {
                assertEquals(applied.size(), revisions.get(m.id), "revision of " + m.id + " (applied writes: " + applied
                        + "; must be absent: " + absent + ")");
                for (Map.Entry<String, Long> a : acknowledged.entrySet()) {
                    GetResponse r = localGet(m, a.getKey());
                    assertTrue(r.getFound(), "acknowledged write " + a.getKey() + " lost on " + m.id);
                    assertEquals(value(a.getKey()), r.getValue().toStringUtf8(), a.getKey() + " on " + m.id);
                    assertEquals(a.getValue(), r.getModRevision(), "revision of " + a.getKey() + " on " + m.id);
                }
                for (String key : absent) {
                    assertFalse(localGet(m, key).getFound(), key + " was refused, yet " + m.id + " holds it");
                }
                for (String key : unknown) {
                    assertEquals(applied.contains(key), localGet(m, key).getFound(), key + " on " + m.id + " vs "
                            + first.id);
                }
            }
            byte[] reference = null;
            for (Member m : cluster.members()) {
                try (MapcastClient c = MapcastClient.builder().target(m.clientAddress()).deadline(Duration.ofSeconds(30))
                        .build()) {
                    Path file = Files.createTempFile(cluster.members().get(0).dataDir.getParent(), m.id, ".snap");
                    c.saveSnapshot(MAP, file);
                    byte[] bytes = Files.readAllBytes(file);
                    if (reference == null) {
                        reference = bytes;
                    } else {
                        assertArrayEquals(reference, bytes, "snapshot of " + m.id + " differs from " + first.id + "'s");
                    }
                }
            }
        }

        /** Each member's revision of the map, once all are equal and hold every acknowledged write. */
        private Map<String, Long> awaitSameRevision(ClusterProcesses cluster) throws Exception {
            long highest = acknowledged.values().stream().mapToLong(Long::longValue).max().orElse(0);
            long deadline = System.nanoTime() + ClusterProcesses.PATIENCE.toNanos();
            Map<String, Long> revisions = new LinkedHashMap<>();
            while (System.nanoTime() < deadline) {
                revisions.clear();
                for (Member m : cluster.members()) {
                    revisions.put(m.id, revision(m));
                }
                if (revisions.values().stream().distinct().count() == 1 && revisions.values().iterator().next() >= highest) {
                    return revisions;
                }
                Thread.sleep(100);
            }
            fail("members did not converge (revisions " + revisions + ", highest acknowledged " + highest + ")\n"
                    + cluster.tails());
            return revisions;
        }
    }

    /** The map's revision as {@code m} has applied it (-1 if it does not answer). */
    private static long revision(Member m) {
        ManagedChannel channel = ManagedChannelBuilder.forTarget(m.clientAddress()).usePlaintext().build();
        try {
            return MapcastGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS)
                    .listMaps(ListMapsRequest.getDefaultInstance()).getMapsList().stream()
                    .filter(i -> i.getName().equals(MAP)).mapToLong(MapInfo::getRevision).findFirst().orElse(0);
        } catch (StatusRuntimeException e) {
            return -1;
        } finally {
            channel.shutdownNow();
        }
    }

    /** {@code key} as {@code m} itself has applied it (a local read: no leader asked). */
    private static GetResponse localGet(Member m, String key) {
        ManagedChannel channel = ManagedChannelBuilder.forTarget(m.clientAddress()).usePlaintext().build();
        try {
            return MapcastGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                    .get(GetRequest.newBuilder().setMap(MAP).setKey(key).setLocal(true).build());
        } finally {
            channel.shutdownNow();
        }
    }
}
