package dev.mapcast.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.client.ReplicaListener.ResyncReason;
import dev.mapcast.codec.Codec;
import dev.mapcast.codec.SnapshotFileException;
import dev.mapcast.server.MapcastServer;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A replica saved to a snapshot file and started again from it (real gRPC over Netty): it resumes
 * from the file's revision without a snapshot while the server has the history, takes a snapshot
 * when it does not, and refuses a damaged file or another map's before starting anything.
 */
class WarmStartTest {

    private static final Duration WAIT = Duration.ofSeconds(20);

    @TempDir
    Path dir;

    private MapcastServer server;
    private MapcastClient client;

    @BeforeEach
    void start() {
        server = MapcastServer.builder().port(0).build().start();
        client = MapcastClient.builder().target("127.0.0.1:" + server.port()).build();
    }

    @AfterEach
    void stop() {
        client.close();
        server.close();
    }

    @Test
    void aReplicaStartedFromItsFileResumesWithoutASnapshot() throws Exception {
        Path file = savedReplicaFile(100);
        for (int i = 0; i < 20; i++) {
            client.put("config", "later-" + i, "v" + i);
        }
        long last = client.put("config", "key-3", "changed");
        List<String> resyncs = new CopyOnWriteArrayList<>();
        ReplicaListener<String, String> listener = new ReplicaListener<>() {
            @Override
            public void onResync(long revision, ResyncReason reason) {
                resyncs.add(reason + " " + revision);
            }
        };
        try (Replica<String, String> warm = client.replica("config", Codec.utf8(), Codec.utf8(), listener, file)) {
            assertTrue(warm.awaitRevision(last, WAIT), "at " + warm.revision());
            assertEquals(0, warm.stats().snapshots(), "no snapshot over the network");
            assertEquals(21, warm.stats().deltas());
            assertEquals("changed", warm.get("key-3"));
            assertEquals(120, warm.size());
            try (Replica<String, String> fresh = client.replica("config", Codec.utf8(), Codec.utf8())) {
                assertTrue(fresh.awaitRevision(last, WAIT));
                assertEquals(fresh.digest(), warm.digest());
            }
        }
        assertEquals(List.of("SNAPSHOT_FILE 100"), resyncs);
    }

    @Test
    void whenTheServerNoLongerHasTheHistoryTheWarmReplicaTakesASnapshot() throws Exception {
        Path file = savedReplicaFile(10);
        client.put("config", "after", "compaction");
        client.compact("config", 0);
        try (Replica<String, String> warm = client.replica("config", Codec.utf8(), Codec.utf8(), null, file)) {
            assertTrue(warm.awaitRevision(11, WAIT), "at " + warm.revision());
            assertEquals(1, warm.stats().snapshots());
            assertEquals("compaction", warm.get("after"));
        }
    }

    @Test
    void aDamagedFileOrAnotherMapsFileStartsNothing() throws Exception {
        Path file = savedReplicaFile(10);
        IllegalArgumentException other = assertThrows(IllegalArgumentException.class,
                () -> client.replica("other", Codec.utf8(), Codec.utf8(), null, file));
        assertTrue(other.getMessage().contains("holds map \"config\" (expected: \"other\")"), other.getMessage());
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(1);
            c.read(b, 100);
            b.put(0, (byte) (b.get(0) ^ 1)).rewind();
            c.write(b, 100);
        }
        SnapshotFileException damaged = assertThrows(SnapshotFileException.class,
                () -> client.replica("config", Codec.utf8(), Codec.utf8(), null, file));
        assertTrue(damaged.getMessage().contains("byte"), damaged.getMessage());
    }

    /** Writes {@code entries} keys (one revision each), syncs a replica, saves it; returns the file. */
    private Path savedReplicaFile(int entries) throws Exception {
        long last = 0;
        for (int i = 0; i < entries; i++) {
            last = client.put("config", "key-" + i, "value-" + i);
        }
        Path file = dir.resolve("config.snap");
        try (Replica<String, String> r = client.replica("config", Codec.utf8(), Codec.utf8())) {
            assertTrue(r.awaitRevision(last, WAIT));
            r.writeSnapshot(file);
        }
        return file;
    }
}
