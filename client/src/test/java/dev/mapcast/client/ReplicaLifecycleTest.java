package dev.mapcast.client;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.client.ReplicaListener.ResyncReason;
import dev.mapcast.codec.Codec;
import dev.mapcast.server.MapcastServer;
import io.grpc.Status;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A replica through its map's whole life, against a real server over loopback: a map that does not
 * exist yet, created, deleted, created again; a server stopped and started (with its data, and in
 * memory); what the listeners hear, and the replica's connection state.
 */
class ReplicaLifecycleTest {

    private static final Duration WAIT = Duration.ofSeconds(30);

    @TempDir
    Path dataDir;

    private MapcastServer server;
    private final List<AutoCloseable> toClose = new ArrayList<>();

    @AfterEach
    void stop() throws Exception {
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
        if (server != null) {
            server.close();
        }
    }

    private MapcastClient client() {
        MapcastClient c = MapcastClient.builder().target("127.0.0.1:" + server.port())
                .reconnectBackoff(Duration.ofMillis(50), Duration.ofMillis(500)).build();
        toClose.add(c);
        return c;
    }

    /** What a listener heard, one line per call, in order. */
    private static final class Heard implements ReplicaListener<String, String> {
        final List<String> calls = new CopyOnWriteArrayList<>();

        @Override
        public void onChange(long revision, Map<String, String> puts, Set<String> deletes) {
            calls.add("change " + revision + " " + puts + " " + deletes);
        }

        @Override
        public void onResync(long revision, ResyncReason reason) {
            calls.add("resync " + revision + " " + reason);
        }

        @Override
        public void onDeleted(long revision) {
            calls.add("deleted " + revision);
        }
    }

    @Test
    void aReplicaOpenedBeforeItsMapExistsWaitsQuietlyAndHearsTheCreatingWriteAsAChange() throws Exception {
        server = MapcastServer.builder().port(0).build().start();
        MapcastClient client = client();
        Heard heard = new Heard();
        Replica<String, String> replica = client.replica("later", Codec.utf8(), Codec.utf8(), heard);
        toClose.add(replica);
        await().atMost(WAIT).until(() -> replica.state() == Replica.State.ABSENT);
        assertFalse(replica.isSynced(), "no map to follow");
        assertNotNull(replica.lastContact());
        long reconnects = replica.stats().reconnects();

        long revision = client.put("later", "k", "v");
        assertTrue(replica.awaitRevision(revision, WAIT));
        assertEquals(List.of("resync 0 INITIAL", "change 1 {k=v} []"), heard.calls);
        assertEquals(Replica.State.LIVE, replica.state());
        assertTrue(replica.isSynced());
        assertEquals(reconnects, replica.stats().reconnects(), "the stream stayed open while the map was absent");
        assertEquals(client.get("later", "k").incarnation(), replica.incarnation());
    }

    @Test
    void aDeletedMapIsReportedAndItsRecreationIsAnotherIncarnationHeardChangeByChange() throws Exception {
        server = MapcastServer.builder().port(0).build().start();
        MapcastClient client = client();
        client.put("config", "a", "1");
        long second = client.put("config", "b", "2");
        Heard heard = new Heard();
        Replica<String, String> replica = client.replica("config", Codec.utf8(), Codec.utf8(), heard);
        toClose.add(replica);
        assertTrue(replica.awaitRevision(second, WAIT));
        long first = replica.incarnation();

        assertEquals(second, client.deleteMap("config"));
        await().atMost(WAIT).until(() -> replica.state() == Replica.State.ABSENT);
        assertEquals(0, replica.size());
        assertEquals(0, replica.revision());
        assertEquals(0, replica.incarnation());

        long created = client.put("config", "c", "3");
        assertEquals(1, created);
        assertTrue(replica.awaitRevision(created, WAIT));
        assertEquals(List.of("resync 2 INITIAL", "deleted 2", "resync 0 RECREATED", "change 1 {c=3} []"), heard.calls);
        assertEquals(Map.of("c", "3"), replica.toMap());
        assertNotEquals(first, replica.incarnation());

        MapcastException absent = assertThrows(MapcastException.class, () -> client.deleteMap("nomap"));
        assertEquals(Status.Code.NOT_FOUND, absent.code());
        assertThrows(ConditionFailedException.class, () -> client.deleteMap("config", 7));
    }

