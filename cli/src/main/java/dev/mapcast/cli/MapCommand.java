package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.codec.JsonLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code mapcast map delete}: a map's own life (a write that puts a key creates it). */
@Command(mixinStandardHelpOptions = true, name = "map",
        description = {"Manages maps as a whole.",
            "A map is created by the first write that puts a key (put), and removed only by 'map delete'."},
        subcommands = {MapCommand.Delete.class},
        footer = {"", "Example:", "  mapcast map delete config --if-revision 12"})
final class MapCommand extends CommandGroup {

    @Command(mixinStandardHelpOptions = true, name = "delete", sortOptions = false,
            description = {
                "Deletes a map: its entries, history and files, durably.",
                "Its watchers are told (SDK replicas empty themselves and wait for the map to be created "
                        + "again). A later put creates the map anew: another incarnation, from revision 1. "
                        + "Prints the revision the map had. An unknown map is an error (exit 1)."},
            footer = {"", "Example:", "  mapcast map delete config"})
    static final class Delete extends ClientCommand {

        @Parameters(index = "0", paramLabel = "MAP", description = "The map.")
        String map;

        @Option(names = "--if-revision", paramLabel = "N",
                description = "Delete only while the map is at revision N (else exit 1, nothing deleted).")
        Long ifRevision;

        @Option(names = "--json", description = "Print one JSON object: map, deleted (true), revision.")
        boolean json;

        @Override
        void validate() {
            checkAtLeast("--if-revision", ifRevision, 1);
        }

        @Override
        int run(MapcastClient client) {
            long revision = client.deleteMap(map, ifRevision == null ? 0 : ifRevision);
            if (json) {
                out.println(new JsonLine().string("map", map).bool("deleted", true).number("revision", revision));
            } else {
                out.println("deleted map " + Text.quoted(map) + " at revision " + revision);
            }
            return ExitCodes.OK;
        }
    }
}
