package dev.mapcast.server.rpc;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.WireFormat;
import dev.mapcast.codec.ProtocolHeaders;
import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.StreamedWrite;
import dev.mapcast.proto.v1.WriteRequest;
import dev.mapcast.proto.v1.WriteResult;
import dev.mapcast.server.map.ChangeOrder;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.Set;
import java.util.function.BiConsumer;

/**
 * One WriteStream call: many writes on one stream (see the proto). Each write commits as a Write
 * call's would ({@link MapcastService#commit}: on the event loop when that cannot wait, else on the
 * worker pool) and is answered with its id; a write that fails is answered with its status and the
 * stream goes on.
 *
 * <p>Bounded: no more than {@link #MAX_UNANSWERED} writes are requested from gRPC or read and not
 * yet answered, and no more are requested while the transport holds back results the client is
 * not reading. Every call on the stream is made under this object's lock: writes that wait are
 * answered from the pool while messages arrive on the event loop, and gRPC's calls are not
 * thread-safe.
 */
public final class WriteStreamCall implements StreamObserver<ParsedRequest<WriteStreamCall.Received>> {

    /** Writes a stream may have requested or in flight; enough to keep the group commit busy. */
    public static final int MAX_UNANSWERED = 256;

    /** One StreamedWrite as received: its id, and its write or why that could not be parsed. */
    record Received(long id, ParsedRequest<WriteRequest> write) {
    }

    private final BiConsumer<ParsedRequest<WriteRequest>, ChangeOrder.WriteOutcome> commit;
    private final ServerCallStreamObserver<WriteResult> call;
    private final Set<WriteStreamCall> open;

    // Guarded by this.
    private int requested;   // asked of gRPC, not yet received
    private int inFlight;    // received, not yet answered
    private boolean halfClosed;
    private Status ending;   // set: read nothing more, end with this once every write is answered
    private boolean ended;

    private WriteStreamCall(BiConsumer<ParsedRequest<WriteRequest>, ChangeOrder.WriteOutcome> commit,
            ServerCallStreamObserver<WriteResult> call, Set<WriteStreamCall> open) {
        this.commit = commit;
        this.call = call;
        this.open = open;
    }

    /**
     * Starts serving {@code call}, registered in {@code open} until it ends; call from the handler.
     * Each write goes to {@code commit} ({@link MapcastService#commit}).
     */
    static WriteStreamCall start(BiConsumer<ParsedRequest<WriteRequest>, ChangeOrder.WriteOutcome> commit,
            ServerCallStreamObserver<WriteResult> call, Set<WriteStreamCall> open) {
        WriteStreamCall stream = new WriteStreamCall(commit, call, open);
        call.disableAutoRequest();
        call.setOnCancelHandler(stream::cancelled);
        call.setOnReadyHandler(stream::refill);
        open.add(stream);
        stream.refill();
        return stream;
    }

    @Override
    public void onNext(ParsedRequest<Received> message) {
        Received received;
        synchronized (this) {
            requested--;
            inFlight++;
            try {
                received = message.orInvalid("StreamedWrite");
            } catch (RuntimeException malformed) {
                inFlight--;
                end(Status.fromThrowable(malformed));
                return;
            }
            if (ending != null) {
                answer(received.id(), 0, 0, ending.asRuntimeException());
                return;
            }
        }
        long id = received.id();
        commit.accept(received.write(), (revision, incarnation, failure) -> answer(id, revision, incarnation, failure));
    }

    @Override
    public synchronized void onCompleted() {
        halfClosed = true;
        finishIfDone();
    }

    @Override
    public void onError(Throwable t) {
        cancelled();  // the client cancelled: nothing to answer
    }

    /** Reads nothing more; ends the stream with {@code status} once every write read is answered. */
    synchronized void end(Status status) {
        if (ending == null) {
            ending = status;
        }
        finishIfDone();
    }

    /** Whether it has ended (answered its last write, or was cancelled). */
    synchronized boolean hasEnded() {
        return ended;
    }

