package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.codec.JsonLine;
import dev.mapcast.proto.v1.ClusterMemberStatus;
import dev.mapcast.proto.v1.ClusterStatusResponse;
import dev.mapcast.server.cluster.ClusterConfig;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;

/** {@code mapcast cluster status|add|remove}: a cluster's members, asked of any member. */
@Command(mixinStandardHelpOptions = true, name = "cluster",
        description = {"Shows and changes the members of a cluster (servers started with --cluster).",
            "Any member answers; membership changes go to the leader, one at a time."},
        subcommands = {ClusterCommand.Status.class, ClusterCommand.Add.class, ClusterCommand.Remove.class},
        footer = {"", "Examples:",
            "  mapcast cluster status --server 127.0.0.1:50051",
            "  mapcast cluster add d=127.0.0.1:7004",
            "  mapcast serve --node-id d --join --cluster ...   # then start it",
            "  mapcast cluster remove d"})
final class ClusterCommand extends CommandGroup {

    @Command(mixinStandardHelpOptions = true, name = "status", sortOptions = false,
            description = {"Prints every member: id, role, term, commit and applied index, peer and client address.",
                "A member that does not answer within 2 s is UNREACHABLE, with why."})
    static final class Status extends ClientCommand {

        @Option(names = "--json", description = "Print one JSON object: leader, answered_by, and members (id, role, "
                + "term, commit_index, applied_index, peer_address, client_address, problem).")
        boolean json;

        @Override
        int run(MapcastClient client) {
            print(client.clusterStatus(), json, out);
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "add", sortOptions = false,
            description = {"Adds a member to the cluster, then waits until it has caught up.",
                "Start the new member with --join (its --cluster lists the members, itself included) "
                        + "before or just after running this; the change completes once it has caught up. "
                        + "Use a --timeout long enough for it (default 10s; e.g. --timeout 2m)."})
    static final class Add extends ClientCommand {

        @Parameters(index = "0", paramLabel = "ID=HOST:PORT", description = "The new member's id and peer address.")
        String member;

        @Option(names = "--json", description = "Print the cluster's status after the change as JSON.")
        boolean json;

        private String id;
        private String address;

        @Override
        void validate() {
            int eq = member.indexOf('=');
            if (eq <= 0) {
                throw new ParameterException(spec.commandLine(), "'" + member + "' (expected: ID=HOST:PORT)");
            }
            id = member.substring(0, eq);
            address = member.substring(eq + 1);
            try {
                ClusterConfig.parse(id, member, false);
            } catch (IllegalArgumentException e) {
                throw new ParameterException(spec.commandLine(), e.getMessage().replace("--cluster: ", "")
                        .replace("--node-id: ", "member id: "));
            }
        }

        @Override
        int run(MapcastClient client) {
            ClusterStatusResponse status = client.addMember(id, address);
            if (!json) {
                out.println("added member " + id + " at " + address);
            }
            print(status, json, out);
            return ExitCodes.OK;
        }
    }

    @Command(mixinStandardHelpOptions = true, name = "remove", sortOptions = false,
            description = {"Removes a member from the cluster; stop its process afterwards."})
    static final class Remove extends ClientCommand {

        @Parameters(index = "0", paramLabel = "ID", description = "The member's id.")
        String id;

        @Option(names = "--json", description = "Print the cluster's status after the change as JSON.")
        boolean json;

        @Override
        int run(MapcastClient client) {
            ClusterStatusResponse status = client.removeMember(id);
            if (!json) {
                out.println("removed member " + id);
            }
            print(status, json, out);
            return ExitCodes.OK;
        }
    }

    static void print(ClusterStatusResponse status, boolean json, java.io.PrintStream out) {
        if (json) {
            List<JsonLine> members = new ArrayList<>();
            for (ClusterMemberStatus m : status.getMembersList()) {
                JsonLine line = new JsonLine().string("id", m.getId()).string("role", m.getRole())
                        .number("term", m.getTerm()).number("commit_index", m.getCommitIndex())
                        .number("applied_index", m.getAppliedIndex()).string("peer_address", m.getPeerAddress())
                        .string("client_address", m.getClientAddress());
                if (!m.getProblem().isEmpty()) {
                    line.string("problem", m.getProblem());
                }
                members.add(line);
            }
            out.println(new JsonLine().string("leader", status.getLeader()).string("answered_by",
                    status.getAnsweredBy()).objects("members", members));
            return;
        }
        out.println("leader: " + (status.getLeader().isEmpty() ? "none known" : status.getLeader())
                + " (as member " + status.getAnsweredBy() + " sees it)");
        out.printf("%-12s %-11s %8s %12s %12s  %-22s %s%n", "ID", "ROLE", "TERM", "COMMIT", "APPLIED", "PEER",
                "CLIENT");
        for (ClusterMemberStatus m : status.getMembersList()) {
            out.printf("%-12s %-11s %8d %12d %12d  %-22s %s%n", m.getId(), m.getRole(), m.getTerm(), m.getCommitIndex(),
                    m.getAppliedIndex(), m.getPeerAddress(), m.getProblem().isEmpty() ? m.getClientAddress()
                    : "(" + m.getProblem() + ")");
        }
    }
}
