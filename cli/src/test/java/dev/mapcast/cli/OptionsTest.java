package dev.mapcast.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.codec.JsonLine;
import dev.mapcast.server.MapcastServer;
import dev.mapcast.server.rpc.ConnectionLimits;
import dev.mapcast.server.security.TlsFiles;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.TypeConversionException;

/** Option parsing, in process: serve's defaults, and the converters of sizes, durations and addresses. */
class OptionsTest {

    /**
     * `mapcast serve` states its defaults in --help, so they are copies of the server's; this keeps
     * them equal. The server keeps its defaults package-private, hence the reflection.
     */
    @Test
    void serveDefaultsAreTheServersDefaults() throws ReflectiveOperationException {
        ServeCommand serve = new ServeCommand();
        new CommandLine(serve).parseArgs();
        Class<?> limitsClass = Class.forName("dev.mapcast.server.map.Limits");
        Field defaultsField = limitsClass.getDeclaredField("DEFAULTS");
        defaultsField.setAccessible(true);
        Object defaults = defaultsField.get(null);

        assertEquals(number(defaults, "maxKeyBytes"), serve.maxKeyBytes);
        assertEquals(number(defaults, "maxValueBytes"), serve.maxValueBytes);
        assertEquals(number(defaults, "maxWriteBytes"), serve.maxWriteBytes);
        assertEquals(number(defaults, "maxMaps"), serve.maxMaps);
        assertEquals(number(defaults, "maxEntriesPerMap"), serve.maxEntriesPerMap);
        assertEquals(number(defaults, "historyDeltas"), serve.historyDeltas);
        assertEquals(number(defaults, "historyBytes"), serve.historyBytes);
        assertEquals(number(defaults, "watcherQueueBytes"), serve.watcherQueueBytes);
        assertEquals(accessor(defaults, "slowWatcherTimeout"), serve.slowWatcherTimeout);
        assertEquals(accessor(defaults, "progressInterval"), serve.progressInterval);

        ConnectionLimits connection = ConnectionLimits.DEFAULTS;  // public: no reflection
        assertEquals(connection.maxStreamsPerConnection(), serve.maxStreamsPerConnection);
        assertEquals(connection.minClientPingInterval(), serve.minClientPingInterval);
        assertEquals(connection.idleTimeout(), serve.idleConnectionTimeout);
        assertEquals(TlsFiles.DEFAULT_RELOAD_INTERVAL, serve.tlsReloadInterval);

        MapcastServer.Builder builder = MapcastServer.builder();
        assertEquals(field(builder, "shutdownGrace"), serve.shutdownGrace);
        assertEquals(field(builder, "host"), serve.listen.host());
        assertEquals(field(builder, "port"), serve.listen.port());
    }

    @Test
    void durations() {
        Converters.DurationConverter c = new Converters.DurationConverter();
        assertEquals(Duration.ofMillis(500), c.convert("500ms"));
        assertEquals(Duration.ofSeconds(10), c.convert("10s"));
        assertEquals(Duration.ofMinutes(2), c.convert("2m"));
        assertEquals(Duration.ofHours(1), c.convert("1h"));
        assertEquals(Duration.ofSeconds(90), c.convert("PT1M30S"));
        for (String bad : new String[] {"0s", "-1s", "10 parsecs", "", "PT-1S", "99999999999999999999s"}) {
            TypeConversionException e = assertThrows(TypeConversionException.class, () -> c.convert(bad), bad);
            assertTrue(e.getMessage().startsWith("'" + bad + "' (expected: a positive duration"), e.getMessage());
        }
        TypeConversionException noUnit = assertThrows(TypeConversionException.class, () -> c.convert("5"));
        assertEquals("'5' needs a unit (expected: a positive duration such as 5s, 5ms or 5m)", noUnit.getMessage());
    }

    @Test
    void byteSizes() {
        Converters.ByteSizeConverter c = new Converters.ByteSizeConverter();
        assertEquals(4096L, c.convert("4096"));
        assertEquals(64L * 1024, c.convert("64KiB"));
        assertEquals(1L << 20, c.convert("1MiB"));
        assertEquals(3L << 30, c.convert("3GiB"));
        assertEquals(64_000L, c.convert("64KB"));
        assertEquals(1_000_000L, c.convert("1MB"), "MB means 10^6 bytes, not MiB");
        assertEquals(2_000_000_000L, c.convert("2GB"));
        for (String bad : new String[] {"-1", "1.5MiB", "1TB", "lots", "9999999999999GiB"}) {
            TypeConversionException e = assertThrows(TypeConversionException.class, () -> c.convert(bad), bad);
            assertTrue(e.getMessage().startsWith("'" + bad + "' (expected: a size in bytes"), e.getMessage());
        }
        TypeConversionException ambiguous = assertThrows(TypeConversionException.class, () -> c.convert("64k"));
        assertEquals("'64k' is ambiguous (expected: 64KiB for 64 x 2^10 bytes, or 64KB for 64 x 10^3)",
                ambiguous.getMessage());
    }

