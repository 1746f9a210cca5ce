package dev.mapcast.core;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Freed segments go back to the operating system, not to the garbage collector or only to the C
 * allocator: the process's resident memory falls when compaction frees them. Linux only (it reads
 * /proc/self/status), with glibc set as {@code ./mapcast} sets it ({@code MALLOC_MMAP_THRESHOLD_=65536},
 * given to the test JVM by the build).
 */
class MemoryReturnedToSystemTest extends AbstractOffHeapTest {

    private static final Path STATUS = Path.of("/proc/self/status");

    @Test
    void compactionGivesSegmentsBackToTheOperatingSystem() throws IOException {
        assumeTrue(Files.isReadable(STATUS), "needs Linux /proc");
        assumeTrue("65536".equals(System.getenv("MALLOC_MMAP_THRESHOLD_")), "needs MALLOC_MMAP_THRESHOLD_=65536");
        long seed = testSeed("compactionGivesSegmentsBackToTheOperatingSystem");
        Random rnd = new Random(seed);
        OffHeapMap map = build(OffHeapMap.builder().hashSeed(seed));
        int entries = 1_000_000;
        byte[] value = Keys.randomBytes(rnd, 200);
        byte[] key = new byte[16];
        for (int i = 0; i < entries; i++) {
            writeKey(key, i);
            map.put(key, value);
        }
        long before = residentBytes();
        for (int i = 0; i < entries; i++) {
            if (i % 100 != 0) {
                writeKey(key, i);
                map.remove(key);
            }
        }
        map.compact();
        long after = residentBytes();
        long freed = before - after;
        long released = 99 * (long) entries / 100 * 220;  // records of ~220 bytes
        System.out.printf("[mapcast] resident %d MB with 1M entries, %d MB after deleting 99%% and compacting%n",
                before >> 20, after >> 20);
        assertTrue(freed > released / 2, "seed " + seed + ": resident memory fell by " + (freed >> 20)
                + " MB; the map freed about " + (released >> 20) + " MB of segments");
    }

    private static void writeKey(byte[] key, int i) {
        for (int b = 0; b < 4; b++) {
            key[b] = (byte) (i >>> (8 * b));
        }
    }

    private static long residentBytes() throws IOException {
        for (String line : Files.readAllLines(STATUS)) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IllegalStateException("no VmRSS line in " + STATUS);
    }
}
