package dev.mapcast.core;

/**
 * Turns an index handle into the address of its record.
 *
 * <p>In HASH order a handle is the record's {@link RecordRef}. In INSERTION order it is the entry's
 * position in the {@link OrderLog}, whose chunk holds the reference: an update then changes the
 * log and never the index, and the entry keeps its place.
 *
 * <p>The live map has one locator whose bases follow the arrays as they are reallocated; a pinned
 * view has its own, over its copies.
 */
final class RecordLocator {

    /** The segment table (see {@link SegmentLayout}). */
    long segments;
    /** The order log's chunk array, or 0 in HASH order. */
    long orderChunks;

    RecordLocator(long segments, long orderChunks) {
        this.segments = segments;
        this.orderChunks = orderChunks;
    }

    long ref(long handle) {
        return orderChunks == 0 ? handle : OrderLog.refAt(orderChunks, handle);
    }

    long address(long handle) {
        return addressOfRef(ref(handle));
    }

    long addressOfRef(long ref) {
        long entry = SegmentLayout.entry(segments, RecordRef.segment(ref));
        return NativeMemory.getLong(entry + SegmentLayout.DATA_ADDRESS) + RecordRef.offset(ref);
    }
}
