package dev.mapcast.server.cluster;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.proto.cluster.v1.Applied;
import dev.mapcast.proto.cluster.v1.Change;
import dev.mapcast.proto.cluster.v1.LogEntry;
import dev.mapcast.proto.cluster.v1.MemberStatusAnswer;
import dev.mapcast.proto.cluster.v1.Outcome;
import dev.mapcast.proto.cluster.v1.ProposedRestore;
import dev.mapcast.proto.cluster.v1.ProposedWrite;
import dev.mapcast.proto.cluster.v1.Query;
import dev.mapcast.proto.v1.ClusterMemberStatus;
import dev.mapcast.proto.v1.Compaction;
import dev.mapcast.proto.v1.DeleteMapRequest;
import dev.mapcast.server.map.HostedMap;
import dev.mapcast.server.map.Limits;
import dev.mapcast.server.map.MapRegistry;
import dev.mapcast.server.map.NormalisedWrite;
import dev.mapcast.server.storage.MapStore;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.function.Consumer;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.apache.ratis.proto.RaftProtos.RaftConfigurationProto;
import org.apache.ratis.proto.RaftProtos.RaftPeerProto;
import org.apache.ratis.protocol.Message;
import org.apache.ratis.server.DivisionInfo;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.protocol.TermIndex;
import org.apache.ratis.server.storage.FileInfo;
import org.apache.ratis.server.storage.RaftStorage;
import org.apache.ratis.statemachine.SnapshotInfo;
import org.apache.ratis.statemachine.SnapshotRetentionPolicy;
import org.apache.ratis.statemachine.StateMachineStorage;
import org.apache.ratis.statemachine.TransactionContext;
import org.apache.ratis.statemachine.impl.BaseStateMachine;
import org.apache.ratis.statemachine.impl.FileListSnapshotInfo;
import org.apache.ratis.thirdparty.com.google.protobuf.ByteString;
import org.apache.ratis.thirdparty.com.google.protobuf.UnsafeByteOperations;
import org.apache.ratis.protocol.RaftGroupId;
import org.apache.ratis.util.LifeCycle;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The maps as a Raft state machine: every member applies the committed log entries, in log
 * order, to its {@link MapRegistry} (kept in memory: the Raft log and these snapshots are what is
 * durable), through the same calls a single server makes, so each member has the same revisions,
 * digests and, in INSERTION order, byte-identical snapshots.
 *
 * <p>Implementation notes.
 * <ul>
 * <li>Determinism: a change's outcome depends only on the state and the entry. What a member
 * would draw for itself (a new map's incarnation) is drawn where the change was proposed and
 * carried in the entry. A refused change (a failed condition) is refused on every member alike,
 * and its status is the answer.
 * <li>Snapshots: a directory {@code snapshot-<term>-<index>} in the state machine directory, with
 * two files per map in the contract's snapshot file format (its entries; each key's mod_revision)
 * and a {@code snapshot.info} line; written under a temporary name and renamed whole, so a crash
 * leaves the previous one. Ratis's updater thread takes it between two applied entries, so every
 * map is at the same log index. The two newest are kept; Ratis purges the log up to the newest.
 * <li>Install: a member too far behind receives the leader's snapshot directory as files; {@link
 * #pause} stops the updates, {@link #reinitialize} loads it and ends the watchers of the old state
 * with UNAVAILABLE (they resume from their revision, on this member or another).
 * </ul>
 */
final class MapStateMachine extends BaseStateMachine {

    private static final Logger log = LoggerFactory.getLogger(MapStateMachine.class);
    private static final String SNAPSHOT = "snapshot-";
    private static final String WRITING = ".writing-";
    private static final String INFO = "snapshot.info";
    private static final String ENTRIES = ".entries.snap";
    private static final String MOD_REVISIONS = ".modrev.snap";

    private final MapRegistry maps;
    private final Limits limits;
    private final int chunkBytes;
    private final Executor background;
    private final Supplier<String> clientAddress;
    private final Consumer<Map<String, String>> membersChanged;
    private final Storage storage = new Storage();

    MapStateMachine(MapRegistry maps, Limits limits, int chunkBytes, Executor background, Supplier<String> clientAddress,
            Consumer<Map<String, String>> membersChanged) {
        this.membersChanged = membersChanged;
        this.maps = maps;
        this.limits = limits;
        this.chunkBytes = chunkBytes;
        this.background = background;
        this.clientAddress = clientAddress;
    }