    private synchronized void cancelled() {
        ended = true;
        open.remove(this);
    }

    /** Answers one write read from the stream: its revision, or its failure. */
    private synchronized void answer(long id, long revision, long incarnation, StatusRuntimeException exception) {
        Status failure = exception == null ? null : exception.getStatus();
        inFlight--;
        if (ended) {
            return;
        }
        WriteResult.Builder result = WriteResult.newBuilder().setId(id);
        if (failure == null) {
            result.setRevision(revision).setIncarnation(incarnation);
        } else {
            result.setCode(failure.getCode().value())
                    .setNotApplied(ProtocolHeaders.notApplied(exception.getTrailers()));
            if (failure.getDescription() != null) {
                result.setMessage(failure.getDescription());
            }
        }
        call.onNext(result.build());
        if (!finishIfDone()) {
            refill();
        }
    }

    /** Asks gRPC for more writes while few are unanswered and the client takes the results. */
    private synchronized void refill() {
        if (ended || ending != null || halfClosed) {
            return;
        }
        int unanswered = requested + inFlight;
        if (unanswered <= MAX_UNANSWERED / 2 && call.isReady()) {
            requested += MAX_UNANSWERED - unanswered;
            call.request(MAX_UNANSWERED - unanswered);
        }
    }

    /** Ends the call if it is to end and nothing is in flight; returns whether it has ended. */
    private boolean finishIfDone() {
        if (ended || inFlight > 0 || (!halfClosed && ending == null)) {
            return ended;
        }
        ended = true;
        open.remove(this);
        if (ending != null) {
            call.onError(ending.asRuntimeException());
        } else {
            call.onCompleted();
        }
        return true;
    }

    /**
     * WriteStream's method with requests parsed into {@link Received}: the StreamedWrite's fields
     * are read here and its write parsed on its own, so that a malformed write is answered with
     * INVALID_ARGUMENT under its id while the stream goes on.
     */
    static MethodDescriptor<ParsedRequest<Received>, WriteResult> method() {
        MethodDescriptor<StreamedWrite, WriteResult> method = MapcastGrpc.getWriteStreamMethod();
        return method.toBuilder(ParsedRequest.marshaller(WriteStreamCall::received, received -> {
            throw new UnsupportedOperationException("the server only reads StreamedWrite");
        }, StreamedWrite.getDescriptor()), method.getResponseMarshaller()).build();
    }

    private static final int ID_TAG = StreamedWrite.ID_FIELD_NUMBER << 3 | WireFormat.WIRETYPE_VARINT;
    private static final int WRITE_TAG = StreamedWrite.WRITE_FIELD_NUMBER << 3 | WireFormat.WIRETYPE_LENGTH_DELIMITED;

    private static Received received(byte[] bytes) throws IOException {
        CodedInputStream in = CodedInputStream.newInstance(bytes);
        long id = 0;
        byte[] write = null;
        ByteArrayOutputStream repeated = null;  // a message field sent twice merges, as concatenation does
        for (int tag; (tag = in.readTag()) != 0; ) {
            if (tag == ID_TAG) {
                id = in.readUInt64();
            } else if (tag == WRITE_TAG) {
                byte[] part = in.readByteArray();
                if (write == null) {
                    write = part;
                } else {
                    if (repeated == null) {
                        repeated = new ByteArrayOutputStream();
                        repeated.writeBytes(write);
                    }
                    repeated.writeBytes(part);
                }
            } else if (!in.skipField(tag)) {
                break;
            }
        }
        in.checkLastTagWas(0);  // not an end-group tag with no group open
        if (repeated != null) {
            write = repeated.toByteArray();
        }
        byte[] writeBytes = write == null ? new byte[0] : write;
        try {
            return new Received(id, new ParsedRequest<>(WriteRequest.parseFrom(writeBytes), null));
        } catch (InvalidProtocolBufferException e) {
            return new Received(id, new ParsedRequest<>(null,
                    ParsedRequest.describe(WriteRequest.getDescriptor(), writeBytes)));
        }
    }
}
