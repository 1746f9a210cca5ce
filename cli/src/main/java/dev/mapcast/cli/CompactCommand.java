package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.codec.JsonLine;
import dev.mapcast.proto.v1.Compaction;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(mixinStandardHelpOptions = true, name = "compact", sortOptions = false,
        description = {
            "Reclaims a map's dead memory and purges its history.",
            "Reclaims the map's dead records and tombstones now and purges its history through a revision "
                    + "(watchers are told; a watcher resuming from before it gets a snapshot). "
                    + "Prints what was done."},
        footer = {"", "Example:", "  mapcast compact config --revision 120"})
final class CompactCommand extends ClientCommand {

    @Parameters(index = "0", paramLabel = "MAP", description = "The map.")
    String map;

    @Option(names = "--revision", paramLabel = "N",
            description = "Purge history through revision N (default: the map's current revision).")
    Long revision;

    @Option(names = "--json", description = "Print one JSON object: compact_revision, tombstones_purged, "
            + "bytes_reclaimed, revision.")
    boolean json;

    @Override
    void validate() {
        checkAtLeast("--revision", revision, 1);
    }

    @Override
    int run(MapcastClient client) {
        Compaction c = client.compact(map, revision == null ? 0 : revision);
        if (json) {
            out.println(new JsonLine().number("compact_revision", c.getCompactRevision())
                    .number("tombstones_purged", c.getTombstonesPurged())
                    .number("bytes_reclaimed", c.getBytesReclaimed())
                    .number("revision", c.getRevision()));
        } else {
            out.println("compact_revision " + c.getCompactRevision() + ", tombstones purged "
                    + c.getTombstonesPurged() + ", bytes reclaimed " + c.getBytesReclaimed()
                    + " (map at revision " + c.getRevision() + ")");
        }
        return ExitCodes.OK;
    }
}
