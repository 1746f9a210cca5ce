package dev.mapcast.cli.cluster;

import dev.mapcast.cli.cluster.ClusterProcesses.Placement;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One Linux network namespace per cluster member, each a host of its own that the test (in the
 * root namespace) reaches, and that a test can cut off from the others while it still reaches it.
 *
 * <pre>
 *   namespace 1                root namespace (the test)                 namespace 2 ...
 *   c1 10.199.B+1.2 ---veth--- h1 10.199.B+1.1   h2 10.199.B+2.1 ---veth--- c2 10.199.B+2.2
 *                              (forwards between h1, h2, h3 only)
 * </pre>
 *
 * Each namespace has a veth pair to the root namespace, a /24 of its own and a route to
 * 10.199.0.0/16 through the root side; the root namespace forwards between the veths (forwarding
 * is switched on for these interfaces only, the machine's other interfaces are untouched). Members
 * listen on their namespace's address, so member to member traffic is forwarded by the root
 * namespace, and the test's own traffic is local to it.
 *
 * <p>{@link #isolate} cuts a namespace off from the others with policy rules in the root namespace
 * ({@code ip rule ... iif hN blackhole}): packets forwarded from or to it are dropped silently, as
 * a partitioned network does (no reset, no ICMP: peers see timeouts), while packets between it and
 * the test are delivered (they are local, and the rule that looks up local addresses comes first).
 * No iptables or nftables needed: only iproute2.
 *
 * <p>Names carry the pid and a counter (tests running at once on one machine do not collide); B is
 * chosen so that no address of the root namespace is in the three /24s. {@link #close} deletes the
 * rules, links and namespaces, whatever happened.
 */
final class NetworkNamespaces implements AutoCloseable {

    private static final AtomicInteger SEQUENCE = new AtomicInteger();
    /** After the rule that looks up local addresses (0), before the main table's (32766). */
    private static final int RULE_PREFERENCE = 20_000;

    private final String prefix;
    private final List<String> namespaces = new ArrayList<>();
    private final List<String> rootLinks = new ArrayList<>();
    private final List<String> hosts = new ArrayList<>();
    private final List<List<String>> rules = new ArrayList<>();

    private NetworkNamespaces(String prefix) {
        this.prefix = prefix;
    }

    /**
     * Why namespaces cannot be made here, or null if they can: not root, no {@code ip} command, or
     * the kernel refuses a namespace or a veth pair (tried with a throwaway one).
     */
    static String whyUnavailable() {
        try {
            String uid = Files.readAllLines(Path.of("/proc/self/status")).stream().filter(l -> l.startsWith("Uid:"))
                    .map(l -> l.split("\\s+")[1]).findFirst().orElse("?");
            if (!uid.equals("0")) {
                return "network namespaces need root (this test runs as uid " + uid + ")";
            }
        } catch (IOException e) {
            return "cannot tell the user id (/proc/self/status: " + e.getMessage() + ")";
        }
        String probe = "mcprobe" + ProcessHandle.current().pid() + "x" + SEQUENCE.incrementAndGet();
        try {
            run("ip", "netns", "add", probe);
        } catch (IOException e) {
            return "cannot create a network namespace: " + e.getMessage();
        }
        try {
            run("ip", "-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1");
            return null;
        } catch (IOException e) {
            return "cannot create a veth pair: " + e.getMessage();
        } finally {
            quietly("ip", "netns", "del", probe);
        }
    }

    /** Creates {@code count} namespaces (at most 3), linked as the class says. */
    static NetworkNamespaces create(int count) throws IOException {
        if (count < 1 || count > 3) {
            throw new IllegalArgumentException("count: " + count + " (expected: 1 to 3)");
        }
        String prefix = "mc" + ProcessHandle.current().pid() + "x" + SEQUENCE.incrementAndGet();
        NetworkNamespaces n = new NetworkNamespaces(prefix);
        try {
            int base = n.freeBase(count);
            for (int i = 1; i <= count; i++) {
                n.add(i, "10.199." + (base + i));
            }
        } catch (IOException | RuntimeException e) {
            n.close();
            throw e;
        }
        return n;
    }

    /** A third octet B such that no root address is in 10.199.B+1.0/24 ... 10.199.B+count.0/24. */
    private int freeBase(int count) throws IOException {
        String used = run("ip", "-o", "-4", "addr", "show");
        int start = (int) (ProcessHandle.current().pid() % 60);
        for (int k = 0; k < 60; k++) {
            int base = 4 * ((start + k) % 60);
            boolean free = true;
            for (int i = 1; i <= count; i++) {
                free &= !used.contains(" 10.199." + (base + i) + ".");
            }
            if (free) {
                return base;
            }
        }
        throw new IOException("no free 10.199.x.0/24 left in the root namespace:\n" + used);
    }

    private void add(int i, String subnet) throws IOException {
        String ns = prefix + "n" + i;
        String root = prefix + "h" + i;
        String inside = prefix + "c" + i;
        run("ip", "netns", "add", ns);
        namespaces.add(ns);
        run("ip", "link", "add", root, "type", "veth", "peer", "name", inside);
        rootLinks.add(root);
        run("ip", "link", "set", inside, "netns", ns);
        run("ip", "addr", "add", subnet + ".1/24", "dev", root);
        run("ip", "link", "set", root, "up");
        Files.writeString(Path.of("/proc/sys/net/ipv4/conf", root, "forwarding"), "1");
        run("ip", "-n", ns, "link", "set", "lo", "up");
        run("ip", "-n", ns, "addr", "add", subnet + ".2/24", "dev", inside);
        run("ip", "-n", ns, "link", "set", inside, "up");
        run("ip", "-n", ns, "route", "add", "10.199.0.0/16", "via", subnet + ".1");
        hosts.add(subnet + ".2");
    }

    /** Where member {@code i} (0-based) runs: its namespace's address, under {@code ip netns exec}. */
    Placement placement(int i) {
        return new Placement(hosts.get(i), List.of("ip", "netns", "exec", namespaces.get(i)));
    }

    /** Cuts namespace {@code i} (0-based) off from the others; the test still reaches every one. */
    void isolate(int i) throws IOException {
        addRule("iif", rootLinks.get(i), "blackhole");
        for (int j = 0; j < rootLinks.size(); j++) {
            if (j != i) {
                addRule("iif", rootLinks.get(j), "to", hosts.get(i) + "/32", "blackhole");
            }
        }
    }

    /** Undoes every {@link #isolate}. */
    void heal() throws IOException {
        IOException failure = null;
        while (!rules.isEmpty()) {
            List<String> rule = rules.remove(rules.size() - 1);
            try {
                run(command("ip", "rule", "del", rule));
            } catch (IOException e) {
                failure = e;
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    private void addRule(String... selector) throws IOException {
        List<String> rule = new ArrayList<>(List.of("pref", Integer.toString(RULE_PREFERENCE)));
        rule.addAll(List.of(selector));
        run(command("ip", "rule", "add", rule));
        rules.add(rule);
    }

    private static String[] command(String a, String b, String c, List<String> rest) {
        List<String> all = new ArrayList<>(List.of(a, b, c));
        all.addAll(rest);
        return all.toArray(String[]::new);
    }

    /** Deletes the rules, links and namespaces made (best effort: each is tried). */
    @Override
    public void close() {
        for (List<String> rule : rules) {
            quietly(command("ip", "rule", "del", rule));
        }
        rules.clear();
        for (String link : rootLinks) {
            quietly("ip", "link", "del", link);  // deletes both ends of the pair
        }
        for (String ns : namespaces) {
            quietly("ip", "netns", "del", ns);
        }
    }

    private static void quietly(String... command) {
        try {
            run(command);
        } catch (IOException e) {
            System.err.println("NetworkNamespaces cleanup: " + e.getMessage());
        }
    }

    /** Runs a command, returns its output; an exception quoting it if it fails. */
    private static String run(String... command) throws IOException {
        Process p;
        try {
            p = new ProcessBuilder(command).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new IOException(String.join(" ", command) + ": " + e.getMessage(), e);
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        try {
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", command) + ": no exit within 30 s");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(String.join(" ", command) + ": interrupted", e);
        }
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", command) + " (exit " + p.exitValue() + "): " + out.strip());
        }
        return out;
    }
}
