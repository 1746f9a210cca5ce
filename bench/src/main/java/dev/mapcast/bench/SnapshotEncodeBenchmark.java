package dev.mapcast.bench;

import com.google.protobuf.CodedOutputStream;
import dev.mapcast.codec.SnapshotEncoder;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.core.PinnedView;
import dev.mapcast.proto.v1.SnapshotChunk;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Encoding a whole map of 1M entries (16-byte keys, 64-byte random values) as a snapshot: every
 * {@code SnapshotChunk} message, entries cut into chunks of at most
 * {@link SnapshotEncoder#DEFAULT_CHUNK_BYTES} (1 MiB), written back to back into one reused,
 * pre-allocated direct buffer large enough for all of them. One operation is the whole snapshot.
 * <ul>
 *   <li>{@code mapcast}: {@link SnapshotEncoder} over a view pinned in the measured method (pinning
 *       and releasing the view are part of the cost), each chunk written by
 *       {@link SnapshotEncoder#writeNextChunk} straight from the map's memory.</li>
 *   <li>{@code protobuf}: protobuf-java serialising <em>already built</em> {@link SnapshotChunk}
 *       messages, the same entries in the same order split at the same boundaries as mapcast's
 *       chunks: {@code chunk.writeTo(CodedOutputStream.newInstance(buffer))} then {@code flush()},
 *       per chunk. Building the messages (from a {@code HashMap} or anything else) is <b>not</b>
 *       measured: they are made once in setup, so this is the most favourable case for protobuf.
 *       Their serialized sizes are memoized after the first operation, as in any reuse.</li>
 *   <li>{@code memcpy}: {@code dst.put(src)} of the same number of bytes from one direct buffer to
 *       another: the memory bandwidth limit, what no encoder can beat.</li>
 * </ul>
 *
 * <p>Bytes per operation: each entry is one field-1 record of 86 bytes (tag, length, then the key
 * field, 2 + 16, and the value field, 2 + 64), so 12,192 entries fill a 1 MiB chunk and 1M entries
 * make 83 chunks; with the name ("bench"), revision, order and compact revision in each chunk and
 * {@code last}, {@code total_entries} and {@code digest} in the last one, the snapshot is
 * 86,001,094 bytes (setup prints the count it measures, and checks that protobuf-java writes the
 * same bytes as mapcast). MB/s = 86,001 / (ms/op).
 *
 * <p>Keys are 16 random characters from {@code [a-z0-9]} (protobuf's {@code map<string, bytes>}
 * needs UTF-8 keys), values 64 random bytes, from a fixed seed; the map is HASH order with a fixed
 * hash seed and tracks its digest.
 *
 * <p>Run (about 1.5 minutes: 3 forks of ~30 s each):
 * <pre>{@code
 * mvn -B -q -pl bench -am package -DskipTests
 * java -jar bench/target/benchmarks.jar SnapshotEncodeBenchmark
 * }</pre>
 * On JDK 23+ add {@code -jvmArgsAppend --sun-misc-unsafe-memory-access=allow}. One implementation:
 * {@code -p impl=mapcast}; allocation per operation: {@code -prof gc} (mapcast allocates a few
 * objects per snapshot: the encoder, its two cursors and the view; nothing per chunk or entry);
 * shorter: {@code -f 1 -wi 1 -i 2}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 3)
@Measurement(iterations = 5, time = 3)
@Fork(value = 1, jvmArgs = {"-Xms4g", "-Xmx4g"})
public class SnapshotEncodeBenchmark {

    static final int ENTRIES = 1_000_000;
    static final int KEY_LENGTH = 16;
    static final int VALUE_LENGTH = 64;
    static final long SEED = 0x6d61_7063_6173_74L;
    static final String MAP_NAME = "bench";
    static final long REVISION = 42;
    static final long COMPACT_REVISION = 7;
    static final int CHUNK_BYTES = SnapshotEncoder.DEFAULT_CHUNK_BYTES;

    private static final byte[] KEY_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789".getBytes();

    @Param({"mapcast", "protobuf", "memcpy"})
    String impl;

    private OffHeapMap map;
    private List<SnapshotChunk> messages;
    private ByteBuffer src;
    private ByteBuffer dst;

    @Setup(Level.Trial)
    public void setUp() {
        map = sourceMap();
        List<ByteBuffer> chunks = encode(map);
        long total = 0;
        for (ByteBuffer chunk : chunks) {
            total += chunk.remaining();
        }
        System.out.printf("%nsnapshot: %d entries, %d chunks, %d bytes (%.1f per entry)%n",
                ENTRIES, chunks.size(), total, (double) total / ENTRIES);
        dst = ByteBuffer.allocateDirect(Math.toIntExact(total));

        if (impl.equals("protobuf")) {
            // Parsing mapcast's chunks gives the same entries in the same order (a parsed map
            // field keeps the wire order, and protobuf-java writes it back in that order).
            messages = new ArrayList<>(chunks.size());
            for (ByteBuffer chunk : chunks) {
                SnapshotChunk message = parse(chunk.duplicate());
                if (!ByteBuffer.wrap(message.toByteArray()).equals(chunk)) {
                    throw new IllegalStateException("protobuf-java's bytes differ from mapcast's for chunk "
                            + messages.size());
                }
                messages.add(message);
            }
        } else if (impl.equals("memcpy")) {
            src = ByteBuffer.allocateDirect(Math.toIntExact(total));
            for (ByteBuffer chunk : chunks) {
                src.put(chunk.duplicate());
            }
            src.flip();
        } else if (!impl.equals("mapcast")) {
            throw new IllegalArgumentException("impl: " + impl + " (expected: mapcast, protobuf or memcpy)");
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        map.close();
    }

    /** Writes the whole snapshot into the buffer; returns the bytes written. */
    @Benchmark
    public int encode() throws IOException {
        ByteBuffer out = dst;
        out.clear();
        switch (impl) {
            case "mapcast" -> {
                try (PinnedView view = map.pin()) {
                    SnapshotEncoder encoder = new SnapshotEncoder(view, MAP_NAME, REVISION, COMPACT_REVISION,
                            CHUNK_BYTES);
                    while (encoder.hasNext()) {
                        encoder.writeNextChunk(out);
                    }
                }
            }
            case "protobuf" -> {
                List<SnapshotChunk> chunks = messages;
                for (int i = 0, n = chunks.size(); i < n; i++) {
                    CodedOutputStream stream = CodedOutputStream.newInstance(out);
                    chunks.get(i).writeTo(stream);
                    stream.flush();
                }
            }
            default -> {
                ByteBuffer in = src;
                in.rewind();
                out.put(in);
            }
        }
        return out.position();
    }

    /** The benchmark's map: ENTRIES seeded entries, HASH order, fixed hash seed, digest tracked. */
    static OffHeapMap sourceMap() {
        SplittableRandom random = new SplittableRandom(SEED);
        OffHeapMap map = OffHeapMap.builder().hashSeed(SEED).trackDigest(true).build();
        byte[] value = new byte[VALUE_LENGTH];
        byte[] key = new byte[KEY_LENGTH];
        for (int i = 0; i < ENTRIES; i++) {
            for (int j = 0; j < KEY_LENGTH; j++) {
                key[j] = KEY_ALPHABET[random.nextInt(KEY_ALPHABET.length)];
            }
            random.nextBytes(value);
            map.put(key, value);
        }
        // 36^16 keys: no collision in practice; check rather than assume.
        if (map.size() != ENTRIES) {
            throw new IllegalStateException("size after fill: " + map.size() + " (expected: " + ENTRIES + ")");
        }
        return map;
    }

    /** The map's snapshot as mapcast encodes it, one heap buffer per chunk, each flipped for reading. */
    static List<ByteBuffer> encode(OffHeapMap map) {
        List<ByteBuffer> chunks = new ArrayList<>();
        try (PinnedView view = map.pin()) {
            SnapshotEncoder encoder = new SnapshotEncoder(view, MAP_NAME, REVISION, COMPACT_REVISION, CHUNK_BYTES);
            while (encoder.hasNext()) {
                chunks.add(encoder.nextChunk());
            }
        }
        return chunks;
    }

    static SnapshotChunk parse(ByteBuffer chunk) {
        try {
            return SnapshotChunk.parseFrom(chunk);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
