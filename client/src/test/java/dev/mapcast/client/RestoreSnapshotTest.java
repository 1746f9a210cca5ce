package dev.mapcast.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.codec.SnapshotFileException;
import dev.mapcast.proto.v1.MapInfo;
import dev.mapcast.server.MapcastServer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link MapcastClient#restoreSnapshot} over real gRPC when the file turns out bad only at its end:
 * every chunk has been sent, and the call must still be cancelled so that the server applies
 * nothing.
 */
class RestoreSnapshotTest {

    @TempDir
    Path dir;

    private MapcastServer server;
    private MapcastClient client;

    @BeforeEach
    void start() {
        server = MapcastServer.builder().port(0).snapshotChunkBytes(256).build().start();
        client = MapcastClient.builder().target("127.0.0.1:" + server.port()).build();
    }

    @AfterEach
    void stop() {
        client.close();
        server.close();
    }

    @Test
    void aFileWhoseCrcFailsAtItsEndRestoresNothing() throws Exception {
        for (int i = 0; i < 40; i++) {
            client.put("source", "key-" + i, "value-" + i);
        }
        Path good = dir.resolve("source.snapshot");
        client.saveSnapshot("source", good);
        byte[] bytes = Files.readAllBytes(good);
        // The footer ends with its crc32c (field 3, fixed32): damage only that, so that every chunk,
        // the entry count and the digest still check out, on the client and on the server.
        assertEquals(0x1D, bytes[bytes.length - 5], "the footer's last field is its crc32c");
        bytes[bytes.length - 1] ^= 0x01;
        Path bad = Files.write(dir.resolve("bad.snapshot"), bytes);
        long before = client.put("target", "kept", "yes");

        SnapshotFileException e = assertThrows(SnapshotFileException.class,
                () -> client.restoreSnapshot("target", bad));
        assertTrue(e.getMessage().contains("CRC-32C mismatch"), e.getMessage());
        assertEquals(before, client.get("target", "kept").revision(), "the map did not change");
        assertFalse(client.get("target", "key-0").found(), "nothing of the file was applied");
        assertThrows(SnapshotFileException.class, () -> client.restoreSnapshot("absent", bad));
        assertFalse(client.listMaps().stream().map(MapInfo::getName).anyMatch("absent"::equals),
                "no map created");

        // Retried at once: the server waits for the cancelled restore to give its one slot back.
        MapcastClient.Restored restored = client.restoreSnapshot("target", good);
        assertEquals(before + 1, restored.revision(), "the good file restores");
    }
}
