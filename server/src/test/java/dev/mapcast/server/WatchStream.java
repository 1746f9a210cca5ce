package dev.mapcast.server;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mapcast.proto.v1.MapcastGrpc;
import dev.mapcast.proto.v1.WatchRequest;
import dev.mapcast.proto.v1.WatchResponse;
import io.grpc.ManagedChannel;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import org.awaitility.Awaitility;

/** A watch stream's events as protobuf-java parses them; the client can cancel it. */
final class WatchStream implements ClientResponseObserver<WatchRequest, WatchResponse> {

    final List<WatchResponse> events = new CopyOnWriteArrayList<>();
    final CompletableFuture<Throwable> closed = new CompletableFuture<>();
    private volatile ClientCallStreamObserver<WatchRequest> call;
    /** Messages taken before the test lets the rest in ({@link #startTaking}); -1: all, as they come. */
    private final int taking;

    private WatchStream() {
        this(-1);
    }

    private WatchStream(int taking) {
        this.taking = taking;
    }

    /** Starts a watch on {@code channel}, with generated stubs (as any gRPC client would). */
    static WatchStream start(ManagedChannel channel, WatchRequest request) {
        WatchStream w = new WatchStream();
        MapcastGrpc.newStub(channel).watch(request, w);
        return w;
    }

    /**
     * Starts a watch that takes only its first {@code messages} until {@link #takeAll}: the rest
     * wait in the transport (flow control) and then in the server's queue, as for a slow reader.
     */
    static WatchStream startTaking(ManagedChannel channel, WatchRequest request, int messages) {
        WatchStream w = new WatchStream(messages);
        MapcastGrpc.newStub(channel).watch(request, w);
        return w;
    }

    /** Lets every message in, from now on. */
    void takeAll() {
        call.request(Integer.MAX_VALUE);
    }

    @Override
    public void beforeStart(ClientCallStreamObserver<WatchRequest> requestStream) {
        call = requestStream;
        if (taking >= 0) {
            requestStream.disableAutoRequestWithInitial(taking);
        }
    }

    void cancel() {
        call.cancel("the test is done with it", null);
    }

    @Override
    public void onNext(WatchResponse value) {
        events.add(value);
    }

    @Override
    public void onError(Throwable t) {
        closed.complete(t);
    }

    @Override
    public void onCompleted() {
        closed.complete(null);
    }

    void await(Predicate<WatchResponse> seen) {
        // Qualified: this method's own name hides the static import.
        Awaitility.await().atMost(10, TimeUnit.SECONDS).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(5))
                .untilAsserted(() -> assertTrue(events.stream().anyMatch(seen), () -> "timed out; saw " + kinds()));
    }

    /** A copy whose events are this stream's, batches flattened. */
    WatchStream flattened() {
        WatchStream copy = new WatchStream();
        for (WatchResponse r : events) {
            if (r.hasBatch()) {
                copy.events.addAll(r.getBatch().getEventsList());
            } else {
                copy.events.add(r);
            }
        }
        return copy;
    }

    List<String> kinds() {
        return events.stream().map(r -> switch (r.getEventCase()) {
            case SNAPSHOT -> "snapshot " + r.getSnapshot().getRevision();
            case DELTA -> "delta " + r.getDelta().getRevision();
            case COMPACTION -> "compaction " + r.getCompaction().getCompactRevision();
            case PROGRESS -> "progress " + r.getProgress().getRevision();
            case BATCH -> "batch of " + r.getBatch().getEventsCount();
            case DELETED -> "deleted " + r.getDeleted().getRevision();
            default -> "?";
        }).collect(Collectors.toList());
    }
}
