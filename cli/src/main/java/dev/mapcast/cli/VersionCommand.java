package dev.mapcast.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code mapcast version}: the text of {@code mapcast --version} (one source: {@link Main.Version}). */
@Command(name = "version",
        description = "Prints the version and the JVM, as 'mapcast --version' does.")
final class VersionCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = {"-h", "--help"}, usageHelp = true, description = "Show this help message and exit.")
    boolean help;

    @Override
    public Integer call() {
        // The top command's --version: its provider, with ${java.version} and the like resolved.
        spec.root().commandLine().printVersionHelp(spec.commandLine().getOut());
        return ExitCodes.OK;
    }
}
