package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.MapcastException;
import dev.mapcast.proto.v1.MapInfo;
import java.io.PrintStream;
import java.util.concurrent.Callable;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * A command that talks to a server: connects as --server says, runs, and turns the server's
 * status into an exit code and a message (see {@link Failure#of}).
 */
abstract class ClientCommand implements Callable<Integer> {

    @Mixin
    ClientOptions connection;

    @Spec
    CommandSpec spec;

    /** Data output (UTF-8, see Main); flushed by Main at exit, and by streaming commands per line. */
    final PrintStream out = System.out;

    @Override
    public final Integer call() throws Exception {
        String target = connection.target();
        validate();
        MapcastClient.Builder builder = connection.token(connection.tls(
                MapcastClient.builder().target(target).deadline(connection.timeout)));
        MapcastClient built;
        try {
            built = builder.build();
        } catch (IllegalArgumentException e) {  // a TLS file that cannot be used, named
            throw new Failure(ExitCodes.USAGE, e.getMessage());
        }
        try (MapcastClient client = built) {
            return run(client);
        } catch (MapcastException e) {
            throw failure(e, target);
        }
    }

    /** What the user reads when a call fails: see {@link Failure#of}. */
    Failure failure(MapcastException e, String target) {
        return Failure.of(e, target, connection.usesTls(), connection.tokenSource());
    }

    /** Checks the options and arguments before connecting: a usage error costs no connection. */
    void validate() {
    }

    /** Does the command's work; returns the exit code. */
    abstract int run(MapcastClient client) throws Exception;

    /**
     * The map's figures, or exit 1 when it does not exist. Streaming commands check first because a
     * replica of an unknown map would wait (and retry) until someone creates it.
     */
    static MapInfo existingMap(MapcastClient client, String map) {
        for (MapInfo info : client.listMaps()) {
            if (info.getName().equals(map)) {
                if (!info.getDamaged().isEmpty()) {
                    throw new Failure(ExitCodes.REFUSED, "map " + Text.quoted(map) + " is damaged and quarantined by"
                            + " the server: " + info.getDamaged() + " (see 'mapcast data check')");
                }
                return info;
            }
        }
        throw new Failure(ExitCodes.NOT_FOUND, "map " + Text.quoted(map) + " does not exist (a put creates it)");
    }

    /** A revision option that must be at least {@code min}, or a usage error naming it. */
    void checkAtLeast(String option, Long value, long min) {
        if (value != null && value < min) {
            throw new ParameterException(spec.commandLine(), option + ": " + value + " (expected: >= " + min + ")");
        }
    }
}
