/**
 * The mapcast server: {@link dev.mapcast.server.MapcastServer} and its builder. The packages below
 * it are its parts, each depending only on the ones after it in this list:
 * <ul>
 * <li>{@code rpc}: the gRPC service, its calls, request parsing and threads;
 * <li>{@code cluster}: a Raft group (Apache Ratis) as the source of the order of writes;
 * <li>{@code fanout}: watch streams and snapshot streams;
 * <li>{@code map}: the maps by name, revisions, history, and applying ordered writes to them;
 * <li>{@code storage}: the single server's data directory, write-ahead logs and snapshot files.
 * </ul>
 * Only this package is public API; the others are public to each other only.
 */
package dev.mapcast.server;
