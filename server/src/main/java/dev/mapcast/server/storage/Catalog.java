package dev.mapcast.server.storage;

import dev.mapcast.codec.SnapshotFiles;
import dev.mapcast.proto.v1.SnapshotHeader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import java.util.TreeMap;
import java.util.zip.CRC32C;

/**
 * The file {@code <data-dir>/catalog}: the maps that exist, each with its directory under
 * {@code maps/}. A map exists once its name is in the catalog, and no longer once it is out of
 * it; a directory the catalog does not name is an unfinished creation or a finished deletion.
 * The file is replaced whole (written aside, forced, renamed over, the directory forced), so it is
 * always one version or the next.
 *
 * <pre>
 * mapcast catalog 1
 * m-config config                     one line per map: its directory, then its name, bytes other than
 * h-0f3a...  odd%20name%2Fwith%25     printable ASCII (and '%' and space) written %XX, sorted by name
 * crc32c 1a2b3c4d                     CRC-32C of every byte before this line
 * </pre>
 */
public final class Catalog {

    public static final String FILE = "catalog";
    private static final String HEADER = "mapcast catalog 1";
    private static final String CRC = "crc32c ";

    private Catalog() {
    }

    /** The maps (name to directory name) in {@code dataDir}'s catalog, or null if it has none. */
    public static TreeMap<String, String> read(Path dataDir) throws IOException {
        Path file = dataDir.resolve(FILE);
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            return null;
        }
        String text = new String(bytes, StandardCharsets.US_ASCII);
        int crcLine = text.lastIndexOf("\n" + CRC) + 1;
        if (crcLine == 0 || !text.endsWith("\n")) {
            throw damaged(file, text.length(), "no \"" + CRC.trim() + "\" line at its end (cut short?)");
        }
        CRC32C crc = new CRC32C();
        crc.update(bytes, 0, crcLine);
        String stated = text.substring(crcLine + CRC.length(), text.length() - 1);
        if (!stated.equals(String.format("%08x", (int) crc.getValue()))) {
            throw damaged(file, crcLine, String.format("its CRC-32C is %08x, its last line says %s",
                    (int) crc.getValue(), stated));
        }
        String[] lines = text.substring(0, crcLine).split("\n", -1);
        if (!lines[0].equals(HEADER)) {
            throw damaged(file, 0, "its first line is \"" + lines[0] + "\" (expected: \"" + HEADER + "\")");
        }
        TreeMap<String, String> maps = new TreeMap<>();
        long at = lines[0].length() + 1;
        for (int i = 1; i < lines.length - 1; i++) {
            String[] fields = lines[i].split(" ", -1);
            if (fields.length != 2 || fields[0].isEmpty() || fields[0].startsWith(".") || fields[0].contains("/")) {
                throw damaged(file, at, "line " + (i + 1) + " is \"" + lines[i] + "\" (expected: DIRECTORY NAME)");
            }
            try {
                maps.put(unescape(fields[1]), fields[0]);
            } catch (NumberFormatException e) {
                throw damaged(file, at, "line " + (i + 1) + " has a bad %XX escape: \"" + fields[1] + "\"");
            }
            at += lines[i].length() + 1;
        }
        return maps;
    }

    /** Replaces the catalog with {@code maps} (name to directory name), durably and atomically. */
    static void write(Path dataDir, Map<String, String> maps) throws IOException {
        StringBuilder text = new StringBuilder(HEADER).append('\n');
        for (Map.Entry<String, String> m : new TreeMap<>(maps).entrySet()) {
            text.append(m.getValue()).append(' ').append(escape(m.getKey())).append('\n');
        }
        byte[] body = text.toString().getBytes(StandardCharsets.US_ASCII);
        CRC32C crc = new CRC32C();
        crc.update(body);
        ByteArrayOutputStream out = new ByteArrayOutputStream(body.length + 20);
        out.write(body);
        out.write((CRC + String.format("%08x", (int) crc.getValue()) + "\n").getBytes(StandardCharsets.US_ASCII));
        Path temporary = dataDir.resolve(FILE + ".tmp");
        try (var channel = java.nio.channels.FileChannel.open(temporary, StandardOpenOption.CREATE,
                StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            java.nio.ByteBuffer bytes = java.nio.ByteBuffer.wrap(out.toByteArray());
            while (bytes.hasRemaining()) {
                channel.write(bytes);
            }
            channel.force(true);
        }
        Files.move(temporary, dataDir.resolve(FILE), StandardCopyOption.ATOMIC_MOVE,
                StandardCopyOption.REPLACE_EXISTING);
        SnapshotFiles.forceDirectory(dataDir);
    }

    /**
     * The catalog a data directory made before catalogs existed would have: every map directory
     * under {@code mapsDir} (but those being created or deleted), by the name in its snapshots'
     * header. A directory whose name cannot be read gets {@code ?<directory>}, so that it is listed
     * (damaged, its name not matching) rather than dropped.
     */
    static TreeMap<String, String> fromDirectories(Path mapsDir) throws IOException {
        TreeMap<String, String> maps = new TreeMap<>();
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(mapsDir, Files::isDirectory)) {
            for (Path d : dirs) {
                String dir = d.getFileName().toString();
                if (dir.startsWith(".")) {
                    continue;  // .creating-, .deleting-: never a map
                }
                String name = nameIn(d);
                if (name == null || maps.containsKey(name)) {
                    name = "?" + dir;
                }
                maps.put(name, dir);
            }
        }
        return maps;
    }

    /** The map name in the header of any snapshot file of {@code dir}, or null. */
    private static String nameIn(Path dir) throws IOException {
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "*.snap")) {
            for (Path f : files) {
                try (InputStream in = Files.newInputStream(f)) {
                    SnapshotHeader header = SnapshotHeader.parseDelimitedFrom(in);
                    if (header != null && header.getMagic().equals(SnapshotFiles.MAGIC)) {
                        return header.getMap();
                    }
                } catch (IOException | RuntimeException unreadable) {
                    // another file may tell
                }
            }
        }
        return null;
    }

    private static StorageException damaged(Path file, long at, String problem) {
        return new StorageException(file + " at byte " + at + ": " + problem + "; the maps that exist are not known:"
                + " move it aside and start again to rebuild it from the map directories (a map created or deleted"
                + " just before a crash may then come back)");
    }

    static String escape(String name) {
        StringBuilder out = new StringBuilder();
        for (byte b : name.getBytes(StandardCharsets.UTF_8)) {
            if (b > 0x20 && b < 0x7F && b != '%') {
                out.append((char) b);
            } else {
                out.append('%').append(String.format("%02X", b & 0xFF));
            }
        }
        return out.toString();
    }

    static String unescape(String text) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(text.length());
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '%' && i + 2 < text.length()) {
                out.write(Integer.parseInt(text.substring(i + 1, i + 3), 16));
                i += 2;
            } else {
                out.write(c);
            }
        }
        return new String(out.toByteArray(), StandardCharsets.UTF_8);
    }
}
