/** The gRPC service: maps by name, revisions, history, watch fan-out and persistence. */
package dev.mapcast.server;
