package dev.mapcast.server.rpc;

import com.google.protobuf.MessageLite;
import com.google.protobuf.Message;
import dev.mapcast.codec.EncodedMessages.Encoded;
import dev.mapcast.codec.EncodedMethods;
import dev.mapcast.proto.v1.CompactRequest;
import dev.mapcast.proto.v1.CompactResponse;
import dev.mapcast.proto.v1.DeleteMapRequest;
import dev.mapcast.proto.v1.DeleteMapResponse;
import dev.mapcast.proto.v1.GetRequest;
import dev.mapcast.proto.v1.GetResponse;
import dev.mapcast.proto.v1.ListMapsRequest;
import dev.mapcast.proto.v1.ListMapsResponse;
import dev.mapcast.proto.v1.MapInfo;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.RestoreRequest;
import dev.mapcast.proto.v1.Right;
import dev.mapcast.proto.v1.SnapshotRequest;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.proto.v1.WriteResponse;
import dev.mapcast.proto.v1.WriteResult;
import dev.mapcast.server.auth.Authorizer;
import dev.mapcast.server.fanout.SnapshotStream;
import dev.mapcast.server.fanout.Watcher;
import dev.mapcast.server.map.ChangeOrder;
import dev.mapcast.server.map.HostedMap;
import dev.mapcast.server.map.Limits;
import dev.mapcast.server.map.MapRegistry;
import dev.mapcast.server.map.NormalisedWrite;
import dev.mapcast.server.map.Utf8;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCallHandler;
import io.grpc.ServerServiceDefinition;
import io.grpc.ServiceDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.Semaphore;
import java.util.function.BiConsumer;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The contract's {@code mapcast.v1.Mapcast} service. Bound by hand rather than through the
 * generated base class for two reasons: Watch and Snapshot answer with the codec's encoded bytes
 * ({@link EncodedMethods}), and requests are parsed into {@link ParsedRequest} so that a malformed
 * one gets INVALID_ARGUMENT (gRPC would report a parse failure as UNKNOWN).
 *
 * <p>Threads: calls arrive on the event loops ({@link ServerEventLoops}). A Write to an existing
 * in-memory map whose lock is free commits right there, and a Watch sends from there; everything
 * that may wait (a durable write, a busy lock, reads, snapshots, restores) runs on the worker pool.
 */
public final class MapcastService {

    private static final Logger log = LoggerFactory.getLogger(MapcastService.class);

    private final MapRegistry maps;
    /** Where every change goes: applied at once on one server, ordered by Raft in a cluster. */
    private final ChangeOrder order;
    private final Limits limits;
    private final ServerEventLoops loops;
    private final Executor pool;
    /** One restore at a time: see {@link RestoreReceiver}. */
    private final Semaphore restoreSlot = new Semaphore(1);
    private final Set<WriteStreamCall> writeStreams = ConcurrentHashMap.newKeySet();
    /** Every call naming a map asks it first (reserved names; rights with --auth) and tells it the outcome. */
    private final Authorizer authorizer;

    public MapcastService(MapRegistry maps, ChangeOrder order, Limits limits, ServerEventLoops loops,
            Executor pool, Authorizer authorizer) {
        this.authorizer = authorizer;
        this.maps = maps;
        this.order = order;
        this.limits = limits;
        this.loops = loops;
        this.pool = pool;
    }

