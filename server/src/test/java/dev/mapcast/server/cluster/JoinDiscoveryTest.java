package dev.mapcast.server.cluster;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.server.storage.StorageException;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** A joining member asking the listed members for their group. */
class JoinDiscoveryTest {

    /**
     * A member that takes the connection and never answers (a hung JVM, a busy machine) makes
     * Ratis's gRPC throw DEADLINE_EXCEEDED unchecked: the joining member asks again until its wait is
     * out, then says so in one line, instead of dying with an internal error.
     */
    @Test
    void aMemberThatNeverAnswersIsAskedAgainUntilTheWaitIsOut() throws Exception {
        List<Socket> held = java.util.Collections.synchronizedList(new ArrayList<>());
        try (ServerSocket silent = new ServerSocket(0)) {
            Thread acceptor = new Thread(() -> {
                try {
                    while (true) {
                        held.add(silent.accept());
                    }
                } catch (java.io.IOException closed) {
                    // the test is over
                }
            });
            acceptor.setDaemon(true);
            acceptor.start();
            ClusterConfig config = ClusterConfig.parse("d", "a=127.0.0.1:" + silent.getLocalPort()
                    + ",d=127.0.0.1:1", true);
            StorageException e = assertThrows(StorageException.class,
                    () -> ClusterMember.discoverGroup(config, Duration.ofSeconds(5), new org.apache.ratis.conf.Parameters()));
            assertTrue(e.getMessage().startsWith("--join: no member of --cluster answered within 5 s"),
                    e.getMessage());
        } finally {
            for (Socket s : held) {
                s.close();
            }
        }
    }
}
