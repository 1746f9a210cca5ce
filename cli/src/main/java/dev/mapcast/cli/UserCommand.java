package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.codec.JsonLine;
import dev.mapcast.proto.v1.AuthUser;
import dev.mapcast.proto.v1.DeleteUserResponse;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code mapcast user add|list|delete|grant-role|revoke-role}: the users of a server with --auth. */
@Command(mixinStandardHelpOptions = true, name = "user",
        description = {"Adds, lists and deletes users, and gives them roles.",
            "A user has the rights of its roles (see 'mapcast role') and proves who it is with a token (see "
                    + "'mapcast token') or a TLS client certificate whose CN is its name.",
            "On a server with --auth this takes the root role; a server without --auth lets anyone do it, so "
                    + "that users can be set up before auth is turned on."},
        subcommands = {UserCommand.Add.class, UserCommand.Listing.class, UserCommand.Delete.class,
            UserCommand.GrantRole.class, UserCommand.RevokeRole.class},
        footer = {"", "Examples:",
            "  export MAPCAST_TOKEN=$(head -1 mapcast-data/root.token)",
            "  mapcast user add app",
            "  mapcast user grant-role app app-writer",
            "  mapcast user list --json",
            "  mapcast user delete app            # and revokes its tokens"})
final class UserCommand extends CommandGroup {

    @Command(mixinStandardHelpOptions = true, name = "add", sortOptions = false,
            description = {"Adds a user, with no role.", "--json prints the user: name, roles, created."})
    static final class Add extends AuthCommand {

        @Parameters(index = "0", paramLabel = "NAME", description = "The user's name.")
        String name;

        @Override
        int run(MapcastClient client) {
            AuthUser user = client.addUser(name);
            out.println(json ? json(user) : "added user " + Text.quoted(user.getName()));
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "list", sortOptions = false,
            description = {"Lists the users: name, when created, roles.",
                "--json prints one object per user: name, roles, created."})
    static final class Listing extends AuthCommand {

        @Override
        int run(MapcastClient client) {
            print(client.listUsers(), AuthCommand::json, new String[] {"NAME", "CREATED", "ROLES"},
                    u -> List.<String[]>of(new String[] {Text.oneLine(u.getName()), u.getCreatedUnixMs() == 0 ? "-"
                        : Text.time(u.getCreatedUnixMs()), roles(u.getRolesList())}));
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "delete", sortOptions = false,
            description = {"Deletes a user and revokes its tokens.",
                "--json prints {\"name\",\"tokens_revoked\"}."})
    static final class Delete extends AuthCommand {

        @Parameters(index = "0", paramLabel = "NAME", description = "The user's name.")
        String name;

        @Override
        int run(MapcastClient client) {
            DeleteUserResponse deleted = client.deleteUser(name);
            out.println(json ? new JsonLine().string("name", name).number("tokens_revoked", deleted.getTokensRevoked())
                    : "deleted user " + Text.quoted(name) + " (" + deleted.getTokensRevoked()
                    + (deleted.getTokensRevoked() == 1 ? " token" : " tokens") + " revoked)");
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "grant-role", sortOptions = false,
            description = {"Gives a user a role (and so the role's rights).",
                "--json prints the user: name, roles, created."})
    static final class GrantRole extends UserAndRole {

        @Override
        AuthUser change(MapcastClient client) {
            return client.grantRole(user, role);
        }

        @Override
        String done() {
            return "granted role " + Text.quoted(role) + " to user " + Text.quoted(user);
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "revoke-role", sortOptions = false,
            description = {"Takes a role from a user.", "--json prints the user: name, roles, created."})
    static final class RevokeRole extends UserAndRole {

        @Override
        AuthUser change(MapcastClient client) {
            return client.revokeRole(user, role);
        }

        @Override
        String done() {
            return "revoked role " + Text.quoted(role) + " from user " + Text.quoted(user);
        }
    }

    /** grant-role and revoke-role: they print what they did and the user's roles after. */
    abstract static class UserAndRole extends AuthCommand {

        @Parameters(index = "0", paramLabel = "USER", description = "The user's name.")
        String user;

        @Parameters(index = "1", paramLabel = "ROLE", description = "The role's name.")
        String role;

        /** The call; the user as it is after it. */
        abstract AuthUser change(MapcastClient client);

        /** What was done, for people. */
        abstract String done();

        @Override
        int run(MapcastClient client) {
            AuthUser changed = change(client);
            out.println(json ? json(changed) : done() + "; its roles: " + roles(changed.getRolesList()));
            return ExitCodes.OK;
        }
    }
}
