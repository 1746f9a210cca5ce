package dev.mapcast.server.cluster;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.mapcast.codec.ProtocolHeaders;
import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.core.PinnedView;
import dev.mapcast.proto.cluster.v1.Applied;
import dev.mapcast.proto.cluster.v1.Change;
import dev.mapcast.proto.cluster.v1.LogEntry;
import dev.mapcast.proto.cluster.v1.Outcome;
import dev.mapcast.proto.cluster.v1.ProposedRestore;
import dev.mapcast.proto.cluster.v1.ProposedWrite;
import dev.mapcast.proto.cluster.v1.Query;
import dev.mapcast.proto.cluster.v1.ReadBarrier;
import dev.mapcast.proto.v1.CompactRequest;
import dev.mapcast.proto.v1.Compaction;
import dev.mapcast.proto.v1.DeleteMapRequest;
import dev.mapcast.server.map.ChangeOrder;
import dev.mapcast.server.map.HostedMap;
import dev.mapcast.server.map.Limits;
import dev.mapcast.server.map.MapRegistry;
import dev.mapcast.server.map.NormalisedWrite;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import org.apache.ratis.protocol.Message;
import org.apache.ratis.protocol.RaftClientReply;
import org.apache.ratis.thirdparty.com.google.protobuf.UnsafeByteOperations;

/**
 * The order of a cluster: every change is proposed to the Raft group and applied, by every member,
 * once committed ({@link MapStateMachine}); the proposing member answers with what its own apply
 * said. Any member takes writes: it proposes directly when it leads, else forwards to the leader
 * ({@link ClusterMember#propose}).
 *
 * <p>Packing ({@link EntryPacker}): Ratis's cost is per log entry, so the changes that arrive while
 * an entry is in flight go together as the next one (up to {@link #MAX_CHANGES} or
 * {@link #MAX_BYTES}), which also waits up to {@link #LINGER_MICROS} for the writers just answered;
 * each change is still applied alone and gets its own revision. A lone writer never waits.
 *
 * <p>Outcomes of a failover: a change refused before it was proposed (no leader known, this
 * member cut off from the majority) fails with UNAVAILABLE and the {@code mapcast-not-applied:
 * true} trailer, and can be retried anywhere. A change whose proposal got no answer (its leader
 * died, the wait timed out) fails with UNAVAILABLE without it: it may or may not have been
 * applied.
 */
public final class RaftOrder implements ChangeOrder {

    /**
     * One entry in flight: measured faster than 2 or 4 with 16 writers on three members (more entries
     * in flight, smaller entries, and more CPU a write: BENCHMARKS.md, "RaftOrder's lever").
     */
    static final int MAX_IN_FLIGHT = 1;
    static final int MAX_CHANGES = 512;
    /**
     * How long a free slot waits for the writers just answered: 2 ms measured best with 16 writers on
     * three members (1 ms and 4 ms less; BENCHMARKS.md, "Packing entries").
     */
    static final long LINGER_MICROS = 2_000;
    static final int MAX_BYTES = 4 << 20;
    /** How long a blocking change (compact, restore, delete) or a read barrier waits for its answer. */
    static final long WAIT_SECONDS = 30;
    /** How long a linearizable read waits for a leader to be known (an election) before failing. */
    static final long READ_LEADER_WAIT_MILLIS = 5_000;

    private final ClusterMember member;
    private final Limits limits;
    private final SecureRandom random = new SecureRandom();
    private final EntryPacker<Pending> packer = new EntryPacker<>(MAX_IN_FLIGHT, MAX_CHANGES, MAX_BYTES, Pending::bytes,
            CompletableFuture.delayedExecutor(LINGER_MICROS, TimeUnit.MICROSECONDS), this::propose);

    RaftOrder(ClusterMember member, Limits limits) {
        this.member = member;
        this.limits = limits;
    }

    private record Pending(Change change, int bytes, Consumer<Outcome> answer, Consumer<StatusRuntimeException> failure) {
    }

    @Override
    public void write(NormalisedWrite write, WriteOutcome outcome) {
        Change change = Change.newBuilder().setWrite(ProposedWrite.newBuilder().setRequest(write.request)
                .setIncarnation(newIncarnation())).build();
        submit(change, o -> {
            if (o.getCode() == 0) {
                write.incarnation = o.getIncarnation();
                outcome.done(o.getRevision(), o.getIncarnation(), null);
            } else {
                outcome.done(0, 0, statusOf(o).asRuntimeException());
            }
        }, e -> outcome.done(0, 0, e));
    }

