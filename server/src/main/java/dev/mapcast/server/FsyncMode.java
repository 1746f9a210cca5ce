package dev.mapcast.server;

/** When a Write is acknowledged, relative to the disk. */
public enum FsyncMode {
    /**
     * After its log record is forced to disk (fsync); concurrent writes share one force. No
     * acknowledged write is lost, even to a power failure. The default.
     */
    ALWAYS,
    /**
     * After its log record is written to the operating system, which the server forces to disk
     * every 100 ms. A crash of the server process loses nothing acknowledged; a crash of the machine
     * (power, kernel) can lose the last 100 ms of acknowledged writes. Several times the write
     * throughput of {@link #ALWAYS} on slow disks.
     */
    PERIODIC
}
