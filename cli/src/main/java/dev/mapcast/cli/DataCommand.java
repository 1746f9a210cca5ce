package dev.mapcast.cli;

import dev.mapcast.codec.JsonLine;
import dev.mapcast.server.storage.DataDirectoryCheck;
import dev.mapcast.server.storage.StorageException;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code mapcast data check|salvage}: a data directory's files, with no server running on it. */
@Command(mixinStandardHelpOptions = true, name = "data",
        description = {
            "Checks and salvages the files of a data directory no server is using (they take its LOCK).",
            "A server quarantines a map whose files fail verification (ls shows it damaged); these commands say "
                    + "what is wrong and save what still verifies, to restore after 'mapcast map delete'."},
        subcommands = {DataCommand.Check.class, DataCommand.Salvage.class},
        footer = {"", "Examples:",
            "  mapcast data check --data-dir /var/lib/mapcast",
            "  mapcast data salvage config --out config.snap --data-dir /var/lib/mapcast"})
final class DataCommand extends CommandGroup {

    /** Opens the data directory for the checks, or the one-line failure saying why not. */
    static DataDirectoryCheck open(Path dataDir) {
        try {
            return DataDirectoryCheck.open(dataDir);
        } catch (IOException e) {
            throw new Failure(ExitCodes.DATA_DIR_UNUSABLE, "cannot use data directory " + dataDir.toAbsolutePath()
                    + ": " + e.getMessage());
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "check", sortOptions = false,
            description = {
                "Verifies every map's files as a server's start does, changing nothing.",
                "Reads each map's newest snapshot (structure, CRC-32C, count, digest) and every log record after "
                        + "it (CRC-32C, revision chain, digest after each change), then prints one line per map: "
                        + "its name, ok and its revision and entries, or DAMAGED and the problem (file, byte, "
                        + "reason). A torn log end (a write never acknowledged) is ok: the server cuts it.",
                "--json prints one object per map: name, directory, status (ok or damaged), revision, entries, "
                        + "problem, note."},
            footer = {"", "Example:", "  mapcast data check --data-dir /var/lib/mapcast"})
    static final class Check implements Callable<Integer> {

        @Option(names = "--data-dir", paramLabel = "DIR", defaultValue = "mapcast-data",
                description = "The data directory (default: ./${DEFAULT-VALUE}).")
        Path dataDir;

        @Option(names = "--json", description = "One JSON object per map.")
        boolean json;

        private final PrintStream out = System.out;

        @Override
        public Integer call() throws IOException {
            DataDirectoryCheck.Report report;
            try (DataDirectoryCheck data = open(dataDir)) {
                report = data.check();
            } catch (StorageException e) {
                throw new Failure(ExitCodes.DAMAGED, e.getMessage());
            }
            for (DataDirectoryCheck.MapReport m : report.maps()) {
                if (json) {
                    JsonLine line = new JsonLine().string("name", m.name()).string("directory", m.directory().toString())
                            .string("status", m.ok() ? "ok" : "damaged").number("revision", m.revision())
                            .number("entries", m.entries());
                    if (m.problem() != null) {
                        line.string("problem", m.problem());
                    }
                    if (m.note() != null) {
                        line.string("note", m.note());
                    }
                    out.println(line);
                } else if (m.ok()) {
                    out.println(Text.quoted(m.name()) + ": ok, revision " + m.revision() + ", " + m.entries()
                            + " entries" + (m.note() == null ? "" : "; note: " + m.note()));
                } else {
                    out.println(Text.quoted(m.name()) + ": DAMAGED: " + Text.oneLine(m.problem()));
                }
            }
            for (String note : report.notes()) {
                if (json) {
                    out.println(new JsonLine().string("note", note));
                } else {
                    out.println("note: " + note);
                }
            }
            long damaged = report.maps().stream().filter(m -> !m.ok()).count();
            if (damaged > 0) {
                throw new Failure(ExitCodes.DAMAGED, damaged + " of " + report.maps().size() + " maps in "
                        + dataDir.toAbsolutePath() + " damaged: 'mapcast data salvage MAP --out FILE' saves what"
                        + " still verifies");
            }
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "salvage", sortOptions = false,
            description = {
                "Saves the longest verified part of a map's history to a snapshot file.",
                "Reads the newest snapshot of MAP that verifies, then every log record after it that verifies, "
                        + "in order, up to the first one that does not, and writes the map at the revision "
                        + "reached to --out in the snapshot file format ('mapcast snapshot inspect' checks it, "
                        + "'mapcast snapshot restore' loads it). Prints the revision reached and what was left "
                        + "out. Changes nothing in the data directory.",
                "To replace a damaged map: start the server, 'mapcast map delete MAP', then "
                        + "'mapcast snapshot restore MAP FILE'."},
            footer = {"", "Example:", "  mapcast data salvage config --out config.snap --data-dir /var/lib/mapcast"})
    static final class Salvage implements Callable<Integer> {

        @Spec
        CommandSpec spec;

        @Parameters(index = "0", paramLabel = "MAP", description = "The map to salvage.")
        String map;

        @Option(names = "--out", paramLabel = "FILE", required = true,
                description = "The snapshot file to write (replaced if it exists).")
        Path out;

        @Option(names = "--data-dir", paramLabel = "DIR", defaultValue = "mapcast-data",
                description = "The data directory (default: ./${DEFAULT-VALUE}).")
        Path dataDir;

        @Option(names = "--json", description = "Print one JSON object: map, file, revision, entries, snapshot, "
                + "snapshot_revision, log_records, and left_out (one string per part left out).")
        boolean json;

        private final PrintStream stdout = System.out;

        @Override
        public Integer call() throws IOException {
            Path dir = out.toAbsolutePath().getParent();
            if (Files.isDirectory(out) || dir == null || !Files.isDirectory(dir)) {
                throw new ParameterException(spec.commandLine(),
                        "--out: " + out + " (expected: a file in an existing directory)");
            }
            DataDirectoryCheck.Salvaged saved;
            try (DataDirectoryCheck data = open(dataDir)) {
                saved = data.salvage(map, out);
            } catch (StorageException e) {
                throw new Failure(ExitCodes.DAMAGED, "nothing salvaged of map " + Text.quoted(map) + ": "
                        + e.getMessage());
            }
            if (saved == null) {
                throw new Failure(ExitCodes.NOT_FOUND, "no map " + Text.quoted(map) + " in " + dataDir.toAbsolutePath());
            }
            if (json) {
                JsonLine line = new JsonLine().string("map", saved.map()).string("file", out.toString())
                        .number("revision", saved.revision()).number("entries", saved.entries())
                        .string("snapshot", saved.snapshot().toString())
                        .number("snapshot_revision", saved.snapshotRevision())
                        .number("log_records", saved.logRecords());
                stdout.println(line.strings("left_out", saved.leftOut()));
                return ExitCodes.OK;
            }
            stdout.println("salvaged map " + Text.quoted(saved.map()) + " at revision " + saved.revision() + " to "
                    + out + ": " + saved.entries() + " entries, from " + saved.snapshot().getFileName()
                    + " (revision " + saved.snapshotRevision() + ") and " + saved.logRecords() + " log records");
            if (saved.leftOut().isEmpty()) {
                stdout.println("left out: nothing (every file verified)");
            }
            for (String part : saved.leftOut()) {
                stdout.println("left out: " + Text.oneLine(part));
            }
            return ExitCodes.OK;
        }
    }
}
