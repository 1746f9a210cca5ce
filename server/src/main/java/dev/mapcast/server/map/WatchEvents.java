package dev.mapcast.server.map;

import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.proto.v1.Compaction;
import dev.mapcast.proto.v1.MapDeleted;
import dev.mapcast.proto.v1.Progress;
import dev.mapcast.proto.v1.SnapshotChunk;
import dev.mapcast.proto.v1.WatchResponse;
import java.nio.ByteBuffer;

/** The small Watch events, encoded once with protobuf-java and shared by every watcher. */
public final class WatchEvents {

    private WatchEvents() {
    }

    public static Encoded progress(long revision, long digest, long incarnation) {
        return encode(WatchResponse.newBuilder().setProgress(Progress.newBuilder().setRevision(revision)
                .setDigest(digest).setIncarnation(incarnation)).build());
    }

    /** The map does not exist: deleted at {@code revision} of {@code incarnation}, or never created (both 0). */
    public static Encoded mapDeleted(long revision, long incarnation) {
        return encode(WatchResponse.newBuilder().setDeleted(MapDeleted.newBuilder().setRevision(revision)
                .setIncarnation(incarnation)).build());
    }

    /**
     * The snapshot at revision 0 of a map just created (empty, one chunk): what a watcher that waited
     * for the map starts from, so that the creating write reaches it as a delta.
     */
    static Encoded emptySnapshot(String map, IterationOrder order, long incarnation) {
        return encode(WatchResponse.newBuilder().setSnapshot(SnapshotChunk.newBuilder().setMap(map).setLast(true)
                .setOrderValue(HostedMap.orderValue(order)).setIncarnation(incarnation)).build());
    }

    static Encoded compaction(Compaction compaction) {
        return encode(WatchResponse.newBuilder().setCompaction(compaction).build());
    }

    private static Encoded encode(WatchResponse response) {
        return Encoded.of(ByteBuffer.wrap(response.toByteArray()));
    }
}
