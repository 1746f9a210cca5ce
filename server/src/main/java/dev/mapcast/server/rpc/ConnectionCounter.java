package dev.mapcast.server.rpc;

import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The bound on client connections ({@link ConnectionLimits#maxConnections}): sits first in the
 * listening channel's pipeline, where each accepted connection passes as a message before Netty
 * sets it up, counts the open ones, and closes each one past the bound right there, before it
 * costs a TLS or HTTP/2 handshake.
 */
@ChannelHandler.Sharable
final class ConnectionCounter extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(ConnectionCounter.class);
    private static final long WARN_EVERY_NANOS = TimeUnit.SECONDS.toNanos(10);

    private final int max;
    private final AtomicInteger open = new AtomicInteger();
    private final AtomicLong refused = new AtomicLong();
    private volatile long warnedAt = System.nanoTime() - WARN_EVERY_NANOS;

    ConnectionCounter(int max) {
        this.max = max;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object message) {
        if (message instanceof Channel connection) {
            if (open.incrementAndGet() > max) {
                open.decrementAndGet();
                long total = refused.incrementAndGet();
                connection.unsafe().closeForcibly();
                long now = System.nanoTime();
                if (now - warnedAt >= WARN_EVERY_NANOS) {  // at most one line per 10 s under a flood
                    warnedAt = now;
                    log.warn("refused a connection from {}: {} connections open, the most allowed"
                            + " (--max-connections); {} refused so far", connection.remoteAddress(), max, total);
                }
                return;
            }
            connection.closeFuture().addListener(closed -> open.decrementAndGet());
        }
        ctx.fireChannelRead(message);
    }

    /** Client connections open now. */
    int open() {
        return open.get();
    }
}
