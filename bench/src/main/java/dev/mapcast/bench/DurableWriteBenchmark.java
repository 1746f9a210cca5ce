package dev.mapcast.bench;

import com.google.protobuf.ByteString;
import dev.mapcast.client.MapcastClient;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.server.FsyncMode;
import dev.mapcast.server.MapcastServer;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.ThreadParams;

/**
 * Durable write latency and throughput (issue 5): a server on loopback with a data directory (on
 * the machine's disk, {@code java.io.tmpdir}), blocking single-key writes of 64-byte values through
 * the SDK, each thread on its own key range. Run with {@code -t 1} and {@code -t 16} (JMH threads
 * = concurrent writers): sample mode gives p50/p99 per write, and throughput is threads / mean.
 *
 * <p>{@code fsync}: {@code always} (acknowledged after fsync, group commit), {@code periodic}
 * (after the write to the OS, forced every 100 ms), {@code memory} (no data directory: the
 * in-memory server, for the cost of durability itself).
 *
 * <p>{@code api}: {@code stream} (the SDK's writes, on its one WriteStream) or {@code unary} (one
 * {@code Write} call per write through the generated blocking stub, as a client of the bare
 * contract sends them).
 *
 * <pre>{@code
 * mvn -B -q -pl bench -am package -DskipTests
 * java -jar bench/target/benchmarks.jar DurableWriteBenchmark -t 1
 * java -jar bench/target/benchmarks.jar DurableWriteBenchmark -t 16
 * }</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 3)
@Measurement(iterations = 5, time = 3)
@Fork(value = 1, jvmArgs = {"-Xms1g", "-Xmx1g"})
public class DurableWriteBenchmark {

    @Param({"always", "periodic", "memory"})
    String fsync;

    @Param({"stream", "unary"})
    String api;

    private Path dataDir;
    private MapcastServer server;
    private MapcastClient client;
    private ManagedChannel channel;
    private MapcastGrpc.MapcastBlockingStub unary;
    private byte[][] values;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        MapcastServer.Builder b = MapcastServer.builder().port(0);
        switch (fsync) {
            case "always" -> b.dataDir(dataDir = Files.createTempDirectory("mapcast-bench")).fsync(FsyncMode.ALWAYS);
            case "periodic" -> b.dataDir(dataDir = Files.createTempDirectory("mapcast-bench")).fsync(FsyncMode.PERIODIC);
            case "memory" -> { }
            default -> throw new IllegalArgumentException("fsync: " + fsync + " (expected: always, periodic or memory)");
        }
        server = b.build().start();
        client = MapcastClient.builder().target("127.0.0.1:" + server.port()).build();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        unary = MapcastGrpc.newBlockingStub(channel);
        if (!api.equals("stream") && !api.equals("unary")) {
            throw new IllegalArgumentException("api: " + api + " (expected: stream or unary)");
        }
        Random random = new Random(42);
        values = new byte[256][64];
        for (byte[] v : values) {
            random.nextBytes(v);
        }
    }

    /** Each writer thread's own keys. */
    @State(Scope.Thread)
    public static class Writer {
        String prefix;
        int next;

        @Setup(Level.Trial)
        public void setUp(ThreadParams thread) {
            prefix = "writer-" + thread.getThreadIndex() + "-";
        }
    }

    @Benchmark
    public long write(Writer w) {
        int i = w.next++;
        String key = w.prefix + (i & 1023);
        byte[] value = values[i & 255];
        if (api.equals("unary")) {
            return unary.write(WriteRequest.newBuilder().setMap("bench")
                    .putPuts(key, ByteString.copyFrom(value)).build()).getRevision();
        }
        return client.put("bench", key, value);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        client.close();
        channel.shutdownNow();
        server.close();
        if (dataDir != null) {
            try (Stream<Path> files = Files.walk(dataDir)) {
                for (Path f : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.delete(f);
                }
            }
        }
    }
}
