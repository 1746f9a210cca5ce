package dev.mapcast.server.rpc;

import io.grpc.netty.NettyServerBuilder;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

/**
 * What one client connection may hold and do, and when the server closes it: the defences
 * against a client that opens streams without end, pings in a loop, or goes away without closing.
 *
 * @param maxStreamsPerConnection calls open at once on one connection (HTTP/2's
 *     MAX_CONCURRENT_STREAMS): a client's next call waits for one to end. The SDK opens one Watch
 *     per replica on its connection.
 * @param minClientPingInterval how often a client may ping (a keepalive), with or without calls in
 *     flight, as etcd's {@code --grpc-keepalive-min-time}; a client pinging faster gets GOAWAY
 *     ENHANCE_YOUR_CALM ("too_many_pings"). Pings that gRPC clients send as flow-control probes
 *     while data flows are not counted against it.
 * @param idleTimeout a connection with no call open for this long is closed with GOAWAY (the
 *     client's channel reconnects when next used)
 * @param keepAliveTime after this long without a frame from the client the server pings it,
 *     and closes the connection if no answer comes within {@code keepAliveTimeout}: a client that
 *     vanished (a half-open connection) does not hold its streams and queues for good
 * @param handshakeTimeout time from the TCP connection to a complete TLS and HTTP/2 handshake
 * @param maxConnections client connections open at once; the server closes each one past it as
 *     soon as it is accepted (the client sees UNAVAILABLE and retries), so that a client opening
 *     connections without end runs the server out of neither file descriptors nor memory
 */
public record ConnectionLimits(int maxStreamsPerConnection, Duration minClientPingInterval, Duration idleTimeout,
        Duration keepAliveTime, Duration keepAliveTimeout, Duration handshakeTimeout, int maxConnections) {

    public static final ConnectionLimits DEFAULTS = new ConnectionLimits(1000, Duration.ofSeconds(5),
            Duration.ofMinutes(30), Duration.ofMinutes(1), Duration.ofSeconds(20), Duration.ofSeconds(10), 10_000);

    public ConnectionLimits {
        if (maxStreamsPerConnection < 1) {
            throw new IllegalArgumentException("maxStreamsPerConnection: " + maxStreamsPerConnection
                    + " (expected: at least 1)");
        }
        positive("minClientPingInterval", minClientPingInterval);
        positive("idleTimeout", idleTimeout);
        positive("keepAliveTime", keepAliveTime);
        positive("keepAliveTimeout", keepAliveTimeout);
        positive("handshakeTimeout", handshakeTimeout);
        if (maxConnections < 1) {
            throw new IllegalArgumentException("maxConnections: " + maxConnections + " (expected: at least 1)");
        }
    }

    public ConnectionLimits withMaxStreamsPerConnection(int streams) {
        return new ConnectionLimits(streams, minClientPingInterval, idleTimeout, keepAliveTime, keepAliveTimeout,
                handshakeTimeout, maxConnections);
    }

    public ConnectionLimits withMinClientPingInterval(Duration interval) {
        return new ConnectionLimits(maxStreamsPerConnection, interval, idleTimeout, keepAliveTime, keepAliveTimeout,
                handshakeTimeout, maxConnections);
    }

    public ConnectionLimits withIdleTimeout(Duration idle) {
        return new ConnectionLimits(maxStreamsPerConnection, minClientPingInterval, idle, keepAliveTime,
                keepAliveTimeout, handshakeTimeout, maxConnections);
    }

    public ConnectionLimits withKeepAlive(Duration time, Duration timeout) {
        return new ConnectionLimits(maxStreamsPerConnection, minClientPingInterval, idleTimeout, time, timeout,
                handshakeTimeout, maxConnections);
    }

    public ConnectionLimits withHandshakeTimeout(Duration timeout) {
        return new ConnectionLimits(maxStreamsPerConnection, minClientPingInterval, idleTimeout, keepAliveTime,
                keepAliveTimeout, timeout, maxConnections);
    }

    public ConnectionLimits withMaxConnections(int connections) {
        return new ConnectionLimits(maxStreamsPerConnection, minClientPingInterval, idleTimeout, keepAliveTime,
                keepAliveTimeout, handshakeTimeout, connections);
    }

    /** Sets these limits on a server being built (the bound on connections: {@link ConnectionCounter}). */
    public NettyServerBuilder applyTo(NettyServerBuilder b) {
        return b.maxConcurrentCallsPerConnection(maxStreamsPerConnection)
                .permitKeepAliveTime(minClientPingInterval.toNanos(), TimeUnit.NANOSECONDS)
                .permitKeepAliveWithoutCalls(true)
                .maxConnectionIdle(idleTimeout.toNanos(), TimeUnit.NANOSECONDS)
                .keepAliveTime(keepAliveTime.toNanos(), TimeUnit.NANOSECONDS)
                .keepAliveTimeout(keepAliveTimeout.toNanos(), TimeUnit.NANOSECONDS)
                .handshakeTimeout(handshakeTimeout.toNanos(), TimeUnit.NANOSECONDS);
    }

    private static void positive(String name, Duration d) {
        Objects.requireNonNull(d, name);
        if (d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException(name + ": " + d + " (expected: positive)");
        }
    }
}
