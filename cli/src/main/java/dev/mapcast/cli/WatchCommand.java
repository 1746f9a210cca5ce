package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.Replica;
import dev.mapcast.client.ReplicaListener;
import dev.mapcast.codec.Codec;
import dev.mapcast.codec.JsonLine;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(mixinStandardHelpOptions = true, name = "watch", sortOptions = false,
        description = {
            "Follows a map: its snapshot, then every change.",
            "Prints the snapshot, then every change as it is committed, one line each, flushed at once. Runs until interrupted, --until or --count. If the connection "
                    + "breaks it reconnects and resumes by itself; if it must start again from a fresh "
                    + "snapshot, it prints a resync line and the whole snapshot again.",
            "Human output:",
            "  snapshot rev 12, 2 entries",
            "    region=eu-west-1",
            "    owner=alice",
            "  rev 13 put region=us-east-1",
            "  rev 14 del owner",
            "  resync rev 40 (server), 5 entries",
            "--json output, one object per line (a write of several keys gives several lines with one "
                    + "revision; a snapshot starts with a resync line, reason \"initial\" for the first):",
            "  {\"type\":\"resync\",\"revision\":12,\"reason\":\"initial\",\"size\":2}",
            "  {\"type\":\"snapshot\",\"revision\":12,\"key\":\"region\",\"value\":\"eu-west-1\"}",
            "  {\"type\":\"put\",\"revision\":13,\"key\":\"region\",\"value\":\"us-east-1\"}",
            "  {\"type\":\"del\",\"revision\":14,\"key\":\"owner\"}",
            "A value that is not UTF-8 shows as base64:... (human) or \"value_base64\" (JSON)."},
        footer = {"", "Examples:",
            "  mapcast watch config",
            "  mapcast watch config --json --until 120   # exit 0 once at revision 120",
            "  mapcast watch config --count 1            # wait for the next write"})
final class WatchCommand extends ClientCommand {

    @Parameters(index = "0", paramLabel = "MAP", description = "The map to follow.")
    String map;

    @Option(names = "--json", description = "One JSON object per line.")
    boolean json;

    @Option(names = "--until", paramLabel = "REV",
            description = "Exit 0 once the map's revision REV has been printed (at once if the snapshot "
                    + "is already there).")
    Long until;

    @Option(names = "--count", paramLabel = "N",
            description = "Exit 0 after N writes (revisions) following the first snapshot.")
    Long count;

    private final CountDownLatch done = new CountDownLatch(1);
    private volatile boolean finished;
    private volatile boolean reconnecting;
    private long writes;

    @Override
    void validate() {
        checkAtLeast("--until", until, 0);
        checkAtLeast("--count", count, 1);
    }

    @Override
    int run(MapcastClient client) throws InterruptedException {
        existingMap(client, map);
        CompletableFuture<Replica<String, byte[]>> self = new CompletableFuture<>();
        try (Replica<String, byte[]> replica = client.replica(map, Codec.utf8(), Codec.bytes(), new Printer(self))) {
            self.complete(replica);
            long reconnects = 0;
            while (!done.await(200, TimeUnit.MILLISECONDS)) {
                // Rethrows why the replica stopped for good, if it did (it retries anything else).
                replica.awaitRevision(Long.MAX_VALUE, Duration.ofMillis(1));
                // The replica reconnects quietly; someone watching should know why nothing comes.
                // Once per outage: the next event printed ends it.
                long n = replica.stats().reconnects();
                if (n > reconnects && !reconnecting) {
                    reconnecting = true;
                    System.err.println("mapcast: watch: lost the stream from " + connection.target()
                            + " at revision " + replica.revision() + "; reconnecting");
                }
                reconnects = n;
            }
        }
        return ExitCodes.OK;
    }

    /** Prints on the replica's stream thread, which hands it one event at a time, in order. */
    private final class Printer implements ReplicaListener<String, byte[]> {

        private final CompletableFuture<Replica<String, byte[]>> replica;

        Printer(CompletableFuture<Replica<String, byte[]>> replica) {
            this.replica = replica;
        }

        @Override
        public void onResync(long revision, ResyncReason reason) {
            if (finished) {
                return;
            }
            // The first snapshot can arrive before replica() has returned: wait for the reference.
            Replica<String, byte[]> r = replica.join();
            String why = reason.name().toLowerCase(Locale.ROOT);
            // The state stays at this snapshot while we read it: the next event waits for us.
            long size = r.size();
            if (json) {
                out.println(new JsonLine().string("type", "resync").number("revision", revision)
                        .string("reason", why).number("size", size));
            } else {
                out.println((reason == ResyncReason.INITIAL ? "snapshot rev " + revision
                        : "resync rev " + revision + " (" + why + ")") + ", " + size + (size == 1 ? " entry" : " entries"));
            }
            r.forEach((key, value) -> out.println(json
                    ? Text.withValue(new JsonLine().string("type", "snapshot").number("revision", revision).string("key", key),
                            value)
                    : "  " + Text.keyBeforeEquals(key) + "=" + Text.value(value)));
            flush(revision);
        }

        @Override
        public void onChange(long revision, Map<String, byte[]> puts, Set<String> deletes) {
            if (finished) {
                return;
            }
            puts.forEach((key, value) -> out.println(json
                    ? Text.withValue(new JsonLine().string("type", "put").number("revision", revision).string("key", key),
                            value)
                    : "rev " + revision + " put " + Text.keyBeforeEquals(key) + "=" + Text.value(value)));
            for (String key : deletes) {
                out.println(json
                        ? new JsonLine().string("type", "del").number("revision", revision).string("key", key)
                        : "rev " + revision + " del " + Text.oneLine(key));
            }
            writes++;
            flush(revision);
        }

        @Override
        public void onDeleted(long revision) {
            if (finished) {
                return;
            }
            out.println(json ? new JsonLine().string("type", "deleted").number("revision", revision)
                    : "map deleted at rev " + revision + "; waiting for it to be created again");
            out.flush();
            reconnecting = false;
        }

        private void flush(long revision) {
            out.flush();
            reconnecting = false;
            boolean readerGone = out.checkError();  // e.g. piped into head, which has exited
            if (readerGone || (until != null && revision >= until) || (count != null && writes >= count)) {
                finished = true;
                done.countDown();
            }
        }
    }
}