    @Override
    public Compaction compact(String map, long revision) {
        Outcome o = await(Change.newBuilder().setCompact(CompactRequest.newBuilder().setMap(map).setRevision(revision))
                .build());
        return o.getCompaction();
    }

    @Override
    public MapRegistry.Version restore(String map, OffHeapMap staged) {
        byte[] file;
        try (staged) {
            file = writeSnapshot(map, staged, member.tmpDir());
        } catch (IOException e) {
            throw Status.UNAVAILABLE.withDescription("cannot stage the snapshot of map \"" + map + "\" for the"
                    + " cluster: " + e.getMessage()).asRuntimeException();
        }
        int max = ClusterMember.MAX_ENTRY_BYTES - (1 << 20);
        if (file.length > max) {
            throw Status.RESOURCE_EXHAUSTED.withDescription("a restore to a cluster takes a snapshot file of at most "
                    + max + " bytes (one Raft log entry); this one is " + file.length + " bytes (map \"" + map
                    + "\")").asRuntimeException();
        }
        Outcome o = await(Change.newBuilder().setRestore(ProposedRestore.newBuilder().setMap(map)
                .setSnapshotFile(com.google.protobuf.ByteString.copyFrom(file)).setIncarnation(newIncarnation()))
                .build());
        return new MapRegistry.Version(o.getRevision(), o.getIncarnation());
    }

    @Override
    public MapRegistry.Version delete(String map, long expectedRevision, long expectedIncarnation) {
        Outcome o = await(Change.newBuilder().setDeleteMap(DeleteMapRequest.newBuilder().setMap(map)
                .setExpectedRevision(expectedRevision).setExpectedIncarnation(expectedIncarnation)).build());
        return new MapRegistry.Version(o.getRevision(), o.getIncarnation());
    }

