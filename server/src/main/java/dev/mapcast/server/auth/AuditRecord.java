package dev.mapcast.server.auth;

import dev.mapcast.codec.JsonLine;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * One call in the audit log: who ({@code user} from {@code peer}) called what ({@code method} on
 * {@code map}, touching {@code keys}) and how it ended. Values are never recorded.
 *
 * @param time when the call was decided
 * @param user the authenticated identity, {@code ""} if none
 * @param peer the client's address as text ({@code "127.0.0.1:53422"})
 * @param method the gRPC full method name ({@code "mapcast.v1.Mapcast/Write"})
 * @param map the map's name, {@code ""} if the call names none (auth admin calls)
 * @param revision the map's revision the call wrote or read at, 0 if none
 * @param keys the keys touched (for auth admin calls what changed, e.g. {@code "user/alice"})
 * @param outcome {@code "ok"}, {@code "denied"}, {@code "unauthenticated"} or {@code "failed"}
 * @param reason the status description of a refusal, {@code ""} when ok
 */
public record AuditRecord(Instant time, String user, String peer, String method, String map, long revision,
        List<String> keys, String outcome, String reason) {

    /** The most keys {@link #toJson} writes; the number of the others is {@code keys_omitted}. */
    static final int KEYS_WRITTEN = 1000;

    private static final Set<String> OUTCOMES = Set.of("ok", "denied", "unauthenticated", "failed");

    // Always three digits of milliseconds (ISO_INSTANT would drop zeros and print nanoseconds).
    private static final DateTimeFormatter TIME =
            DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC);

    public AuditRecord {
        Objects.requireNonNull(time, "time");
        Objects.requireNonNull(user, "user");
        Objects.requireNonNull(peer, "peer");
        Objects.requireNonNull(method, "method");
        Objects.requireNonNull(map, "map");
        keys = List.copyOf(Objects.requireNonNull(keys, "keys"));
        Objects.requireNonNull(reason, "reason");
        if (!OUTCOMES.contains(Objects.requireNonNull(outcome, "outcome"))) {
            throw new IllegalArgumentException(
                    "outcome: " + outcome + " (expected: ok, denied, unauthenticated or failed)");
        }
    }

    /**
     * The record as one line of JSON, without the line end: {@code time} (UTC, milliseconds),
     * {@code user}, {@code peer}, {@code method}, {@code map}, {@code revision}, {@code keys} (the
     * first 1000, then {@code keys_omitted}: how many more), {@code outcome}, {@code reason}, in
     * this order; {@code map}, {@code revision}, {@code keys} and {@code reason} only when not
     * empty or 0. For example (on one line):
     * <pre>{@code
     * {"time":"2026-12-07T21:55:01.123Z","user":"alice","peer":"127.0.0.1:53422","method":"mapcast.v1.Mapcast/Write",
     *  "map":"m","revision":7,"keys":["a"],"outcome":"ok"}
     * }</pre>
     */
    public String toJson() {
        JsonLine line = new JsonLine().string("time", TIME.format(time)).string("user", user).string("peer", peer)
                .string("method", method);
        if (!map.isEmpty()) {
            line.string("map", map);
        }
        if (revision != 0) {
            line.number("revision", revision);
        }
        if (keys.size() > KEYS_WRITTEN) {
            line.strings("keys", keys.subList(0, KEYS_WRITTEN)).number("keys_omitted", keys.size() - KEYS_WRITTEN);
        } else if (!keys.isEmpty()) {
            line.strings("keys", keys);
        }
        line.string("outcome", outcome);
        if (!reason.isEmpty()) {
            line.string("reason", reason);
        }
        return line.toString();
    }
}
