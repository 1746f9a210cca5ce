package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.codec.JsonLine;
import dev.mapcast.proto.v1.WhoAmIResponse;
import picocli.CommandLine.Command;

/** {@code mapcast whoami}: who the server takes this client to be. */
@Command(mixinStandardHelpOptions = true, name = "whoami", sortOptions = false,
        description = {"Prints who the server takes this client to be.",
            "The user, whether by token (its id) or by TLS client certificate, and the user's roles.",
            "Against a server without --auth it says so: every client may then do everything.",
            "--json prints {\"auth_enabled\",\"user\",\"via\",\"token_id\",\"roles\"}."},
        footer = {"", "Examples:",
            "  mapcast whoami --token-file app.token",
            "  MAPCAST_TOKEN=$(cat app.token) mapcast whoami --json"})
final class WhoAmICommand extends AuthCommand {

    @Override
    int run(MapcastClient client) {
        WhoAmIResponse me = client.whoAmI();
        if (json) {
            out.println(new JsonLine().bool("auth_enabled", me.getAuthEnabled()).string("user", me.getUser())
                    .string("via", me.getVia()).string("token_id", me.getTokenId()).strings("roles", me.getRolesList()));
        } else if (!me.getAuthEnabled()) {
            out.println("the server runs without --auth: every client may read and write every map");
        } else if (me.getUser().isEmpty()) {
            out.println("not authenticated");
        } else {
            out.println("user   " + Text.oneLine(me.getUser()));
            out.println("via    " + (me.getVia().equals("token") ? "token " + me.getTokenId()
                    : me.getVia().equals("certificate") ? "TLS client certificate" : Text.oneLine(me.getVia())));
            out.println("roles  " + roles(me.getRolesList()));
        }
        return ExitCodes.OK;
    }
}
