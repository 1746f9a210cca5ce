#!/usr/bin/env python3
"""A mapcast client in plain Python: writes, reads, and a live replica kept from Watch.

It needs only Debian's python3-grpcio and python3-protobuf, and the message classes that
protoc generates from the contract (there is no gRPC stub generator in that set, so the
calls go through grpc's generic API):

    protoc --python_out=/tmp/mapcast-py -I proto/src/main/proto \\
        proto/src/main/proto/mapcast/v1/mapcast.proto
    /usr/bin/python3 examples/python/mapcast_client.py --generated /tmp/mapcast-py \\
        --server 127.0.0.1:50051 write config greeting=hello

Commands (every output line is `word name=value ...`, values without spaces except a
`rejected` line's details and a `result` line's message, which run to the end of the
line; keys and values in `entry` lines are hex, since values are opaque bytes):

    write MAP KEY=VALUE ... [--delete KEY ...]   one atomic Write, prints its revision
    write-stream MAP KEY=VALUE ...               one write per pair on one WriteStream (a mapcast
                                                 addition), prints each result: id, revision, code
    get MAP KEY                                  prints found, value, mod_revision, revision
    watch MAP [--until-revision N]               snapshot, then every change, each checked
    interop MAP --until-revision N               the interoperability scenario (see interop())
    lifecycle MAP --until-revision N --incarnations K
                                                 follows MAP through deletions, re-creations and server
                                                 restarts (resuming after its revision, naming its
                                                 incarnation) until it reaches revision N of its K-th
                                                 incarnation

Every map has an incarnation, a random 64-bit id drawn when it is created: a revision means
something only together with it. The replica here keeps its map's incarnation from the snapshot,
asks the server to wait for an absent map (wait_for_map), drops its state on a MapDeleted event,
and reports a snapshot of another incarnation as `recreated`, so its revision never goes back
without saying why.
"""

import argparse
import os
import struct
import sys
import time

try:
    import grpc
    import google.protobuf  # noqa: F401  (the generated messages import it)
except ImportError as missing:
    sys.exit(f"mapcast_client.py: {missing}. On Debian: apt-get install python3-grpcio python3-protobuf, "
             f"and run this with /usr/bin/python3")

GENERATED_ENV = "MAPCAST_PY_GENERATED"
SERVER_ENV = "MAPCAST_SERVER"
SERVICE = "/mapcast.v1.Mapcast/"


# --- XXH64 (seed 0 in mapcast), in pure Python: Debian's python has no xxhash module by default.

_MASK64 = 0xFFFFFFFFFFFFFFFF
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5


def _rotl(x, bits):
    return ((x << bits) | (x >> (64 - bits))) & _MASK64


def _round(acc, lane):
    return (_rotl((acc + lane * _P2) & _MASK64, 31) * _P1) & _MASK64


def _merge(acc, lane):
    return ((acc ^ _round(0, lane)) * _P1 + _P4) & _MASK64


def xxh64(data, seed=0):
    n = len(data)
    i = 0
    if n >= 32:
        v1, v2, v3, v4 = (seed + _P1 + _P2) & _MASK64, (seed + _P2) & _MASK64, seed, (seed - _P1) & _MASK64
        while i + 32 <= n:
            a, b, c, d = struct.unpack_from("<4Q", data, i)
            v1, v2, v3, v4 = _round(v1, a), _round(v2, b), _round(v3, c), _round(v4, d)
            i += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _MASK64
        for v in (v1, v2, v3, v4):
            h = _merge(h, v)
    else:
        h = (seed + _P5) & _MASK64
    h = (h + n) & _MASK64
    while i + 8 <= n:
        h = (_rotl(h ^ _round(0, struct.unpack_from("<Q", data, i)[0]), 27) * _P1 + _P4) & _MASK64
        i += 8
    if i + 4 <= n:
        h = (_rotl(h ^ ((struct.unpack_from("<I", data, i)[0] * _P1) & _MASK64), 23) * _P2 + _P3) & _MASK64
        i += 4
    while i < n:
        h = (_rotl(h ^ ((data[i] * _P5) & _MASK64), 11) * _P1) & _MASK64
        i += 1
    h = ((h ^ (h >> 33)) * _P2) & _MASK64
    h = ((h ^ (h >> 29)) * _P3) & _MASK64
    return h ^ (h >> 32)


