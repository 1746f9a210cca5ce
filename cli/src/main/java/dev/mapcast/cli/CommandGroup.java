package dev.mapcast.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * A command that only groups others ({@code mapcast cluster}, {@code snapshot}, {@code user}...):
 * run alone, it is a usage error that lists its commands.
 */
abstract class CommandGroup implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Override
    public final Integer call() {
        throw Main.missing("SUBCOMMAND", spec);
    }
}
