package dev.mapcast.codec;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

class JsonLineTest {

    @Test
    void fieldsInTheOrderAdded() {
        assertEquals("{}", new JsonLine().toString());
        assertEquals("{\"s\":\"a\",\"n\":18446744073709551615,\"b\":true,\"l\":[\"x\",\"y\"],\"e\":[],"
                        + "\"o\":[{\"i\":1},{}]}",
                new JsonLine().string("s", "a").number("n", -1L).bool("b", true).strings("l", List.of("x", "y"))
                        .strings("e", List.of()).objects("o", List.of(new JsonLine().number("i", 1), new JsonLine()))
                        .toString());
    }

    @Test
    void stringsEscapedPerRfc8259() {
        assertEquals("{\"k\":\"q\\\"\\\\\\n\\u0001é\"}", new JsonLine().string("k", "q\"\\\n\u0001é").toString());
        assertEquals("{\"a\\tb\":\"\\r\\b\\f\\u001f\\u0000 \u007f\u2028\"}",
                new JsonLine().string("a\tb", "\r\b\f\u001f\u0000 \u007f\u2028").toString());
    }
}
