package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.MapcastException;
import dev.mapcast.codec.JsonLine;
import dev.mapcast.codec.MessageDecoder;
import dev.mapcast.codec.SnapshotFileException;
import dev.mapcast.codec.SnapshotFileInfo;
import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.codec.SnapshotStreamException;
import dev.mapcast.core.IterationOrder;
import io.grpc.Status;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code mapcast snapshot save|restore|inspect}: snapshot files in the contract's format. */
@Command(mixinStandardHelpOptions = true, name = "snapshot",
        description = {
            "Saves, restores and inspects snapshot files.",
            "A snapshot file is the contract's format (mapcast.proto: SnapshotHeader, the chunks, "
                    + "SnapshotFooter with the entry count, the content digest and a CRC-32C): any protobuf "
                    + "runtime reads it."},
        subcommands = {SnapshotCommand.Save.class, SnapshotCommand.Restore.class, SnapshotCommand.Inspect.class},
        footer = {"", "Examples:",
            "  mapcast snapshot save config config.snapshot",
            "  mapcast snapshot inspect config.snapshot --entries",
            "  mapcast snapshot restore config config.snapshot"})
final class SnapshotCommand extends CommandGroup {

    @Command(mixinStandardHelpOptions = true, name = "save", sortOptions = false,
            description = {
                "Saves a map of a running server to a snapshot file.",
                "Streams the map's snapshot at one revision from the server (Snapshot RPC) into FILE, "
                        + "one chunk at a time, in constant memory whatever the map's size, verifying "
                        + "as it goes: every chunk of one map and revision, the entry count and the "
                        + "content digest equal to the server's. FILE appears only once complete and "
                        + "forced to disk (written beside it, then renamed); on any failure an existing "
                        + "FILE is left as it was. Prints what was saved. A progress bar shows on stderr "
                        + "when it is a terminal.",
                "--timeout bounds the wait for each chunk, not the whole save."},
            footer = {"", "Example:", "  mapcast snapshot save config config.snapshot"})
    static final class Save extends ClientCommand {

        @Parameters(index = "0", paramLabel = "MAP", description = "The map to save.")
        String map;

        @Parameters(index = "1", paramLabel = "FILE", description = "The snapshot file to write (replaced if it exists).")
        Path file;

        @Option(names = "--json", description = "Print one JSON object: file, map, revision, order, "
                + "compact_revision, incarnation, chunks, entries, bytes, crc32c, digest.")
        boolean json;

        @Override
        void validate() {
            if (Files.isDirectory(file)) {
                throw new ParameterException(spec.commandLine(), "FILE: " + file + " is a directory (expected: a file)");
            }
            Path dir = file.toAbsolutePath().getParent();
            if (dir == null || !Files.isDirectory(dir)) {
                throw new ParameterException(spec.commandLine(),
                        "FILE: " + file + " (expected: a file in an existing directory)");
            }
        }

        @Override
        int run(MapcastClient client) {
            SnapshotFileInfo saved;
            try (ProgressBar bar = ProgressBar.onTerminal("saving " + Text.quoted(map))) {
                saved = client.saveSnapshot(map, file, bar::update);
            } catch (SnapshotStreamException e) {
                throw new Failure(ExitCodes.INVALID_SNAPSHOT, "the server's snapshot of map " + Text.quoted(map)
                        + " failed verification, nothing written to " + file + ": " + e.getMessage());
            } catch (IOException e) {
                throw new Failure(ExitCodes.USAGE, "FILE: " + file + ": cannot write: " + e.getMessage());
            }
            if (json) {
                out.println(json(file, saved));
            } else {
                out.println("saved map " + Text.quoted(saved.map()) + " at revision " + saved.revision() + " to "
                        + file + ": " + saved.entries() + " entries, " + saved.chunks() + " chunks, "
                        + saved.bytes() + " bytes, digest " + hex(saved.digest()));
            }
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "restore", sortOptions = false,
            description = {
                "Replaces a map of a running server with a snapshot file's content.",
                "Streams FILE to the server (Restore RPC) in constant memory, verifying it as it goes "
                        + "(structure, CRC-32C, entry count, digest); the server checks every chunk again "
                        + "and applies nothing unless all of it checks out. The restore is one new revision "
                        + "(the map's revision never goes back), every key's mod_revision becomes it, and "
                        + "every watcher of the map is moved to a Compaction event and a snapshot. MAP is "
                        + "created if absent; an existing MAP must have the file's iteration order. A "
                        + "progress bar shows on stderr when it is a terminal.",
                "--timeout bounds the wait for the server to take each chunk."},
            footer = {"", "Example:", "  mapcast snapshot restore config config.snapshot"})
    static final class Restore extends ClientCommand {

        @Parameters(index = "0", paramLabel = "MAP", description = "The map to replace (or create).")
        String map;

        @Parameters(index = "1", paramLabel = "FILE", description = "The snapshot file to restore.")
        Path file;

        @Option(names = "--json", description = "Print one JSON object: map, file, revision, entries.")
        boolean json;

        @Override
        void validate() {
            if (!Files.isRegularFile(file)) {
                throw new ParameterException(spec.commandLine(), "FILE: " + file + " (expected: an existing snapshot file)");
            }
        }

