package dev.mapcast.core;

import java.nio.ByteBuffer;
import java.util.AbstractMap;
import java.util.ConcurrentModificationException;
import java.util.Iterator;
import java.util.Map;
import java.util.NoSuchElementException;

/**
 * Walks a map's entries in its iteration order without allocating: {@link #next()} moves to the
 * next entry, whose key, value and whole encoded record can then be read or copied out.
 *
 * <pre>{@code
 * EntryCursor c = map.cursor();
 * while (c.next()) {
 *     c.copyValueTo(buffer);   // no byte[] in between
 * }
 * }</pre>
 *
 * A cursor over a map is invalidated by the map's next write ({@link ConcurrentModificationException});
 * a cursor over a {@link PinnedView} stays valid until the view is closed.
 */
public final class EntryCursor {

    private final MapEngine engine;
    private final PinnedView view;
    private final long expectedModCount;
    private final RecordLocator locator;

    // HASH: records in segment order.
    private final long segmentTable;
    private final int idLimit;
    private int segment = -1;
    private long data;
    private int used;
    private long bitmap;
    private int offset;

    // INSERTION: positions [0, w) and [r, end) of the order log.
    private final boolean positions;
    private final long w;
    private final long r;
    private final long end;
    private long position;

    private long record;
    private int recordLength;

    EntryCursor(MapEngine engine, PinnedView view, RecordLocator locator, int idLimit, long w, long r, long end) {
        this.engine = engine;
        this.view = view;
        this.expectedModCount = view == null ? engine.modCount : -1;
        this.locator = locator;
        this.segmentTable = locator.segments;
        this.idLimit = idLimit;
        this.positions = locator.orderChunks != 0;
        this.w = w;
        this.r = r;
        this.end = end;
    }

    /** Moves to the next entry; false when there is none. */
    public boolean next() {
        checkValid();
        return positions ? nextPosition() : nextInSegments();
    }

    public int keyLength() {
        return RecordLayout.spanLength(RecordLayout.keySpan(current()));
    }

    public int valueLength() {
        return RecordLayout.spanLength(RecordLayout.valueSpan(current()));
    }

    public byte[] key() {
        long span = RecordLayout.keySpan(current());
        return NativeMemory.toArray(record + RecordLayout.spanOffset(span), RecordLayout.spanLength(span));
    }

    public byte[] value() {
        long span = RecordLayout.valueSpan(current());
        return NativeMemory.toArray(record + RecordLayout.spanOffset(span), RecordLayout.spanLength(span));
    }

    /** Copies the key to {@code dst} at its position and advances it. */
    public void copyKeyTo(ByteBuffer dst) {
        long span = RecordLayout.keySpan(current());
        NativeMemory.copyToBuffer(record + RecordLayout.spanOffset(span), RecordLayout.spanLength(span), dst);
    }

    /** Copies the value to {@code dst} at its position and advances it. */
    public void copyValueTo(ByteBuffer dst) {
        long span = RecordLayout.valueSpan(current());
        NativeMemory.copyToBuffer(record + RecordLayout.spanOffset(span), RecordLayout.spanLength(span), dst);
    }

    /** Length of the entry's record: one encoded element of a protobuf {@code map<string, bytes>} field 1. */
    public int recordLength() {
        current();
        return recordLength;
    }

    /** Copies the entry's encoded record to {@code dst} at its position and advances it. */
    public void copyRecordTo(ByteBuffer dst) {
        NativeMemory.copyToBuffer(current(), recordLength, dst);
    }

    /** The remaining entries as an iterator of copies, for the maps' and views' {@code iterator()}. */
    Iterator<Map.Entry<byte[], byte[]>> entries() {
        return new Iterator<>() {
            private boolean ready;
            private boolean more;

            @Override
            public boolean hasNext() {
                if (!ready) {
                    more = EntryCursor.this.next();
                    ready = true;
                }
                return more;
            }

            @Override
            public Map.Entry<byte[], byte[]> next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                ready = false;
                return new AbstractMap.SimpleImmutableEntry<>(key(), value());
            }
        };
    }

    private long current() {
        checkValid();
        if (record == 0) {
            throw new IllegalStateException("cursor is not on an entry: call next() first and check it returned true");
        }
        return record;
    }

    private void checkValid() {
        if (view != null) {
            view.checkOpen();
        } else {
            if (engine.closed) {
                throw new IllegalStateException("map is closed");
            }
            if (engine.modCount != expectedModCount) {
                throw new ConcurrentModificationException("the map was written after this cursor was made");
            }
        }
    }

    private boolean nextInSegments() {
        while (true) {
            if (offset < used) {
                long at = data + offset;
                int length = RecordLayout.length(at);
                boolean live = SegmentLayout.isLive(bitmap, offset);
                offset += length;
                if (live) {
                    record = at;
                    recordLength = length;
                    return true;
                }
                continue;
            }
            if (++segment >= idLimit) {
                record = 0;
                segment = idLimit;
                return false;
            }
            long entry = SegmentLayout.entry(segmentTable, segment);
            data = NativeMemory.getLong(entry + SegmentLayout.DATA_ADDRESS);
            used = data == 0 ? 0 : NativeMemory.getInt(entry + SegmentLayout.USED);
            bitmap = NativeMemory.getLong(entry + SegmentLayout.BITMAP_ADDRESS);
            offset = 0;
        }
    }

    private boolean nextPosition() {
        while (true) {
            long p = position;
            if (p >= w && p < r) {
                p = r;
            }
            if (p >= end) {
                position = p;
                record = 0;
                return false;
            }
            position = p + 1;
            long ref = OrderLog.refAt(locator.orderChunks, p);
            if (ref != RecordRef.NONE) {
                record = locator.addressOfRef(ref);
                recordLength = RecordLayout.length(record);
                return true;
            }
        }
    }
}
