package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.WriteBatch;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(mixinStandardHelpOptions = true, name = "del", sortOptions = false,
        description = {
            "Deletes keys as one atomic write; prints the new revision.",
            "Absent keys are ignored; the write still makes a new revision.",
            "An unknown map is an error (exit 1): the server refuses a write that would create a map "
                    + "without putting anything in it."},
        footer = {"", "Example:", "  mapcast del config legacy-flag old-region"})
final class DelCommand extends ClientCommand {

    @Parameters(index = "0", paramLabel = "MAP", description = "The map.")
    String map;

    @Parameters(index = "1..*", arity = "1..*", paramLabel = "KEY", description = "The keys to delete.")
    List<String> keys;

    @Option(names = "--if-revision", paramLabel = "N",
            description = "Delete only while the map is at revision N (else exit 1, nothing deleted).")
    Long ifRevision;

    @Override
    void validate() {
        checkAtLeast("--if-revision", ifRevision, 1);
    }

    @Override
    int run(MapcastClient client) {
        WriteBatch write = client.write(map);
        keys.forEach(write::delete);
        if (ifRevision != null) {
            write.ifRevision(ifRevision);
        }
        out.println(write.commit());
        return ExitCodes.OK;
    }
}
