package dev.mapcast.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.codec.Codec;
import dev.mapcast.server.MapcastServer;
import io.netty.channel.epoll.Epoll;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * Run only by the {@code nio-transport} execution (see client/pom.xml), with Netty's native
 * transport off: proves that the tests it runs next to this one (replication, write streams,
 * backpressure) really run the server and the SDK on NIO, as platforms without the bundled epoll
 * library do.
 */
class NioTransportTest {

    @Test
    void theServerAndTheSdkRunOnNio() throws Exception {
        assertEquals("true", System.getProperty("io.netty.transport.noNative"), "run by the nio-transport execution only");
        assertFalse(Epoll.isAvailable(), "gRPC's channels use epoll only where it is available");
        try (MapcastServer server = MapcastServer.builder().port(0).build().start();
                MapcastClient client = MapcastClient.builder().target("127.0.0.1:" + server.port()).build();
                Replica<String, String> replica = client.replica("m", Codec.utf8(), Codec.utf8())) {
            assertEquals("nio", server.transport());
            long revision = client.put("m", "k", "v");
            assertTrue(replica.awaitRevision(revision, Duration.ofSeconds(10)));
            assertEquals("v", replica.get("k"));
        }
    }
}
