package dev.mapcast.core;

import java.util.TreeMap;

/**
 * One map's off-heap blocks: what it holds, and when a replaced block may really be freed.
 *
 * <p>Implementation notes.
 *
 * <p>Epochs: every block is stamped with the epoch current when it was allocated. Pinning a view
 * takes the current epoch {@code v} as the view's and then advances the epoch, so a view can
 * reference exactly the blocks stamped {@code <= v}. A block is <em>shared</em> while some open view
 * has an epoch at or above its stamp; a writer never changes a shared block in place: it copies it
 * (copy-on-write) and retires the original.
 *
 * <p>Retirement: a retired block that no open view can reference is freed at once. Otherwise it is
 * queued with the epoch current at retirement {@code r}; every view that can reference it has an
 * epoch below {@code r}, so it is freed as soon as the oldest open view is at or after {@code r}.
 * The queue is ordered by {@code r}, so freeing pops from its head.
 *
 * <p>Not thread-safe: the owning map serialises every call.
 */
final class MapMemory {

    private long reservedBytes;
    private long epoch = 1;
    /** Open views by epoch (a view's epoch is unique); the value is unused. */
    private final TreeMap<Long, Boolean> openViews = new TreeMap<>();
    private long newestOpenView;  // 0 when none is open
    /** Retired blocks waiting for views: address, bytes, retirement epoch, repeated. */
    private long[] retired = new long[0];
    private int retiredHead;
    private int retiredTail;

    long allocate(long bytes) {
        long address = NativeMemory.allocate(bytes);
        reservedBytes += bytes;
        return address;
    }

    long allocateZeroed(long bytes) {
        long address = NativeMemory.allocateZeroed(bytes);
        reservedBytes += bytes;
        return address;
    }

    /** Frees a block that no view can reference (a view's private copy, or any block when no view is open). */
    void free(long address, long bytes) {
        NativeMemory.free(address, bytes);
        reservedBytes -= bytes;
    }

    long epoch() {
        return epoch;
    }

    /** Whether a block stamped {@code createdEpoch} may be referenced by an open view. */
    boolean isShared(long createdEpoch) {
        return createdEpoch <= newestOpenView;
    }

    /** Gives up a block the map no longer references: freed now, or once no open view can see it. */
    void retire(long address, long bytes, long createdEpoch) {
        if (!isShared(createdEpoch)) {
            free(address, bytes);
            return;
        }
        if (retiredTail + 3 > retired.length) {
            compactRetiredQueue();
        }
        retired[retiredTail++] = address;
        retired[retiredTail++] = bytes;
        retired[retiredTail++] = epoch;
    }

    long openView() {
        long v = epoch++;
        openViews.put(v, Boolean.TRUE);
        newestOpenView = v;
        return v;
    }

    void closeView(long viewEpoch) {
        openViews.remove(viewEpoch);
        newestOpenView = openViews.isEmpty() ? 0 : openViews.lastKey();
        long oldest = openViews.isEmpty() ? Long.MAX_VALUE : openViews.firstKey();
        while (retiredHead < retiredTail && retired[retiredHead + 2] <= oldest) {
            free(retired[retiredHead], retired[retiredHead + 1]);
            retiredHead += 3;
        }
    }

    int openViewCount() {
        return openViews.size();
    }

    long reservedBytes() {
        return reservedBytes;
    }

    /** Frees every retired block regardless of views; the map is closing. */
    void freeRetired() {
        while (retiredHead < retiredTail) {
            free(retired[retiredHead], retired[retiredHead + 1]);
            retiredHead += 3;
        }
        openViews.clear();
        newestOpenView = 0;
    }

    private void compactRetiredQueue() {
        int live = retiredTail - retiredHead;
        long[] next = live + 3 > retired.length / 2 ? new long[Math.max(48, retired.length * 2)] : retired;
        System.arraycopy(retired, retiredHead, next, 0, live);
        retired = next;
        retiredHead = 0;
        retiredTail = live;
    }
}
