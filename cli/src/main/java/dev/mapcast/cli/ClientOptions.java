package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** The options of every client command: which server, how long to wait for it, and who the client is. */
final class ClientOptions {

    static final String ENV = "MAPCAST_SERVER";
    static final String TOKEN_ENV = "MAPCAST_TOKEN";

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

    @Option(names = "--token", paramLabel = "TOKEN", defaultValue = "${env:" + TOKEN_ENV + "}",
            description = "Authenticate with this token (the secret 'mapcast token create' printed), for a server "
                    + "started with --auth; default: $" + TOKEN_ENV + ". On the command line it shows in ps and in "
                    + "shell history: prefer $" + TOKEN_ENV + " or --token-file. Over plaintext anyone on the "
                    + "network path can read it: use TLS across a network.")
    String token;

    @Option(names = "--token-file", paramLabel = "FILE",
            description = "Read the token from the first line of FILE (keep it readable by you alone); excludes "
                    + "--token, and is taken before $" + TOKEN_ENV + ".")
    Path tokenFile;

    /** Where the token sent came from ("--token", "--token-file FILE", "$MAPCAST_TOKEN"), once applied; null: none. */
    private String tokenSource;

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

    /**
     * The builder with the token applied: --token-file's first line, else --token, else
     * $MAPCAST_TOKEN (ignored when blank); a usage error for both options, a file that cannot be
     * read, or a token that cannot be sent (the message names where it came from, never the token).
     */
    MapcastClient.Builder token(MapcastClient.Builder b) {
        boolean given = mixee.commandLine().getParseResult().hasMatchedOption("--token");
        String secret;
        if (tokenFile != null) {
            if (given) {
                throw new ParameterException(mixee.commandLine(), "--token and --token-file exclude each other");
            }
            tokenSource = "--token-file " + tokenFile;
            secret = firstLine(tokenFile);
        } else if (given) {
            tokenSource = "--token";
            secret = token == null ? "" : token.strip();
        } else if (token != null && !token.isBlank()) {
            tokenSource = "$" + TOKEN_ENV;
            secret = token.strip();
        } else {
            return b;
        }
        try {
            return b.token(secret);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(mixee.commandLine(), tokenSource + ": " + e.getMessage().replaceFirst(
                    "^token: ", ""));
        }
    }

    /** Where the token sent came from, for messages: "--token", "--token-file FILE" or "$MAPCAST_TOKEN"; null if none. */
    String tokenSource() {
        return tokenSource;
    }

    private String firstLine(Path file) {
        String line;
        try (BufferedReader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            line = r.readLine();
        } catch (NoSuchFileException e) {
            throw new ParameterException(mixee.commandLine(), "--token-file " + file + ": no such file");
        } catch (AccessDeniedException e) {
            throw new ParameterException(mixee.commandLine(), "--token-file " + file + ": permission denied");
        } catch (IOException e) {
            throw new ParameterException(mixee.commandLine(), "--token-file " + file + ": cannot be read (" + e + ")");
        }
        if (line == null || line.isBlank()) {
            throw new ParameterException(mixee.commandLine(), "--token-file " + file + ": its first line is empty "
                    + "(expected: the token's secret)");
        }
        return line.strip();
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
