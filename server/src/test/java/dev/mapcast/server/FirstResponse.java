package dev.mapcast.server;

import io.grpc.stub.StreamObserver;
import java.util.concurrent.CompletableFuture;

/** A response observer for calls with one answer: completes with the first response, or the call's error. */
final class FirstResponse<T> extends CompletableFuture<T> implements StreamObserver<T> {

    @Override
    public void onNext(T value) {
        complete(value);
    }

    @Override
    public void onError(Throwable t) {
        completeExceptionally(t);
    }

    @Override
    public void onCompleted() {
    }
}
