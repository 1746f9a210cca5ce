package dev.mapcast.server.auth;

import dev.mapcast.proto.v1.Right;
import dev.mapcast.server.map.ChangeOrder;
import dev.mapcast.server.map.Limits;
import dev.mapcast.server.map.NormalisedWrite;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The check every call that names a map goes through, with the name exactly as the server uses
 * it: the map's reserved names (always), and, on a server with --auth, the caller's right on the
 * map. A refusal is PERMISSION_DENIED naming the user, the right and the map, and is audited.
 *
 * <p>Streams are checked again, not only when they start: every open Watch and WriteStream is
 * registered ({@link #track}) and {@link #sweep} ends those whose token, user or right is gone.
 * The server runs the sweep often enough that a revocation ends them within a second of being
 * applied on this member.
 */
public final class Authorizer {

    private static final Logger log = LoggerFactory.getLogger(Authorizer.class);

    /** How often open streams are checked even when nothing changed: for tokens that expire. */
    private static final long FULL_SWEEP_MILLIS = 1000;

    private final AuthStore store;
    private final Limits limits;
    /** Null without --auth: then only reserved names are refused. */
    private final AuditLog audit;
    private final Set<OpenStream> open = ConcurrentHashMap.newKeySet();
    private long sweptRevision = -1;
    private long sweptAtMillis;

    /** {@code audit} null: a server without --auth. */
    public Authorizer(AuthStore store, Limits limits, AuditLog audit) {
        this.store = store;
        this.limits = limits;
        this.audit = audit;
    }

    public boolean enabled() {
        return audit != null;
    }

    /**
     * Refuses an invalid or reserved name (INVALID_ARGUMENT), or a caller without {@code right} on
     * {@code map}; changes nothing.
     */
    public void check(Right right, String map) {
        limits.checkMapName(map);
        if (AuthStore.isReserved(map)) {
            throw Status.INVALID_ARGUMENT.withDescription("map: \"" + map + "\" is reserved for the server (names"
                    + " starting with \"" + AuthStore.RESERVED_PREFIX + "\" are)").asRuntimeException();
        }
        Caller caller = caller();
        if (caller == null || store.current().allows(caller.user(), right, map)) {
            return;
        }
        throw denied(caller, map, caller.describe() + " may not " + verb(right) + " map \"" + map
                + "\" (no role of it grants " + verb(right) + " on it)");
    }

    /** Whether the caller may read {@code map} (ListMaps lists only those). */
    public boolean mayRead(String map) {
        if (AuthStore.isReserved(map)) {
            return false;
        }
        Caller caller = caller();
        return caller == null || store.current().allows(caller.user(), Right.RIGHT_READ, map);
    }

    /** Refuses a caller without the admin right (the root role) to do {@code what}. */
    public void checkAdmin(String what) {
        Caller caller = caller();
        if (caller != null && !store.current().isAdmin(caller.user())) {
            throw denied(caller, "", caller.describe() + " may not " + what + " (it needs the admin right: the"
                    + " root role)");
        }
    }

    /**
     * The current call's caller; null without --auth. Fails closed: with --auth a call that reached
     * a check without one (its Context lost on the way, a bug) is refused, never let through.
     */
    private Caller caller() {
        Caller caller = Caller.current();
        if (caller == null && enabled()) {
            log.error("a call reached an authorization check without its caller", new IllegalStateException());
            throw Status.INTERNAL.withDescription("the server lost this call's identity (a bug); refused")
                    .asRuntimeException();
        }
        return caller;
    }

    private StatusRuntimeException denied(Caller caller, String map, String why) {
        record(caller, map, 0, List.of(), "denied", why);
        return Status.PERMISSION_DENIED.withDescription(why).asRuntimeException();
    }

    /** Audits an outcome of the current call; null without --auth, else done once it is on disk. */
    public CompletableFuture<Void> record(String map, long revision, List<String> keys,
            String outcome, String reason) {
        Caller caller = Caller.current();
        return caller == null ? null : record(caller, map, revision, keys, outcome, reason);
    }

    /**
     * Audits a change the current call made and waits until its record is on disk; nothing without
     * --auth. A record that cannot be written is logged: the change is made and stays made.
     */
    public void recordChange(String map, long revision, List<String> keys) {
        CompletableFuture<Void> audited = record(map, revision, keys, "ok", "");
        if (audited != null) {
            try {
                audited.join();
            } catch (RuntimeException e) {
                log.error("{} (map \"{}\", revision {}) made without its audit record", Caller.current().method(), map,
                        revision, e);
            }
        }
    }

    /** Audits an outcome of {@code caller}'s call; null if there is no caller (no --auth). */
    public CompletableFuture<Void> record(Caller caller, String map, long revision, List<String> keys,
            String outcome, String reason) {
        if (audit == null || caller == null) {
            return null;
        }
        return audit.append(new AuditRecord(Instant.now(), caller.user(), caller.peer(), caller.method(), map,
                revision, keys, outcome, reason == null ? "" : reason));
    }

    /**
     * {@code outcome}, called once the write's audit record is on disk too; {@code outcome} itself
     * without --auth. Where the write is applied here the record is written as soon as it is
     * applied, while the map's log is forced ({@link NormalisedWrite#onApplied}): one wait for both.
     * A write applied and then not made durable gets a second record, "failed".
     */
    public ChangeOrder.WriteOutcome audited(NormalisedWrite write, ChangeOrder.WriteOutcome outcome) {
        Caller caller = Caller.current();
        if (!enabled() || caller == null) {
            return outcome;
        }
        List<String> keys = new ArrayList<>(write.request.getPutsMap().keySet());
        keys.addAll(write.request.getDeletesList());
        AtomicReference<CompletableFuture<Void>> early = new AtomicReference<>();
        write.onApplied = revision -> early.set(record(caller, write.map(), revision, keys, "ok", ""));
        return (revision, incarnation, failure) -> {
            CompletableFuture<Void> recorded = early.get();
            if (failure != null) {
                if (recorded != null) {  // applied, then not made durable: the log says so too
                    record(caller, write.map(), 0, keys, "failed", failure.getStatus().getDescription());
                }
                outcome.done(revision, incarnation, failure);
                return;
            }
            (recorded != null ? recorded : record(caller, write.map(), revision, keys, "ok", ""))
                    .whenComplete((written, auditFailure) -> {
                        if (auditFailure != null) {
                            log.error("write of map \"{}\" at revision {} acknowledged without its audit record",
                                    write.map(), revision, auditFailure);
                        }
                        outcome.done(revision, incarnation, null);
                    });
        };
    }

    /**
     * Registers an open stream of the current caller, checked by every {@link #sweep} until
     * {@code ended} says it has ended: it needs {@code right} on each of {@code maps} (a live set:
     * a WriteStream adds each map it writes to) and ends through {@code end}.
     */
    public void track(Right right, Set<String> maps, Consumer<Status> end, BooleanSupplier ended) {
        Caller caller = Caller.current();
        if (caller != null) {
            open.add(new OpenStream(caller, right, maps, end, ended));
        }
    }

    /** Ends the open streams whose caller lost its token, its user or its right; run often. */
    public synchronized void sweep() {
        if (audit == null) {
            return;
        }
        AuthState state = store.current();
        long now = System.currentTimeMillis();
        if (state.revision == sweptRevision && now - sweptAtMillis < FULL_SWEEP_MILLIS) {
            return;
        }
        sweptRevision = state.revision;
        sweptAtMillis = now;
        for (OpenStream stream : open) {
            if (stream.ended.getAsBoolean()) {
                open.remove(stream);
                continue;
            }
            Status end = stream.whyEnd(state, now);
            if (end != null) {
                open.remove(stream);
                record(stream.caller, "", 0, List.of(), end.getCode() == Status.Code.UNAUTHENTICATED
                        ? "unauthenticated" : "denied", end.getDescription());
                stream.end.accept(end);
            }
        }
    }

    /** Open streams registered and not yet seen ended (for tests). */
    int openStreams() {
        return open.size();
    }

    private record OpenStream(Caller caller, Right right, Set<String> maps, Consumer<Status> end,
            BooleanSupplier ended) {

        Status whyEnd(AuthState state, long now) {
            String gone = state.whyNotLive(caller.tokenId(), caller.user(), now);
            if (gone != null) {
                return Status.UNAUTHENTICATED.withDescription(gone + ": stream ended");
            }
            for (String map : maps) {
                if (!state.allows(caller.user(), right, map)) {
                    return Status.PERMISSION_DENIED.withDescription(caller.describe() + " may no longer "
                            + verb(right) + " map \"" + map + "\": stream ended");
                }
            }
            return null;
        }
    }

    private static String verb(Right right) {
        return right == Right.RIGHT_READ ? "read" : "write";
    }
}