    @Override
    public void initialize(RaftServer server, RaftGroupId groupId, RaftStorage raftStorage) throws IOException {
        getLifeCycle().startAndTransition(() -> {
            super.initialize(server, groupId, raftStorage);
            storage.init(raftStorage);
            load();
        });
    }

    @Override
    public StateMachineStorage getStateMachineStorage() {
        return storage;
    }

    @Override
    public synchronized void pause() {
        getLifeCycle().transition(LifeCycle.State.PAUSING);
        getLifeCycle().transition(LifeCycle.State.PAUSED);
    }

    @Override
    public synchronized void reinitialize() throws IOException {
        load();
        if (getLifeCycleState() == LifeCycle.State.PAUSED) {
            getLifeCycle().transition(LifeCycle.State.STARTING);
            getLifeCycle().transition(LifeCycle.State.RUNNING);
        }
    }

    /** Loads the newest complete snapshot (if any) in place of every map. */
    private void load() throws IOException {
        FileListSnapshotInfo latest = storage.scan();
        List<HostedMap> loaded = new ArrayList<>();
        if (latest != null) {
            Path dir = latest.getFiles().get(0).getPath().getParent();
            try {
                for (FileInfo f : latest.getFiles()) {
                    String name = f.getPath().getFileName().toString();
                    if (!name.endsWith(ENTRIES)) {
                        continue;
                    }
                    Path mods = dir.resolve(name.substring(0, name.length() - ENTRIES.length()) + MOD_REVISIONS);
                    SnapshotFiles.Loaded e = SnapshotFiles.read(f.getPath(), HostedMap.entriesBuilder(limits));
                    SnapshotFiles.Loaded m;
                    try {
                        m = SnapshotFiles.read(mods, HostedMap.modRevisionsBuilder(limits));
                    } catch (IOException | RuntimeException x) {
                        e.close();
                        throw x;
                    }
                    loaded.add(new HostedMap(e.name(), e.incarnation(), e.map(), m.map(), e.revision(),
                            e.compactRevision(), limits, chunkBytes, background));
                }
            } catch (IOException | RuntimeException x) {
                loaded.forEach(HostedMap::close);
                throw new IOException("cannot load the cluster snapshot " + dir + ": " + x.getMessage(), x);
            }
            log.info("loaded snapshot {} ({} maps) at log index {}", dir.getFileName(), loaded.size(),
                    latest.getIndex());
            setLastAppliedTermIndex(latest.getTermIndex());
        }
        maps.replaceAll(loaded, Status.UNAVAILABLE.withDescription("this cluster member caught up from a snapshot;"
                + " resume the watch (from your revision)"));
    }

    @Override
    public CompletableFuture<Message> applyTransaction(TransactionContext trx) {
        var entry = trx.getLogEntry();
        Applied.Builder answer = Applied.newBuilder();
        try {
            LogEntry changes = LogEntry.parseFrom(entry.getStateMachineLogEntry().getLogData().asReadOnlyByteBuffer());
            for (Change change : changes.getChangesList()) {
                answer.addOutcomes(apply(change));
            }
        } catch (InvalidProtocolBufferException e) {
            // Proposed by a member of another release, or a bug: refused alike on every member.
            log.error("log entry {} is not a mapcast change; refused", TermIndex.valueOf(entry), e);
            answer.addOutcomes(Outcome.newBuilder().setCode(Status.Code.INTERNAL.value())
                    .setMessage("the cluster could not read the change: " + e.getMessage()));
        }
        updateLastAppliedTermIndex(entry.getTerm(), entry.getIndex());
        return CompletableFuture.completedFuture(Message.valueOf(UnsafeByteOperations.unsafeWrap(
                answer.build().toByteArray())));
    }

