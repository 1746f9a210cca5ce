package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.codec.JsonLine;
import dev.mapcast.proto.v1.AuthRole;
import dev.mapcast.proto.v1.DeleteRoleResponse;
import dev.mapcast.proto.v1.Permission;
import dev.mapcast.proto.v1.Right;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code mapcast role add|list|delete|grant|revoke}: roles and their rights on maps. */
@Command(mixinStandardHelpOptions = true, name = "role",
        description = {"Adds, lists and deletes roles, and gives them rights on maps.",
            "A right is read (Get, Snapshot, Watch, and the map in 'ls'), write (Write, Restore, Compact, map "
                    + "delete) or readwrite, on a map name or on a prefix ending in * (app/prod/*; * alone is "
                    + "every map). Users get rights through roles (see 'mapcast user grant-role').",
            "The built-in role root has readwrite on * and manages users, roles, tokens and the cluster; it "
                    + "cannot be changed.",
            "On a server with --auth this takes the root role; a server without --auth lets anyone do it."},
        subcommands = {RoleCommand.Add.class, RoleCommand.Listing.class, RoleCommand.Delete.class,
            RoleCommand.Grant.class, RoleCommand.Revoke.class},
        footer = {"", "Examples:",
            "  mapcast role add app-writer",
            "  mapcast role grant app-writer readwrite 'app/prod/*'",
            "  mapcast role grant app-writer read config",
            "  mapcast role revoke app-writer config",
            "  mapcast role list"})
final class RoleCommand extends CommandGroup {

    @Command(mixinStandardHelpOptions = true, name = "add", sortOptions = false,
            description = {"Adds a role, with no right.", "--json prints the role: name, admin, permissions."})
    static final class Add extends AuthCommand {

        @Parameters(index = "0", paramLabel = "ROLE", description = "The role's name.")
        String name;

        @Override
        int run(MapcastClient client) {
            AuthRole role = client.addRole(name);
            out.println(json ? json(role) : "added role " + Text.quoted(role.getName()));
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "list", sortOptions = false,
            description = {"Lists the roles and their rights, a line per right (root: admin, and readwrite on *).",
                "--json prints one object per role: name, admin, and permissions, each a pattern and a right."})
    static final class Listing extends AuthCommand {

        @Override
        int run(MapcastClient client) {
            print(client.listRoles(), AuthCommand::json, new String[] {"ROLE", "RIGHT", "PATTERN"}, r -> {
                String name = Text.oneLine(r.getName()) + (r.getAdmin() ? " (admin)" : "");
                List<String[]> rows = new ArrayList<>();
                for (Permission p : r.getPermissionsList()) {
                    rows.add(new String[] {name, right(p.getRight()), Text.oneLine(p.getPattern())});
                }
                return rows.isEmpty() ? List.<String[]>of(new String[] {name, "-", "-"}) : rows;
            });
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "delete", sortOptions = false,
            description = {"Deletes a role and takes it from every user that has it.",
                "--json prints {\"name\",\"users_changed\"}."})
    static final class Delete extends AuthCommand {

        @Parameters(index = "0", paramLabel = "ROLE", description = "The role's name.")
        String name;

        @Override
        int run(MapcastClient client) {
            DeleteRoleResponse deleted = client.deleteRole(name);
            int users = deleted.getUsersChanged();
            out.println(json ? new JsonLine().string("name", name).number("users_changed", users)
                    : "deleted role " + Text.quoted(name) + " (taken from " + users + (users == 1 ? " user)" : " users)"));
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "grant", sortOptions = false,
            description = {"Gives a role a right on the maps a pattern names; replaces the right it had on that "
                    + "same pattern.",
                "Quote a pattern with * in a shell ('app/*'). --json prints the role: name, admin, permissions."})
    static final class Grant extends AuthCommand {

        @Parameters(index = "0", paramLabel = "ROLE", description = "The role's name.")
        String role;

        @Parameters(index = "1", paramLabel = "RIGHT", converter = RightConverter.class,
                description = "read, write or readwrite (any case).")
        Right right;

        @Parameters(index = "2", paramLabel = "PATTERN",
                description = "A map name, or a prefix ending in * (app/prod/*); * alone: every map.")
        String pattern;

        @Override
        int run(MapcastClient client) {
            AuthRole changed = client.grantPermission(role, right, pattern);
            out.println(json ? json(changed) : "granted " + right(right) + " on " + Text.quoted(pattern) + " to role "
                    + Text.quoted(role));
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "revoke", sortOptions = false,
            description = {"Takes from a role its right on a pattern (the pattern as granted).",
                "--json prints the role: name, admin, permissions."})
    static final class Revoke extends AuthCommand {

        @Parameters(index = "0", paramLabel = "ROLE", description = "The role's name.")
        String role;

        @Parameters(index = "1", paramLabel = "PATTERN", description = "The pattern, as granted.")
        String pattern;

        @Override
        int run(MapcastClient client) {
            AuthRole changed = client.revokePermission(role, pattern);
            out.println(json ? json(changed) : "revoked the right of role " + Text.quoted(role) + " on "
                    + Text.quoted(pattern));
            return ExitCodes.OK;
        }
    }
}
