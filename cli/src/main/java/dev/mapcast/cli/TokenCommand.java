package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.proto.v1.AuthToken;
import dev.mapcast.proto.v1.CreateTokenResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code mapcast token create|revoke|list}: the bearer tokens users authenticate with. */
@Command(mixinStandardHelpOptions = true, name = "token",
        description = {"Creates, revokes and lists the tokens users authenticate with.",
            "A client sends its token with --token-file FILE, $MAPCAST_TOKEN or --token (the SDK: "
                    + "MapcastClient.Builder.token). The server keeps only a salted hash of a token's secret: "
                    + "'create' prints it once, and a lost one is revoked and replaced. A token is named by its "
                    + "id, which is no secret.",
            "On a server with --auth this takes the root role; a server without --auth lets anyone do it."},
        subcommands = {TokenCommand.Create.class, TokenCommand.Revoke.class, TokenCommand.Listing.class},
        footer = {"", "Examples:",
            "  mapcast token create app --ttl 720h > app.token   # the secret alone",
            "  mapcast put config region eu-west-1 --token-file app.token",
            "  TOKEN=$(mapcast token create app --ttl 1h)",
            "  mapcast token list app",
            "  mapcast token revoke 3fa2c1d4e5f60718"})
final class TokenCommand extends CommandGroup {

    @Command(mixinStandardHelpOptions = true, name = "create", sortOptions = false,
            description = {"Creates a token for a user and prints its secret: the only time it is shown.",
                "The secret alone goes to stdout (so that TOKEN=$(mapcast token create USER) or "
                        + "> FILE keeps it), its id and expiry to stderr. --json prints "
                        + "{\"id\",\"user\",\"created\",\"expires\",\"secret\"} (expires null: never)."})
    static final class Create extends AuthCommand {

        @Parameters(index = "0", paramLabel = "USER", description = "The user the token authenticates.")
        String user;

        @Option(names = "--ttl", paramLabel = "DURATION", converter = Converters.DurationConverter.class,
                description = "How long the token is valid, e.g. 1h, 720h (rounded up to whole seconds); "
                        + "default: it never expires.")
        Duration ttl;

        @Override
        int run(MapcastClient client) {
            CreateTokenResponse created = client.createToken(user, ttl);
            AuthToken token = created.getToken();
            if (json) {
                out.println(json(token).string("secret", created.getSecret()));
                return ExitCodes.OK;
            }
            out.println(created.getSecret());
            System.err.println("created token " + token.getId() + " for user " + Text.quoted(token.getUser())
                    + (token.getExpiresUnixMs() == 0 ? ", never expires" : ", expires " + expiry(token))
                    + "; its secret (above) is not shown again");
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "revoke", sortOptions = false,
            description = {"Revokes a token: the server refuses it from then on.",
                "--json prints the token: id, user, created, expires."})
    static final class Revoke extends AuthCommand {

        @Parameters(index = "0", paramLabel = "TOKEN-ID", description = "The token's id (as 'token list' shows it).")
        String id;

        @Override
        int run(MapcastClient client) {
            AuthToken token = client.revokeToken(id);
            out.println(json ? json(token) : "revoked token " + token.getId() + " of user "
                    + Text.quoted(token.getUser()));
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "list", sortOptions = false,
            description = {"Lists the tokens (never their secrets): id, user, created, expires.",
                "--json prints one object per token: id, user, created, expires (null: never)."})
    static final class Listing extends AuthCommand {

        @Parameters(index = "0", arity = "0..1", paramLabel = "USER", description = "Only this user's tokens.")
        String user;

        @Override
        int run(MapcastClient client) {
            print(client.listTokens(user == null ? "" : user), AuthCommand::json,
                    new String[] {"ID", "USER", "CREATED", "EXPIRES"}, t -> List.<String[]>of(new String[] {t.getId(),
                        Text.oneLine(t.getUser()), Text.time(t.getCreatedUnixMs()), expiry(t)}));
            return ExitCodes.OK;
        }
    }
}
