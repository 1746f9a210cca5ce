package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import java.nio.file.Path;
import java.time.Duration;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** The options of every client command: which server, and how long to wait for it. */
final class ClientOptions {

    static final String ENV = "MAPCAST_SERVER";

    @Spec(Spec.Target.MIXEE)
    CommandSpec mixee;

    @Option(names = "--server", paramLabel = "HOST:PORT[,HOST:PORT...]",
            description = "The server address, or a cluster's members separated by commas (the client fails over"
                    + " between them); default: $" + ENV + " if set, else " + MapcastClient.DEFAULT_TARGET + ".")
    String server;

    @Option(names = "--timeout", paramLabel = "DURATION", defaultValue = "10s",
            converter = Converters.DurationConverter.class,
            description = "How long to wait for the server's answer to each call, e.g. 500ms, 10s, 1m "
                    + "(default: ${DEFAULT-VALUE}).")
    Duration timeout;

    @Option(names = "--tls-ca", paramLabel = "FILE", defaultValue = "${env:MAPCAST_TLS_CA}",
            description = "Connect over TLS, checking the server's certificate against these CA certificates "
                    + "(PEM); default: $MAPCAST_TLS_CA.")
    Path tlsCa;

    @Option(names = "--tls",
            description = "Connect over TLS, checking the server's certificate against the JVM's trusted CAs "
                    + "(implied by --tls-ca).")
    boolean tls;

    @Option(names = "--tls-cert", paramLabel = "FILE", defaultValue = "${env:MAPCAST_TLS_CERT}",
            description = "A client certificate to present (PEM), for a server that requires one; "
                    + "default: $MAPCAST_TLS_CERT.")
    Path tlsCert;

    @Option(names = "--tls-key", paramLabel = "FILE", defaultValue = "${env:MAPCAST_TLS_KEY}",
            description = "The private key of --tls-cert (PEM, unencrypted PKCS#8); default: $MAPCAST_TLS_KEY.")
    Path tlsKey;

    boolean usesTls() {
        return tls || tlsCa != null || tlsCert != null;
    }

    /** The builder with the TLS options applied; a usage error if they do not go together. */
    MapcastClient.Builder tls(MapcastClient.Builder b) {
        if ((tlsCert == null) != (tlsKey == null)) {
            throw new ParameterException(mixee.commandLine(), tlsCert == null ? "--tls-key needs --tls-cert"
                    : "--tls-cert needs --tls-key (its private key)");
        }
        if (tlsCert != null) {
            return b.tls(tlsCa, tlsCert, tlsKey);
        }
        return tls || tlsCa != null ? b.tls(tlsCa) : b;
    }

    /** --server, else $MAPCAST_SERVER, else the default; each member checked, so a typo is a usage error. */
    String target() {
        String env = System.getenv(ENV);
        String source;
        String target;
        if (server != null) {
            source = "--server";
            target = server;
        } else if (env != null && !env.isBlank()) {
            source = ENV;
            target = env.trim();
        } else {
            return MapcastClient.DEFAULT_TARGET;
        }
        // A gRPC target with a scheme (dns:///host:port, unix:/path) goes through as it is.
        if (target.contains(":/")) {
            return target;
        }
        String[] members = target.split(",", -1);
        for (String member : members) {
            if (HostPort.parseOrNull(member.strip(), 1) == null) {
                throw new ParameterException(mixee.commandLine(), source + ": '" + member.strip() + "'"
                        + (members.length > 1 ? " in '" + target + "'" : "") + " (" + HostPort.EXPECTED
                        + "; port 1 to 65535" + (members.length > 1 ? "; members separated by commas" : "") + ")");
            }
        }
        return target;
    }
}
