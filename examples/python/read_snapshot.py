#!/usr/bin/env python3
"""Reads a mapcast snapshot file with the stock protobuf runtime: a third-party check of the format.

Usage: read_snapshot.py GENERATED_DIR FILE [--summary]
GENERATED_DIR holds mapcast/v1/mapcast_pb2.py (protoc --python_out). Prints one JSON object:
{"header": {...}, "entries": [[key, value_hex], ...] sorted by key, "footer": {...}}
(sorted: the upb runtime's map containers do not keep the file's order). With --summary, instead of
the entries: "chunks", "entry_count" and "entry_bytes" (UTF-8 key bytes plus value bytes).
"""
import json
import sys

sys.path.insert(0, sys.argv[1])
from google.protobuf.internal.decoder import _DecodeVarint32  # noqa: E402
from mapcast.v1 import mapcast_pb2  # noqa: E402


def messages(data):
    pos = 0
    while pos < len(data):
        length, pos = _DecodeVarint32(data, pos)
        yield data[pos:pos + length]
        pos += length


def main():
    with open(sys.argv[2], "rb") as f:
        data = f.read()
    it = messages(data)
    summary = "--summary" in sys.argv[3:]
    header = mapcast_pb2.SnapshotHeader.FromString(next(it))
    entries = []
    chunks = count = entry_bytes = 0
    while True:
        chunk = mapcast_pb2.SnapshotChunk.FromString(next(it))
        chunks += 1
        if summary:
            count += len(chunk.entries)
            entry_bytes += sum(len(k.encode("utf-8")) + len(v) for k, v in chunk.entries.items())
        else:
            entries.extend([k, v.hex()] for k, v in chunk.entries.items())
        if chunk.last:
            break
    footer = mapcast_pb2.SnapshotFooter.FromString(next(it))
    out = {"header": {"magic": header.magic, "format_version": header.format_version, "map": header.map,
                      "revision": header.revision, "order": header.order}}
    if summary:
        out.update(chunks=chunks, entry_count=count, entry_bytes=entry_bytes)
    else:
        out["entries"] = sorted(entries)
    out["footer"] = {"total_entries": footer.total_entries, "digest": footer.digest, "crc32c": footer.crc32c}
    print(json.dumps(out))


main()
