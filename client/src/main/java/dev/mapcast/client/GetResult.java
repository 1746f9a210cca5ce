package dev.mapcast.client;

/**
 * A key read from the server.
 *
 * @param found whether the key is present
 * @param value its value (empty when absent)
 * @param modRevision the revision that last wrote it (0 when absent)
 * @param revision the map revision the read saw
 * @param incarnation the incarnation of the map the read saw (a map deleted and created again has another)
 */
public record GetResult(boolean found, byte[] value, long modRevision, long revision, long incarnation) {
}
