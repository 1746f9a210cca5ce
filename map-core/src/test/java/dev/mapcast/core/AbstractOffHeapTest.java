package dev.mapcast.core;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

/**
 * Base of every map-core test: fails a test whose maps leave off-heap memory behind once closed.
 *
 * <p>The baseline is {@link NativeMemory#allocatedBytes()} before the test. Maps made through
 * {@link #track} are closed again after the test (close is idempotent), so a test that fails half
 * way reports its own failure, not a leak; a map whose {@code close()} does not give back all its
 * memory fails the check whatever the test did.
 *
 * <p>Randomised tests take their seed from {@link #testSeed}: the system property {@code mapcast.seed}
 * when set ({@code mvn -pl map-core test -Dmapcast.seed=N}), else {@link System#nanoTime()}. The seed
 * is printed, and tests put it in every assertion message.
 */
abstract class AbstractOffHeapTest {

    private long baselineBytes;
    private long baselineBlocks;
    private final List<OffHeapMap> tracked = new ArrayList<>();

    @BeforeEach
    final void recordOffHeapBaseline() {
        baselineBytes = NativeMemory.allocatedBytes();
        baselineBlocks = NativeMemory.allocatedBlocks();
    }

    @AfterEach
    final void failOnLeakedOffHeapMemory() {
        for (OffHeapMap map : tracked) {
            map.close();
        }
        tracked.clear();
        assertEquals(baselineBytes, NativeMemory.allocatedBytes(),
                "off-heap bytes still held after every map of the test was closed");
        assertEquals(baselineBlocks, NativeMemory.allocatedBlocks(),
                "off-heap blocks still held after every map of the test was closed");
    }

    /** Registers {@code map} to be closed after the test, before the leak check; returns it. */
    final OffHeapMap track(OffHeapMap map) {
        tracked.add(map);
        return map;
    }

    /** Builds and {@linkplain #track tracks} a map. */
    final OffHeapMap build(OffHeapMap.Builder builder) {
        return track(builder.build());
    }

    /** Off-heap bytes held now beyond what was held when the test started. */
    final long offHeapBytesSinceStart() {
        return NativeMemory.allocatedBytes() - baselineBytes;
    }

    /** The seed of a randomised test, printed with how to rerun with it. */
    static long testSeed(String test) {
        String fixed = System.getProperty("mapcast.seed");
        long seed = fixed == null || fixed.isBlank() ? System.nanoTime() : Long.decode(fixed.trim());
        System.out.println("[mapcast] " + test + ": seed=" + seed + " (rerun with -Dmapcast.seed=" + seed + ")");
        return seed;
    }
}
