package dev.mapcast.cli;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The "mapcast serving on ADDRESS (TRANSPORT)" line a server logs once it listens. Tests start
 * {@code serve} on port 0 and read the port from it: a port found free a moment earlier may be
 * taken by the time the server binds it.
 */
record ServingLine(String address, String transport) {

    private static final Pattern LINE = Pattern.compile("mapcast serving on (127\\.0\\.0\\.1:\\d+) \\((\\w+)[^)]*\\)");

    /** The line in {@code log}, or null while there is none. */
    static ServingLine in(String log) {
        Matcher m = LINE.matcher(log);
        return m.find() ? new ServingLine(m.group(1), m.group(2)) : null;
    }
}
