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
    /** A run stopped on {@link #record} without taking it: the next run or next() starts there. */
    private boolean pending;
    private boolean exhausted;
    private int runRecords;

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
        if (pending) {
            pending = false;
            return true;
        }
        boolean more = positions ? nextPosition() : nextInSegments();
        exhausted = !more;
        return more;
    }

    /**
     * Copies the next entries' encoded records to {@code dst}, in order and whole, as long as their
     * total stays within {@code maxBytes} (at least one record is taken, however large). Records that
     * lie next to each other in memory go as one copy: a run of a protobuf {@code map<string, bytes>}
     * field 1, ready for the wire. Returns the bytes copied; {@link #runRecords()} tells how many
     * records. The same {@code maxBytes} always cuts the same runs, so a second cursor can
     * {@linkplain #skipRecords measure} a run before this one copies it.
     *
     * @throws java.nio.BufferOverflowException if dst has less room than the run (dst has then
     *     received part of it: give dst at least maxBytes, or the measured size)
     */
    public long copyRecordsTo(ByteBuffer dst, long maxBytes) {
        if (dst.isReadOnly()) {
            throw new java.nio.ReadOnlyBufferException();
        }
        return run(dst, maxBytes);
    }

    /** Like {@link #copyRecordsTo} without copying: measures the next run and moves past it. */
    public long skipRecords(long maxBytes) {
        return run(null, maxBytes);
    }

    /** Records in the last run. */
    public int runRecords() {
        return runRecords;
    }

    /** Whether the cursor has passed the last entry. */
    public boolean isExhausted() {
        checkValid();
        if (!pending && !exhausted) {
            pending = next();
        }
        return exhausted && !pending;
    }

    private long run(ByteBuffer dst, long maxBytes) {
        if (maxBytes < 1) {
            throw new IllegalArgumentException("maxBytes: " + maxBytes + " (expected: >= 1)");
        }
        checkValid();
        long bytes = 0;
        int records = 0;
        long start = 0;
        long length = 0;
        while (true) {
            if (!pending && !positions) {
                // Between segments, a wholly live segment that fits goes as one copy, unwalked:
                // the same cut as record by record, since all of its records fit.
                long whole = takeWholeSegment(maxBytes - bytes);
                if (whole > 0) {
                    if (dst != null) {
                        flush(start, length, dst);
                        start = data;
                        length = whole;
                    }
                    bytes += whole;
                    records += runSegmentRecords;
                    continue;
                }
            }
            if (!pending && !next()) {
                break;
            }
            if (records > 0 && bytes + recordLength > maxBytes) {
                pending = true;
                break;
            }
            pending = false;
            if (length > 0 && record == start + length) {
                length += recordLength;
            } else {
                flush(start, length, dst);
                start = record;
                length = recordLength;
            }
            bytes += recordLength;
            records++;
        }
        flush(start, length, dst);
        runRecords = records;
        return bytes;
    }

    private int runSegmentRecords;

    /**
     * At the end of a segment, if the next one is wholly live and its records fit in
     * {@code room}, moves past it and returns its bytes (its records in {@link #runSegmentRecords});
     * otherwise changes nothing and returns 0.
     */
    private long takeWholeSegment(long room) {
        if (offset < used || segment + 1 >= idLimit) {
            return 0;
        }
        long entry = SegmentLayout.entry(segmentTable, segment + 1);
        long nextData = NativeMemory.getLong(entry + SegmentLayout.DATA_ADDRESS);
        int nextUsed = nextData == 0 ? 0 : NativeMemory.getInt(entry + SegmentLayout.USED);
        if (nextUsed == 0 || nextUsed > room || NativeMemory.getInt(entry + SegmentLayout.LIVE_BYTES) != nextUsed) {
            return 0;
        }
        segment++;
        data = nextData;
        used = nextUsed;
        offset = nextUsed;
        bitmap = NativeMemory.getLong(entry + SegmentLayout.BITMAP_ADDRESS);
        runSegmentRecords = NativeMemory.getInt(entry + SegmentLayout.LIVE_RECORDS);
        record = 0;
        return nextUsed;
    }

    private static void flush(long start, long length, ByteBuffer dst) {
        if (dst != null && length > 0) {
            if (length > Integer.MAX_VALUE) {
                throw new java.nio.BufferOverflowException();
            }
            NativeMemory.copyToBuffer(start, (int) length, dst);
        }
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