    @Test
    void aServerRestartedInMemoryIsSeenAsRecreatedNeverAsARevisionGoingBackSilently() throws Exception {
        server = MapcastServer.builder().port(0).build().start();
        int port = server.port();
        MapcastClient client = client();
        for (int i = 0; i < 6; i++) {
            client.put("config", "k", "v" + i);
        }
        Heard heard = new Heard();
        List<Long> revisions = new CopyOnWriteArrayList<>();
        Replica<String, String> replica = client.replica("config", Codec.utf8(), Codec.utf8(), heard);
        toClose.add(replica);
        assertTrue(replica.awaitRevision(6, WAIT));
        replica.addRevisionListener(revisions::add);
        List<String> states = new CopyOnWriteArrayList<>();
        replica.addStateListener((state, since) -> states.add(state.name()));

        server.close();
        await().atMost(WAIT).until(() -> replica.state() == Replica.State.STALE);
        assertFalse(replica.isSynced(), "not following while the server is down");
        Instant staleSince = replica.stateSince();
        assertEquals("v5", replica.get("k"), "the last state known is still readable");

        server = MapcastServer.builder().port(port).build().start();
        long rewritten = client().put("config", "k", "fresh");  // a new connection: the old one backs off
        assertEquals(1, rewritten);
        await().atMost(WAIT).until(() -> heard.calls.contains("resync 1 RECREATED"));
        assertEquals("fresh", replica.get("k"));
        assertEquals(1, replica.revision());
        assertEquals(Replica.State.LIVE, replica.state());
        assertTrue(replica.stateSince().isAfter(staleSince) || replica.stateSince().equals(staleSince));
        await().atMost(WAIT).until(() -> states.equals(List.of("STALE", "LIVE")));
        assertEquals(List.of("resync 6 INITIAL", "resync 1 RECREATED"), heard.calls);
        assertEquals(List.of(1L), revisions, "after revision 6, the one revision it went to: 1, the RECREATED snapshot");
    }

    @Test
    void aServerRestartedOnItsDataIsTheSameIncarnationAndTheReplicaResumes() throws Exception {
        server = MapcastServer.builder().port(0).dataDir(dataDir).build().start();
        int port = server.port();
        MapcastClient client = client();
        long r = client.put("config", "k", "v");
        Heard heard = new Heard();
        Replica<String, String> replica = client.replica("config", Codec.utf8(), Codec.utf8(), heard);
        toClose.add(replica);
        assertTrue(replica.awaitRevision(r, WAIT));
        long incarnation = replica.incarnation();

        server.close();
        await().atMost(WAIT).until(() -> replica.state() == Replica.State.STALE);
        server = MapcastServer.builder().port(port).dataDir(dataDir).build().start();
        long next = client().put("config", "k", "w");  // a new connection: the old one backs off
        assertTrue(replica.awaitRevision(next, WAIT));
        assertEquals(incarnation, replica.incarnation());
        assertEquals(List.of("resync 1 INITIAL", "change 2 {k=w} []"), heard.calls, "resumed: no resync");
        await().atMost(WAIT).until(() -> replica.state() == Replica.State.LIVE);
    }

    /**
     * The listener contract, checked against a model: a seeded random sequence of writes, map
     * deletions and re-creations; every committed write reaches onChange exactly once, in order, and
     * the replica ends equal to the server.
     */
    @Test
    void everyCommittedWriteReachesOnChangeExactlyOnce() throws Exception {
        long seed = Long.getLong("mapcast.seed", System.nanoTime());
        System.out.println("[mapcast] everyCommittedWriteReachesOnChangeExactlyOnce: seed=" + seed
                + " (rerun with -Dmapcast.seed=" + seed + ")");
        Random random = new Random(seed);
        server = MapcastServer.builder().port(0).build().start();
        MapcastClient client = client();
        Heard heard = new Heard();
        Replica<String, String> replica = client.replica("model", Codec.utf8(), Codec.utf8(), heard);
        toClose.add(replica);
        await().atMost(WAIT).until(() -> replica.state() == Replica.State.ABSENT);

        List<String> expected = new ArrayList<>();
        Map<String, String> model = new HashMap<>();
        boolean exists = false;
        long lastRevision = 0;
        for (int op = 0; op < 300; op++) {
            if (exists && random.nextInt(40) == 0) {
                long at = client.deleteMap("model");
                expected.add("deleted " + at);
                exists = false;
                model.clear();
                continue;
            }
            WriteBatch batch = client.write("model");
            Map<String, String> puts = new LinkedHashMap<>();
            Set<String> deletes = new LinkedHashSet<>();
            int n = 1 + random.nextInt(3);
            for (int i = 0; i < n; i++) {
                String key = "k" + random.nextInt(20);
                if (exists && random.nextInt(3) == 0) {
                    deletes.add(key);
                } else {
                    puts.put(key, "v" + random.nextInt(1000));
                }
            }
            puts.keySet().removeAll(deletes);
            if (puts.isEmpty() && deletes.isEmpty()) {
                continue;
            }
            puts.forEach(batch::put);
            deletes.forEach(batch::delete);
            if (!exists && puts.isEmpty()) {
                continue;  // would be refused: nothing to create the map with
            }
            if (!exists) {
                expected.add("resync 0 " + (expected.isEmpty() ? "INITIAL" : "RECREATED"));
            }
            lastRevision = batch.commit();
            exists = true;
            Set<String> applied = new LinkedHashSet<>();  // a delta names only the keys a write removed
            for (String d : deletes) {
                if (model.remove(d) != null) {
                    applied.add(d);
                }
            }
            model.putAll(puts);
            expected.add("change " + lastRevision + " " + puts + " " + applied);
        }
        if (exists) {
            assertTrue(replica.awaitRevision(lastRevision, WAIT));
        }
        await().atMost(WAIT).until(() -> heard.calls.size() >= expected.size());
        assertEquals(expected, heard.calls, "seed " + seed);
        assertEquals(model, replica.toMap(), "seed " + seed);
    }
}
