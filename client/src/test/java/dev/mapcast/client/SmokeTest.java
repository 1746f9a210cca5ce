package dev.mapcast.client;

import static org.junit.jupiter.api.Assertions.*;

import dev.mapcast.codec.Codec;
import dev.mapcast.server.MapcastServer;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class SmokeTest {
    @Test
    void writeThenReplicate() throws Exception {
        try (MapcastServer server = MapcastServer.builder().port(0).build().start();
             MapcastClient client = MapcastClient.builder().target("127.0.0.1:" + server.port()).build()) {
            long r1 = client.put("config", "a", "1");
            assertEquals(1, r1);
            try (Replica<String, String> rep = client.replica("config", Codec.utf8(), Codec.utf8())) {
                assertTrue(rep.awaitRevision(1, Duration.ofSeconds(5)));
                assertEquals("1", rep.get("a"));
                long r2 = client.write("config").put("b", "2").delete("a").commit();
                assertTrue(rep.awaitRevision(r2, Duration.ofSeconds(5)));
                assertNull(rep.get("a"));
                assertEquals("2", rep.get("b"));
                System.out.println(rep.stats());
            }
        }
    }
}
