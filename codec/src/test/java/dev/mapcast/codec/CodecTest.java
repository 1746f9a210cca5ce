package dev.mapcast.codec;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.mapcast.core.OffHeapMap;
import dev.mapcast.proto.v1.MapInfo;
import java.nio.ByteBuffer;
import java.nio.ReadOnlyBufferException;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class CodecTest {

    @Test
    void typedValuesRoundTripThroughAMap() {
        Codec<String> keys = Codec.utf8();
        Codec<MapInfo> values = Codec.protobuf(MapInfo.parser());
        MapInfo info = MapInfo.newBuilder().setName("flags").setRevision(12).setSize(3).build();
        try (OffHeapMap map = OffHeapMap.builder().build()) {
            map.put(keys.encode("ünïcödé/κλειδί"), values.encode(info));
            assertEquals(info, values.decode(map.get(keys.encode("ünïcödé/κλειδί"))));
        }
    }

    @Test
    void utf8RefusesMalformedBytesNamingTheOffset() {
        byte[] bad = {'o', 'k', (byte) 0xC3, (byte) 0x28};
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Codec.utf8().decode(bad));
        assertTrue(e.getMessage().contains("not UTF-8 at byte 2 of 4"), e.getMessage());
        assertEquals("日本", Codec.utf8().decode("日本".getBytes(StandardCharsets.UTF_8)));
    }

    @Test
    void protobufRefusesBytesThatAreNotTheMessage() {
        byte[] garbage = {(byte) 0xFF, (byte) 0xFF, (byte) 0xFF};
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Codec.protobuf(MapInfo.parser()).decode(garbage));
        assertTrue(e.getMessage().startsWith("bytes: 3 bytes that are not the expected message"), e.getMessage());
    }

    @Test
    void bufferEncodingLeavesThePositionAndDecodingIsReadOnly() {
        ByteBuffer buffer = ByteBuffer.wrap("xxhello".getBytes(StandardCharsets.US_ASCII));
        buffer.position(2);
        assertArrayEquals("hello".getBytes(StandardCharsets.US_ASCII), Codec.byteBuffer().encode(buffer));
        assertEquals(2, buffer.position());
        ByteBuffer decoded = Codec.byteBuffer().decode(new byte[] {1, 2});
        assertEquals(2, decoded.remaining());
        assertThrows(ReadOnlyBufferException.class, () -> decoded.put((byte) 0));
    }

    @Test
    void nullIsRefusedByName() {
        NullPointerException e = assertThrows(NullPointerException.class, () -> Codec.utf8().encode(null));
        assertEquals("value", e.getMessage());
        assertThrows(NullPointerException.class, () -> Codec.bytes().decode(null));
        assertThrows(NullPointerException.class, () -> Codec.protobuf(null));
        assertEquals(ByteString.copyFromUtf8("a"), ByteString.copyFrom(Codec.bytes().encode(new byte[] {'a'})));
    }
}
