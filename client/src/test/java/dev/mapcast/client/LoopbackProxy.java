package dev.mapcast.client;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A TCP forwarder on loopback between a client and a server, which a test can cut (every
 * connection dropped, nothing accepted) and restore on the same port: a network partition of one
 * client, with the server and other clients unaffected. It can also limit the bandwidth from the
 * server to the client: a slow link.
 */
final class LoopbackProxy implements AutoCloseable {

    private final int targetPort;
    private final long serverToClientBytesPerSecond;
    private final List<Socket> sockets = new CopyOnWriteArrayList<>();
    private volatile ServerSocket listener;
    private int port;

    LoopbackProxy(int targetPort) throws IOException {
        this(targetPort, Long.MAX_VALUE);
    }

    LoopbackProxy(int targetPort, long serverToClientBytesPerSecond) throws IOException {
        this.targetPort = targetPort;
        this.serverToClientBytesPerSecond = serverToClientBytesPerSecond;
        open(0);
    }

    int port() {
        return port;
    }

    /** Drops every connection and stops accepting. */
    synchronized void cut() throws IOException {
        listener.close();
        for (Socket s : sockets) {
            s.close();
        }
        sockets.clear();
    }

    /** Accepts again on the same port. */
    synchronized void restore() throws IOException {
        open(port);
    }

    @Override
    public void close() throws IOException {
        cut();
    }

    private void open(int onPort) throws IOException {
        ServerSocket s = new ServerSocket();
        s.setReuseAddress(true);
        s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), onPort));
        listener = s;
        port = s.getLocalPort();
        Thread accept = new Thread(() -> acceptLoop(s), "proxy-accept");
        accept.setDaemon(true);
        accept.start();
    }

    private void acceptLoop(ServerSocket s) {
        while (!s.isClosed()) {
            try {
                Socket client = s.accept();
                Socket server = new Socket(InetAddress.getLoopbackAddress(), targetPort);
                sockets.add(client);
                sockets.add(server);
                pump(client, server, Long.MAX_VALUE);
                pump(server, client, serverToClientBytesPerSecond);
            } catch (IOException e) {
                return;  // closed by cut()
            }
        }
    }

    private void pump(Socket from, Socket to, long bytesPerSecond) {
        Thread t = new Thread(() -> {
            byte[] buffer = new byte[bytesPerSecond == Long.MAX_VALUE ? 64 * 1024 : 4 * 1024];
            try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
                for (int n; (n = in.read(buffer)) >= 0; ) {
                    out.write(buffer, 0, n);
                    if (bytesPerSecond != Long.MAX_VALUE) {
                        Thread.sleep(n * 1000L / bytesPerSecond);
                    }
                }
            } catch (IOException | InterruptedException e) {
                // connection cut
            } finally {
                try {
                    from.close();
                    to.close();
                } catch (IOException ignored) {
                    // already closed
                }
            }
        }, "proxy-pump");
        t.setDaemon(true);
        t.start();
    }
}