    public ServerServiceDefinition definition() {
        var get = parsed(MapcastGrpc.getGetMethod(), GetRequest.getDefaultInstance());
        var write = parsed(MapcastGrpc.getWriteMethod(), WriteRequest.getDefaultInstance());
        var compact = parsed(MapcastGrpc.getCompactMethod(), CompactRequest.getDefaultInstance());
        var listMaps = parsed(MapcastGrpc.getListMapsMethod(), ListMapsRequest.getDefaultInstance());
        var snapshot = parsed(EncodedMethods.snapshot(), SnapshotRequest.getDefaultInstance());
        var watch = parsed(EncodedMethods.watch(), WatchRequest.getDefaultInstance());
        var restore = parsed(MapcastGrpc.getRestoreMethod(), RestoreRequest.getDefaultInstance());
        var writeStream = WriteStreamCall.method();
        var deleteMap = parsed(MapcastGrpc.getDeleteMapMethod(), DeleteMapRequest.getDefaultInstance());
        ServiceDescriptor service = ServiceDescriptor.newBuilder(MapcastGrpc.SERVICE_NAME)
                .setSchemaDescriptor(MapcastGrpc.getServiceDescriptor().getSchemaDescriptor())
                .addMethod(get).addMethod(write).addMethod(snapshot).addMethod(watch).addMethod(compact)
                .addMethod(listMaps).addMethod(restore).addMethod(writeStream).addMethod(deleteMap)
                .build();
        return ServerServiceDefinition.builder(service)
                .addMethod(get, offloaded(unary("GetRequest", this::get)))
                .addMethod(write, ServerCalls.asyncUnaryCall(this::write))
                .addMethod(compact, offloaded(unary("CompactRequest", this::compact)))
                .addMethod(listMaps, offloaded(unary("ListMapsRequest", this::listMaps)))
                .addMethod(snapshot, offloaded(streaming("SnapshotRequest", this::snapshot)))
                .addMethod(watch, streaming("WatchRequest", this::watch))
                .addMethod(restore, offloaded(ServerCalls.asyncClientStreamingCall(
                        response -> new RestoreReceiver(maps, order, limits, response, restoreSlot, authorizer))))
                .addMethod(writeStream, ServerCalls.asyncBidiStreamingCall(this::writeStream))
                .addMethod(deleteMap, offloaded(unary("DeleteMapRequest", this::deleteMap)))
                .build();
    }

    /** Ends every open WriteStream with {@code status} once the writes it has read are answered. */
    public void endWriteStreams(Status status) {
        for (WriteStreamCall stream : writeStreams) {
            stream.end(status);
        }
    }

    private <Q, R> ServerCallHandler<Q, R> offloaded(ServerCallHandler<Q, R> handler) {
        return new OffloadedCallHandler<>(handler, pool);
    }

    private GetResponse get(GetRequest request) {
        authorizer.check(Right.RIGHT_READ, request.getMap());
        if (!request.getLocal()) {
            order.awaitReadable();
        }
        HostedMap map = maps.existing(request.getMap());
        byte[] key = Utf8.bytes(request.getKey());
        limits.checkKey(key, "key");
        return map.get(key);
    }

    private void write(ParsedRequest<WriteRequest> request, StreamObserver<WriteResponse> response) {
        commit(request, (revision, incarnation, failure) -> {
            if (failure == null) {
                respond(response, WriteResponse.newBuilder().setRevision(revision).setIncarnation(incarnation).build());
            } else {
                response.onError(failure);
            }
        });
    }

    /** Checks and normalises a write (of a Write call or a WriteStream) and hands it to the order. */
    void commit(ParsedRequest<WriteRequest> request, ChangeOrder.WriteOutcome outcome) {
        NormalisedWrite write;
        try {
            write = NormalisedWrite.of(request.orInvalid("WriteRequest"), limits);
            authorizer.check(Right.RIGHT_WRITE, write.map());
        } catch (RuntimeException | Error e) {
            outcome.done(0, 0, toStatus(e, "WriteRequest"));
            return;
        }
        order.write(write, authorizer.audited(write, outcome));
    }

    /** Starts a WriteStream, checked again while open on every map it has written to. */
    private StreamObserver<ParsedRequest<WriteStreamCall.Received>> writeStream(StreamObserver<WriteResult> response) {
        if (!authorizer.enabled()) {
            return WriteStreamCall.start(this::commit, (ServerCallStreamObserver<WriteResult>) response, writeStreams);
        }
        Set<String> written = ConcurrentHashMap.newKeySet();
        WriteStreamCall stream = WriteStreamCall.start((request, outcome) -> {
            commit(request, (revision, incarnation, failure) -> {
                if (failure == null) {
                    written.add(request.orInvalid("WriteRequest").getMap());
                }
                outcome.done(revision, incarnation, failure);
            });
        }, (ServerCallStreamObserver<WriteResult>) response, writeStreams);
        authorizer.track(Right.RIGHT_WRITE, written, stream::end, stream::hasEnded);
        return stream;
    }

    private static <R> void respond(StreamObserver<R> response, R result) {
        response.onNext(result);
        response.onCompleted();
    }

