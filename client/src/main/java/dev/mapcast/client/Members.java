package dev.mapcast.client;

import io.grpc.CallCredentials;
import io.grpc.CallOptions;
import io.grpc.ChannelCredentials;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.netty.NettyChannelBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The servers a client talks to: one channel per member, and the current member, where calls go.
 * A failed member moves the current one to the next, round the list; every caller moves it past
 * the member it saw fail, so two callers that saw the same failure move it once.
 *
 * <p>Every call the client makes starts in {@link #newCall}, which adds the client's call
 * credentials (its token): no stream, member or retry goes without them.
 */
final class Members {

    /** A fixed window: snapshots stream at full speed from the start, and no BDP-probing PING goes out with every read. */
    private static final int FLOW_CONTROL_WINDOW = 4 * 1024 * 1024;

    private final List<String> targets;
    private final List<ManagedChannel> channels;
    private final boolean owned;
    /** Added to every call; null: none. */
    private final CallCredentials credentials;
    private final AtomicInteger current = new AtomicInteger();

    private Members(List<String> targets, List<ManagedChannel> channels, boolean owned, CallCredentials credentials) {
        this.targets = targets;
        this.channels = channels;
        this.owned = owned;
        this.credentials = credentials;
    }

    /**
     * One channel of the caller's, which {@link #close()} leaves open; {@code credentials} (null:
     * none) go with every call.
     */
    static Members of(ManagedChannel channel, CallCredentials credentials) {
        return new Members(List.of(channel.authority()), List.of(channel), false, credentials);
    }

    /**
     * A channel per member of {@code target} (see {@link #parse}); plaintext if {@code tls} is null;
     * {@code credentials} (null: none) go with every call.
     */
    static Members connect(String target, int maxInboundMessageBytes, ChannelCredentials tls,
            CallCredentials credentials) {
        List<String> targets = parse(target);
        List<ManagedChannel> channels = new ArrayList<>(targets.size());
        for (String t : targets) {
            NettyChannelBuilder b = tls == null ? NettyChannelBuilder.forTarget(t).usePlaintext()
                    : NettyChannelBuilder.forTarget(t, tls);
            channels.add(b.maxInboundMessageSize(maxInboundMessageBytes).flowControlWindow(FLOW_CONTROL_WINDOW).build());
        }
        return new Members(targets, List.copyOf(channels), true, credentials);
    }

    /**
     * The members of {@code target}: a gRPC target with a scheme ({@code dns:///host:port},
     * {@code unix:/path}) is one member, as it is; otherwise commas separate members.
     */
    static List<String> parse(String target) {
        if (target.contains(":/")) {
            return List.of(target);
        }
        List<String> out = new ArrayList<>();
        for (String entry : target.split(",", -1)) {
            String trimmed = entry.strip();
            if (trimmed.isEmpty()) {
                throw new IllegalArgumentException("target: '" + target + "' (expected: HOST:PORT or a comma-separated"
                        + " list of them, with no empty entry)");
            }
            out.add(trimmed);
        }
        return List.copyOf(out);
    }

    int size() {
        return channels.size();
    }

    /** The member calls go to now. */
    int current() {
        return current.get();
    }

    /** A call to {@code member}, with the client's credentials. */
    <Q, R> ClientCall<Q, R> newCall(int member, MethodDescriptor<Q, R> method, CallOptions options) {
        return channels.get(member).newCall(method, credentials == null ? options
                : options.withCallCredentials(credentials));
    }

    /** The member's address, for messages. */
    String target(int member) {
        return targets.get(member);
    }

    /** {@code member} failed: the next one becomes current, unless another caller moved on already. */
    void failed(int member) {
        current.compareAndSet(member, (member + 1) % channels.size());
    }

    /** Shuts down the channels this made; waits a little for them. */
    void close() {
        if (!owned) {
            return;
        }
        for (ManagedChannel c : channels) {
            c.shutdownNow();
        }
        try {
            for (ManagedChannel c : channels) {
                c.awaitTermination(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