    private Outcome apply(Change change) {
        try {
            switch (change.getKindCase()) {
                case WRITE -> {
                    ProposedWrite proposed = change.getWrite();
                    NormalisedWrite w = NormalisedWrite.of(proposed.getRequest(), limits);
                    w.incarnationIfCreated = proposed.getIncarnation();
                    long revision = maps.write(w);
                    return Outcome.newBuilder().setRevision(revision).setIncarnation(w.incarnation).build();
                }
                case DELETE_MAP -> {
                    DeleteMapRequest d = change.getDeleteMap();
                    MapRegistry.Version v = maps.delete(d.getMap(), d.getExpectedRevision(), d.getExpectedIncarnation());
                    return Outcome.newBuilder().setRevision(v.revision()).setIncarnation(v.incarnation()).build();
                }
                case COMPACT -> {
                    HostedMap map = maps.existing(change.getCompact().getMap());
                    Compaction c = map.compact(change.getCompact().getRevision());
                    return Outcome.newBuilder().setRevision(c.getRevision()).setIncarnation(map.incarnation)
                            .setCompaction(c).build();
                }
                case RESTORE -> {
                    ProposedRestore r = change.getRestore();
                    OffHeapMap staged = RaftOrder.readSnapshot(r.getSnapshotFile().toByteArray(), limits,
                            storage.tmpDir());
                    MapRegistry.Version v;
                    try {
                        v = maps.restore(r.getMap(), staged, r.getIncarnation());
                    } catch (RuntimeException | Error e) {
                        staged.close();
                        throw e;
                    }
                    return Outcome.newBuilder().setRevision(v.revision()).setIncarnation(v.incarnation()).build();
                }
                default -> throw Status.INTERNAL.withDescription("unknown change " + change.getKindCase())
                        .asRuntimeException();
            }
        } catch (StatusRuntimeException e) {
            Status s = e.getStatus();
            return Outcome.newBuilder().setCode(s.getCode().value())
                    .setMessage(s.getDescription() == null ? "" : s.getDescription()).build();
        } catch (IOException e) {
            return Outcome.newBuilder().setCode(Status.Code.INVALID_ARGUMENT.value())
                    .setMessage("snapshot: " + e.getMessage()).build();
        }
    }

    @Override
    public CompletableFuture<Message> query(Message request) {
        return answer(request);
    }

    @Override
    public CompletableFuture<Message> queryStale(Message request, long minIndex) {
        return answer(request);
    }

    /** This member's line of a cluster status, as it sees itself. */
    ClusterMemberStatus.Builder selfStatus() {
        ClusterMemberStatus.Builder out = ClusterMemberStatus.newBuilder().setClientAddress(clientAddress.get())
                .setAppliedIndex(Math.max(0, getLastAppliedTermIndex().getIndex()));
        try {
            RaftServer.Division d = getServer().get().getDivision(getGroupId());
            DivisionInfo info = d.getInfo();
            out.setRole(info.getCurrentRole().name()).setTerm(info.getCurrentTerm())
                    .setCommitIndex(Math.max(0, d.getRaftLog().getLastCommittedIndex()));
            if (info.getLeaderId() != null) {
                out.setLeader(info.getLeaderId().toString());
            }
        } catch (IOException | InterruptedException | ExecutionException | RuntimeException e) {
            if (e instanceof InterruptedException) {
                Thread.currentThread().interrupt();
            }
            out.setRole("STARTING");
        }
        return out;
    }

    @Override
    public void notifyConfigurationChanged(long term, long index, RaftConfigurationProto conf) {
        Map<String, String> members = new LinkedHashMap<>();
        for (RaftPeerProto peer : conf.getPeersList()) {
            members.put(peer.getId().toStringUtf8(), peer.getAddress());
        }
        if (!members.isEmpty()) {
            membersChanged.accept(members);
        }
    }

    private CompletableFuture<Message> answer(Message request) {
        try {
            Query q = Query.parseFrom(request.getContent().asReadOnlyByteBuffer());
            if (q.hasStatus()) {
                ClusterMemberStatus self = selfStatus().build();
                MemberStatusAnswer a = MemberStatusAnswer.newBuilder().setClientAddress(self.getClientAddress())
                        .setAppliedIndex(self.getAppliedIndex()).setRole(self.getRole()).setTerm(self.getTerm())
                        .setCommitIndex(self.getCommitIndex()).setLeader(self.getLeader()).build();
                return CompletableFuture.completedFuture(Message.valueOf(ByteString.copyFrom(a.toByteArray())));
            }
            return CompletableFuture.completedFuture(Message.EMPTY);  // a read barrier: applied far enough
        } catch (InvalidProtocolBufferException e) {
            return CompletableFuture.failedFuture(e);
        }
    }

