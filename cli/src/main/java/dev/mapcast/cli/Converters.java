package dev.mapcast.cli;

import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** picocli converters for the option types a terminal user types: durations and byte sizes. */
final class Converters {

    private Converters() {
    }

    private static final Pattern AMOUNT = Pattern.compile("(\\d+)\\s*([a-zA-Z]*)");

    /**
     * {@code 500ms}, {@code 10s}, {@code 2m}, {@code 1h}, or ISO-8601 ({@code PT10S}); must be
     * positive, and a number needs its unit ({@code --timeout 5} is refused: seconds or minutes?).
     */
    static final class DurationConverter implements ITypeConverter<Duration> {
        @Override
        public Duration convert(String text) {
            String t = text.trim();
            if (t.matches("\\d+")) {
                throw new TypeConversionException("'" + text + "' needs a unit (expected: a positive duration such"
                        + " as " + t + "s, " + t + "ms or " + t + "m)");
            }
            Duration d = parse(t);
            if (d == null || d.isZero()) {
                throw new TypeConversionException(
                        "'" + text + "' (expected: a positive duration such as 500ms, 10s, 2m or 1h)");
            }
            return d;
        }

        private static Duration parse(String text) {
            if (text.toUpperCase(Locale.ROOT).startsWith("PT")) {
                try {
                    Duration d = Duration.parse(text);
                    return d.isNegative() ? null : d;
                } catch (DateTimeParseException e) {
                    return null;
                }
            }
            Matcher m = AMOUNT.matcher(text);
            if (!m.matches()) {
                return null;
            }
            long n;
            try {
                n = Long.parseLong(m.group(1));
            } catch (NumberFormatException e) {
                return null;
            }
            return switch (m.group(2).toLowerCase(Locale.ROOT)) {
                case "ms" -> Duration.ofMillis(n);
                case "s" -> Duration.ofSeconds(n);
                case "m", "min" -> Duration.ofMinutes(n);
                case "h" -> Duration.ofHours(n);
                default -> null;
            };
        }
    }

    /**
     * A number of bytes: {@code 4096}, or with a unit, binary ({@code 64KiB}, {@code 1MiB},
     * {@code 1GiB}) or decimal ({@code 64KB}, {@code 1MB}, {@code 1GB}: what they say, 10^3, 10^6,
     * 10^9). A bare {@code K}, {@code M} or {@code G} is refused, naming both readings.
     */
    static final class ByteSizeConverter implements ITypeConverter<Long> {
        @Override
        public Long convert(String text) {
            Matcher m = AMOUNT.matcher(text.trim());
            long unit = -1;
            if (m.matches()) {
                String suffix = m.group(2).toLowerCase(Locale.ROOT);
                unit = switch (suffix) {
                    case "", "b" -> 1;
                    case "kib" -> 1L << 10;
                    case "mib" -> 1L << 20;
                    case "gib" -> 1L << 30;
                    case "kb" -> 1_000;
                    case "mb" -> 1_000_000;
                    case "gb" -> 1_000_000_000;
                    default -> -1;
                };
                int power = suffix.length() == 1 ? "kmg".indexOf(suffix) + 1 : 0;  // a bare K, M or G: 1 to 3
                if (power > 0) {
                    String n = m.group(1) + suffix.toUpperCase(Locale.ROOT);
                    throw new TypeConversionException("'" + text + "' is ambiguous (expected: " + n + "iB for "
                            + m.group(1) + " x 2^" + 10 * power + " bytes, or " + n + "B for " + m.group(1) + " x 10^"
                            + 3 * power + ")");
                }
            }
            if (unit > 0) {
                try {
                    long n = Long.parseLong(m.group(1));
                    if (n <= Long.MAX_VALUE / unit) {
                        return n * unit;
                    }
                } catch (NumberFormatException tooLong) {
                    // reported below
                }
            }
            throw new TypeConversionException("'" + text + "' (expected: a size in bytes such as 4096, 64KiB, 1MiB"
                    + " or 1MB)");
        }
    }
}
