package dev.mapcast.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.proto.v1.Right;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import picocli.CommandLine.TypeConversionException;

/**
 * The options and arguments of the auth commands and of --token, in process: every case here is a
 * usage error (exit 2, one line and the help hint) found before any connection is made, so no
 * server runs; --server names a port nothing listens on.
 */
class AuthOptionsTest {

    private static final String NOWHERE = "127.0.0.1:1";

    @TempDir
    Path dir;

    @Test
    void aRightIsReadWriteOrReadwriteInAnyCase() {
        AuthCommand.RightConverter c = new AuthCommand.RightConverter();
        assertEquals(Right.RIGHT_READ, c.convert("read"));
        assertEquals(Right.RIGHT_WRITE, c.convert("WRITE"));
        assertEquals(Right.RIGHT_READWRITE, c.convert("ReadWrite"));
        for (String bad : new String[] {"rw", "", "read,write", "RIGHT_READ"}) {
            TypeConversionException e = assertThrows(TypeConversionException.class, () -> c.convert(bad), bad);
            assertEquals("'" + bad + "' (expected: read, write or readwrite)", e.getMessage());
        }
        assertUsageError("Invalid value for positional parameter at index 1 (RIGHT): 'sometimes' (expected: read,"
                + " write or readwrite)", "role grant --help", "role", "grant", "--server", NOWHERE, "app-writer",
                "sometimes", "app/*");
    }

    @Test
    void tokenAndTokenFileExcludeEachOther() throws IOException {
        Path file = Files.writeString(dir.resolve("app.token"), "mapcast_0123456789abcdef.secret\n");
        assertUsageError("--token and --token-file exclude each other", "whoami --help", "whoami", "--server", NOWHERE,
                "--token", "mapcast_0123456789abcdef.other", "--token-file", file.toString());
        assertUsageError("--token and --token-file exclude each other", "put --help", "put", "--server", NOWHERE,
                "--token-file", file.toString(), "--token", "x", "m", "k", "v");
    }

    @Test
    void aTokenFileMustHoldTheTokenOnItsFirstLine() throws IOException {
        Path missing = dir.resolve("missing.token");
        assertUsageError("--token-file " + missing + ": no such file", "whoami --help", "whoami", "--server", NOWHERE,
                "--token-file", missing.toString());
        Path empty = Files.writeString(dir.resolve("empty.token"), "\nmapcast_0123456789abcdef.secret\n");
        assertUsageError("--token-file " + empty + ": its first line is empty (expected: the token's secret)",
                "user list --help", "user", "list", "--server", NOWHERE, "--token-file", empty.toString());
        Path spaced = Files.writeString(dir.resolve("spaced.token"), "s3cr3t with-a-space\n");
        String shown = assertUsageError("--token-file " + spaced + ": character U+0020 at index 6 of 19 (expected: a"
                + " token's secret as 'mapcast token create' prints it, printable ASCII without spaces)",
                "whoami --help", "whoami", "--server", NOWHERE, "--token-file", spaced.toString());
        assertFalse(shown.contains("s3cr3t"), "the token is never shown: " + shown);
    }

    @Test
    void aTokenThatCannotBeSentIsAUsageErrorThatDoesNotShowIt() {
        String shown = assertUsageError("--token: character U+0020 at index 6 of 11 (expected: a token's secret as"
                + " 'mapcast token create' prints it, printable ASCII without spaces)", "ls --help", "ls", "--server",
                NOWHERE, "--token", "s3cr3t part");
        assertFalse(shown.contains("s3cr3t"), shown);
        assertUsageError("--token: blank (expected: ", "whoami --help", "whoami", "--server", NOWHERE, "--token", " ");
    }

    @Test
    void ttlIsAPositiveDurationWithItsUnit() {
        assertUsageError("Invalid value for option '--ttl': '5' needs a unit (expected: a positive duration such as"
                + " 5s, 5ms or 5m)", "token create --help", "token", "create", "--server", NOWHERE, "app", "--ttl", "5");
        assertUsageError("Invalid value for option '--ttl': '0s' (expected: a positive duration such as 500ms, 10s,"
                + " 2m or 1h)", "token create --help", "token", "create", "--server", NOWHERE, "app", "--ttl", "0s");
        assertUsageError("Invalid value for option '--ttl': 'soon' (expected: a positive duration",
                "token create --help", "token", "create", "--server", NOWHERE, "app", "--ttl", "soon");
    }

    @Test
    void theGroupsNameTheirCommandsAndEveryCommandListsExitCode6() {
        assertUsageError("Missing SUBCOMMAND (expected: one of add, list, delete, grant-role, revoke-role)",
                "user --help", "user");
        assertUsageError("Missing SUBCOMMAND (expected: one of add, list, delete, grant, revoke)", "role --help",
                "role");
        assertUsageError("Missing SUBCOMMAND (expected: one of create, revoke, list)", "token --help", "token");
        for (List<String> command : List.of(List.of("whoami"), List.of("token", "create"), List.of("role", "grant"),
                List.of("user", "add"), List.of("put"), List.of("snapshot", "save"))) {
            CommandLine c = Main.commandLine();
            for (String name : command) {
                c = c.getSubcommands().get(name);
            }
            String help = c.getUsageMessage(CommandLine.Help.Ansi.OFF);
            assertTrue(help.contains("\n   6   not authenticated (no token, or a bad, expired or revoked one) or not"),
                    help);
        }
    }

    /**
     * Runs {@code mapcast args} in process: exit 2, and stderr the two lines of a usage error (the
     * first starting with {@code message}); returns stderr.
     */
    private static String assertUsageError(String message, String helpCommand, String... args) {
        StringWriter err = new StringWriter();
        StringWriter out = new StringWriter();
        CommandLine cmd = Main.commandLine();
        cmd.setErr(new PrintWriter(err, true));
        cmd.setOut(new PrintWriter(out, true));
        int code = cmd.execute(args);
        String shown = err.toString();
        List<String> lines = shown.lines().toList();
        assertEquals(2, code, shown);
        assertEquals(2, lines.size(), shown);
        assertTrue(lines.get(0).startsWith("mapcast: " + message), shown);
        assertEquals("Try 'mapcast " + helpCommand + "' for more information.", lines.get(1));
        assertEquals("", out.toString());
        return shown;
    }
}
