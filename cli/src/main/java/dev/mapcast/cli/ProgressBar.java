package dev.mapcast.cli;

import java.io.PrintStream;

/**
 * A one-line progress bar on stderr, redrawn in place, for long operations; only when the user
 * sees a terminal (System.console() is not null). Otherwise every method does nothing, so a script
 * or a pipe gets no progress noise. The line is cleared when done, leaving the terminal as it was.
 */
final class ProgressBar implements AutoCloseable {

    private static final int WIDTH = 30;
    /** Redraws at most this often: a bar that updates per chunk must not cost more than the work. */
    private static final long REDRAW_NANOS = 100_000_000L;

    private final PrintStream err;
    private final String what;
    private long lastDrawn;
    private int drawnLength;

    private ProgressBar(PrintStream err, String what) {
        this.err = err;
        this.what = what;
    }

    /** A bar on stderr if it is a terminal, else one that shows nothing. */
    static ProgressBar onTerminal(String what) {
        return new ProgressBar(System.console() != null ? System.err : null, what);
    }

    /** {@code done} of {@code total} entries (total 0: not known yet), and bytes so far. */
    void update(long done, long total, long bytes) {
        long now = System.nanoTime();
        if (err == null || (drawnLength > 0 && now - lastDrawn < REDRAW_NANOS)) {
            return;
        }
        lastDrawn = now;
        StringBuilder line = new StringBuilder("\r").append(what).append(' ');
        if (total > 0) {
            int filled = (int) Math.min(WIDTH, done * WIDTH / total);
            line.append('[').append("#".repeat(filled)).append(" ".repeat(WIDTH - filled)).append("] ")
                    .append(Math.min(100, done * 100 / total)).append("% ").append(done).append('/').append(total);
        } else {
            line.append(done);
        }
        line.append(" entries, ").append(mebibytes(bytes));
        int length = line.length();
        if (length < drawnLength) {
            line.append(" ".repeat(drawnLength - length));  // rub out the longer line before
        }
        drawnLength = length;
        err.print(line);
        err.flush();
    }

    /** Clears the bar's line. */
    @Override
    public void close() {
        if (err != null && drawnLength > 0) {
            err.print("\r" + " ".repeat(drawnLength) + "\r");
            err.flush();
            drawnLength = 0;
        }
    }

    private static String mebibytes(long bytes) {
        return String.format("%.1f MiB", bytes / (1024.0 * 1024.0));
    }
}
