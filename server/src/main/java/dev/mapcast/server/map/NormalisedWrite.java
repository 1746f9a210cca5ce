package dev.mapcast.server.map;

import com.google.protobuf.ByteString;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.proto.v1.WriteRequest;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A {@code WriteRequest} checked against the limits and normalised, before any lock is taken: each
 * key appears once. Puts keep the order they had in the request (protobuf keeps a map field's
 * order as parsed), which is the order the server applies them and the delta carries them, so an
 * INSERTION-order replica applies them in the server's order. A key both put and deleted in one
 * Write is deleted: a Write's deletes apply after its puts, as a Delta's do.
 */
public final class NormalisedWrite {

    final String map;
    /** The request as the client sent it: what a cluster replicates (each member normalises it alike). */
    public final WriteRequest request;
    final IterationOrder order;
    final List<byte[]> putKeys;
    final List<byte[]> putValues;
    final List<byte[]> deleteKeys;
    final long expectedRevision;
    final List<byte[]> expectedKeys;
    final long[] expectedModRevisions;
    /** The incarnation of the map the write committed to: set by the map when it commits. */
    public long incarnation;
    /**
     * The incarnation the map gets if this write creates it; 0: a random one. A cluster sets it
     * where the write is proposed, so that every member gives the map the same.
     */
    public long incarnationIfCreated;
    /**
     * Called with the revision once the write is applied in memory, before its log record is
     * forced (null: nothing to call): the audit log writes its record while the log's fsync runs.
     * Only where the write is applied: a cluster member applies a copy, so it is not called there.
     */
    public java.util.function.LongConsumer onApplied;

    private NormalisedWrite(WriteRequest request, Limits limits) {
        this.map = request.getMap();
        this.request = request;
        limits.checkMapName(map);
        this.order = Limits.iterationOrder(request.getOrderValue(), "order");
        long bytes = 0;
        Set<String> deleted = new HashSet<>();
        this.deleteKeys = new ArrayList<>();
        for (String key : request.getDeletesList()) {
            byte[] k = Utf8.bytes(key);
            limits.checkKey(k, "deletes");
            bytes += k.length;
            if (deleted.add(key)) {
                deleteKeys.add(k);
            }
        }
        Map<String, ByteString> puts = request.getPutsMap();
        this.putKeys = new ArrayList<>(puts.size());
        this.putValues = new ArrayList<>(puts.size());
        for (Map.Entry<String, ByteString> put : puts.entrySet()) {
            byte[] k = Utf8.bytes(put.getKey());
            limits.checkKey(k, "puts");
            int valueBytes = put.getValue().size();
            if (valueBytes > limits.maxValueBytes()) {
                throw Limits.invalid("puts: value of key " + Utf8.preview(k) + " is " + valueBytes
                        + " bytes (expected: at most " + limits.maxValueBytes() + ")");
            }
            bytes += k.length + valueBytes;
            if (!deleted.contains(put.getKey())) {
                putKeys.add(k);
                putValues.add(put.getValue().toByteArray());
            }
        }
        if (bytes > limits.maxWriteBytes()) {
            throw Limits.invalid("write of " + bytes + " bytes of keys and values (expected: at most "
                    + limits.maxWriteBytes() + ")");
        }
        this.expectedRevision = request.getExpectedRevision();
        Map<String, Long> expected = request.getExpectedModRevisionsMap();
        this.expectedKeys = new ArrayList<>(expected.size());
        this.expectedModRevisions = new long[expected.size()];
        int i = 0;
        for (Map.Entry<String, Long> e : expected.entrySet()) {
            byte[] k = Utf8.bytes(e.getKey());
            limits.checkKey(k, "expected_mod_revisions");
            expectedKeys.add(k);
            expectedModRevisions[i++] = e.getValue();
        }
        if (request.getPutsCount() == 0 && request.getDeletesCount() == 0) {
            throw Limits.invalid("a write needs at least one put or delete (map \"" + map + "\": puts and deletes"
                    + " are empty)");
        }
    }

    /** The map it writes to. */
    public String map() {
        return map;
    }

    /** Checks and normalises; INVALID_ARGUMENT names the first bad value. */
    public static NormalisedWrite of(WriteRequest request, Limits limits) {
        return new NormalisedWrite(request, limits);
    }
}
