package dev.mapcast.server.rpc;

import dev.mapcast.proto.v1.AddMemberRequest;
import dev.mapcast.proto.v1.ClusterStatusRequest;
import dev.mapcast.proto.v1.ClusterStatusResponse;
import dev.mapcast.proto.v1.MapcastClusterGrpc;
import dev.mapcast.proto.v1.RemoveMemberRequest;
import dev.mapcast.server.auth.Authorizer;
import dev.mapcast.server.cluster.ClusterMember;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@code MapcastCluster} service: a cluster's status and membership changes, answered by any
 * member (membership changes are sent on to the leader). A single server answers
 * FAILED_PRECONDITION. Calls wait for other members: the server runs them on its worker pool.
 */
public final class ClusterService extends MapcastClusterGrpc.MapcastClusterImplBase {

    private static final Logger log = LoggerFactory.getLogger(ClusterService.class);
    private static final Duration STATUS_TIMEOUT = Duration.ofSeconds(2);
    /** How long an add without a deadline waits for the new member to answer. */
    private static final Duration ADD_WAIT = Duration.ofMinutes(10);

    /** Null on a single server. */
    private final ClusterMember member;
    private final Authorizer authorizer;

    public ClusterService(ClusterMember member, Authorizer authorizer) {
        this.member = member;
        this.authorizer = authorizer;
    }

    @Override
    public void status(ClusterStatusRequest request, StreamObserver<ClusterStatusResponse> response) {
        run(response, null, () -> member.status(STATUS_TIMEOUT));
    }

    @Override
    public void addMember(AddMemberRequest request, StreamObserver<ClusterStatusResponse> response) {
        // The new member may start after this call: wait for it as long as the caller waits.
        Deadline deadline = Context.current().getDeadline();
        Duration wait = deadline == null ? ADD_WAIT
                : Duration.ofMillis(Math.max(0, deadline.timeRemaining(TimeUnit.MILLISECONDS)));
        run(response, "add cluster members", () -> {
            if (request.getId().isEmpty()) {
                throw Status.INVALID_ARGUMENT.withDescription("id: empty (expected: the new member's --node-id)")
                        .asRuntimeException();
            }
            try {
                return member.addMember(request.getId(), request.getPeerAddress(), wait);
            } catch (IllegalArgumentException e) {
                throw Status.INVALID_ARGUMENT.withDescription(e.getMessage()).asRuntimeException();
            }
        });
    }

    @Override
    public void removeMember(RemoveMemberRequest request, StreamObserver<ClusterStatusResponse> response) {
        run(response, "remove cluster members", () -> member.removeMember(request.getId()));
    }

    /** Runs {@code body} and answers; {@code adminWhat} non-null: the caller needs the admin right for it. */
    private void run(StreamObserver<ClusterStatusResponse> response, String adminWhat,
            Supplier<ClusterStatusResponse> body) {
        if (member == null) {
            response.onError(Status.FAILED_PRECONDITION.withDescription("this server is not a cluster member (it was"
                    + " started without --cluster)").asRuntimeException());
            return;
        }
        ClusterStatusResponse out;
        try {
            if (adminWhat != null) {
                authorizer.checkAdmin(adminWhat);
            }
            out = body.get();
        } catch (StatusRuntimeException e) {
            response.onError(e);
            return;
        } catch (RuntimeException e) {
            log.error("cluster call failed", e);
            response.onError(Status.INTERNAL.withDescription("cluster call failed: " + e).asRuntimeException());
            return;
        }
        if (adminWhat != null) {
            authorizer.recordChange("", 0, List.of());
        }
        response.onNext(out);
        response.onCompleted();
    }
}