    @Test
    void addresses() {
        assertEquals(new HostPort("127.0.0.1", 50051), HostPort.parseOrNull("127.0.0.1:50051", 1));
        assertEquals(new HostPort("::1", 0), HostPort.parseOrNull("[::1]:0", 0));
        assertEquals("[::1]:7", new HostPort("::1", 7).toString());
        for (String bad : new String[] {"localhost", ":50051", "host:", "::1:50051", "host:65536", "host:x"}) {
            assertNull(HostPort.parseOrNull(bad, 0), bad);
        }
        assertNull(HostPort.parseOrNull("host:0", 1), "a client needs a real port");
    }

    /** Issue #26: --listen :PORT is every interface; --listen [::1]:PORT an IPv6 address, written back in brackets. */
    @Test
    void listenAddresses() {
        HostPort.ListenConverter c = new HostPort.ListenConverter();
        assertEquals(new HostPort("0.0.0.0", 50051), c.convert(":50051"));
        assertEquals("0.0.0.0:0", c.convert(":0").toString());
        assertEquals(new HostPort("::1", 50051), c.convert("[::1]:50051"));
        assertEquals("[::1]:50051", c.convert("[::1]:50051").toString());
        assertEquals("[::]:7", c.convert("[::]:7").toString());
        assertEquals(new HostPort("127.0.0.1", 0), c.convert("127.0.0.1:0"));
        for (String bad : new String[] {":", ":x", "::50051", ":65536", ":-1", "[::1]", "localhost"}) {
            TypeConversionException e = assertThrows(TypeConversionException.class, () -> c.convert(bad), bad);
            assertEquals("'" + bad + "' (expected: HOST:PORT, e.g. 127.0.0.1:50051, [::1]:50051 or :50051 for every "
                    + "interface; port 0 to 65535)", e.getMessage());
        }
        assertNull(HostPort.parseOrNull(":50051", 1), "a client still needs a host");
    }

    @Test
    void textOnOneLine() {
        assertEquals("a\\nb\\tc\\x07d", Text.oneLine("a\nb\tc\u0007d"));
        assertEquals("base64:/w==", Text.value(new byte[] {(byte) 0xff}));
        assertEquals("{\"key\":\"k\",\"value_base64\":\"/w==\"}",
                Text.withValue(new JsonLine().string("key", "k"), new byte[] {(byte) 0xff}).toString());
        assertEquals("{\"value\":\"é\"}", Text.withValue(new JsonLine(), "é".getBytes(StandardCharsets.UTF_8)).toString());
    }

    private static long number(Object record, String name) throws ReflectiveOperationException {
        return ((Number) accessor(record, name)).longValue();
    }

    private static Object accessor(Object record, String name) throws ReflectiveOperationException {
        Method m = record.getClass().getDeclaredMethod(name);
        m.setAccessible(true);
        return m.invoke(record);
    }

    private static Object field(Object o, String name) throws ReflectiveOperationException {
        Field f = o.getClass().getDeclaredField(name);
        f.setAccessible(true);
        return f.get(o);
    }

    /** Issue #26: an example in a command's help is never wrapped mid-command at 80 columns. */
    @Test
    void helpExamplesFitOnTheirLines() {
        java.util.List<CommandLine> all = new java.util.ArrayList<>();
        java.util.ArrayDeque<CommandLine> todo = new java.util.ArrayDeque<>(java.util.List.of(Main.commandLine()));
        while (!todo.isEmpty()) {
            CommandLine c = todo.pop();
            all.add(c);
            todo.addAll(c.getSubcommands().values());
        }
        for (CommandLine c : all) {
            String help = c.getUsageMessage(CommandLine.Help.Ansi.OFF);
            int examples = Math.max(help.indexOf("\nExamples:\n"), help.indexOf("\nExample:\n"));
            if (examples < 0) {
                continue;
            }
            for (String line : help.substring(help.indexOf('\n', examples + 1) + 1).split("\n")) {
                assertTrue(line.isEmpty() || line.startsWith("  "), () -> c.getCommandName() + "'s help wraps an"
                        + " example: \"" + line + "\" in\n" + help);
            }
        }
    }
}
