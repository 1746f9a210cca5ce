package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.WriteBatch;
import dev.mapcast.core.IterationOrder;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;

@Command(mixinStandardHelpOptions = true, name = "put", sortOptions = false,
        description = {
            "Puts one key, or several in one atomic write, creating the map if needed; prints the new "
                    + "revision.",
            "The value is VALUE (as UTF-8), the bytes of --file, or stdin when VALUE is -. "
                    + "A VALUE starting with - goes after --: mapcast put m k -- -1"},
        footer = {"", "Examples:",
            "  mapcast put config region eu-west-1",
            "  mapcast put --if-absent config owner alice      # create only",
            "  mapcast put --if-mod-revision 12 config region us-east-1   # compare-and-set",
            "  mapcast put config logo --file logo.png",
            "  date | mapcast put config started -",
            "  mapcast put config region eu-west-1 zone b   # two keys, one revision"})
final class PutCommand extends ClientCommand {

    @Parameters(index = "0", paramLabel = "MAP", description = "The map.")
    String map;

    @Parameters(index = "1", paramLabel = "KEY", description = "The key (UTF-8, not empty).")
    String key;

    @Parameters(index = "2", paramLabel = "VALUE", arity = "0..1", description = "The value; - reads stdin.")
    String value;

    @Parameters(index = "3..*", paramLabel = "KEY VALUE", arity = "0..*",
            description = "More keys and values, written with KEY in one atomic write (one revision).")
    List<String> more = new ArrayList<>();

    @Option(names = "--file", paramLabel = "PATH", description = "Read the value from this file (exact bytes).")
    Path file;

    @Option(names = "--if-revision", paramLabel = "N",
            description = "Write only while the map is at revision N (else exit 1, nothing written).")
    Long ifRevision;

    @Option(names = "--if-mod-revision", paramLabel = "N",
            description = "Write only if KEY was last written at revision N (else exit 1).")
    Long ifModRevision;

    @Option(names = "--if-absent", description = "Write only if KEY is absent (else exit 1).")
    boolean ifAbsent;

    @Option(names = "--order", paramLabel = "ORDER",
            description = "hash or insertion: the map's iteration order, if this write creates it "
                    + "(default: hash; ignored for an existing map).")
    IterationOrder order;

    private byte[] bytes;

    @Override
    void validate() {
        checkAtLeast("--if-revision", ifRevision, 1);
        checkAtLeast("--if-mod-revision", ifModRevision, 1);
        if (ifModRevision != null && ifAbsent) {
            throw new ParameterException(spec.commandLine(),
                    "--if-mod-revision and --if-absent: both are conditions on KEY (expected: one of them)");
        }
        bytes = value();
        checkMore();
    }

    /** KEY2 VALUE2...: pairs of literal text, no key twice, and no condition that names one key. */
    private void checkMore() {
        if (more.isEmpty()) {
            return;
        }
        if (more.size() % 2 != 0) {
            throw new ParameterException(spec.commandLine(), "KEY '" + more.get(more.size() - 1)
                    + "' has no VALUE (expected: KEY VALUE pairs after the first)");
        }
        if (file != null || "-".equals(value)) {
            throw new ParameterException(spec.commandLine(),
                    "--file and - give the value of one key (expected: every VALUE on the command line)");
        }
        if (ifModRevision != null || ifAbsent) {
            throw new ParameterException(spec.commandLine(), (ifAbsent ? "--if-absent" : "--if-mod-revision")
                    + " is a condition on one key (expected: one KEY, or --if-revision for several)");
        }
        Set<String> keys = new HashSet<>(List.of(key));
        for (int i = 0; i < more.size(); i += 2) {
            if (!keys.add(more.get(i))) {
                throw new ParameterException(spec.commandLine(), "key '" + more.get(i)
                        + "' given twice (expected: each key once)");
            }
        }
    }

    @Override
    int run(MapcastClient client) {
        WriteBatch write = client.write(map).put(key, bytes);
        for (int i = 0; i < more.size(); i += 2) {
            write.put(more.get(i), more.get(i + 1).getBytes(StandardCharsets.UTF_8));
        }
        if (ifRevision != null) {
            write.ifRevision(ifRevision);
        }
        if (ifModRevision != null) {
            write.ifModRevision(key, ifModRevision);
        }
        if (ifAbsent) {
            write.ifAbsent(key);
        }
        if (order != null) {
            write.order(order);
        }
        out.println(write.commit());
        return ExitCodes.OK;
    }

    private byte[] value() {
        if (file != null && value != null) {
            throw new ParameterException(spec.commandLine(),
                    "VALUE '" + value + "' and --file " + file + " (expected: one of them)");
        }
        if (file == null && value == null) {
            throw new ParameterException(spec.commandLine(),
                    "Missing VALUE (expected: VALUE, - for stdin, or --file PATH)");
        }
        try {
            if (file != null) {
                return Files.readAllBytes(file);
            }
            if (value.equals("-")) {
                return System.in.readAllBytes();
            }
        } catch (NoSuchFileException e) {
            throw new Failure(ExitCodes.USAGE, "--file: " + file + " (expected: an existing file)");
        } catch (IOException e) {
            throw new Failure(ExitCodes.USAGE,
                    (file != null ? "--file: " + file : "stdin") + ": cannot read: " + e.getMessage());
        }
        return value.getBytes(StandardCharsets.UTF_8);
    }
}
