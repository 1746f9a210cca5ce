package dev.mapcast.bench;

import com.google.protobuf.ByteString;
import dev.mapcast.codec.MessageDecoder;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.proto.v1.SnapshotChunk;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
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
import org.openjdk.jmh.annotations.Warmup;

/**
 * Receiving a whole snapshot: {@link SnapshotEncodeBenchmark}'s map (1M entries, 16-character
 * ASCII keys, 64-byte random values) encoded once in setup by mapcast's encoder (whose bytes are
 * protobuf-java's, which setup of the encode benchmark checks) as 83 {@code SnapshotChunk}
 * messages of about 1 MiB, each in its own direct buffer, as they would come off the network. One
 * operation turns all of them into a new, filled map:
 * <ul>
 *   <li>{@code mapcast}: a new {@link OffHeapMap} (HASH order, fixed hash seed, digest tracked,
 *       sized from the first chunk's {@code total_entries}, as a replica does),
 *       {@link MessageDecoder#applySnapshotChunk} for every chunk, then
 *       {@link OffHeapMap#close()}. Closing (freeing the native memory) is part of the measured
 *       cost, as the collection of the previous operation's garbage is for the peer.</li>
 *   <li>{@code protobuf}: "protobuf-java parse plus HashMap fill" (DESIGN.md):
 *       {@code SnapshotChunk.parseFrom(buffer.duplicate())} for every chunk, each entry then put
 *       into one {@code HashMap<ByteKey, byte[]>} (sized from the first chunk's
 *       {@code total_entries}, as mapcast's is) as
 *       {@code new ByteKey(key.getBytes(UTF_8))} and {@code value.toByteArray()}: the map a caller
 *       holding byte strings gets (see {@link ByteKey}). The map is returned to JMH and dropped,
 *       so the garbage collector's work, live map included while it is being filled, is in the
 *       measurement.</li>
 * </ul>
 * Setup checks that both end with 1M entries (and mapcast with the source map's digest).
 *
 * <p>Bytes per operation: 86,001,094 (see {@link SnapshotEncodeBenchmark});
 * MB/s = 86,001 / (ms/op).
 *
 * <p>Iterations are 5 s long: a protobuf operation takes over a second.
 *
 * <p>Run (about 1.5 minutes: 2 forks of ~45 s each):
 * <pre>{@code
 * mvn -B -q -pl bench -am package -DskipTests
 * java -jar bench/target/benchmarks.jar SnapshotDecodeBenchmark
 * }</pre>
 * On JDK 23+ add {@code -jvmArgsAppend --sun-misc-unsafe-memory-access=allow}. One implementation:
 * {@code -p impl=mapcast}; allocation per operation: {@code -prof gc}; shorter:
 * {@code -f 1 -wi 1 -i 2}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 5)
@Measurement(iterations = 5, time = 5)
@Fork(value = 1, jvmArgs = {"-Xms4g", "-Xmx4g"})
public class SnapshotDecodeBenchmark {

    @Param({"mapcast", "protobuf"})
    String impl;

    private ByteBuffer[] chunks;

    @Setup(Level.Trial)
    public void setUp() {
        if (!impl.equals("mapcast") && !impl.equals("protobuf")) {
            throw new IllegalArgumentException("impl: " + impl + " (expected: mapcast or protobuf)");
        }
        long digest;
        try (OffHeapMap source = SnapshotEncodeBenchmark.sourceMap()) {
            digest = source.digest();
            List<ByteBuffer> encoded = SnapshotEncodeBenchmark.encode(source);
            chunks = new ByteBuffer[encoded.size()];
            long total = 0;
            for (int i = 0; i < chunks.length; i++) {
                ByteBuffer heap = encoded.get(i);
                total += heap.remaining();
                chunks[i] = ByteBuffer.allocateDirect(heap.remaining()).put(heap).flip();
            }
            System.out.printf("%nsnapshot: %d chunks, %d bytes%n", chunks.length, total);
        }
        if (impl.equals("mapcast")) {
            try (OffHeapMap map = newMap(SnapshotEncodeBenchmark.ENTRIES)) {
                for (ByteBuffer chunk : chunks) {
                    MessageDecoder.applySnapshotChunk(chunk, map);
                }
                if (map.size() != SnapshotEncodeBenchmark.ENTRIES || map.digest() != digest) {
                    throw new IllegalStateException("decoded map: size " + map.size() + ", digest " + map.digest()
                            + " (expected: " + SnapshotEncodeBenchmark.ENTRIES + ", " + digest + ")");
                }
            }
        } else {
            int size = protobuf().size();
            if (size != SnapshotEncodeBenchmark.ENTRIES) {
                throw new IllegalStateException("decoded map: size " + size + " (expected: "
                        + SnapshotEncodeBenchmark.ENTRIES + ")");
            }
        }
    }

    /** Builds a new map from all the chunks; returns its size (mapcast) or the map (protobuf). */
    @Benchmark
    public Object decode() {
        return impl.equals("mapcast") ? mapcast() : protobuf();
    }

    private long mapcast() {
        ByteBuffer[] messages = chunks;
        long total = MessageDecoder.peekSnapshotChunk(messages[0]).totalEntries();
        try (OffHeapMap map = newMap(total)) {
            for (ByteBuffer message : messages) {
                MessageDecoder.applySnapshotChunk(message, map);
            }
            return map.size();
        }
    }

    private Map<ByteKey, byte[]> protobuf() {
        ByteBuffer[] messages = chunks;
        Map<ByteKey, byte[]> map = null;
        for (ByteBuffer message : messages) {
            SnapshotChunk chunk = SnapshotEncodeBenchmark.parse(message.duplicate());
            if (map == null) {
                map = new HashMap<>((int) (chunk.getTotalEntries() / 0.75f) + 1);
            }
            for (Map.Entry<String, ByteString> e : chunk.getEntriesMap().entrySet()) {
                map.put(new ByteKey(e.getKey().getBytes(StandardCharsets.UTF_8)), e.getValue().toByteArray());
            }
        }
        return map;
    }

    private static OffHeapMap newMap(long entries) {
        return OffHeapMap.builder().hashSeed(SnapshotEncodeBenchmark.SEED).trackDigest(true)
                .initialCapacity(entries).build();
    }
}