def _check_xxh64():
    """Known answers (from `xxhsum -H1`), so a wrong port fails here, not as a digest mismatch."""
    vectors = {b"": 0xEF46DB3751D8E999, b"a": 0xD24EC4F1A98C6E5B, b"abc": 0x44BC2CF5AD770999,
               bytes(range(37)): 0xD93FA2DFEE5C24C9, bytes(range(100)): 0x6AC1E58032166597}
    for data, expected in vectors.items():
        if xxh64(data) != expected:
            raise AssertionError(f"xxh64 of {len(data)} bytes: {xxh64(data):016x}, expected {expected:016x}")


def _varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def entry_hash(key, value):
    """XXH64 of the canonical record `0x0A varint(klen) key 0x12 varint(vlen) value`."""
    k = key.encode("utf-8")
    return xxh64(b"\x0a" + _varint(len(k)) + k + b"\x12" + _varint(len(value)) + value)


# --- The service, through grpc's generic API.

class Mapcast:
    """Callables for the mapcast.v1.Mapcast methods, built from the generated message classes."""

    def __init__(self, channel, pb):
        def unary(method, request, response):
            return channel.unary_unary(SERVICE + method, request_serializer=request.SerializeToString,
                                       response_deserializer=response.FromString)

        def stream(method, request, response):
            return channel.unary_stream(SERVICE + method, request_serializer=request.SerializeToString,
                                        response_deserializer=response.FromString)

        self.pb = pb
        self.get = unary("Get", pb.GetRequest, pb.GetResponse)
        self.write = unary("Write", pb.WriteRequest, pb.WriteResponse)
        self.compact = unary("Compact", pb.CompactRequest, pb.CompactResponse)
        self.list_maps = unary("ListMaps", pb.ListMapsRequest, pb.ListMapsResponse)
        self.snapshot = stream("Snapshot", pb.SnapshotRequest, pb.SnapshotChunk)
        self.watch = stream("Watch", pb.WatchRequest, pb.WatchResponse)
        # A mapcast addition: many writes on one bidirectional stream, each answered by its id.
        self.write_stream = channel.stream_stream(SERVICE + "WriteStream",
                                                  request_serializer=pb.StreamedWrite.SerializeToString,
                                                  response_deserializer=pb.WriteResult.FromString)


class ReplicaError(Exception):
    """The replica no longer matches the server (gap or digest mismatch). A long-running client
    would resynchronise: Watch again with after_revision=0."""


class CheckFailed(Exception):
    """The server answered, but not what the contract says it should."""


