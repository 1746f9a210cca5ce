package dev.mapcast.cli;

import java.util.LinkedHashMap;
import java.util.Map;
import picocli.CommandLine;

/**
 * The exit codes of the {@code mapcast} command: what a shell script can rely on. They are listed
 * in every command's {@code --help}.
 */
final class ExitCodes {

    static final int OK = 0;
    /** An absent key, an unknown map, or a condition (--if-...) that did not hold. */
    static final int NOT_FOUND = 1;
    /** picocli's usage error code: a bad option or argument. */
    static final int USAGE = 2;
    /** The server refused the request: INVALID_ARGUMENT, RESOURCE_EXHAUSTED and the like. */
    static final int REFUSED = 3;
    /** The server could not be reached, or did not answer in time. */
    static final int UNREACHABLE = 4;
    /**
     * A snapshot file or stream that fails verification (not a snapshot, truncated, corrupt, a
     * count or digest that does not match): refused, nothing written or applied.
     */
    static final int INVALID_SNAPSHOT = 5;
    /**
     * A server with --auth refused the client: no valid credentials (UNAUTHENTICATED: no token, or
     * one unknown, expired or revoked), or its user lacks the right (PERMISSION_DENIED). Apart from
     * {@link #REFUSED}: the request is fine, the credentials or the grants are what to change.
     */
    static final int DENIED = 6;
    /** A bug: an exception nobody expected (printed with its stack trace). */
    static final int INTERNAL = 70;

    /** serve: the address cannot be bound (in use, not local, no permission). */
    static final int CANNOT_LISTEN = 1;
    /**
     * serve: the data directory cannot be used (in use by another server, unreadable, a damaged
     * catalog, or with --strict a map in it is damaged).
     */
    static final int STORAGE = 5;
    /** data: the data directory cannot be used (missing, or a running server holds it). */
    static final int DATA_DIR_UNUSABLE = 1;
    /** data: a map's files (or the catalog) fail verification; salvage: no snapshot of the map verifies. */
    static final int DAMAGED = 5;

    /** The help text of {@link #DENIED}. */
    private static final String DENIED_TEXT = "not authenticated (no token, or a bad, expired or revoked one) or not"
            + " allowed (no role grants the right); the server's reason is printed";

    private ExitCodes() {
    }

    /** For the client commands' --help. */
    static Map<String, String> clientList() {
        Map<String, String> codes = new LinkedHashMap<>();
        codes.put(" 0", "ok");
        codes.put(" 1", "not found (absent key, unknown map) or condition failed (--if-...)");
        codes.put(" 2", "usage error (bad option or argument, unreadable --file)");
        codes.put(" 3", "refused by the server (bad key or value, over a limit...); its reason is printed");
        codes.put(" 4", "server unreachable, no answer within --timeout, or not a mapcast server");
        codes.put(" 6", DENIED_TEXT);
        codes.put("70", "internal error (a bug: the stack trace is printed)");
        return codes;
    }

    /** The exit codes listed in the --help of {@code command}. */
    static Map<String, String> listFor(Object command) {
        if (command instanceof CommandLine.HelpCommand || command instanceof VersionCommand) {
            return helpList();
        }
        if (command instanceof ServeCommand) {
            return serveList();
        }
        if (command instanceof DataCommand || command instanceof DataCommand.Check
                || command instanceof DataCommand.Salvage) {
            return dataList();
        }
        if (command instanceof SnapshotCommand.Inspect) {
            return inspectList();
        }
        if (command instanceof SnapshotCommand || command instanceof SnapshotCommand.Save
                || command instanceof SnapshotCommand.Restore) {
            return snapshotList();
        }
        return clientList();
    }

    /** For help's and version's --help: nothing but a usage error can go wrong. */
    static Map<String, String> helpList() {
        Map<String, String> codes = new LinkedHashMap<>();
        codes.put(" 0", "ok");
        codes.put(" 2", "usage error (bad option or argument, help for an unknown command)");
        return codes;
    }

    /** For snapshot save's --help: the client codes and a stream that fails verification. */
    static Map<String, String> snapshotList() {
        Map<String, String> codes = clientList();
        codes.put(" 2", "usage error (bad option or argument; FILE cannot be written or read)");
        codes.remove(" 6");
        codes.remove("70");
        codes.put(" 5", "invalid snapshot: it fails verification (what is wrong and where is printed); "
                + "nothing written");
        codes.put(" 6", DENIED_TEXT);
        codes.put("70", "internal error (a bug: the stack trace is printed)");
        return codes;
    }

    /** For snapshot inspect's --help: no server involved. */
    static Map<String, String> inspectList() {
        Map<String, String> codes = new LinkedHashMap<>();
        codes.put(" 0", "ok: the file is a valid snapshot");
        codes.put(" 2", "usage error (bad option; FILE missing or unreadable)");
        codes.put(" 5", "invalid snapshot file: what is wrong and at which byte is printed");
        codes.put("70", "internal error (a bug: the stack trace is printed)");
        return codes;
    }

    /** For data check's and salvage's --help: no server involved. */
    static Map<String, String> dataList() {
        Map<String, String> codes = new LinkedHashMap<>();
        codes.put(" 0", "ok: every map verified (check), the file written (salvage)");
        codes.put(" 1", "cannot use the data directory (missing, or a running server holds it); salvage: no such map");
        codes.put(" 2", "usage error (bad option or argument)");
        codes.put(" 5", "damaged: a map's files fail verification (check; the file, byte and reason are printed), "
                + "or no snapshot of the map verifies (salvage)");
        codes.put("70", "internal error (a bug: the stack trace is printed)");
        return codes;
    }

    /** For serve's --help. */
    static Map<String, String> serveList() {
        Map<String, String> codes = new LinkedHashMap<>();
        codes.put(" 0", "stopped cleanly (SIGTERM or SIGINT)");
        codes.put(" 1", "cannot listen on the address");
        codes.put(" 2", "usage error (bad option or limit)");
        codes.put(" 5", "cannot use the data directory (another server holds it, its catalog is damaged, or "
                + "with --strict a map in it cannot be recovered: the message names the file and byte)");
        codes.put("70", "internal error (a bug: the stack trace is printed)");
        return codes;
    }

    /** For the top command's --help: both. */
    static Map<String, String> allList() {
        Map<String, String> codes = snapshotList();
        codes.put(" 1", codes.get(" 1") + "; serve: cannot listen");
        codes.put(" 0", "ok; serve: stopped cleanly by SIGTERM or SIGINT");
        codes.put(" 2", clientList().get(" 2") + "; snapshot: FILE cannot be read or written");
        codes.put(" 5", codes.get(" 5") + "; serve: cannot use the data directory; data: a map is damaged");
        return codes;
    }
}
