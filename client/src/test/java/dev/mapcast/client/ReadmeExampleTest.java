package dev.mapcast.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.server.MapcastServer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The README's Java SDK example compiles as printed and does what it says against a real server. */
class ReadmeExampleTest {

    private static final Pattern EXAMPLE = Pattern.compile(
            "### Java SDK example\\s.*?```java\\n(.*?)```", Pattern.DOTALL);

    @Test
    void theSdkExampleCompilesAndRuns(@TempDir Path dir) throws Exception {
        String readme = Files.readString(Path.of("..", "README.md"));
        Matcher m = EXAMPLE.matcher(readme);
        assertTrue(m.find(), "README.md has a \"### Java SDK example\" section with a java block");
        Path source = dir.resolve("ConfigExample.java");
        Files.writeString(source, m.group(1));

        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        ByteArrayOutputStream errors = new ByteArrayOutputStream();
        int rc = javac.run(null, null, errors, "-d", dir.toString(), "-cp", System.getProperty("java.class.path"),
                "--release", "17", source.toString());
        assertEquals(0, rc, "the README example compiles:\n" + errors);

        try (MapcastServer server = MapcastServer.builder().port(0).build().start();
             URLClassLoader loader = new URLClassLoader(new URL[] {dir.toUri().toURL()}, getClass().getClassLoader())) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            PrintStream original = System.out;
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            try {
                loader.loadClass("ConfigExample").getMethod("main", String[].class)
                        .invoke(null, (Object) new String[] {"127.0.0.1:" + server.port()});
            } finally {
                System.setOut(original);
            }
            List<String> lines = out.toString(StandardCharsets.UTF_8).lines().toList();
            assertEquals(List.of("region = eu-west-1 (revision 1)", "timeout-ms changed to 500 at revision 2",
                    "refused: FAILED_PRECONDITION"), lines.subList(0, 3), "output:\n" + out);
        }
    }
}
