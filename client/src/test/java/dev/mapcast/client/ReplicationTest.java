package dev.mapcast.client;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.mapcast.client.ReplicaListener.ResyncReason;
import dev.mapcast.codec.Codec;
import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.codec.EncodedMethods;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.proto.v1.SnapshotRequest;
import dev.mapcast.server.MapcastServer;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCalls;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Replicas against a real server over Netty on loopback. */
class ReplicationTest {

    private static final Duration WAIT = Duration.ofSeconds(20);

    private MapcastServer server;
    private MapcastClient writer;
    private final List<AutoCloseable> toClose = new ArrayList<>();

    @BeforeEach
    void startServer() {
        server = MapcastServer.builder().port(0).build().start();
        writer = client(server.port());
    }

    @AfterEach
    void stop() throws Exception {
        for (int i = toClose.size() - 1; i >= 0; i--) {
            toClose.get(i).close();
        }
        writer.close();
        server.close();
    }

    private MapcastClient client(int port) {
        MapcastClient c = MapcastClient.builder().target("127.0.0.1:" + port)
                .reconnectBackoff(Duration.ofMillis(50), Duration.ofMillis(500)).build();
        toClose.add(c);
        return c;
    }

    private <T extends AutoCloseable> T closing(T resource) {
        toClose.add(resource);
        return resource;
    }

    /** Replaces the in-memory server of {@link #startServer} with one built by {@code builder}. */
    private void serve(MapcastServer.Builder builder) {
        writer.close();
        server.close();
        server = builder.port(0).build().start();
        writer = client(server.port());
    }

