package dev.mapcast.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.codec.Codec;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * One call of every kind a client makes, each checking its answer, for tests that run them all
 * through something (a dead first member, a proxy): a write on the write stream and an async one,
 * unary reads and writes, a snapshot saved and restored, a replica's Watch. Run in order, each on
 * a fresh client if the test wants every one to meet the same start, against an empty server.
 */
final class EveryKindOfCall {

    private EveryKindOfCall() {
    }

    /** The calls, on maps "config" and "copy"; snapshot files go to {@code dir}. */
    static List<Consumer<MapcastClient>> on(Path dir) {
        return List.of(
                c -> assertEquals(1, c.put("config", "a", "1")),
                c -> assertEquals("1", new String(c.get("config", "a").value())),
                c -> assertEquals(1, c.listMaps().size()),
                c -> assertEquals(1, c.compact("config", 0).getCompactRevision()),
                c -> assertEquals(2, c.write("config").put("b", "2").commitAsync().join()),
                c -> {
                    try {
                        assertEquals(2, c.saveSnapshot("config", dir.resolve("config.snap")).entries());
                        assertEquals(1, c.restoreSnapshot("copy", dir.resolve("config.snap")).revision());
                    } catch (IOException e) {
                        throw new AssertionError(e);
                    }
                },
                c -> {
                    try (Replica<String, String> r = c.replica("config", Codec.utf8(), Codec.utf8())) {
                        assertTrue(r.awaitRevision(2, Duration.ofSeconds(20)));
                        assertEquals(Map.of("a", "1", "b", "2"), r.toMap());
                    } catch (InterruptedException e) {
                        throw new AssertionError(e);
                    }
                },
                c -> assertEquals(1, c.deleteMap("copy")));
    }
}
