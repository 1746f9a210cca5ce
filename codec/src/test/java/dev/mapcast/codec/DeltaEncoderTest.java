package dev.mapcast.codec;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.core.PinnedView;
import dev.mapcast.proto.v1.Delta;
import dev.mapcast.proto.v1.SnapshotChunk;
import dev.mapcast.proto.v1.WatchResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class DeltaEncoderTest {

    @Test
    void deltasAndTheirWatchResponsesAreExactlyProtobufJavas() {
        long seed = TestSeeds.seed("deltasAreExactlyProtobufJavas");
        Random rnd = new Random(seed);
        try (OffHeapMap map = OffHeapMap.builder().trackDigest(true).build()) {
            for (long revision = 1; revision <= 300; revision++) {
                List<byte[]> puts = new ArrayList<>();
                List<byte[]> values = new ArrayList<>();
                List<byte[]> deletes = new ArrayList<>();
                Delta.Builder expected = Delta.newBuilder();
                int n = rnd.nextInt(6);
                for (int i = 0; i < n; i++) {
                    String key = "r" + revision + "/k" + i + (rnd.nextInt(10) == 0 ? "/é".repeat(80) : "");
                    byte[] value = new byte[rnd.nextInt(10) == 0 ? 300 : rnd.nextInt(40)];
                    rnd.nextBytes(value);
                    map.put(bytes(key), value);
                    puts.add(bytes(key));
                    values.add(value);
                    expected.putPuts(key, ByteString.copyFrom(value));
                }
                if (revision > 1 && rnd.nextBoolean()) {
                    String key = "gone/" + revision;
                    deletes.add(bytes(key));
                    expected.addDeletes(key);
                }
                long digest = map.digest();
                expected.setRevision(revision).setPrevRevision(revision - 1).setDigest(digest);
                DeltaEncoder encoder = new DeltaEncoder(puts, values, deletes, revision, digest);
                ByteBuffer stored = ByteBuffer.allocate(encoder.size(false));
                for (byte[] key : puts) {
                    map.copyRecordTo(key, stored);
                }
                assertArrayEquals(Arrays.copyOf(stored.array(), stored.position()),
                        Arrays.copyOf(encodedPuts(encoder), stored.position()),
                        "the puts are the map's own records, seed " + seed);
                ByteBuffer plain = ByteBuffer.allocate(encoder.size(false));
                encoder.writeTo(plain, false);
                assertArrayEquals(expected.build().toByteArray(), plain.array(), "seed " + seed + ", revision " + revision);
                ByteBuffer framed = ByteBuffer.allocate(encoder.size(true));
                encoder.writeTo(framed, true);
                assertArrayEquals(WatchResponse.newBuilder().setDelta(expected).build().toByteArray(), framed.array(),
                        "seed " + seed + ", revision " + revision);
            }
        }
    }

    @Test
    void badArgumentsAreRefusedNamingThem() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new DeltaEncoder(List.of(bytes("k")), List.of(), List.of(), 1, 0));
        assertTrue(e.getMessage().contains("putValues: 0 values (expected: one per key, 1)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new DeltaEncoder(List.of(), List.of(), List.of(), 0, 0));
        assertTrue(e.getMessage().contains("revision: 0"), e.getMessage());
    }

    /** The Delta's bytes without its framing: the puts come first. */
    private static byte[] encodedPuts(DeltaEncoder encoder) {
        ByteBuffer plain = ByteBuffer.allocate(encoder.size(false));
        encoder.writeTo(plain, false);
        return plain.array();
    }

    @Test
    void snapshotChunksFramedAsWatchResponsesHoldTheSameChunk() throws Exception {
        try (OffHeapMap map = OffHeapMap.builder().order(IterationOrder.INSERTION).trackDigest(true).build()) {
            for (int i = 0; i < 2_000; i++) {
                map.put(bytes("k" + i), new byte[i % 70]);
            }
            try (PinnedView view = map.pin()) {
                SnapshotEncoder plain = new SnapshotEncoder(view, "w", 5, 0, 4096);
                SnapshotEncoder framed = new SnapshotEncoder(view, "w", 5, 0, 4096);
                while (plain.hasNext()) {
                    ByteBuffer response = ByteBuffer.allocate(framed.nextWatchResponseSize());
                    framed.writeNextWatchResponse(response);
                    assertEquals(0, response.remaining());
                    SnapshotChunk chunk = SnapshotChunk.parseFrom(plain.nextChunk());
                    assertArrayEquals(WatchResponse.newBuilder().setSnapshot(chunk).build().toByteArray(), response.array());
                }
                assertTrue(!framed.hasNext());
            }
        }
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