    @Test
    void manyReplicasConvergeUnderConcurrentWrites() throws Exception {
        long seed = Long.getLong("mapcast.seed", System.nanoTime());
        System.out.println("[mapcast] manyReplicasConvergeUnderConcurrentWrites: seed=" + seed + " (rerun with -Dmapcast.seed=" + seed + ")");
        writer.put("config", "seed", Long.toString(seed));
        List<Replica<String, String>> replicas = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            // Half join before the writes, half while they run.
            if (i == 6) {
                replicas.add(null);
            }
            replicas.add(closing(client(server.port()).replica("config", Codec.utf8(), Codec.utf8())));
        }
        replicas.remove(null);
        ExecutorService writers = Executors.newFixedThreadPool(4);
        List<Future<?>> done = new ArrayList<>();
        for (int w = 0; w < 4; w++) {
            Random random = new Random(seed + w);
            done.add(writers.submit(() -> {
                for (int op = 0; op < 250; op++) {
                    WriteBatch batch = writer.write("config");
                    int n = 1 + random.nextInt(4);
                    for (int i = 0; i < n; i++) {
                        String key = "key-" + random.nextInt(300);
                        if (random.nextInt(4) == 0) {
                            batch.delete(key);
                        } else {
                            batch.put(key, "value-" + random.nextInt(1_000_000) + "x".repeat(random.nextInt(200)));
                        }
                    }
                    batch.commit();
                }
                return null;
            }));
        }
        List<Replica<String, String>> late = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            late.add(closing(client(server.port()).replica("config", Codec.utf8(), Codec.utf8())));
            Thread.sleep(20);
        }
        for (Future<?> f : done) {
            f.get(60, TimeUnit.SECONDS);
        }
        writers.shutdown();
        long last = writer.get("config", "seed").revision();
        assertEquals(1 + 4 * 250, last, "every write is one revision");
        Map<String, String> truth = serverContent("config", 300);
        replicas.addAll(late);
        for (Replica<String, String> r : replicas) {
            assertTrue(r.awaitRevision(last, WAIT), "replica reached revision " + last + ", at " + r.revision());
            assertEquals(truth, r.toMap(), "replica content");
            assertEquals(0, r.stats().gaps());
            assertEquals(0, r.stats().digestMismatches());
        }
        long digest = replicas.get(0).digest();
        for (Replica<String, String> r : replicas) {
            assertEquals(digest, r.digest(), "every replica has the same digest");
        }
        try (Replica<String, String> fresh = client(server.port()).replica("config", Codec.utf8(), Codec.utf8())) {
            assertTrue(fresh.awaitRevision(last, WAIT));
            assertEquals(digest, fresh.digest(), "a replica synced from a snapshot has the same digest");
        }
    }

    @Test
    void writesInFlightOnManyConnectionsGetRevisionsOneToNOnceEachAndReplicasAgree() throws Exception {
        // In memory, a Write commits on its connection's event loop only when the map's lock is
        // free; 8 connections with all their writes in flight keep it busy, so many go to the pool.
        writeConcurrentlyAndCheck(8, 500, 200);
    }

    @Test
    void durableWritesInFlightOnManyConnectionsGetRevisionsOneToNOnceEach(@TempDir Path dir) throws Exception {
        serve(MapcastServer.builder().dataDir(dir));  // every durable write commits on the pool
        writeConcurrentlyAndCheck(4, 100, 50);
    }

    /**
     * {@code connections} clients send {@code writesEach} random writes each to one map, every write
     * in flight at once, after the one that creates the map (revision 1). Then every write must have
     * been acknowledged with its own revision, the revisions must be exactly 1..N, and a replica
     * that followed along, a fresh one and Get must all hold the writes applied in revision order
     * (for each key, the write with the highest revision wins).
     */
    private void writeConcurrentlyAndCheck(int connections, int writesEach, int keyspace) throws Exception {
        long seed = Long.getLong("mapcast.seed", System.nanoTime());
        System.out.println("[mapcast] writeConcurrentlyAndCheck(" + connections + ", " + writesEach + "): seed=" + seed
                + " (rerun with -Dmapcast.seed=" + seed + ")");
        String map = "hot";
        assertEquals(1, writer.put(map, "key-0", "created"));
        Replica<String, String> following = closing(client(server.port()).replica(map, Codec.utf8(), Codec.utf8()));
        assertTrue(following.awaitRevision(1, WAIT));
        List<MapcastClient> clients = new ArrayList<>();
        for (int c = 0; c < connections; c++) {
            clients.add(client(server.port()));
            clients.get(c).get(map, "key-0");  // connected before the burst, so the burst is all writes
        }
        // Each write puts or deletes 1 to 3 distinct keys; what it did is kept to replay it by revision.
        record Sent(Map<String, String> puts, List<String> deletes, CompletableFuture<Long> ack) {
        }
        List<Sent> sent = new CopyOnWriteArrayList<>();
        CountDownLatch go = new CountDownLatch(1);
        ExecutorService senders = Executors.newFixedThreadPool(connections);
        List<Future<?>> sending = new ArrayList<>();
        for (int c = 0; c < connections; c++) {
            MapcastClient client = clients.get(c);
            Random random = new Random(seed + c);
            int connection = c;
            sending.add(senders.submit(() -> {
                go.await();
                for (int i = 0; i < writesEach; i++) {
                    WriteBatch batch = client.write(map);
                    Map<String, String> puts = new LinkedHashMap<>();
                    List<String> deletes = new ArrayList<>();
                    int n = 1 + random.nextInt(3);
                    while (puts.size() + deletes.size() < n) {
                        String key = "key-" + random.nextInt(keyspace);
                        if (puts.containsKey(key) || deletes.contains(key)) {
                            continue;
                        }
                        if (random.nextInt(5) == 0) {
                            deletes.add(key);
                            batch.delete(key);
                        } else {
                            String value = "c" + connection + "-w" + i;
                            puts.put(key, value);
                            batch.put(key, value);
                        }
                    }
                    sent.add(new Sent(puts, deletes, batch.commitAsync()));  // no wait: all in flight
                }
                return null;
            }));
        }
        go.countDown();
        for (Future<?> f : sending) {
            f.get(30, TimeUnit.SECONDS);
        }
        senders.shutdown();

        int total = connections * writesEach;
        assertEquals(total, sent.size());
        SortedMap<Long, Sent> byRevision = new TreeMap<>();
        for (Sent s : sent) {
            long revision = s.ack().get(30, TimeUnit.SECONDS);  // fails the test if any write failed
            Sent other = byRevision.put(revision, s);
            if (other != null) {
                fail("revision " + revision + " acknowledged twice: to " + s.puts() + " " + s.deletes() + " and to "
                        + other.puts() + " " + other.deletes());
            }
        }
        assertEquals(2, byRevision.firstKey(), "the first write of the burst follows the creating one");
        assertEquals(1 + total, byRevision.lastKey(), "revisions 2.." + (1 + total) + " with no gap");
        Map<String, String> expected = new HashMap<>();
        expected.put("key-0", "created");
        for (Sent s : byRevision.values()) {
            expected.putAll(s.puts());
            s.deletes().forEach(expected::remove);
        }
        long last = 1 + total;
        assertTrue(following.awaitRevision(last, WAIT), "replica at " + following.revision() + ", expected " + last);
        assertEquals(expected, following.toMap(), "the replica that followed the burst");
        assertEquals(0, following.stats().gaps());
        assertEquals(0, following.stats().digestMismatches());
        assertEquals(1, following.stats().snapshots(), "followed by deltas: " + following.stats());
        assertEquals(expected, serverContent(map, keyspace), "a fresh replica and Get of every key");
        assertEquals(last, writer.get(map, "key-0").revision());
    }

    @Test
    void resumesAfterServerRestartWithoutSnapshot() throws Exception {
        writer.put("config", "a", "1");
        Replica<String, String> replica = closing(client(server.port()).replica("config", Codec.utf8(), Codec.utf8()));
        assertTrue(replica.awaitRevision(1, WAIT));

        server.stop();
        assertFalse(replica.awaitRevision(2, Duration.ofMillis(300)));
        SdkWriteStreamTest.awaitWriteStreamEnded(writer);
        server.start();
        long last = 0;
        for (int i = 0; i < 50; i++) {
            last = writer.put("config", "k" + i, "v" + i);
        }
        assertTrue(replica.awaitRevision(last, WAIT));
        assertEquals(serverContent("config", 0), replica.toMap());
        Replica.Stats stats = replica.stats();
        assertEquals(1, stats.snapshots(), "resumed from its revision, no second snapshot: " + stats);
        assertTrue(stats.reconnects() >= 1, "reconnected: " + stats);
        assertEquals(50, stats.deltas());
    }

    @Test
    void partitionedReplicaCatchesUpFromHistory() throws Exception {
        writer.put("config", "a", "1");
        LoopbackProxy proxy = closing(new LoopbackProxy(server.port()));
        Replica<String, String> replica = closing(client(proxy.port()).replica("config", Codec.utf8(), Codec.utf8()));
        assertTrue(replica.awaitRevision(1, WAIT));

        proxy.cut();
        long last = 0;
        for (int i = 0; i < 20; i++) {
            last = writer.put("config", "k" + i, "v" + i);
        }
        Thread.sleep(200);
        assertEquals(1, replica.revision(), "cut off: saw nothing");
        proxy.restore();
        assertTrue(replica.awaitRevision(last, WAIT));
        assertEquals(serverContent("config", 0), replica.toMap());
        assertEquals(1, replica.stats().snapshots(), "caught up through the kept history: " + replica.stats());
        assertEquals(20, replica.stats().deltas());
    }

    @Test
    void replicaDisconnectedDuringCompactGetsCompactionThenSnapshot() throws Exception {
        for (int i = 0; i < 10; i++) {
            writer.put("config", "k" + i, "v" + i);
        }
        LoopbackProxy proxy = closing(new LoopbackProxy(server.port()));
        List<ResyncReason> resyncs = new CopyOnWriteArrayList<>();
        Replica<String, String> replica = closing(client(proxy.port()).replica("config", Codec.utf8(), Codec.utf8(),
                new ReplicaListener<>() {
                    @Override
                    public void onResync(long revision, ResyncReason reason) {
                        resyncs.add(reason);
                    }
                }));
        assertTrue(replica.awaitRevision(10, WAIT));

        proxy.cut();
        writer.delete("config", "k0", "k1", "k2");
        long last = writer.put("config", "k3", "changed");
        long compacted = writer.compact("config", 0).getCompactRevision();
        assertEquals(last, compacted);
        proxy.restore();

        assertTrue(replica.awaitRevision(last, WAIT));
        assertEquals(serverContent("config", 0), replica.toMap());
        assertEquals(compacted, replica.compactRevision());
        assertEquals(List.of(ResyncReason.INITIAL, ResyncReason.SERVER), resyncs,
                "the history it needed was compacted: a second snapshot");
        assertEquals(2, replica.stats().snapshots());
    }

    @Test
    void insertionOrderReplicaWritesTheServersSnapshotBytes(@TempDir Path dir) throws Exception {
        long seed = Long.getLong("mapcast.seed", System.nanoTime());
        System.out.println("[mapcast] insertionOrderReplicaWritesTheServersSnapshotBytes: seed=" + seed + " (rerun with -Dmapcast.seed=" + seed + ")");
        writer.write("ordered").order(IterationOrder.INSERTION).put("first", "1").commit();
        Replica<String, String> replica = closing(client(server.port()).replica("ordered", Codec.utf8(), Codec.utf8()));
        assertTrue(replica.awaitRevision(1, WAIT));
        Random random = new Random(seed);
        long last = 0;
        for (int i = 0; i < 400; i++) {
            WriteBatch batch = writer.write("ordered");
            for (int j = 0; j < 3; j++) {
                String key = "key-" + random.nextInt(100);
                if (random.nextInt(3) == 0) {
                    batch.delete(key);
                } else {
                    batch.put(key, "v" + random.nextInt(1000));
                }
            }
            last = batch.commit();
        }
        assertTrue(replica.awaitRevision(last, WAIT));
        assertEquals(1, replica.stats().snapshots(), "followed through deltas");
        assertEquals(IterationOrder.INSERTION, replica.order());

        Path file = dir.resolve("replica.snapshot");
        replica.writeSnapshot(file);
        List<byte[]> replicaChunks = chunksOf(file);
        List<byte[]> serverChunks = new ArrayList<>();
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        try {
            Iterator<Encoded> it = ClientCalls.blockingServerStreamingCall(channel, EncodedMethods.snapshot(),
                    CallOptions.DEFAULT, SnapshotRequest.newBuilder().setMap("ordered").build());
            while (it.hasNext()) {
                Encoded chunk = it.next();
                byte[] bytes = new byte[chunk.received().bytes().remaining()];
                chunk.received().bytes().get(bytes);
                chunk.received().close();
                serverChunks.add(bytes);
            }
        } finally {
            channel.shutdownNow();
        }
        assertEquals(serverChunks.size(), replicaChunks.size());
        for (int i = 0; i < serverChunks.size(); i++) {
            assertArrayEquals(serverChunks.get(i), replicaChunks.get(i), "chunk " + i + " byte for byte");
        }
    }

    @Test
    void listenersRunInOrderOffTheNetworkThreadAndMayCallTheClient() throws Exception {
        writer.write("config").put("counter", "0").put("doomed", "x").commit();
        MapcastClient client = client(server.port());
        List<String> seen = new CopyOnWriteArrayList<>();
        List<String> deleted = new CopyOnWriteArrayList<>();
        java.util.concurrent.atomic.AtomicReference<Replica<String, String>> self = new java.util.concurrent.atomic.AtomicReference<>();
        List<String> visibleWhenTold = new CopyOnWriteArrayList<>();
        long started = System.nanoTime();
        Replica<String, String> replica = closing(client.replica("config", Codec.utf8(), Codec.utf8(),
                new ReplicaListener<>() {
                    @Override
                    public void onChange(long revision, Map<String, String> puts, java.util.Set<String> deletes) {
                        // A blocking call from a listener: would deadlock on the network thread.
                        GetResult now = client.get("config", "counter");
                        if (puts.containsKey("counter")) {
                            seen.add(revision + ":" + puts.get("counter") + ":" + (now.revision() >= revision));
                        }
                        deleted.addAll(deletes);
                        if (self.get() != null && self.get().revision() < revision) {
                            visibleWhenTold.add("revision " + revision + " told before it was visible");
                        }
                    }
                }));
        self.set(replica);
        List<String> revisionChecks = new CopyOnWriteArrayList<>();
        replica.addRevisionListener(r -> {
            if (replica.revision() != r) {
                revisionChecks.add("told " + r + " at " + replica.revision());
            }
        });
        assertTrue(replica.awaitRevision(1, WAIT));
        assertTrue(System.nanoTime() - started < TimeUnit.SECONDS.toNanos(15),
                "awaitRevision returns when the first snapshot is in, not at its timeout");
        long last = 0;
        for (int i = 1; i <= 20; i++) {
            last = writer.put("config", "counter", Integer.toString(i));
        }
        last = writer.delete("config", "doomed");
        assertTrue(replica.awaitRevision(last, WAIT), "listeners ran: " + seen);
        List<String> expected = new ArrayList<>();
        for (int i = 1; i <= 20; i++) {
            expected.add((i + 1) + ":" + i + ":true");
        }
        assertEquals(expected, seen, "every change, in order, by the time awaitRevision returned");
        assertEquals(List.of("doomed"), deleted);
        assertEquals(List.of(), visibleWhenTold);
        assertEquals(List.of(), revisionChecks, "a revision listener runs once its revision is visible");
    }

    @Test
    void connectedReplicasLearnOfACompaction() throws Exception {
        for (int i = 0; i < 5; i++) {
            writer.put("config", "k" + i, "v" + i);
        }
        Replica<String, String> replica = closing(client(server.port()).replica("config", Codec.utf8(), Codec.utf8()));
        assertTrue(replica.awaitRevision(5, WAIT));
        assertEquals(0, replica.compactRevision());
        writer.compact("config", 4);
        await().atMost(WAIT).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(5)).untilAsserted(
                () -> assertEquals(4, replica.compactRevision(), "the Compaction event reached the live replica"));
    }

    @Test
    void conditionalWritesThroughTheSdk() {
        long first = writer.put("config", "a", "1");
        assertThrows(ConditionFailedException.class, () -> writer.write("config").put("a", "2").ifAbsent("a").commit());
        assertThrows(ConditionFailedException.class,
                () -> writer.write("config").put("a", "2").ifModRevision("a", first + 1).commit());
        assertThrows(ConditionFailedException.class,
                () -> writer.write("config").put("a", "2").ifRevision(first + 5).commit());
        assertEquals("1", new String(writer.get("config", "a").value(), java.nio.charset.StandardCharsets.UTF_8),
                "nothing written");
        long second = writer.write("config").put("a", "2").ifModRevision("a", first).ifAbsent("b").commit();
        assertEquals(first + 1, second);
        Throwable async = assertThrows(java.util.concurrent.CompletionException.class,
                () -> writer.write("config").put("", "x").commitAsync().join()).getCause();
        assertTrue(async instanceof MapcastException, "the future fails with a MapcastException: " + async);
        assertEquals(io.grpc.Status.Code.INVALID_ARGUMENT, ((MapcastException) async).code());
    }

    /** What the server holds, read key by key with Get (keys key-0..key-{n-1} and any key in a snapshot). */
    private Map<String, String> serverContent(String map, int keyspace) throws Exception {
        Map<String, String> out = new LinkedHashMap<>();
        try (Replica<String, String> fresh = client(server.port()).replica(map, Codec.utf8(), Codec.utf8())) {
            assertTrue(fresh.awaitRevision(0, WAIT));
            out.putAll(fresh.toMap());
        }
        for (int i = 0; i < keyspace; i++) {
            GetResult r = writer.get(map, "key-" + i);
            assertEquals(r.found(), out.containsKey("key-" + i), "Get and snapshot agree on key-" + i);
            if (r.found()) {
                assertEquals(new String(r.value(), java.nio.charset.StandardCharsets.UTF_8), out.get("key-" + i));
            }
        }
        return out;
    }

    /** The SnapshotChunk messages of a snapshot file, as bytes (header and footer skipped). */
    private static List<byte[]> chunksOf(Path file) throws IOException {
        List<byte[]> messages = new ArrayList<>();
        try (InputStream in = Files.newInputStream(file)) {
            DataInputStream data = new DataInputStream(in);
            for (int first; (first = in.read()) >= 0; ) {
                long length = first & 0x7F;
                for (int shift = 7, b = first; (b & 0x80) != 0; shift += 7) {
                    b = in.read();
                    length |= (long) (b & 0x7F) << shift;
                }
                byte[] message = new byte[(int) length];
                data.readFully(message);
                messages.add(message);
            }
        }
        return messages.subList(1, messages.size() - 1);
    }

}
