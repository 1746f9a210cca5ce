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

    /** {@code 500ms}, {@code 10s}, {@code 2m}, {@code 1h}, or ISO-8601 ({@code PT10S}); must be positive. */
    static final class DurationConverter implements ITypeConverter<Duration> {
        @Override
        public Duration convert(String text) {
            Duration d = parse(text.trim());
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
                case "s", "" -> Duration.ofSeconds(n);
                case "m", "min" -> Duration.ofMinutes(n);
                case "h" -> Duration.ofHours(n);
                default -> null;
            };
        }
    }

    /** A number of bytes: {@code 4096}, {@code 64KiB}, {@code 1MiB}, {@code 1GiB} (K, M, G are binary too). */
    static final class ByteSizeConverter implements ITypeConverter<Long> {
        @Override
        public Long convert(String text) {
            Matcher m = AMOUNT.matcher(text.trim());
            long shift = -1;
            if (m.matches()) {
                shift = switch (m.group(2).toLowerCase(Locale.ROOT)) {
                    case "", "b" -> 0;
                    case "k", "kb", "kib" -> 10;
                    case "m", "mb", "mib" -> 20;
                    case "g", "gb", "gib" -> 30;
                    default -> -1;
                };
            }
            if (shift >= 0) {
                try {
                    long n = Long.parseLong(m.group(1));
                    if (n <= (Long.MAX_VALUE >> shift)) {
                        return n << shift;
                    }
                } catch (NumberFormatException tooLong) {
                    // reported below
                }
            }
            throw new TypeConversionException("'" + text + "' (expected: a size in bytes such as 4096, 64KiB or 1MiB)");
        }
    }
}
