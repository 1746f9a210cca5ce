package dev.mapcast.cli;

import dev.mapcast.client.GetResult;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.codec.JsonLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;

@Command(mixinStandardHelpOptions = true, name = "get", sortOptions = false,
        description = {
            "Prints the value of one key.",
            "The value is followed by a newline, on a terminal or not (output is line-oriented like "
                    + "every other command's; $(...) in a shell drops it).",
            "A value that is not UTF-8 prints as base64:...; --raw prints the exact bytes and nothing else.",
            "--json prints one object with the fields key, value, mod_revision and revision; "
                    + "value_base64 replaces value when the value is not UTF-8.",
            "An absent key prints a message on stderr and exits 1."},
        footer = {"", "Examples:",
            "  region=$(mapcast get config region)",
            "  mapcast get --raw config logo > logo.png",
            "  mapcast get --json config region | jq .mod_revision"})
final class GetCommand extends ClientCommand {

    @Parameters(index = "0", paramLabel = "MAP", description = "The map.")
    String map;

    @Parameters(index = "1", paramLabel = "KEY", description = "The key.")
    String key;

    @Option(names = "--raw", description = "Print the value's exact bytes, with no newline.")
    boolean raw;

    @Option(names = "--json", description = "Print one JSON object: key, value, mod_revision, revision.")
    boolean json;

    @Override
    void validate() {
        if (raw && json) {
            throw new ParameterException(spec.commandLine(), "--raw and --json (expected: one of them)");
        }
    }

    @Override
    int run(MapcastClient client) {
        GetResult r = client.get(map, key);
        if (!r.found()) {
            throw new Failure(ExitCodes.NOT_FOUND, "key " + Text.quoted(key) + " not found in map " + Text.quoted(map)
                    + " (at revision " + r.revision() + ")");
        }
        if (json) {
            out.println(Text.withValue(new JsonLine().string("key", key), r.value())
                    .number("mod_revision", r.modRevision()).number("revision", r.revision()));
        } else if (raw) {
            out.write(r.value(), 0, r.value().length);
        } else if (Text.utf8OrNull(r.value()) == null) {
            out.println(Text.value(r.value()));  // base64:...: no binary on a terminal (--raw for the bytes)
        } else {
            out.write(r.value(), 0, r.value().length);
            out.println();
        }
        return ExitCodes.OK;
    }
}