    /**
     * A ReadIndex round through this member. While no leader is known (an election under way) it
     * asks again, for up to {@link #READ_LEADER_WAIT_MILLIS}: a read then waits for the election
     * rather than failing, as a write forwarded by the client would.
     */
    @Override
    public void awaitReadable() {
        Message barrier = Message.valueOf(UnsafeByteOperations.unsafeWrap(
                Query.newBuilder().setBarrier(ReadBarrier.getDefaultInstance()).build().toByteArray()));
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(READ_LEADER_WAIT_MILLIS);
        while (true) {
            RaftClientReply reply = get(member.readIndex(barrier), "a linearizable read");
            if (reply.isSuccess()) {
                return;
            }
            if (System.nanoTime() > deadline || member.whyNotServing() == null && !(reply.getException()
                    instanceof org.apache.ratis.protocol.exceptions.ReadIndexException)) {
                throw Status.UNAVAILABLE.withDescription("this member cannot confirm it is up to date with the"
                        + " cluster (" + ClusterMember.describe(reply.getException()) + "); retry, or ask for a local"
                        + " read").asRuntimeException();
            }
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
            }
        }
    }

    /** Proposes a change and waits for its outcome; a refusal throws its status. */
    private Outcome await(Change change) {
        CompletableFuture<Outcome> done = new CompletableFuture<>();
        submit(change, done::complete, done::completeExceptionally);
        Outcome o = get(done, "the change");
        if (o.getCode() != 0) {
            throw statusOf(o).asRuntimeException();
        }
        return o;
    }

    private static <T> T get(CompletableFuture<T> future, String what) {
        try {
            return future.get(WAIT_SECONDS, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            throw Status.UNAVAILABLE.withDescription("no answer from the cluster within " + WAIT_SECONDS + " s for "
                    + what + "; it may or may not have been applied").asRuntimeException();
        } catch (ExecutionException e) {
            Throwable cause = e.getCause() instanceof CompletionException c ? c.getCause() : e.getCause();
            if (cause instanceof StatusRuntimeException s) {
                throw s;
            }
            throw Status.UNAVAILABLE.withDescription(what + " failed in the cluster: " + ClusterMember.describe(cause))
                    .asRuntimeException();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw Status.CANCELLED.withDescription("interrupted").asRuntimeException();
        }
    }

    private void submit(Change change, Consumer<Outcome> answer, Consumer<StatusRuntimeException> failure) {
        String refusal = member.whyNotServing();
        if (refusal != null) {
            failure.accept(notApplied(refusal));
            return;
        }
        packer.add(new Pending(change, change.getSerializedSize(), answer, failure));
    }

    /** Proposes one packed entry; completes once its changes are answered. */
    private CompletableFuture<?> propose(List<Pending> batch) {
        // Checked again: changes queued while this member could propose may go out after it lost
        // its leader (say, it led and stepped down, cut off from the majority). Never proposed, they
        // are refused as not applied, at once, rather than sent to wait for a leader.
        String refusal = member.whyNotServing();
        if (refusal != null) {
            StatusRuntimeException refused = notApplied(refusal);
            batch.forEach(p -> p.failure().accept(refused));
            return CompletableFuture.completedFuture(null);
        }
        LogEntry.Builder entry = LogEntry.newBuilder();
        batch.forEach(p -> entry.addChanges(p.change()));
        Message message = Message.valueOf(UnsafeByteOperations.unsafeWrap(entry.build().toByteArray()));
        // Bounded: a member cut off from the leader it still believes in would retry for minutes.
        return member.propose(message).orTimeout(WAIT_SECONDS, TimeUnit.SECONDS)
                .whenComplete((reply, error) -> answer(batch, reply, error));
    }

    private static void answer(List<Pending> batch, RaftClientReply reply, Throwable error) {
        StatusRuntimeException failure = null;
        Applied applied = null;
        if (error != null || !reply.isSuccess()) {
            Throwable why = error != null ? error : reply.getException();
            String reason = why instanceof TimeoutException ? "no answer within " + WAIT_SECONDS + " s"
                    : ClusterMember.describe(why);
            failure = Status.UNAVAILABLE.withDescription("the cluster did not answer the write (" + reason
                    + "); it may or may not have been applied").asRuntimeException();
        } else {
            try {
                applied = Applied.parseFrom(reply.getMessage().getContent().asReadOnlyByteBuffer());
            } catch (InvalidProtocolBufferException e) {
                failure = Status.INTERNAL.withDescription("unreadable answer from the cluster: " + e.getMessage())
                        .asRuntimeException();
            }
            if (applied != null && applied.getOutcomesCount() != batch.size()) {
                failure = Status.INTERNAL.withDescription("the cluster answered " + applied.getOutcomesCount()
                        + " outcomes for " + batch.size() + " changes").asRuntimeException();
            }
        }
        for (int i = 0; i < batch.size(); i++) {
            if (failure != null) {
                batch.get(i).failure().accept(failure);
            } else {
                batch.get(i).answer().accept(applied.getOutcomes(i));
            }
        }
    }

    private long newIncarnation() {
        long id;
        do {
            id = random.nextLong();
        } while (id == 0);
        return id;
    }

    private static Status statusOf(Outcome o) {
        return Status.fromCodeValue(o.getCode()).withDescription(o.getMessage());
    }

    /** UNAVAILABLE with the {@link ProtocolHeaders#NOT_APPLIED} trailer: nothing was proposed. */
    static StatusRuntimeException notApplied(String why) {
        Metadata trailers = new Metadata();
        trailers.put(ProtocolHeaders.NOT_APPLIED, "true");
        return Status.UNAVAILABLE.withDescription(why + "; nothing was written, retry on another member")
                .asRuntimeException(trailers);
    }

    /** The snapshot file of {@code map}'s staged content, as bytes (a restore goes into the log whole). */
    static byte[] writeSnapshot(String map, OffHeapMap staged, Path tmpDir) throws IOException {
        Files.createDirectories(tmpDir);
        Path file = Files.createTempFile(tmpDir, "restore-", ".snap");
        try (PinnedView view = staged.pin()) {
            SnapshotFiles.write(view, map, 0, 0, file);
            return Files.readAllBytes(file);
        } finally {
            Files.deleteIfExists(file);
        }
    }

    /** Reads a snapshot file given as bytes into a map (see {@link #writeSnapshot}). */
    static OffHeapMap readSnapshot(byte[] bytes, Limits limits, Path tmpDir) throws IOException {
        Files.createDirectories(tmpDir);
        Path file = Files.createTempFile(tmpDir, "restore-", ".snap");
        try {
            Files.write(file, bytes);
            return SnapshotFiles.read(file, HostedMap.entriesBuilder(limits)).map();
        } finally {
            Files.deleteIfExists(file);
        }
    }
}
