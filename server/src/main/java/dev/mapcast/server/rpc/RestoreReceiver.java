package dev.mapcast.server.rpc;

import dev.mapcast.codec.MalformedMessageException;
import dev.mapcast.codec.MessageDecoder;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.proto.v1.RestoreRequest;
import dev.mapcast.proto.v1.RestoreResponse;
import dev.mapcast.proto.v1.Right;
import dev.mapcast.server.auth.Authorizer;
import dev.mapcast.server.map.ChangeOrder;
import dev.mapcast.server.map.HostedMap;
import dev.mapcast.server.map.Limits;
import dev.mapcast.server.map.MapRegistry;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One Restore call: applies each received chunk to a staging map (checked as a replica checks a
 * snapshot: structure, UTF-8, limits, one revision, then count and digest at the end), and only
 * when the whole stream checked out hands the staging map to {@link MapRegistry#restore}. A bad
 * chunk ends the call with INVALID_ARGUMENT naming the chunk and the byte; the map is untouched.
 *
 * <p>One restore runs at a time per server ({@code slot}): a staged map can be as large as the
 * largest map allowed, so a second one is refused with RESOURCE_EXHAUSTED rather than doubling
 * that memory. It waits up to {@link #SLOT_WAIT_MILLIS} for the slot first: a restore its client
 * has just cancelled gives the slot back on another pool thread, and a retry right after it (the
 * SDK cancels a restore whose file turns out bad) must not be refused for that.
 */
final class RestoreReceiver implements StreamObserver<ParsedRequest<RestoreRequest>> {

    private static final Logger log = LoggerFactory.getLogger(RestoreReceiver.class);
    private static final long SLOT_WAIT_MILLIS = 1000;
    /**
     * The most entries a staged map is sized for up front (about 2 MiB of index): total_entries is
     * a claim, not evidence, and a 60-byte chunk may claim the limit per map. Past it the map grows
     * as entries arrive, one bounded table split at a time.
     */
    private static final long PRESIZE_ENTRIES = 1 << 16;

    private final MapRegistry maps;
    private final ChangeOrder order;
    private final Limits limits;
    private final StreamObserver<RestoreResponse> response;
    private final Semaphore slot;
    private final Authorizer authorizer;
    private boolean holdsSlot;
    private String map;
    private OffHeapMap staged;
    private MessageDecoder.ChunkFields last;
    private int chunks;
    private boolean ended;

    RestoreReceiver(MapRegistry maps, ChangeOrder order, Limits limits, StreamObserver<RestoreResponse> response, Semaphore slot,
            Authorizer authorizer) {
        this.authorizer = authorizer;
        this.maps = maps;
        this.order = order;
        this.limits = limits;
        this.response = response;
        this.slot = slot;
    }

    @Override
    public void onNext(ParsedRequest<RestoreRequest> request) {
        if (ended) {
            return;
        }
        try {
            RestoreRequest r = request.orInvalid("RestoreRequest");
            if (map == null) {
                authorizer.check(Right.RIGHT_WRITE, r.getMap());  // the name checked too
                maps.checkNotDamaged(r.getMap());  // refused before its chunks are sent, not after
                map = r.getMap();
                if (!acquireSlot()) {
                    throw Status.RESOURCE_EXHAUSTED.withDescription("restore of map \"" + map + "\" refused: another"
                            + " restore is in progress on this server (one at a time); retry when it ends")
                            .asRuntimeException();
                }
                holdsSlot = true;
            } else if (!map.equals(r.getMap())) {
                throw invalid("message " + (chunks + 1) + " names map \"" + r.getMap() + "\" (expected: \"" + map
                        + "\", as the first message)");
            }
            if (last != null && last.last()) {
                throw invalid("chunk " + (chunks + 1) + " after the chunk marked last");
            }
            ByteBuffer chunk = r.getSnapshotChunk().asReadOnlyByteBuffer();
            chunks++;
            try {
                if (staged == null) {
                    MessageDecoder.ChunkFields first = MessageDecoder.peekSnapshotChunk(chunk);
                    IterationOrder stagedOrder = checkFields(first);
                    staged = HostedMap.entriesBuilder(limits).order(stagedOrder)
                            .initialCapacity(Math.min(first.totalEntries(), PRESIZE_ENTRIES)).build();
                }
                MessageDecoder.ChunkFields fields = MessageDecoder.applySnapshotChunk(chunk, staged);
                checkFields(fields);
                if (last != null && fields.revision() != last.revision()) {
                    throw invalid("chunk " + chunks + " is of revision " + fields.revision() + " (expected: "
                            + last.revision() + ", as chunk 1)");
                }
                last = fields;
            } catch (MalformedMessageException e) {
                throw invalid("chunk " + chunks + ": " + e.getMessage());
            }
            if (staged.size() > limits.maxEntriesPerMap()) {
                throw Status.RESOURCE_EXHAUSTED.withDescription("the snapshot holds more than "
                        + limits.maxEntriesPerMap() + " entries (the limit per map)").asRuntimeException();
            }
        } catch (StatusRuntimeException e) {
            fail(e);
        } catch (RuntimeException e) {
            log.error("Restore failed", e);
            fail(Status.INTERNAL.withDescription("Restore failed: " + e).withCause(e).asRuntimeException());
        }
    }

    @Override
    public void onError(Throwable t) {
        ended = true;
        release();  // the client gave up: nothing was applied
    }

    @Override
    public void onCompleted() {
        if (ended) {
            return;
        }
        try {
            if (last == null) {
                throw invalid("no chunk received");
            }
            if (!last.last()) {
                throw invalid("the stream ended after chunk " + chunks + ", which is not marked last");
            }
            if (staged.size() != last.totalEntries()) {
                throw invalid("the chunks hold " + staged.size() + " entries; the last chunk says "
                        + Long.toUnsignedString(last.totalEntries()));
            }
            if (staged.digest() != last.digest()) {
                throw invalid(String.format("the entries' digest is %016x; the last chunk says %016x",
                        staged.digest(), last.digest()));
            }
            if (staged.containsKey(new byte[0])) {
                throw invalid("the snapshot holds an empty key (keys must not be empty)");
            }
            long entries = staged.size();
            MapRegistry.Version restored = order.restore(map, staged);
            long revision = restored.revision();
            staged = null;  // the map owns it now
            ended = true;
            authorizer.recordChange(map, revision, List.of());
            response.onNext(RestoreResponse.newBuilder().setRevision(revision).setEntries(entries)
                    .setIncarnation(restored.incarnation()).build());
            response.onCompleted();
            log.info("map \"{}\" restored: {} entries at revision {}", map, entries, revision);
        } catch (StatusRuntimeException e) {
            fail(e);
        } catch (RuntimeException e) {
            log.error("Restore failed", e);
            fail(Status.INTERNAL.withDescription("Restore failed: " + e).withCause(e).asRuntimeException());
        } finally {
            release();
        }
    }

    /** Runs on the worker pool (a cached one), so the wait holds no event loop and no other call. */
    private boolean acquireSlot() {
        try {
            return slot.tryAcquire(SLOT_WAIT_MILLIS, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw Status.UNAVAILABLE.withDescription("restore of map \"" + map + "\" interrupted: the server is"
                    + " stopping").asRuntimeException();
        }
    }

    /**
     * Checks the current chunk's order and total_entries (a uint64) against what the contract
     * defines and the limit per map; returns the order.
     */
    private IterationOrder checkFields(MessageDecoder.ChunkFields fields) {
        IterationOrder stagedOrder;
        try {
            stagedOrder = Limits.iterationOrder(fields.order(), "order");  // as a Write's order is checked
        } catch (StatusRuntimeException e) {
            throw invalid("chunk " + chunks + ": " + e.getStatus().getDescription());
        }
        if (Long.compareUnsigned(fields.totalEntries(), limits.maxEntriesPerMap()) > 0) {
            throw refused(Status.RESOURCE_EXHAUSTED, "chunk " + chunks + ": total_entries: "
                    + Long.toUnsignedString(fields.totalEntries()) + " (expected: at most "
                    + limits.maxEntriesPerMap() + ", the limit of entries per map)");
        }
        return stagedOrder;
    }

    private StatusRuntimeException invalid(String why) {
        return refused(Status.INVALID_ARGUMENT, why);
    }

    private StatusRuntimeException refused(Status status, String why) {
        // Before the first chunk the map is not known yet: the call says nothing of one.
        String what = map == null ? "restore" : "restore of map \"" + map + "\"";
        return status.withDescription(what + " refused, nothing changed: " + why).asRuntimeException();
    }

    private void fail(StatusRuntimeException e) {
        ended = true;
        release();
        response.onError(e);
    }

    private void release() {
        if (staged != null) {
            staged.close();
            staged = null;
        }
        if (holdsSlot) {
            holdsSlot = false;
            slot.release();
        }
    }
}
