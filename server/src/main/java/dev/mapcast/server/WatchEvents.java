package dev.mapcast.server;

import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.proto.v1.Compaction;
import dev.mapcast.proto.v1.Progress;
import dev.mapcast.proto.v1.WatchResponse;
import java.nio.ByteBuffer;

/** The small Watch events, encoded once with protobuf-java and shared by every watcher. */
final class WatchEvents {

    private WatchEvents() {
    }

    static Encoded progress(long revision, long digest) {
        return encode(WatchResponse.newBuilder()
                .setProgress(Progress.newBuilder().setRevision(revision).setDigest(digest)).build());
    }

    static Encoded compaction(Compaction compaction) {
        return encode(WatchResponse.newBuilder().setCompaction(compaction).build());
    }

    private static Encoded encode(WatchResponse response) {
        return Encoded.of(ByteBuffer.wrap(response.toByteArray()));
    }
}
