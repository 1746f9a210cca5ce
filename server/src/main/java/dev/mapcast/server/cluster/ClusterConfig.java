package dev.mapcast.server.cluster;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;
import java.util.regex.Pattern;

/**
 * What makes a server a cluster member: its id, the members' peer (Raft) addresses as given by
 * {@code --cluster}, whether it joins a running cluster, and how fast it elects and snapshots.
 *
 * @param nodeId this member's id, one of {@code members}' keys
 * @param members member id to peer address (HOST:PORT), in the order given
 * @param join whether this member joins a cluster that already runs (it was added with {@code
 *     mapcast cluster add}); otherwise all of {@code members} form a new cluster together
 * @param electionTimeout the shortest election timeout (the longest is twice it)
 * @param snapshotEntries how many log entries after the last snapshot trigger the next one
 */
public record ClusterConfig(String nodeId, Map<String, String> members, boolean join, Duration electionTimeout,
        long snapshotEntries) {

    private static final Pattern ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    static final Duration DEFAULT_ELECTION_TIMEOUT = Duration.ofMillis(300);
    static final long DEFAULT_SNAPSHOT_ENTRIES = 100_000;

    public ClusterConfig {
        members = Collections.unmodifiableMap(new LinkedHashMap<>(members));
        if (!members.containsKey(nodeId)) {
            throw new IllegalArgumentException("--node-id: '" + nodeId + "' is not in --cluster (members: "
                    + String.join(", ", members.keySet()) + ")");
        }
        if (electionTimeout.toMillis() < 50) {
            throw new IllegalArgumentException("election timeout: " + electionTimeout.toMillis()
                    + " ms (expected: at least 50 ms)");
        }
        if (snapshotEntries < 1) {
            throw new IllegalArgumentException("snapshot entries: " + snapshotEntries + " (expected: at least 1)");
        }
    }

    /**
     * Parses {@code --node-id} and {@code --cluster ID=HOST:PORT,...}; an exception naming the bad
     * value for an id that is not a plain name, an address that is not HOST:PORT, an id or address
     * given twice, or a node id missing from the list.
     */
    public static ClusterConfig parse(String nodeId, String cluster, boolean join) {
        if (nodeId == null || !ID.matcher(nodeId).matches()) {
            throw new IllegalArgumentException("--node-id: '" + nodeId + "' (expected: 1 to 64 letters, digits, '.',"
                    + " '_' or '-', starting with a letter or digit)");
        }
        Map<String, String> members = new LinkedHashMap<>();
        Map<String, String> byAddress = new LinkedHashMap<>();
        for (String part : cluster.split(",", -1)) {
            String item = part.trim();
            int eq = item.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("--cluster: '" + item + "' (expected: ID=HOST:PORT, members"
                        + " separated by commas)");
            }
            String id = item.substring(0, eq);
            String address = item.substring(eq + 1);
            if (!ID.matcher(id).matches()) {
                throw new IllegalArgumentException("--cluster: member id '" + id + "' (expected: 1 to 64 letters,"
                        + " digits, '.', '_' or '-', starting with a letter or digit)");
            }
            checkAddress(address, "--cluster: member " + id);
            if (members.put(id, address) != null) {
                throw new IllegalArgumentException("--cluster: member id '" + id + "' given twice (each member needs"
                        + " its own id)");
            }
            String other = byAddress.put(address, id);
            if (other != null) {
                throw new IllegalArgumentException("--cluster: members '" + other + "' and '" + id + "' have the same"
                        + " address " + address);
            }
        }
        return new ClusterConfig(nodeId, members, join, DEFAULT_ELECTION_TIMEOUT, DEFAULT_SNAPSHOT_ENTRIES);
    }

    /** Checks HOST:PORT (port 1 to 65535); the exception starts with {@code what}. */
    public static void checkAddress(String address, String what) {
        int colon = address.lastIndexOf(':');
        boolean ok = colon > 0;
        if (ok) {
            try {
                int port = Integer.parseInt(address.substring(colon + 1));
                ok = port >= 1 && port <= 65535;
            } catch (NumberFormatException e) {
                ok = false;
            }
        }
        if (!ok) {
            throw new IllegalArgumentException(what + ": address '" + address + "' (expected: HOST:PORT, port 1 to"
                    + " 65535)");
        }
    }

    public ClusterConfig withElectionTimeout(Duration timeout) {
        return new ClusterConfig(nodeId, members, join, timeout, snapshotEntries);
    }

    public ClusterConfig withSnapshotEntries(long entries) {
        return new ClusterConfig(nodeId, members, join, electionTimeout, entries);
    }

    /** This member's peer address. */
    public String peerAddress() {
        return members.get(nodeId);
    }

    /**
     * The Raft group id of a cluster formed by these members: derived from the sorted list, so that
     * members started with the same {@code --cluster} agree on it without talking, and members
     * started with different lists never form one group.
     */
    UUID initialGroupId() {
        StringBuilder key = new StringBuilder("mapcast-cluster");
        members.entrySet().stream().sorted(Map.Entry.comparingByKey())
                .forEach(e -> key.append('\n').append(e.getKey()).append('=').append(e.getValue()));
        return UUID.nameUUIDFromBytes(key.toString().getBytes(StandardCharsets.UTF_8));
    }

    /** The list as {@code --cluster} takes it. */
    public static String format(Map<String, String> members) {
        StringBuilder out = new StringBuilder();
        members.forEach((id, address) -> out.append(out.isEmpty() ? "" : ",").append(id).append('=').append(address));
        return out.toString();
    }
}
