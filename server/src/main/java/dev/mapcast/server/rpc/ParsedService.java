package dev.mapcast.server.rpc;

import com.google.protobuf.Message;
import io.grpc.Attributes;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.SecurityLevel;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.ServiceDescriptor;
import io.grpc.Status;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;

/**
 * A generated service (a {@code *ImplBase}) whose calls may wait (on other members, on the log),
 * bound as the server needs it: each request parsed into a {@link ParsedRequest}, so that a
 * malformed one ends the call with INVALID_ARGUMENT naming what is wrong, where gRPC would answer
 * UNKNOWN ("Application error processing RPC"); and the service's own handlers, unchanged, run
 * on the worker pool ({@link OffloadedCallHandler}). {@link MapcastService} binds its methods by
 * hand for the same reasons.
 */
public final class ParsedService {

    private ParsedService() {
    }

    /** {@code service} with every method's requests parsed so and its handlers run on {@code pool}. */
    public static ServerServiceDefinition of(ServerServiceDefinition service, Executor pool) {
        ServiceDescriptor original = service.getServiceDescriptor();
        ServiceDescriptor.Builder descriptor = ServiceDescriptor.newBuilder(original.getName())
                .setSchemaDescriptor(original.getSchemaDescriptor());
        List<ServerMethodDefinition<?, ?>> methods = new ArrayList<>();
        for (ServerMethodDefinition<?, ?> method : service.getMethods()) {
            ServerMethodDefinition<?, ?> parsed = parsed(method, pool);
            descriptor.addMethod(parsed.getMethodDescriptor());
            methods.add(parsed);
        }
        ServerServiceDefinition.Builder out = ServerServiceDefinition.builder(descriptor.build());
        methods.forEach(out::addMethod);
        return out.build();
    }

    @SuppressWarnings("unchecked")
    private static <Q, R> ServerMethodDefinition<ParsedRequest<Q>, R> parsed(ServerMethodDefinition<Q, R> definition,
            Executor pool) {
        MethodDescriptor<Q, R> method = definition.getMethodDescriptor();
        Message prototype = (Message) ((MethodDescriptor.PrototypeMarshaller<Q>) method.getRequestMarshaller())
                .getMessagePrototype();
        MethodDescriptor.Marshaller<ParsedRequest<Q>> requests =
                (MethodDescriptor.Marshaller<ParsedRequest<Q>>) (MethodDescriptor.Marshaller<?>)
                        ParsedRequest.marshaller(prototype);
        MethodDescriptor<ParsedRequest<Q>, R> parsedMethod = method.toBuilder(requests, method.getResponseMarshaller())
                .build();
        String type = prototype.getDescriptorForType().getName();
        ServerCallHandler<Q, R> handler = definition.getServerCallHandler();
        return ServerMethodDefinition.create(parsedMethod, new OffloadedCallHandler<>((call, headers) -> {
            ServerCall.Listener<Q> inner = handler.startCall(new Unwrapped<>(call, method), headers);
            return new ServerCall.Listener<ParsedRequest<Q>>() {
                private boolean refused;

                @Override
                public void onMessage(ParsedRequest<Q> request) {
                    if (refused) {
                        return;
                    }
                    if (request.error() != null) {
                        refused = true;
                        call.close(Status.INVALID_ARGUMENT.withDescription("malformed " + type + ": "
                                + request.error()), new Metadata());
                        return;
                    }
                    inner.onMessage(request.message());
                }

                @Override
                public void onHalfClose() {
                    if (!refused) {
                        inner.onHalfClose();
                    }
                }

                @Override
                public void onCancel() {
                    inner.onCancel();
                }

                @Override
                public void onComplete() {
                    inner.onComplete();
                }

                @Override
                public void onReady() {
                    inner.onReady();
                }
            };
        }, pool));
    }

    /** The call as the generated handler expects it: of the original method, messages parsed. */
    private static final class Unwrapped<Q, R> extends ServerCall<Q, R> {
        private final ServerCall<ParsedRequest<Q>, R> call;
        private final MethodDescriptor<Q, R> method;

        Unwrapped(ServerCall<ParsedRequest<Q>, R> call, MethodDescriptor<Q, R> method) {
            this.call = call;
            this.method = method;
        }

        @Override
        public void request(int messages) {
            call.request(messages);
        }

        @Override
        public void sendHeaders(Metadata headers) {
            call.sendHeaders(headers);
        }

        @Override
        public void sendMessage(R message) {
            call.sendMessage(message);
        }

        @Override
        public boolean isReady() {
            return call.isReady();
        }

        @Override
        public void close(Status status, Metadata trailers) {
            call.close(status, trailers);
        }

        @Override
        public boolean isCancelled() {
            return call.isCancelled();
        }

        @Override
        public void setMessageCompression(boolean enabled) {
            call.setMessageCompression(enabled);
        }

        @Override
        public void setCompression(String compressor) {
            call.setCompression(compressor);
        }

        @Override
        public SecurityLevel getSecurityLevel() {
            return call.getSecurityLevel();
        }

        @Override
        public Attributes getAttributes() {
            return call.getAttributes();
        }

        @Override
        public String getAuthority() {
            return call.getAuthority();
        }

        @Override
        public MethodDescriptor<Q, R> getMethodDescriptor() {
            return method;
        }
    }
}