class Replica:
    """A local copy of one map, kept from a Watch stream and checked after every event."""

    def __init__(self):
        self.entries = {}      # key (str) -> value (bytes)
        self.revision = 0
        self.digest = 0        # kept incrementally: the sum of the live entries' hashes
        self.loading = False   # between a snapshot's first and last chunk
        self.chunks = 0
        self.incarnation = 0   # the map's incarnation the state belongs to (0: no state)
        self.incarnations = 0  # how many incarnations it has followed

    def apply_chunk(self, chunk):
        if not self.loading:   # the first chunk of a snapshot replaces the state
            if chunk.incarnation != self.incarnation:
                if self.incarnation:
                    emit("recreated", incarnation_before=f"{self.incarnation:016x}",
                         incarnation=f"{chunk.incarnation:016x}", revision_before=self.revision)
                self.incarnation = chunk.incarnation
                self.incarnations += 1
            self.entries.clear()
            self.digest = 0
            self.revision = chunk.revision
            self.loading = True
            self.chunks = 0
        elif chunk.revision != self.revision:
            raise ReplicaError(f"snapshot chunk at revision {chunk.revision} in a snapshot at {self.revision}")
        self.chunks += 1
        for key, value in chunk.entries.items():
            self._put(key, value)
        if chunk.last:
            self.loading = False
            if chunk.total_entries != len(self.entries):
                raise ReplicaError(f"snapshot has {len(self.entries)} entries, total_entries says "
                                   f"{chunk.total_entries}")
            self._check_digest(chunk.digest, f"snapshot at revision {chunk.revision}")

    def apply_delta(self, delta):
        if self.loading:
            raise ReplicaError(f"delta {delta.revision} before the snapshot's last chunk")
        if delta.prev_revision != self.revision or delta.revision != delta.prev_revision + 1:
            raise ReplicaError(f"gap: replica at revision {self.revision}, delta {delta.prev_revision} -> "
                               f"{delta.revision}")
        for key in delta.deletes:
            self._delete(key)
        for key, value in delta.puts.items():
            self._put(key, value)
        self.revision = delta.revision
        self._check_digest(delta.digest, f"delta {delta.revision}")

    def deleted(self, event):
        """The map does not exist (any more): the state goes; the next snapshot is another incarnation."""
        emit("deleted", revision=event.revision, incarnation=f"{event.incarnation:016x}")
        self.entries.clear()
        self.digest = 0
        self.revision = 0
        self.incarnation = 0
        self.loading = False

    def check_progress(self, progress):
        if progress.incarnation and self.incarnation and progress.incarnation != self.incarnation:
            raise ReplicaError(f"progress of incarnation {progress.incarnation:016x}, replica of "
                               f"{self.incarnation:016x}: the map was recreated")

    def _put(self, key, value):
        self._delete(key)
        self.entries[key] = value
        self.digest = (self.digest + entry_hash(key, value)) & _MASK64

    def _delete(self, key):
        old = self.entries.pop(key, None)
        if old is not None:
            self.digest = (self.digest - entry_hash(key, old)) & _MASK64

    def _check_digest(self, expected, what):
        if expected != self.digest:
            raise ReplicaError(f"digest mismatch after {what}: server {expected:016x}, replica {self.digest:016x}")


def emit(word, **fields):
    # Flushed per line: a test (or a pipe) reads these while the watch goes on.
    print(" ".join([word] + [f"{name}={value}" for name, value in fields.items()]), flush=True)


def follow(api, map_name, until_revision, timeout, incarnations=1, reconnect=False):
    """Watches from a snapshot (waiting for the map if it does not exist), applying and checking
    every event, until the replica reaches until_revision of its incarnations-th incarnation (None:
    until the stream ends). With reconnect, a stream the server ended (a restart) is resumed after
    the replica's revision, naming its incarnation. Returns the replica."""
    replica = Replica()
    deadline = None if timeout is None else time.monotonic() + timeout
    cut_short = False  # a stream that broke in the middle of a snapshot: start from a snapshot again
    while True:
        resume = replica.revision if replica.incarnation and not cut_short else 0
        request = api.pb.WatchRequest(map=map_name, after_revision=resume, wait_for_map=True,
                                      incarnation=replica.incarnation if resume else 0)
        left = None if deadline is None else max(0.1, deadline - time.monotonic())
        call = api.watch(request, timeout=left)
        try:
            if _follow_stream(call, replica, until_revision, incarnations):
                return replica
            break
        except grpc.RpcError as ended:
            # UNAVAILABLE: the server went away. CANCELLED here is the server's too (this client
            # cancels only below, once the stream is over): a stream that reached a server while it
            # was stopping is reset by it (RST_STREAM CANCEL).
            if not reconnect or ended.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                raise
            if deadline is not None and time.monotonic() > deadline:
                raise
            emit("reconnecting", code=ended.code().name)
            cut_short = replica.loading
            replica.loading = False
            time.sleep(0.1)
        finally:
            call.cancel()  # no-op once the stream has ended
    if until_revision is not None:
        raise ReplicaError(f"watch ended at revision {replica.revision}, before {until_revision}")
    return replica