    @Override
    public long takeSnapshot() throws IOException {
        TermIndex at = getLastAppliedTermIndex();
        FileListSnapshotInfo latest = storage.latest;
        if (at.getIndex() <= 0 || (latest != null && latest.getIndex() >= at.getIndex())) {
            return latest == null ? -1 : latest.getIndex();
        }
        Path sm = storage.dir();
        String name = SNAPSHOT + at.getTerm() + "-" + at.getIndex();
        Path writing = sm.resolve(WRITING + name);
        MapStore.deleteTree(writing);
        Files.createDirectories(writing);
        List<HostedMap> all = maps.all();
        for (HostedMap map : all) {
            String base = MapStore.directoryName(map.name);
            map.writeSnapshotFiles(writing.resolve(base + ENTRIES), writing.resolve(base + MOD_REVISIONS));
        }
        Files.writeString(writing.resolve(INFO), "mapcast cluster snapshot: log index " + at.getIndex() + ", term "
                + at.getTerm() + ", " + all.size() + " maps\n");
        SnapshotFiles.forceDirectory(writing);
        Path done = sm.resolve(name);
        Files.move(writing, done, StandardCopyOption.ATOMIC_MOVE);
        SnapshotFiles.forceDirectory(sm);
        storage.latest = storage.info(done, at);
        storage.keepNewest(2);
        log.info("snapshot {} written: {} maps", name, all.size());
        return at.getIndex();
    }

    /** The snapshot directories in Ratis's state machine directory. */
    private static final class Storage implements StateMachineStorage {
        private volatile RaftStorage raftStorage;
        private volatile FileListSnapshotInfo latest;

        @Override
        public void init(RaftStorage raftStorage) throws IOException {
            this.raftStorage = raftStorage;
            Files.createDirectories(dir());
            latest = scan();
        }

        Path dir() {
            return raftStorage.getStorageDir().getStateMachineDir().toPath();
        }

        Path tmpDir() {
            return raftStorage.getStorageDir().getTmpDir().toPath();
        }

        /** The newest complete snapshot, or null; removes what a crash left half-written. */
        FileListSnapshotInfo scan() throws IOException {
            Path best = null;
            TermIndex bestAt = null;
            for (Path p : snapshots()) {
                TermIndex at = termIndexOf(p);
                if (bestAt == null || at.getIndex() > bestAt.getIndex()) {
                    best = p;
                    bestAt = at;
                }
            }
            latest = best == null ? null : info(best, bestAt);
            return latest;
        }

        /** The complete snapshot directories; removes what a crash left half-written. */
        private List<Path> snapshots() throws IOException {
            List<Path> out = new ArrayList<>();
            try (Stream<Path> list = Files.list(dir())) {
                for (Path p : list.toList()) {
                    String f = p.getFileName().toString();
                    if (f.startsWith(WRITING)) {
                        MapStore.deleteTree(p);
                    } else if (f.startsWith(SNAPSHOT) && Files.isDirectory(p) && termIndexOf(p) != null) {
                        out.add(p);
                    }
                }
            }
            return out;
        }

        /** {@code snapshot-<term>-<index>}'s term and index, or null for another name. */
        private static TermIndex termIndexOf(Path dir) {
            String[] parts = dir.getFileName().toString().substring(SNAPSHOT.length()).split("-");
            try {
                return parts.length == 2 ? TermIndex.valueOf(Long.parseLong(parts[0]), Long.parseLong(parts[1])) : null;
            } catch (NumberFormatException e) {
                return null;
            }
        }

        FileListSnapshotInfo info(Path dir, TermIndex at) throws IOException {
            List<FileInfo> files = new ArrayList<>();
            try (Stream<Path> list = Files.list(dir)) {
                // snapshot.info first: load() finds the directory from the first file
                for (Path p : list.sorted(Comparator.comparing(p -> p.getFileName().toString().equals(INFO) ? "" : p
                        .getFileName().toString())).toList()) {
                    files.add(new FileInfo(p, null));
                }
            }
            return new FileListSnapshotInfo(files, at);
        }

        void keepNewest(int n) throws IOException {
            List<Path> snapshots = new ArrayList<>(snapshots());
            snapshots.sort(Comparator.comparingLong((Path p) -> termIndexOf(p).getIndex()).reversed());
            for (int i = n; i < snapshots.size(); i++) {
                MapStore.deleteTree(snapshots.get(i));
            }
        }

        @Override
        public SnapshotInfo getLatestSnapshot() {
            return latest;
        }

        @Override
        public void format() {
        }

        @Override
        public void cleanupOldSnapshots(SnapshotRetentionPolicy policy) throws IOException {
            keepNewest(Math.max(2, policy.getNumSnapshotsRetained()));
        }

        @Override
        public java.io.File getSnapshotDir() {
            return null;  // Ratis's default: the state machine directory, which installs replace whole
        }

        @Override
        public java.io.File getTmpDir() {
            return null;
        }
    }
}
