package dev.mapcast.cli;

import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.concurrent.Callable;
import org.slf4j.bridge.SLF4JBridgeHandler;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.IVersionProvider;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * The {@code mapcast} command. Every failure a user can cause or meet is one line on stderr,
 * {@code mapcast: <what and why>}, and an exit code from {@link ExitCodes}; a stack trace means a bug.
 */
@Command(name = "mapcast", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = {
            "A key/value map kept in wire format, replicated over gRPC.",
            "Client commands talk to the server given by --server HOST:PORT, else by",
            "$MAPCAST_SERVER, else to 127.0.0.1:50051; to a server started with --auth",
            "as the user of the token in --token-file FILE, $MAPCAST_TOKEN or --token."},
        subcommands = {ServeCommand.class, PutCommand.class, GetCommand.class, DelCommand.class, LsCommand.class,
            WatchCommand.class, CompactCommand.class, SnapshotCommand.class, MapCommand.class, DataCommand.class, ClusterCommand.class,
            UserCommand.class, RoleCommand.class, TokenCommand.class, WhoAmICommand.class,
            VersionCommand.class, CommandLine.HelpCommand.class},
        footer = {"", "Run 'mapcast COMMAND --help' (or 'mapcast help COMMAND') for a command's options."})
public final class Main implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    public static void main(String[] args) {
        // Keys and values are UTF-8 whatever the locale says; data goes out buffered (flushed at exit
        // and per line by watch), messages unbuffered.
        System.setOut(new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16),
                false, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(new FileOutputStream(FileDescriptor.err), true, StandardCharsets.UTF_8));
        routeJavaUtilLogging();
        int code = commandLine().execute(args);
        System.out.flush();
        System.err.flush();
        System.exit(code);
    }

    /**
     * gRPC (and Ratis's shaded copy of it) log through java.util.logging, whose console handler
     * printed a warning with a stack trace before a client command's own one-line error: routed to
     * SLF4J instead, whose levels (simplelogger.properties, and {@code serve}'s) decide.
     */
    private static void routeJavaUtilLogging() {
        SLF4JBridgeHandler.removeHandlersForRootLogger();
        SLF4JBridgeHandler.install();
        java.util.logging.Logger.getLogger("").setLevel(java.util.logging.Level.INFO);  // no FINE records built
    }

    /** The command tree with mapcast's error reporting and exit codes. */
    static CommandLine commandLine() {
        CommandLine cmd = new CommandLine(new Main())
                .setCaseInsensitiveEnumValuesAllowed(true)
                .setOut(new PrintWriter(System.out, true))
                .setErr(new PrintWriter(System.err, true))
                .setParameterExceptionHandler(Main::usageError)
                .setExecutionExceptionHandler((e, command, parseResult) -> failure(e, command));
        cmd.getCommandSpec().usageMessage().exitCodeListHeading("%nExit codes:%n").exitCodeList(ExitCodes.allList());
        listExitCodes(cmd.getSubcommands().values());
        return cmd;
    }

    /** Every command's --help lists its exit codes. */
    private static void listExitCodes(Iterable<CommandLine> commands) {
        for (CommandLine sub : commands) {
            sub.getCommandSpec().usageMessage().exitCodeListHeading("%nExit codes:%n")
                    .exitCodeList(ExitCodes.listFor(sub.getCommand()));
            listExitCodes(sub.getSubcommands().values());
        }
    }

    /** {@code mapcast} alone: say what is missing, as for any usage error. */
    @Override
    public Integer call() {
        throw missing("COMMAND", spec);
    }

    /** The usage error of a command group run without one of its commands ({@code what}). */
    static ParameterException missing(String what, CommandSpec group) {
        return new ParameterException(group.commandLine(), "Missing " + what + " (expected: one of "
                + String.join(", ", group.subcommands().keySet()) + ")");
    }

    private static int usageError(ParameterException e, String[] args) {
        CommandLine cmd = e.getCommandLine();
        PrintWriter err = cmd.getErr();
        err.println("mapcast: " + e.getMessage());
        UnmatchedArgumentException.printSuggestions(e, err);
        err.println("Try '" + cmd.getCommandSpec().qualifiedName() + " --help' for more information.");
        return ExitCodes.USAGE;
    }

    private static int failure(Exception e, CommandLine command) {
        PrintWriter err = command.getErr();
        if (e instanceof Failure f) {
            err.println("mapcast: " + f.getMessage());
            return f.exitCode();
        }
        if (e instanceof InterruptedException) {
            err.println("mapcast: interrupted");
            return 130;
        }
        err.println("mapcast: internal error (please report it, with what follows): " + e);
        e.printStackTrace(err);
        return ExitCodes.INTERNAL;
    }

    /** The version the build wrote into version.properties, and the JVM running it. */
    static final class Version implements IVersionProvider {
        @Override
        public String[] getVersion() throws IOException {
            Properties p = new Properties();
            try (InputStream in = Main.class.getResourceAsStream("version.properties")) {
                if (in != null) {
                    p.load(in);
                }
            }
            return new String[] {
                "mapcast " + p.getProperty("version", "(unknown version)"),
                "JVM: ${java.version} (${java.vendor} ${java.vm.name} ${java.vm.version})"};
        }
    }
}
