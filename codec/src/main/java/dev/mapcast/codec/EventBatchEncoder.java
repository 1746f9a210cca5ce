package dev.mapcast.codec;

import dev.mapcast.codec.EncodedMessages.Encoded;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * Frames consecutive encoded {@code WatchResponse}s as one {@code WatchResponse{batch: EventBatch}}
 * (a mapcast addition to the contract, sent only to clients that ask for it). Each event's bytes are
 * written as they are, so events encoded once for every watcher stay byte for byte the same.
 */
public final class EventBatchEncoder {

    /** WatchResponse.batch. */
    private static final int WATCH_RESPONSE_BATCH = 5;
    /** EventBatch.events. */
    private static final int EVENTS = 1;

    private EventBatchEncoder() {
    }

    /** Bytes of the batch of these events, framed as a WatchResponse. */
    public static int size(List<Encoded> events) {
        return ProtoWire.bytesFieldSize(WATCH_RESPONSE_BATCH, contentSize(events));
    }

    /**
     * One WatchResponse holding every event, in order. Nothing is copied here: the batch is written
     * straight into gRPC's buffers when sent, each event's bytes as they are.
     */
    public static Encoded encode(List<Encoded> events) {
        Encoded[] parts = events.toArray(new Encoded[0]);
        int content = contentSize(events);
        return Encoded.writtenBy(ProtoWire.bytesFieldSize(WATCH_RESPONSE_BATCH, content), out -> {
            // Tag and length prefixes are at most 5 + 5 bytes each.
            ByteBuffer prefix = ByteBuffer.allocate(10);
            putPrefix(out, prefix, WATCH_RESPONSE_BATCH, content);
            for (Encoded event : parts) {
                putPrefix(out, prefix, EVENTS, event.size());
                event.writeTo(out);
            }
        });
    }

    private static void putPrefix(OutputStream out, ByteBuffer prefix, int field, int length) throws IOException {
        prefix.clear();
        ProtoWire.putVarint(prefix, ProtoWire.tag(field, ProtoWire.LENGTH_DELIMITED));
        ProtoWire.putVarint(prefix, length);
        out.write(prefix.array(), 0, prefix.position());
    }

    private static int contentSize(List<Encoded> events) {
        long size = 0;
        for (Encoded event : events) {
            size += ProtoWire.bytesFieldSize(EVENTS, event.size());
        }
        if (size > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("batch of " + size + " bytes: too large for one message");
        }
        return (int) size;
    }
}
