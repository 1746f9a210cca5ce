package dev.mapcast.codec;

import dev.mapcast.codec.EncodedMessages.Encoded;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * Frames consecutive encoded {@code WatchResponse}s as one {@code WatchResponse{batch: EventBatch}}
 * (a mapcast addition to the contract, sent only to clients that ask for it). Each event's bytes are
 * copied as they are, so events encoded once for every watcher stay byte for byte the same.
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

    /** One WatchResponse holding every event, in order. */
    public static Encoded encode(List<Encoded> events) {
        int content = contentSize(events);
        ByteBuffer out = ByteBuffer.allocate(ProtoWire.bytesFieldSize(WATCH_RESPONSE_BATCH, content));
        ProtoWire.putVarint(out, ProtoWire.tag(WATCH_RESPONSE_BATCH, ProtoWire.LENGTH_DELIMITED));
        ProtoWire.putVarint(out, content);
        for (Encoded event : events) {
            ByteBuffer bytes = event.bytes();
            ProtoWire.putVarint(out, ProtoWire.tag(EVENTS, ProtoWire.LENGTH_DELIMITED));
            ProtoWire.putVarint(out, bytes.remaining());
            out.put(bytes);
        }
        return Encoded.of(out.flip());
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
