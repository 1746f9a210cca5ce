/**
 * Authentication, authorization and the audit log of a server started with --auth: who is
 * calling, what they may do, and an fsynced line of JSON for each call ({@link
 * dev.mapcast.server.auth.AuditLog}).
 */
package dev.mapcast.server.auth;
