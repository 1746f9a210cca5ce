/**
 * Who may talk to the server: TLS for the client port and between cluster members, from files
 * that are read again when they change ({@link dev.mapcast.server.security.ReloadingTls}).
 */
package dev.mapcast.server.security;
