/**
 * A cluster: this server as a member of a Raft group (Apache Ratis) that gives the order of every
 * change. {@link dev.mapcast.server.cluster.RaftOrder} is the {@link
 * dev.mapcast.server.map.ChangeOrder} of a member; {@link dev.mapcast.server.cluster.MapStateMachine}
 * applies committed entries to the maps on every member; {@link
 * dev.mapcast.server.cluster.ClusterMember} runs Ratis, checks the data directory and changes the
 * membership; {@link dev.mapcast.server.cluster.ClusterConfig} is what {@code --node-id} and
 * {@code --cluster} say.
 */
package dev.mapcast.server.cluster;