def _follow_stream(call, replica, until_revision, incarnations):
    """Applies one stream's events; True once the replica is where follow() should stop."""
    for event in call:
        kind = event.WhichOneof("event")
        if kind == "snapshot":
            replica.apply_chunk(event.snapshot)
            emit("chunk", revision=event.snapshot.revision, entries=len(event.snapshot.entries),
                 last=str(event.snapshot.last).lower())
            if not replica.loading:
                emit("snapshot", revision=replica.revision, chunks=replica.chunks,
                     entries=len(replica.entries), digest=f"{replica.digest:016x}",
                     incarnation=f"{replica.incarnation:016x}")
        elif kind == "delta":
            replica.apply_delta(event.delta)
            emit("delta", revision=event.delta.revision, prev_revision=event.delta.prev_revision,
                 puts=len(event.delta.puts), deletes=len(event.delta.deletes),
                 digest=f"{event.delta.digest:016x}")
        elif kind == "compaction":  # history purged; a live watcher just carries on
            emit("compaction", compact_revision=event.compaction.compact_revision)
        elif kind == "progress":
            replica.check_progress(event.progress)
            emit("progress", revision=event.progress.revision)
        elif kind == "deleted":
            replica.deleted(event.deleted)
        if (until_revision is not None and not replica.loading and replica.incarnation
                and replica.incarnations >= incarnations and replica.revision >= until_revision):
            return True
    return False


def print_entries(replica):
    """The replica's content, sorted by key bytes, then its revision and digest: one canonical form."""
    for key in sorted(replica.entries, key=lambda k: k.encode("utf-8")):
        emit("entry", key=key.encode("utf-8").hex(), value=replica.entries[key].hex())
    emit("final", revision=replica.revision, entries=len(replica.entries), digest=f"{replica.digest:016x}")


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def interop(api, map_name, until_revision, timeout):
    """The interoperability scenario: writes, reads and one bad request from Python, then a watch
    from a snapshot through the deltas of writes made by others (the test), then the content."""
    pb = api.pb
    first = {f"service/{n:02d}/endpoint": f"10.0.0.{n}:8080".encode() for n in range(12)}
    first["greeting/日本語"] = "こんにちは".encode()   # a UTF-8 key: klen counts bytes, not characters
    first["blob/zero-length"] = b""                       # an empty value is still an entry
    rev1 = api.write(pb.WriteRequest(map=map_name, puts=first), timeout=timeout).revision
    emit("wrote", revision=rev1, puts=len(first), deletes=0)

    rev2 = api.write(pb.WriteRequest(map=map_name, puts={"service/12/endpoint": b"10.0.0.12:8080"},
                                     deletes=["service/03/endpoint"]), timeout=timeout).revision
    emit("wrote", revision=rev2, puts=1, deletes=1)
    check(rev2 == rev1 + 1, f"second write got revision {rev2}, expected {rev1 + 1}")

    got = api.get(pb.GetRequest(map=map_name, key="service/01/endpoint"), timeout=timeout)
    emit("get", key="service/01/endpoint", found=str(got.found).lower(), value=got.value.hex(),
         mod_revision=got.mod_revision, revision=got.revision)
    check(got.found and got.value == b"10.0.0.1:8080", f"get service/01/endpoint: {got}")
    check(got.mod_revision == rev1 and got.revision == rev2,
          f"get: mod_revision {got.mod_revision}, revision {got.revision}; expected {rev1} and {rev2}")
    deleted = api.get(pb.GetRequest(map=map_name, key="service/03/endpoint"), timeout=timeout)
    check(not deleted.found and deleted.value == b"", f"deleted key still found: {deleted}")

    try:
        api.write(pb.WriteRequest(map=map_name, puts={"": b"no key"}), timeout=timeout)
        raise CheckFailed("a Write with an empty key was accepted")
    except grpc.RpcError as refused:
        emit("rejected", code=refused.code().name, details=refused.details())
        check(refused.code() == grpc.StatusCode.INVALID_ARGUMENT and refused.details(),
              f"empty key: {refused.code().name} {refused.details()!r}, expected INVALID_ARGUMENT with a reason")
    after = api.get(pb.GetRequest(map=map_name, key="service/01/endpoint"), timeout=timeout)
    check(after.revision == rev2, f"the refused write changed the revision to {after.revision}")

    replica = follow(api, map_name, until_revision, timeout)
    print_entries(replica)


STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def write_stream(api, map_name, puts, timeout):
    """Sends each put as its own write on one stream; prints each result as it comes, by id."""
    pb = api.pb
    writes = (pb.StreamedWrite(id=i, write=pb.WriteRequest(map=map_name, puts={key: value}))
              for i, (key, value) in enumerate(puts, start=1))
    answered = 0
    for result in api.write_stream(writes, timeout=timeout):
        answered += 1
        emit("result", id=result.id, revision=result.revision,
             code=STATUS_NAMES.get(result.code, result.code), message=result.message or "-")
    check(answered == len(puts), f"{answered} results for {len(puts)} writes")


def key_value(text):
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key, value.encode()


def parse_args(argv):
    parser = argparse.ArgumentParser(description="mapcast client (Python, grpc generic API)")
    parser.add_argument("--server", default=os.environ.get(SERVER_ENV, "127.0.0.1:50051"),
                        help=f"HOST:PORT (default: ${SERVER_ENV} or 127.0.0.1:50051)")
    parser.add_argument("--generated", default=os.environ.get(GENERATED_ENV),
                        help=f"directory of protoc --python_out for mapcast.proto (default: ${GENERATED_ENV})")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds for each call, and for a watch with --until-revision (default 30); "
                             "a watch without it runs until interrupted")
    commands = parser.add_subparsers(dest="command", required=True)

    write = commands.add_parser("write", help="one atomic Write")
    write.add_argument("map")
    write.add_argument("puts", nargs="*", type=key_value, metavar="KEY=VALUE")
    write.add_argument("--delete", action="append", default=[], metavar="KEY")

    stream = commands.add_parser("write-stream", help="one write per KEY=VALUE, all on one WriteStream")
    stream.add_argument("map")
    stream.add_argument("puts", nargs="+", type=key_value, metavar="KEY=VALUE")

    get = commands.add_parser("get", help="read one key")
    get.add_argument("map")
    get.add_argument("key")

    for name, help_text in (("watch", "follow a map from a snapshot"), ("interop", "the interop scenario"),
                            ("lifecycle", "follow a map through deletions and re-creations")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("map")
        sub.add_argument("--until-revision", type=int, required=name != "watch",
                         help="stop once the replica reaches this revision")
        if name == "lifecycle":
            sub.add_argument("--incarnations", type=int, default=2,
                             help="of this many incarnations of the map (default 2)")
    args = parser.parse_args(argv)
    if not args.generated:
        parser.error(f"--generated DIR (or ${GENERATED_ENV}) is required: see the module docstring")
    return args


def load_messages(directory):
    sys.path.insert(0, directory)
    from mapcast.v1 import mapcast_pb2
    return mapcast_pb2


def main(argv):
    args = parse_args(argv)
    _check_xxh64()
    pb = load_messages(args.generated)
    with grpc.insecure_channel(args.server) as channel:
        api = Mapcast(channel, pb)
        try:
            if args.command == "write":
                puts = dict(args.puts)
                response = api.write(pb.WriteRequest(map=args.map, puts=puts, deletes=args.delete),
                                     timeout=args.timeout)
                emit("wrote", revision=response.revision, puts=len(puts), deletes=len(args.delete))
            elif args.command == "write-stream":
                write_stream(api, args.map, args.puts, args.timeout)
            elif args.command == "get":
                got = api.get(pb.GetRequest(map=args.map, key=args.key), timeout=args.timeout)
                emit("get", key=args.key, found=str(got.found).lower(), value=got.value.hex(),
                     mod_revision=got.mod_revision, revision=got.revision)
            elif args.command == "watch":
                watch_timeout = args.timeout if args.until_revision is not None else None
                print_entries(follow(api, args.map, args.until_revision, watch_timeout))
            elif args.command == "lifecycle":
                print_entries(follow(api, args.map, args.until_revision, args.timeout,
                                     incarnations=args.incarnations, reconnect=True))
            else:
                interop(api, args.map, args.until_revision, args.timeout)
        except (ReplicaError, CheckFailed) as failed:
            print(f"mapcast_client.py: FAILED: {failed}", file=sys.stderr)
            return 1
        except grpc.RpcError as failed:
            print(f"mapcast_client.py: {failed.code().name}: {failed.details()}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
