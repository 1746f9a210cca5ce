package dev.mapcast.cli;

import dev.mapcast.client.MapcastClient;
import dev.mapcast.client.Replica;
import dev.mapcast.codec.Codec;
import dev.mapcast.codec.JsonLine;
import dev.mapcast.proto.v1.MapInfo;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;

@Command(mixinStandardHelpOptions = true, name = "ls", sortOptions = false,
        description = {
            "Lists the maps, or the keys of one map.",
            "Without MAP: lists the server's maps with their revision, size, iteration order, compact "
                    + "revision and memory (live, dead and reserved bytes), as an aligned table.",
            "With MAP: lists its keys (--values: key=value, a key's = and \\ escaped as \\= and \\\\) in the "
                    + "map's iteration order, from one consistent snapshot. Control characters are shown "
                    + "escaped (\\n, \\t, \\x07) and a value that is not UTF-8 as base64:...; --json gives "
                    + "the exact text.",
            "--json prints one object per line: per map name, revision, size, order, compact_revision, "
                    + "live_bytes, dead_bytes and reserved_bytes (a damaged map: name and damaged); per key the "
                    + "key, and with --values the value (value_base64 when it is not UTF-8).",
            "A map the server quarantined because its files fail verification is listed as DAMAGED with "
                    + "the file, byte and problem; see 'mapcast data check'."},
        footer = {"", "Examples:", "  mapcast ls", "  mapcast ls config --values", "  mapcast ls config --prefix db/",
            "  mapcast ls --json | jq -r .name"})
final class LsCommand extends ClientCommand {

    @Parameters(index = "0", arity = "0..1", paramLabel = "MAP", description = "The map whose keys to list.")
    String map;

    @Option(names = "--values", description = "With MAP: print key=value.")
    boolean values;

    @Option(names = "--prefix", paramLabel = "P", description = "With MAP: only the keys that start with P.")
    String prefix;

    @Option(names = "--json", description = "One JSON object per line.")
    boolean json;

    @Override
    void validate() {
        if (values && map == null) {
            throw new ParameterException(spec.commandLine(), "--values without MAP (expected: ls MAP --values)");
        }
        if (prefix != null && map == null) {
            throw new ParameterException(spec.commandLine(), "--prefix without MAP (expected: ls MAP --prefix P)");
        }
    }

    @Override
    int run(MapcastClient client) throws InterruptedException {
        if (map == null) {
            listMaps(client.listMaps());
        } else {
            listKeys(client, existingMap(client, map));
        }
        return ExitCodes.OK;
    }

    private void listMaps(List<MapInfo> maps) {
        if (json) {
            for (MapInfo m : maps) {
                if (!m.getDamaged().isEmpty()) {
                    out.println(new JsonLine().string("name", m.getName()).string("damaged", m.getDamaged()));
                    continue;
                }
                out.println(new JsonLine().string("name", m.getName()).number("revision", m.getRevision())
                        .number("size", m.getSize()).string("order", order(m))
                        .number("compact_revision", m.getCompactRevision()).number("live_bytes", m.getLiveBytes())
                        .number("dead_bytes", m.getDeadBytes()).number("reserved_bytes", m.getReservedBytes()));
            }
            return;
        }
        List<String[]> rows = new ArrayList<>();
        rows.add(new String[] {"NAME", "REVISION", "SIZE", "ORDER", "COMPACT_REV", "LIVE_BYTES", "DEAD_BYTES",
            "RESERVED_BYTES"});
        for (MapInfo m : maps) {
            if (!m.getDamaged().isEmpty()) {
                // Its figures are unknown: the rest of its line says why it is quarantined.
                rows.add(new String[] {Text.oneLine(m.getName()), "DAMAGED: " + Text.oneLine(m.getDamaged())});
                continue;
            }
            rows.add(new String[] {Text.oneLine(m.getName()), Long.toUnsignedString(m.getRevision()),
                Long.toUnsignedString(m.getSize()), order(m), Long.toUnsignedString(m.getCompactRevision()),
                Long.toUnsignedString(m.getLiveBytes()), Long.toUnsignedString(m.getDeadBytes()),
                Long.toUnsignedString(m.getReservedBytes())});
        }
        int[] width = new int[rows.get(0).length];
        for (String[] row : rows) {
            for (int i = 0; i < row.length && (i == 0 || row.length == width.length); i++) {
                width[i] = Math.max(width[i], row[i].length());
            }
        }
        for (String[] row : rows) {
            StringBuilder line = new StringBuilder();
            if (row.length < width.length) {
                out.println(row[0] + " ".repeat(width[0] - row[0].length()) + "  " + row[1]);
                continue;
            }
            for (int i = 0; i < row.length; i++) {
                // Names and the order left-aligned, numbers right-aligned; two spaces between columns.
                boolean left = i == 0 || i == 3;
                String pad = " ".repeat(width[i] - row[i].length());
                line.append(left ? row[i] + (i == row.length - 1 ? "" : pad) : pad + row[i]);
                if (i < row.length - 1) {
                    line.append("  ");
                }
            }
            out.println(line);
        }
    }

    private void listKeys(MapcastClient client, MapInfo info) throws InterruptedException {
        try (Replica<String, byte[]> replica = client.replica(map, Codec.utf8(), Codec.bytes())) {
            // At least the revision ListMaps saw, so the listing is never older than `mapcast ls`.
            if (!replica.awaitRevision(info.getRevision(), connection.timeout)) {
                throw new Failure(ExitCodes.UNREACHABLE, "no snapshot of map " + Text.quoted(map)
                        + " within " + connection.timeout.toMillis() + " ms (see --timeout)");
            }
            replica.forEach((key, value) -> {
                if (prefix != null && !key.startsWith(prefix)) {
                    return;
                }
                if (json) {
                    JsonLine line = new JsonLine().string("key", key);
                    out.println(values ? Text.withValue(line, value) : line);
                } else {
                    out.println(values ? Text.keyBeforeEquals(key) + "=" + Text.value(value) : Text.oneLine(key));
                }
            });
        }
    }

    static String order(MapInfo m) {
        return switch (m.getOrder()) {
            case ITERATION_ORDER_INSERTION -> "insertion";
            case ITERATION_ORDER_HASH, ITERATION_ORDER_UNSPECIFIED -> "hash";
            default -> "unknown(" + m.getOrderValue() + ")";
        };
    }
}
