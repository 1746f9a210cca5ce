/** The gRPC surface: the Mapcast service, its calls, request parsing, limits checks and threads. */
package dev.mapcast.server.rpc;