        @Override
        int run(MapcastClient client) {
            MapcastClient.Restored restored;
            try (ProgressBar bar = ProgressBar.onTerminal("restoring " + Text.quoted(map))) {
                restored = client.restoreSnapshot(map, file, bar::update);
            } catch (SnapshotFileException e) {
                throw new Failure(ExitCodes.INVALID_SNAPSHOT, "invalid snapshot file " + e.getMessage()
                        + "; nothing restored");
            } catch (IOException e) {
                throw new Failure(ExitCodes.USAGE, "FILE: " + file + ": cannot read: " + e.getMessage());
            } catch (MapcastException e) {
                if (e.code() == Status.Code.FAILED_PRECONDITION) {
                    // A restore has no --if-... condition: this is the map refusing the file (its order).
                    throw new Failure(ExitCodes.REFUSED, "refused by the server: " + e.description()
                            + "; nothing restored");
                }
                throw e;
            }
            if (json) {
                out.println(new JsonLine().string("map", map).string("file", file.toString())
                        .number("revision", restored.revision()).number("entries", restored.entries()));
            } else {
                out.println("restored map " + Text.quoted(map) + " from " + file + ": " + restored.entries()
                        + " entries, now at revision " + restored.revision());
            }
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "inspect", sortOptions = false,
            description = {
                "Verifies a snapshot file and shows what it holds.",
                "Reads FILE through, in constant memory, and checks everything: the header (magic, "
                        + "format version), the structure of every chunk, that every chunk is of the "
                        + "header's map and revision, the CRC-32C, the entry count, the content digest, "
                        + "and that nothing follows the footer. Then prints the file, map, revision, "
                        + "order, compact revision, chunks, entries, bytes, CRC-32C and digest; with "
                        + "--entries, every entry (key=value, in the file's order; control characters "
                        + "escaped, a value that is not UTF-8 as base64:...).",
                "A bad file is refused, saying what is wrong and at which byte; nothing is printed "
                        + "on stdout then, not even entries before the fault."},
            footer = {"", "Examples:",
                "  mapcast snapshot inspect config.snapshot",
                "  mapcast snapshot inspect c.snap --json --entries | jq -c 'select(.key)'"})
    static final class Inspect implements Callable<Integer> {

        @Spec
        CommandSpec spec;

        @Parameters(index = "0", paramLabel = "FILE", description = "The snapshot file.")
        Path file;

        @Option(names = "--json", description = "One JSON object for the file (file, map, revision, order, "
                + "compact_revision, incarnation, chunks, entries, bytes, crc32c, digest), then with --entries one per "
                + "entry: key, and value (value_base64 when it is not UTF-8).")
        boolean json;

        @Option(names = "--entries", description = "List the entries too, in the file's order.")
        boolean entries;

        private final PrintStream out = System.out;

        @Override
        public Integer call() {
            // Verified whole before anything is printed: a bad file shows none of its entries.
            SnapshotFileInfo info;
            try (ProgressBar bar = ProgressBar.onTerminal("checking " + file)) {
                long[] seen = new long[1];
                info = inspect((message, keyFrom, keyLength, valueFrom, valueLength) -> {
                    if ((++seen[0] & 0xFFFF) == 0) {
                        bar.update(seen[0], 0, 0);
                    }
                });
            }
            if (json) {
                out.println(json(file, info));
            } else {
                out.println(String.join("\n",
                        "file              " + file,
                        "map               " + Text.quoted(info.map()),
                        "revision          " + Long.toUnsignedString(info.revision()),
                        "order             " + order(info.order()),
                        "compact_revision  " + Long.toUnsignedString(info.compactRevision()),
                        "incarnation       " + hex(info.incarnation()),
                        "chunks            " + info.chunks(),
                        "entries           " + info.entries(),
                        "bytes             " + info.bytes(),
                        "crc32c            " + String.format("%08x", info.crc32c()) + " (verified)",
                        "digest            " + hex(info.digest()) + " (verified)"));
            }
            if (entries) {
                inspect((message, keyFrom, keyLength, valueFrom, valueLength) -> {
                    byte[] key = new byte[keyLength];
                    byte[] value = new byte[valueLength];
                    message.get(keyFrom, key);
                    message.get(valueFrom, value);
                    String keyText = new String(key, StandardCharsets.UTF_8);  // checked UTF-8
                    out.println(json ? Text.withValue(new JsonLine().string("key", keyText), value)
                            : "  " + Text.oneLine(keyText) + "=" + Text.value(value));
                });
            }
            return ExitCodes.OK;
        }

        private SnapshotFileInfo inspect(MessageDecoder.EntryVisitor visitor) {
            try {
                return SnapshotFiles.inspect(file, visitor);
            } catch (SnapshotFileException e) {
                throw new Failure(ExitCodes.INVALID_SNAPSHOT, "invalid snapshot file " + e.getMessage());
            } catch (NoSuchFileException e) {
                throw new Failure(ExitCodes.USAGE, "FILE: " + file + " (expected: an existing snapshot file)");
            } catch (IOException e) {
                throw new Failure(ExitCodes.USAGE, "FILE: " + file + ": cannot read: " + e.getMessage());
            }
        }
    }

    /** The file's figures as one JSON line, as save and inspect print them. */
    static JsonLine json(Path file, SnapshotFileInfo info) {
        return new JsonLine().string("file", file.toString()).string("map", info.map())
                .number("revision", info.revision()).string("order", order(info.order()))
                .number("compact_revision", info.compactRevision()).string("incarnation", hex(info.incarnation()))
                .number("chunks", info.chunks())
                .number("entries", info.entries()).number("bytes", info.bytes())
                .string("crc32c", String.format("%08x", info.crc32c())).string("digest", hex(info.digest()));
    }

    static String order(IterationOrder order) {
        return order == IterationOrder.INSERTION ? "insertion" : "hash";
    }

    /** A digest as 16 hex digits, as the codec's messages print it. */
    static String hex(long digest) {
        return String.format("%016x", digest);
    }
}
