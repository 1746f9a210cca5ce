package dev.mapcast.server;

import java.util.concurrent.Executor;
import java.util.concurrent.ScheduledExecutorService;

/**
 * Where watch streams send from: an executor for drains that no writer runs itself (onReady,
 * restarts, progress), and a timer for lingering (see {@link Watcher#sendFromCaller()}).
 */
record Fanout(Executor executor, ScheduledExecutorService timer) {
}
