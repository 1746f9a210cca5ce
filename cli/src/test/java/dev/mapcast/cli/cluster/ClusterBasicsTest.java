package dev.mapcast.cli.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.proto.v1.MapInfo;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Three members: writes to any member land once, in one order, with the same revisions everywhere. */
class ClusterBasicsTest {

    @TempDir
    Path dir;

    @Test
    void writesToAnyMemberGiveEveryMemberTheSameRevisionsAndSnapshotBytes() throws Exception {
        try (ClusterProcesses cluster = ClusterProcesses.start(dir, 3)) {
            int n = 0;
            for (ClusterProcesses.Member m : cluster.members()) {
                try (MapcastClient c = MapcastClient.builder().target(m.clientAddress()).deadline(Duration.ofSeconds(30))
                        .build()) {
                    for (int i = 0; i < 20; i++) {
                        n++;
                        assertEquals(n, c.write("cfg").put("k" + (n % 7), "v" + n)
                                .order(IterationOrder.INSERTION).commit());
                    }
                }
            }
            byte[] first = null;
            for (ClusterProcesses.Member m : cluster.members()) {
                try (MapcastClient c = MapcastClient.builder().target(m.clientAddress()).deadline(Duration.ofSeconds(30))
                        .build()) {
                    MapInfo info = c.listMaps().get(0);
                    assertEquals(n, info.getRevision(), "revision on " + m.id);
                    Path file = dir.resolve(m.id + ".snap");
                    c.saveSnapshot("cfg", file);
                    byte[] bytes = Files.readAllBytes(file);
                    if (first == null) {
                        first = bytes;
                    } else {
                        assertArrayEquals(first, bytes, "snapshot bytes of " + m.id + " differ from m1's");
                    }
                }
            }
        }
    }
}
