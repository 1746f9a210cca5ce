package dev.mapcast.testing;

/** Seeds of randomised tests: printed, and fixed with {@code -Dmapcast.seed=N} to rerun one. */
public final class TestSeeds {

    private TestSeeds() {
    }

    /** {@code -Dmapcast.seed} if given, else a new one; printed with how to rerun {@code test} with it. */
    public static long seed(String test) {
        String fixed = System.getProperty("mapcast.seed");
        long seed = fixed == null || fixed.isBlank() ? System.nanoTime() : Long.decode(fixed.trim());
        System.out.println("[mapcast] " + test + ": seed=" + seed + " (rerun with -Dmapcast.seed=" + seed + ")");
        return seed;
    }
}
