package dev.mapcast.server.map;

import dev.mapcast.codec.EncodedMessages.Encoded;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * The encoded deltas (WatchResponses) a resuming watcher may need: every revision in
 * {@code (floor, newest]}, bounded by count and bytes. Guarded by its map's lock.
 *
 * <p>When a bound is passed, the oldest deltas are dropped down to three quarters of it at once, so
 * that history is purged (and watchers told, with one Compaction event) now and then rather than on
 * every write.
 */
final class DeltaHistory {

    private record Kept(long revision, Encoded response, int bytes) {
    }

    private final int maxDeltas;
    private final long maxBytes;
    private final ArrayDeque<Kept> deltas = new ArrayDeque<>();
    private long bytes;
    /** Deltas after this revision are kept; a watcher resuming from before it needs a snapshot. */
    private long floor;

    DeltaHistory(int maxDeltas, long maxBytes, long floor) {
        this.maxDeltas = maxDeltas;
        this.maxBytes = maxBytes;
        this.floor = floor;
    }

    long floor() {
        return floor;
    }

    long bytes() {
        return bytes;
    }

    int size() {
        return deltas.size();
    }

    /** Keeps the delta of {@code revision}; returns true if older deltas were purged to make room. */
    boolean add(long revision, Encoded response) {
        int size = response.size();
        deltas.addLast(new Kept(revision, response, size));
        bytes += size;
        if (deltas.size() <= maxDeltas && bytes <= maxBytes) {
            return false;
        }
        int keepDeltas = maxDeltas - maxDeltas / 4;
        long keepBytes = maxBytes - maxBytes / 4;
        while (!deltas.isEmpty() && (deltas.size() > keepDeltas || bytes > keepBytes)) {
            Kept oldest = deltas.removeFirst();
            bytes -= oldest.bytes;
            floor = oldest.revision;
        }
        return true;
    }

    /** Drops every delta up to {@code revision}; later resumes from before it need a snapshot. */
    void purgeThrough(long revision) {
        while (!deltas.isEmpty() && deltas.peekFirst().revision <= revision) {
            bytes -= deltas.removeFirst().bytes;
        }
        floor = Math.max(floor, revision);
    }

    /** The deltas after {@code revision}, oldest first, or null if some of them are no longer kept. */
    List<Encoded> after(long revision) {
        if (revision < floor) {
            return null;
        }
        List<Encoded> out = new ArrayList<>();
        Iterator<Kept> newestFirst = deltas.descendingIterator();
        while (newestFirst.hasNext()) {
            Kept k = newestFirst.next();
            if (k.revision <= revision) {
                break;
            }
            out.add(k.response);
        }
        java.util.Collections.reverse(out);
        return out;
    }
}
