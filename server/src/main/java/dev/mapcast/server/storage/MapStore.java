package dev.mapcast.server.storage;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import dev.mapcast.codec.SnapshotFileException;
import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.core.IterationOrder;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.core.PinnedView;
import dev.mapcast.proto.v1.Delta;
import dev.mapcast.proto.v1.WatchResponse;
import dev.mapcast.server.FsyncMode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One map's files in the data directory: snapshots and the write-ahead log.
 *
 * <pre>
 * maps/&lt;id&gt;/snapshot-&lt;R&gt;.snap   the entries at revision R (the contract's snapshot file format)
 * maps/&lt;id&gt;/modrev-&lt;R&gt;.snap     each key's mod_revision at R (same format, 8-byte little-endian values)
 * maps/&lt;id&gt;/wal-&lt;R+1&gt;.log       the log of every change after R ({@link WriteAheadLog})
 * </pre>
 * {@code <id>} is derived from the map's name (names are any UTF-8, longer than a file name may
 * be); the name itself is in every snapshot's header. A map's first snapshot, at revision 0, is
 * written when the map is created, so its name and order are on disk before its first change.
 *
 * <p>A snapshot is taken once the log has grown by {@code snapshotLogBytes}: under the map's lock
 * the maps are pinned and the log moves to a new file; outside it both files are written (mod
 * revisions first: a snapshot file with no mod-revision file beside it is never used), and then
 * older snapshots and logs are deleted. Recovery reads the newest snapshot and replays the logs
 * after it; a torn record at the end of the newest log is cut off (it was never acknowledged),
 * the file as it was kept aside first; anything else wrong is damage ({@link #read}).
 */
public final class MapStore implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(MapStore.class);
    private static final String SNAPSHOT = "snapshot-";
    private static final String MOD_REVISIONS = "modrev-";
    private static final String LOG = "wal-";

    final Path dir;
    /** The map's incarnation, written into every snapshot's header. */
    public final long incarnation;
    private final FsyncMode mode;
    private final long snapshotLogBytes;
    private WriteAheadLog wal;
    /** Log bytes appended since the last snapshot; guarded by the map's write lock. */
    private long logBytes;
    /** Set while appends are refused for want of disk space (the map's name, for the line that ends it); under the map's write lock. */
    private String diskFullMap;
    private long diskFullRefusals;

    private MapStore(Path dir, long incarnation, FsyncMode mode, long snapshotLogBytes, WriteAheadLog wal) {
        this.dir = dir;
        this.incarnation = incarnation;
        this.mode = mode;
        this.snapshotLogBytes = snapshotLogBytes;
        this.wal = wal;
    }

    /** Prefix of a map directory still being created; recovery deletes these (see {@link #create}). */
    public static final String CREATING = ".creating-";

    /**
     * Creates the files of a new, empty map: its revision-0 snapshot and an empty log. Atomic: the
     * snapshot is written in a {@code .creating-} directory that is renamed into place once
     * complete, so a crash half way leaves nothing recovery would mistake for a map (the map's
     * creating write was not acknowledged).
     */
    static MapStore create(Path mapsDir, String name, IterationOrder order, long incarnation, FsyncMode mode,
            long snapshotLogBytes) throws IOException {
        Path dir = mapsDir.resolve(directoryName(name));
        if (Files.exists(dir)) {
            throw new StorageException(dir + " already exists for a map that is not loaded: remove it or restore it");
        }
        Path creating = Files.createTempDirectory(mapsDir, CREATING);
        try {
            try (OffHeapMap entries = OffHeapMap.builder().order(order).trackDigest(true).build();
                    OffHeapMap modRevisions = OffHeapMap.builder().trackDigest(true).build();
                    PinnedView e = entries.pin();
                    PinnedView m = modRevisions.pin()) {
                writeSnapshotFiles(creating, name, e, m, 0, 0, incarnation);
            }
            SnapshotFiles.forceDirectory(creating);
            Files.move(creating, dir, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException e) {
            deleteTree(creating);
            throw e;
        }
        SnapshotFiles.forceDirectory(mapsDir);
        WriteAheadLog wal = new WriteAheadLog(dir.resolve(logName(1)), mode, 0);
        SnapshotFiles.forceDirectory(dir);
        return new MapStore(dir, incarnation, mode, snapshotLogBytes, wal);
    }



    /** Deletes a directory of files (a map directory, or one whose creation a crash interrupted). */
    public static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        for (Path file : list(dir)) {
            Files.deleteIfExists(file);
        }
        Files.deleteIfExists(dir);
    }

    /** What recovery rebuilt: the maps (the caller owns them), revisions, and the deltas replayed. */
    public record Recovered(String name, IterationOrder order, OffHeapMap entries, OffHeapMap modRevisions, long revision,
            long snapshotRevision, long compactRevision, List<ByteBuffer> deltas, MapStore store) {
    }

    /**
     * Reads the newest snapshot of the map in {@code dir} and replays its log after it. A torn
     * record at the end of the newest log is cut off, the file being kept aside first (see
     * {@link WriteAheadLog#cutTornTail}); any other problem (see {@link #read}) is thrown as a
     * {@link StorageException} naming the file, the byte and what is wrong, and nothing is changed.
     */
    public static Recovered recover(Path dir, FsyncMode mode, long snapshotLogBytes, OffHeapMap.Builder entriesBuilder,
            OffHeapMap.Builder modRevisionsBuilder, int maxRecordBytes) throws IOException {
        deleteTemporaryFiles(dir);
        Read read = read(dir, entriesBuilder, modRevisionsBuilder, maxRecordBytes, false);
        try {
            if (read.damage() != null) {
                throw new StorageException(read.damage());
            }
            long currentEnd = 0;
            Path current = read.lastLog();
            if (read.torn() != null) {
                Path kept = WriteAheadLog.cutTornTail(read.torn().file(), read.torn().at());
                log.warn("map \"{}\": {} ends in a torn record at byte {} ({}); cut there: that write was never"
                        + " acknowledged (the file as it was is kept in {})", read.name(), read.torn().file(),
                        read.torn().at(), read.torn().problem(), kept.getFileName());
                currentEnd = read.torn().at();
            } else if (current != null) {
                currentEnd = read.lastLogEnd();
            }
            if (current == null) {
                current = dir.resolve(logName(read.revision() + 1));
            }
            MapStore store = new MapStore(dir, read.incarnation(), mode, snapshotLogBytes,
                    new WriteAheadLog(current, mode, currentEnd));
            store.logBytes = currentEnd;
            return new Recovered(read.name(), read.order(), read.entries(), read.modRevisions(), read.revision(),
                    read.snapshotRevision(), read.compactRevision(), read.deltas(), store);
        } catch (IOException | RuntimeException e) {
            read.close();
            throw e;
        }
    }

    /** Where the newest log ends in a torn record: the file, the byte, and what was found there. */
    record Torn(Path file, long at, String problem) {
    }

    /**
     * What {@link #read} found: the maps at the revision it reached (the caller owns them), and,
     * when it could not go on, why ({@code damage}: the file, the byte, the problem).
     */
    record Read(String name, IterationOrder order, OffHeapMap entries, OffHeapMap modRevisions, long revision,
            long snapshotRevision, Path snapshot, List<String> badSnapshots, long compactRevision,
            List<ByteBuffer> deltas, long logRecords, Path lastLog, long lastLogEnd, Torn torn, String damage,
            List<Path> logsLeftOut, long incarnation) implements AutoCloseable {
        @Override
        public void close() {
            entries.close();
            modRevisions.close();
        }
    }

    /**
     * Reads the map in {@code dir} without changing anything: the newest snapshot (with {@code
     * olderSnapshots}, the newest that verifies), then its logs in order, checking every record's
     * CRC, the revision chain and the digest after each delta. Stops at the first problem and says
     * what it is in {@link Read#damage}: a damaged record ({@link WriteAheadLog#replay}), or
     * revisions that no log holds (the log of the changes after a snapshot is made before the
     * snapshot is written, so a missing or skipped log is lost data, never a fresh start).
     *
     * @throws StorageException if no snapshot can be read (the message names the file and byte)
     */
    static Read read(Path dir, OffHeapMap.Builder entriesBuilder, OffHeapMap.Builder modRevisionsBuilder,
            int maxRecordBytes, boolean olderSnapshots) throws IOException {
        TreeMap<Long, Path> snapshots = numbered(dir, SNAPSHOT, ".snap");
        TreeMap<Long, Path> modFiles = numbered(dir, MOD_REVISIONS, ".snap");
        TreeMap<Long, Path> logs = numbered(dir, LOG, ".log");
        List<String> badSnapshots = new ArrayList<>();
        SnapshotFiles.Loaded entries = null;
        SnapshotFiles.Loaded mods = null;
        Path snapshot = null;
        for (Long revision : snapshots.descendingKeySet()) {
            Path modFile = modFiles.get(revision);
            if (modFile == null) {
                continue;  // a snapshot interrupted before its mod revisions were written: never used
            }
            try {
                entries = SnapshotFiles.read(snapshots.get(revision), entriesBuilder);
                mods = SnapshotFiles.read(modFile, modRevisionsBuilder);
                if (entries.revision() != revision || mods.revision() != revision
                        || !entries.name().equals(mods.name())) {
                    throw new StorageException(dir + ": " + snapshots.get(revision).getFileName() + " holds map \""
                            + entries.name() + "\" at revision " + entries.revision() + ", " + modFile.getFileName()
                            + " map \"" + mods.name() + "\" at revision " + mods.revision()
                            + " (expected: one map at revision " + revision + ")");
                }
                snapshot = snapshots.get(revision);
                break;
            } catch (IOException | RuntimeException e) {
                if (entries != null) {
                    entries.close();
                    entries = null;
                }
                if (mods != null) {
                    mods.close();
                    mods = null;
                }
                if (!olderSnapshots) {
                    throw e instanceof StorageException || e instanceof SnapshotFileException
                            ? (IOException) e : new StorageException(snapshots.get(revision) + ": " + e, e);
                }
                badSnapshots.add(e.getMessage());
            }
        }
        if (snapshot == null) {
            throw new StorageException(dir + ": no " + (badSnapshots.isEmpty() ? "" : "valid ") + "snapshot with its "
                    + MOD_REVISIONS + " file (a map directory always has one from its creation: was it copied in"
                    + " part?)" + (badSnapshots.isEmpty() ? "" : "; " + String.join("; ", badSnapshots)));
        }
        long snapshotRevision = entries.revision();
        Replay replay = new Replay(entries.map(), mods.map(), snapshotRevision, entries.compactRevision());
        String damage = null;
        Torn torn = null;
        Path lastLog = null;
        long lastLogEnd = 0;
        long records = 0;
        List<Path> leftOut = new ArrayList<>();
        // From the log holding revision snapshotRevision + 1 (older ones are left from before the snapshot).
        Long first = logs.floorKey(snapshotRevision + 1);
        java.util.NavigableMap<Long, Path> toReplay = first == null ? logs : logs.tailMap(first, true);
        if (logs.isEmpty()) {
            damage = dir.resolve(logName(snapshotRevision + 1)) + ": missing: no log follows "
                    + snapshot.getFileName() + " (the log after a snapshot is made before the snapshot), so the"
                    + " changes after revision " + snapshotRevision + " are lost";
        }
        try {
            for (Map.Entry<Long, Path> l : toReplay.entrySet()) {
                Path file = l.getValue();
                if (damage != null) {
                    leftOut.add(file);
                    continue;
                }
                boolean newest = l.getKey().equals(logs.lastKey());
                long before = replay.revision;
                WriteAheadLog.Replayed r = WriteAheadLog.replay(file, maxRecordBytes, newest, replay::apply);
                records += r.records();
                if (r.end() == WriteAheadLog.End.DAMAGED) {
                    damage = file + " at byte " + r.validBytes() + ": " + r.problem();
                    leftOut.add(file);
                    continue;
                }
                if (l.getKey() > before + 1 && replay.revision == before) {
                    damage = file + ": begins after revision " + (l.getKey() - 1) + " but the logs before it end at"
                            + " revision " + before + ": the log of revisions " + (before + 1) + " to " + (l.getKey() - 1)
                            + " (" + logName(before + 1) + ") is missing";
                    leftOut.add(file);
                    continue;
                }
                if (r.end() == WriteAheadLog.End.TORN) {
                    torn = new Torn(file, r.validBytes(), r.problem());
                }
                if (newest) {
                    lastLog = file;
                    lastLogEnd = r.validBytes();
                }
            }
        } catch (IOException | RuntimeException e) {
            entries.close();
            mods.close();
            throw e;
        }
        return new Read(entries.name(), entries.order(), entries.map(), mods.map(), replay.revision, snapshotRevision,
                snapshot, badSnapshots, replay.compactRevision, replay.deltas, records, lastLog, lastLogEnd, torn,
                damage, leftOut, entries.incarnation() != 0 ? entries.incarnation() : legacyIncarnation(entries.name()));
    }

    /** Applies replayed log records to the recovered maps, checking revision order and digests. */
    private static final class Replay {
        private final OffHeapMap entries;
        private final OffHeapMap modRevisions;
        private final long snapshotRevision;
        long revision;
        long compactRevision;
        final List<ByteBuffer> deltas = new ArrayList<>();

        Replay(OffHeapMap entries, OffHeapMap modRevisions, long revision, long compactRevision) {
            this.entries = entries;
            this.modRevisions = modRevisions;
            this.snapshotRevision = revision;
            this.revision = revision;
            this.compactRevision = compactRevision;
        }

        void apply(ByteBuffer record) {
            WatchResponse event;
            try {
                event = WatchResponse.parseFrom(record.duplicate());
            } catch (InvalidProtocolBufferException e) {
                throw new IllegalStateException("a log record that passed its CRC is not a WatchResponse: "
                        + e.getMessage(), e);
            }
            if (event.hasCompaction()) {
                compactRevision = Math.max(compactRevision, event.getCompaction().getCompactRevision());
                return;
            }
            Delta delta = event.getDelta();
            if (delta.getRevision() <= snapshotRevision) {
                return;  // already in the snapshot (the log file began before it)
            }
            if (delta.getPrevRevision() != revision || delta.getRevision() != revision + 1) {
                throw new IllegalStateException("the log jumps from revision " + revision + " to a delta "
                        + delta.getPrevRevision() + " -> " + delta.getRevision());
            }
            // The digest the delta leads to, checked before it applies: a map read to salvage what
            // verifies is left at the last good revision.
            long digest = entries.digest();
            boolean normalised = true;
            for (Map.Entry<String, ByteString> put : delta.getPutsMap().entrySet()) {
                byte[] key = put.getKey().getBytes(java.nio.charset.StandardCharsets.UTF_8);
                if (entries.containsKey(key)) {
                    digest -= entries.entryDigest(key);
                }
                digest += OffHeapMap.entryDigest(key, put.getValue().toByteArray());
            }
            for (String deleted : delta.getDeletesList()) {
                byte[] key = deleted.getBytes(java.nio.charset.StandardCharsets.UTF_8);
                normalised &= !delta.containsPuts(deleted);
                if (entries.containsKey(key)) {
                    digest -= entries.entryDigest(key);
                }
            }
            if (normalised && digest != delta.getDigest()) {
                throw new IllegalStateException(String.format("revision %d: the replayed map's digest would be"
                        + " %016x, the log says %016x", delta.getRevision(), digest, delta.getDigest()));
            }
            byte[] revisionBytes = revisionBytes(delta.getRevision());
            for (Map.Entry<String, ByteString> put : delta.getPutsMap().entrySet()) {
                byte[] key = put.getKey().getBytes(java.nio.charset.StandardCharsets.UTF_8);
                entries.put(key, put.getValue().toByteArray());
                modRevisions.put(key, revisionBytes);
            }
            for (String deleted : delta.getDeletesList()) {
                byte[] key = deleted.getBytes(java.nio.charset.StandardCharsets.UTF_8);
                entries.remove(key);
                modRevisions.remove(key);
            }
            if (entries.digest() != delta.getDigest()) {
                throw new IllegalStateException(String.format("revision %d: the replayed map's digest is %016x,"
                        + " the log says %016x", delta.getRevision(), entries.digest(), delta.getDigest()));
            }
            revision = delta.getRevision();
            ByteBuffer copy = ByteBuffer.allocate(record.remaining()).put(record.duplicate()).flip();
            deltas.add(copy);
        }
    }

    /** Appends one record (under the map's write lock); returns its end for {@link #awaitDurable}. */
    public long append(ByteBuffer record) throws IOException {
        long end = wal.append(record);
        logBytes += WriteAheadLog.HEADER_BYTES + record.remaining();
        if (diskFullMap != null) {
            log.info("map \"{}\": its log takes writes again in data directory {} ({} writes were refused for want of"
                    + " disk space)", diskFullMap, dataDir(), diskFullRefusals);
            diskFullMap = null;
        }
        return end;
    }

    /**
     * Counts a write refused for want of disk space; true if it begins an episode (the caller logs
     * it; the next append that succeeds ends it). Under the map's write lock.
     */
    public boolean diskFull(String mapName) {
        boolean first = diskFullMap == null;
        diskFullMap = mapName;
        diskFullRefusals = first ? 1 : diskFullRefusals + 1;
        return first;
    }

    /** The data directory the map's directory is in. */
    public Path dataDir() {
        return dir.getParent().getParent();
    }

    public Path logFile() {
        return wal.file();
    }

    /** Whether the log is failing (see {@link WriteAheadLog#failing}). */
    public boolean logFailing() {
        return wal.failing();
    }

    public IOException logFailure() {
        return wal.firstFailure();
    }

    /** The log's first failure if nobody reported it yet, else null. */
    public IOException claimLogFailureReport() {
        return wal.claimFailureReport();
    }

    /** One attempt to write a failing log again; see {@link WriteAheadLog#reopen}. Under the map's write lock. */
    public boolean reopenLog() throws IOException {
        return wal.reopen();
    }

    public void awaitDurable(long end) throws IOException {
        wal.awaitDurable(end);
    }

    /** Whether the log has grown enough for a snapshot (read under the map's write lock). */
    public boolean wantsSnapshot() {
        return logBytes >= snapshotLogBytes;
    }

    /** Starts the log after {@code revision} anew; under the map's write lock, with the maps pinned at it. */
    public void rotate(long revision) throws IOException {
        wal.rotate(dir.resolve(logName(revision + 1)));
        logBytes = 0;
    }

    /** Writes the snapshot of {@code revision} from pinned views, then deletes what it makes obsolete. */
    public void writeSnapshot(String name, PinnedView entries, PinnedView modRevisions, long revision, long compactRevision)
            throws IOException {
        writeSnapshotFiles(dir, name, entries, modRevisions, revision, compactRevision, incarnation);
        Path currentLog = wal.file();
        for (Path file : list(dir)) {
            String f = file.getFileName().toString();
            long n = number(f);
            // Exact names only: a log kept aside (wal-<R>.log.torn-<byte>) is never deleted here.
            boolean oldSnapshot = (named(f, SNAPSHOT, ".snap") || named(f, MOD_REVISIONS, ".snap")) && n < revision;
            boolean oldLog = named(f, LOG, ".log") && n <= revision && !file.equals(currentLog);
            if (oldSnapshot || oldLog) {
                Files.deleteIfExists(file);
            }
        }
        SnapshotFiles.forceDirectory(dir);
    }

    /** Whether a complete snapshot of {@code revision} (both files) is in place. */
    public boolean hasSnapshot(long revision) {
        return Files.exists(snapshotFile(dir, SNAPSHOT, revision))
                && Files.exists(snapshotFile(dir, MOD_REVISIONS, revision));
    }

    /** Forces the log (periodic mode's flush; shutdown). */
    public void force() throws IOException {
        wal.force();
    }

    @Override
    public void close() throws IOException {
        try {
            if (!wal.failing()) {  // a failing log was reported already, and forcing it proves nothing
                wal.force();
            }
        } finally {
            wal.close();
        }
    }

    /** Closes the log and deletes the map's directory (a map whose creating write was refused). */
    public void deleteFiles() {
        try {
            wal.close();
            deleteTree(dir);
            SnapshotFiles.forceDirectory(dir.getParent());
        } catch (IOException e) {
            log.warn("could not delete {} of a map that was never created", dir, e);
        }
    }

    // ---- files ----

    private static void writeSnapshotFiles(Path dir, String name, PinnedView entries, PinnedView modRevisions,
            long revision, long compactRevision, long incarnation) throws IOException {
        SnapshotFiles.write(modRevisions, name, revision, compactRevision, incarnation,
                snapshotFile(dir, MOD_REVISIONS, revision));
        SnapshotFiles.write(entries, name, revision, compactRevision, incarnation,
                snapshotFile(dir, SNAPSHOT, revision));
    }

    /**
     * The incarnation of a map stored before incarnations existed (its snapshots have none): derived
     * from its name, so that it stays the same across restarts until the map is deleted.
     */
    static long legacyIncarnation(String name) {
        byte[] bytes = name.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        long h = dev.mapcast.core.Xxh64.hash(bytes, 0, bytes.length, 0x6d6170636173744cL);
        return h == 0 ? 1 : h;
    }

    private static Path snapshotFile(Path dir, String prefix, long revision) {
        return dir.resolve(prefix + String.format("%020d", revision) + ".snap");
    }

    public static String logName(long firstRevision) {
        return LOG + String.format("%020d", firstRevision) + ".log";
    }

    /** A directory name for a map name: readable when the name is plain, a digest otherwise. */
    public static String directoryName(String name) {
        if (name.matches("[A-Za-z0-9._-]{1,64}") && !name.startsWith(".")) {
            return "m-" + name;
        }
        try {
            byte[] hash = java.security.MessageDigest.getInstance("SHA-256")
                    .digest(name.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            StringBuilder out = new StringBuilder("h-");
            for (int i = 0; i < 16; i++) {
                out.append(String.format("%02x", hash[i]));
            }
            return out.toString();
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    private static TreeMap<Long, Path> numbered(Path dir, String prefix, String suffix) throws IOException {
        TreeMap<Long, Path> out = new TreeMap<>();
        for (Path file : list(dir)) {
            String f = file.getFileName().toString();
            if (named(f, prefix, suffix)) {
                out.put(number(f), file);
            }
        }
        return out;
    }

    /** Whether {@code f} is exactly {@code <prefix><20 digits><suffix>}, as the store names its files. */
    public static boolean named(String f, String prefix, String suffix) {
        return f.length() == prefix.length() + 20 + suffix.length() && f.startsWith(prefix) && f.endsWith(suffix)
                && number(f) >= 0;
    }

    /** The revision in a file name like {@code wal-00000000000000000042.log}, or -1. */
    private static long number(String fileName) {
        int dash = fileName.indexOf('-');
        int dot = fileName.indexOf('.', dash + 1);
        if (dash < 0 || dot != dash + 21) {
            return -1;
        }
        try {
            return Long.parseLong(fileName.substring(dash + 1, dot));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    private static List<Path> list(Path dir) throws IOException {
        List<Path> out = new ArrayList<>();
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir)) {
            for (Path f : files) {
                out.add(f);
            }
        }
        return out;
    }

    private static void deleteTemporaryFiles(Path dir) throws IOException {
        for (Path file : list(dir)) {
            if (file.getFileName().toString().endsWith(".tmp")) {
                Files.deleteIfExists(file);  // a snapshot interrupted before its rename
            }
        }
    }

    public static byte[] revisionBytes(long revision) {
        return ByteBuffer.allocate(Long.BYTES).order(ByteOrder.LITTLE_ENDIAN).putLong(revision).array();
    }
}