    private DeleteMapResponse deleteMap(DeleteMapRequest request) {
        authorizer.check(Right.RIGHT_WRITE, request.getMap());
        MapRegistry.Version deleted = order.delete(request.getMap(), request.getExpectedRevision(),
                request.getExpectedIncarnation());
        log.info("map \"{}\" deleted at revision {}", request.getMap(), deleted.revision());
        authorizer.recordChange(request.getMap(), deleted.revision(), List.of());
        return DeleteMapResponse.newBuilder().setRevision(deleted.revision()).setIncarnation(deleted.incarnation())
                .build();
    }

    private CompactResponse compact(CompactRequest request) {
        authorizer.check(Right.RIGHT_WRITE, request.getMap());
        CompactResponse out = CompactResponse.newBuilder()
                .setCompaction(order.compact(request.getMap(), request.getRevision())).build();
        authorizer.recordChange(request.getMap(), out.getCompaction().getCompactRevision(), List.of());
        return out;
    }

    private ListMapsResponse listMaps(ListMapsRequest request) {
        List<MapInfo> out = new ArrayList<>();
        for (HostedMap map : maps.all()) {
            if (!authorizer.mayRead(map.name)) {
                continue;
            }
            try {
                out.add(map.info());
            } catch (StatusRuntimeException closing) {
                // a map closing with the server: leave it out
            }
        }
        maps.damaged().forEach((name, problem) -> {
            if (authorizer.mayRead(name)) {
                out.add(MapInfo.newBuilder().setName(name).setDamaged(problem)
                .build());
            }
        });
        out.sort(Comparator.comparing(MapInfo::getName));
        return ListMapsResponse.newBuilder().addAllMaps(out).build();
    }

    private void snapshot(SnapshotRequest request, ServerCallStreamObserver<Encoded> call) {
        authorizer.check(Right.RIGHT_READ, request.getMap());
        if (!request.getLocal()) {
            order.awaitReadable();
        }
        HostedMap map = maps.existing(request.getMap());
        new SnapshotStream(map.snapshot(false), call, pool).start();
    }

    /** On the event loop: the stream sends from it, and registers on the pool (see {@link Watcher}). */
    private void watch(WatchRequest request, ServerCallStreamObserver<Encoded> call) {
        authorizer.check(Right.RIGHT_READ, request.getMap());  // the name checked too
        if (!request.getWaitForMap()) {
            maps.existing(request.getMap());  // NOT_FOUND at once; attached on the pool
        }
        Watcher watcher = new Watcher(maps, call, loops.current(), pool, request, limits);
        authorizer.track(Right.RIGHT_READ, Set.of(request.getMap()), watcher::end, watcher::hasEnded);
        watcher.start();
    }

    private static <Q extends Message, R> MethodDescriptor<ParsedRequest<Q>, R> parsed(
            MethodDescriptor<Q, R> method, Q type) {
        return method.toBuilder(ParsedRequest.marshaller(type), method.getResponseMarshaller()).build();
    }

    private static <Q extends MessageLite, R> ServerCallHandler<ParsedRequest<Q>, R> unary(
            String type, Function<Q, R> body) {
        return ServerCalls.asyncUnaryCall((request, response) -> {
            R result;
            try {
                result = body.apply(request.orInvalid(type));
            } catch (RuntimeException | Error e) {
                response.onError(toStatus(e, type));  // an Error too: the call must still end
                return;
            }
            respond(response, result);
        });
    }

    private static <Q extends MessageLite> ServerCallHandler<ParsedRequest<Q>, Encoded> streaming(
            String type, BiConsumer<Q, ServerCallStreamObserver<Encoded>> body) {
        return ServerCalls.asyncServerStreamingCall((request, response) -> {
            ServerCallStreamObserver<Encoded> call = (ServerCallStreamObserver<Encoded>) response;
            try {
                body.accept(request.orInvalid(type), call);
            } catch (RuntimeException | Error e) {
                call.onError(toStatus(e, type));
            }
        });
    }

    private static StatusRuntimeException toStatus(Throwable e, String type) {
        if (e instanceof StatusRuntimeException s) {
            return s;
        }
        log.error("{} failed", type, e);
        return Status.INTERNAL.withDescription(type + " failed: " + e).withCause(e).asRuntimeException();
    }

}
