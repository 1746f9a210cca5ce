/**
 * The single server's data directory: the catalog of maps, per-map write-ahead logs and snapshot
 * files, their recovery at start and their check and salvage offline.
 */
package dev.mapcast.server.storage;
