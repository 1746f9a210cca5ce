package dev.mapcast.cli;

import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** An address as {@code HOST:PORT}; an IPv6 host is written in brackets: {@code [::1]:50051}. */
record HostPort(String host, int port) {

    static final String EXPECTED = "expected: HOST:PORT, e.g. 127.0.0.1:50051";

    /** The address, or null if {@code text} is not HOST:PORT with a port in [minPort, 65535]. */
    static HostPort parseOrNull(String text, int minPort) {
        int colon = text.lastIndexOf(':');
        if (colon <= 0 || colon == text.length() - 1) {
            return null;
        }
        String host = text.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        } else if (host.indexOf(':') >= 0) {
            return null;  // an IPv6 address without brackets: where does the port start?
        }
        int port;
        try {
            port = Integer.parseInt(text.substring(colon + 1));
        } catch (NumberFormatException e) {
            return null;
        }
        if (host.isEmpty() || port < minPort || port > 65535) {
            return null;
        }
        return new HostPort(host, port);
    }

    @Override
    public String toString() {
        return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
    }

    /** The host of {@code --listen :PORT}: every interface (as Go's and etcd's {@code :PORT}). */
    static final String EVERY_INTERFACE = "0.0.0.0";

    /** For --listen: port 0 picks a free port; {@code :PORT} (no host) listens on every interface. */
    static final class ListenConverter implements ITypeConverter<HostPort> {
        @Override
        public HostPort convert(String text) {
            HostPort address = text.startsWith(":") && text.indexOf(':', 1) < 0
                    ? parseOrNull(EVERY_INTERFACE + text, 0) : parseOrNull(text, 0);
            if (address == null) {
                throw new TypeConversionException("'" + text + "' (" + EXPECTED + ", [::1]:50051 or :50051 for every "
                        + "interface; port 0 to 65535)");
            }
            return address;
        }
    }
}
