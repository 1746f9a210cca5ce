/**
 * The mapcast server: {@link dev.mapcast.server.MapcastServer} and its builder. The packages below
 * it are its parts, each depending only on the ones after it in this list:
 * <ul>
 * <li>{@code rpc}: the gRPC service, its calls, request parsing, connection limits and threads;
 * <li>{@code auth}: with --auth, who is calling and what they may do (users, roles and token
 *     hashes kept in a reserved map, written through the map package's ordered writes), and the
 *     audit log;
 * <li>{@code cluster}: a Raft group (Apache Ratis) as the source of the order of writes;
 * <li>{@code fanout}: watch streams and snapshot streams;
 * <li>{@code map}: the maps by name, revisions, history, and applying ordered writes to them;
 * <li>{@code storage}: the single server's data directory, write-ahead logs and snapshot files;
 * <li>{@code security}: TLS for the client port and between cluster members.
 * </ul>
 * Only this package is public API; the others are public to each other only.
 */
package dev.mapcast.server;
