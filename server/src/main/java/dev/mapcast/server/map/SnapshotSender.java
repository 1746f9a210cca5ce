package dev.mapcast.server.map;

import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.codec.SnapshotEncoder;
import dev.mapcast.core.PinnedView;
import java.nio.ByteBuffer;

/**
 * One snapshot being streamed: a pinned view of the map at one revision and the encoder walking it,
 * one chunk per message. Writers go on meanwhile; the view keeps what it needs alive until closed.
 * Used by one thread at a time.
 */
public final class SnapshotSender implements AutoCloseable {

    private final PinnedView view;
    private final SnapshotEncoder encoder;
    private final boolean asWatchResponses;
    final long revision;

    SnapshotSender(PinnedView view, String map, long revision, long compactRevision, long incarnation, int chunkBytes,
            boolean asWatchResponses) {
        this.view = view;
        this.revision = revision;
        this.asWatchResponses = asWatchResponses;
        this.encoder = new SnapshotEncoder(view, map, revision, compactRevision, incarnation, chunkBytes);
    }

    public boolean hasNext() {
        return encoder.hasNext();
    }

    /** The next chunk (or WatchResponse holding it), copied from the view's records. */
    public Encoded next() {
        if (asWatchResponses) {
            ByteBuffer out = ByteBuffer.allocate(encoder.nextWatchResponseSize());
            encoder.writeNextWatchResponse(out);
            return Encoded.of(out.flip());
        }
        return Encoded.of(encoder.nextChunk());
    }

    @Override
    public void close() {
        view.close();
    }
}
