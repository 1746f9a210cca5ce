package dev.mapcast.cli;

import dev.mapcast.client.MapcastException;
import dev.mapcast.codec.JsonLine;
import dev.mapcast.proto.v1.AuthRole;
import dev.mapcast.proto.v1.AuthToken;
import dev.mapcast.proto.v1.AuthUser;
import dev.mapcast.proto.v1.Permission;
import dev.mapcast.proto.v1.Right;
import io.grpc.Status;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Option;
import picocli.CommandLine.TypeConversionException;

/**
 * A command of the users, roles and tokens of a server ({@code user}, {@code role}, {@code token},
 * {@code whoami}: the MapcastAuth service): a line a person reads per result, or with --json one
 * JSON object per result. Times are ISO-8601 UTC, to the second.
 */
abstract class AuthCommand extends ClientCommand {

    @Option(names = "--json", description = "Print one JSON object per result, one per line.")
    boolean json;

    /**
     * FAILED_PRECONDITION is no failed --if-... condition here (there are none) but the server
     * refusing the change, as for the built-in role root: exit 3, as other refusals.
     */
    @Override
    Failure failure(MapcastException e, String target) {
        if (e.code() == Status.Code.FAILED_PRECONDITION) {
            return new Failure(ExitCodes.REFUSED, "refused by the server: " + (e.description() == null
                    ? e.code().toString() : e.description()));
        }
        return super.failure(e, target);
    }

    /** {@code {"name","roles","created"}}. */
    static JsonLine json(AuthUser user) {
        return Text.withTime(new JsonLine().string("name", user.getName()).strings("roles", user.getRolesList()),
                "created", user.getCreatedUnixMs());
    }

    /** {@code {"name","admin","permissions":[{"pattern","right"}...]}}. */
    static JsonLine json(AuthRole role) {
        List<JsonLine> permissions = new ArrayList<>();
        for (Permission p : role.getPermissionsList()) {
            permissions.add(new JsonLine().string("pattern", p.getPattern()).string("right", right(p.getRight())));
        }
        return new JsonLine().string("name", role.getName()).bool("admin", role.getAdmin())
                .objects("permissions", permissions);
    }

    /** {@code {"id","user","created","expires"}}, expires null for a token that never does. */
    static JsonLine json(AuthToken token) {
        JsonLine line = new JsonLine().string("id", token.getId()).string("user", token.getUser());
        return Text.withTime(Text.withTime(line, "created", token.getCreatedUnixMs()), "expires",
                token.getExpiresUnixMs());
    }

    /** A right as the commands take it: read, write, readwrite. */
    static String right(Right right) {
        return switch (right) {
            case RIGHT_READ -> "read";
            case RIGHT_WRITE -> "write";
            case RIGHT_READWRITE -> "readwrite";
            case RIGHT_UNSPECIFIED -> "none";
            default -> "unknown(" + right.getNumber() + ")";
        };
    }

    /** A token's expiry for people: the time, or "never". */
    static String expiry(AuthToken token) {
        return token.getExpiresUnixMs() == 0 ? "never" : Text.time(token.getExpiresUnixMs());
    }

    /** A user's roles for people: "a, b", or "(none)". */
    static String roles(List<String> roles) {
        return roles.isEmpty() ? "(none)" : Text.oneLine(String.join(", ", roles));
    }

    /**
     * What a list command prints: with --json one object per item; else a table, {@code heading}
     * above the rows each item gives (a role: one per right).
     */
    <T> void print(List<T> items, Function<T, JsonLine> asJson, String[] heading, Function<T, List<String[]>> rows) {
        if (json) {
            items.forEach(item -> out.println(asJson.apply(item)));
            return;
        }
        List<String[]> table = new ArrayList<>();
        table.add(heading);
        items.forEach(item -> table.addAll(rows.apply(item)));
        table(out, table);
    }

    /** Rows as columns, left-aligned, two spaces apart; the first row is the heading. */
    static void table(PrintStream out, List<String[]> rows) {
        int[] width = new int[rows.get(0).length];
        for (String[] row : rows) {
            for (int i = 0; i < row.length; i++) {
                width[i] = Math.max(width[i], row[i].length());
            }
        }
        for (String[] row : rows) {
            StringBuilder line = new StringBuilder();
            for (int i = 0; i < row.length; i++) {
                line.append(row[i]);
                if (i < row.length - 1) {
                    line.append(" ".repeat(width[i] - row[i].length() + 2));
                }
            }
            out.println(line);
        }
    }

    /** read, write or readwrite, in any case. */
    static final class RightConverter implements ITypeConverter<Right> {
        @Override
        public Right convert(String value) {
            return switch (value.toLowerCase(Locale.ROOT)) {
                case "read" -> Right.RIGHT_READ;
                case "write" -> Right.RIGHT_WRITE;
                case "readwrite" -> Right.RIGHT_READWRITE;
                default -> throw new TypeConversionException("'" + value + "' (expected: read, write or readwrite)");
            };
        }
    }
}
