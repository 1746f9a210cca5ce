package dev.mapcast.codec;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageLite;
import com.google.protobuf.Parser;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * Turns a typed key or value into the bytes a map stores, and back: how users of the client SDK
 * see a map of {@code String} to their own protobuf message instead of bytes to bytes.
 *
 * <pre>{@code
 * Codec<String> keys = Codec.utf8();
 * Codec<FeatureFlag> values = Codec.protobuf(FeatureFlag.parser());
 * }</pre>
 *
 * Decoding is strict: bytes that are not a valid value of the type throw an
 * {@link IllegalArgumentException} saying what they are not, never a silently replaced character
 * or a half-parsed message. Map keys travel as protobuf {@code string}s, so a key codec's bytes
 * must be UTF-8 (the server refuses others).
 */
public interface Codec<T> {

    byte[] encode(T value);

    T decode(byte[] bytes);

    /** Strings as UTF-8; decoding refuses malformed UTF-8. */
    static Codec<String> utf8() {
        return Utf8Codec.INSTANCE;
    }

    /** Byte arrays as they are (no copy either way: do not change an array after handing it over). */
    static Codec<byte[]> bytes() {
        return BytesCodec.INSTANCE;
    }

    /** Buffers: encoding copies the remaining bytes (the position does not move); decoding wraps read-only. */
    static Codec<ByteBuffer> byteBuffer() {
        return ByteBufferCodec.INSTANCE;
    }

    /** Protobuf messages as their wire bytes, parsed with {@code parser} (e.g. {@code MyMessage.parser()}). */
    static <M extends MessageLite> Codec<M> protobuf(Parser<M> parser) {
        return new ProtobufCodec<>(Objects.requireNonNull(parser, "parser"));
    }
}

final class Utf8Codec implements Codec<String> {
    static final Utf8Codec INSTANCE = new Utf8Codec();

    @Override
    public byte[] encode(String value) {
        return Objects.requireNonNull(value, "value").getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public String decode(byte[] bytes) {
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(Objects.requireNonNull(bytes, "bytes"));
        try {
            CharBuffer chars = decoder.decode(in);
            return chars.toString();
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("bytes: not UTF-8 at byte " + in.position() + " of " + bytes.length, e);
        }
    }
}

final class BytesCodec implements Codec<byte[]> {
    static final BytesCodec INSTANCE = new BytesCodec();

    @Override
    public byte[] encode(byte[] value) {
        return Objects.requireNonNull(value, "value");
    }

    @Override
    public byte[] decode(byte[] bytes) {
        return Objects.requireNonNull(bytes, "bytes");
    }
}

final class ByteBufferCodec implements Codec<ByteBuffer> {
    static final ByteBufferCodec INSTANCE = new ByteBufferCodec();

    @Override
    public byte[] encode(ByteBuffer value) {
        ByteBuffer v = Objects.requireNonNull(value, "value").duplicate();
        byte[] bytes = new byte[v.remaining()];
        v.get(bytes);
        return bytes;
    }

    @Override
    public ByteBuffer decode(byte[] bytes) {
        return ByteBuffer.wrap(Objects.requireNonNull(bytes, "bytes")).asReadOnlyBuffer();
    }
}

final class ProtobufCodec<M extends MessageLite> implements Codec<M> {
    private final Parser<M> parser;

    ProtobufCodec(Parser<M> parser) {
        this.parser = parser;
    }

    @Override
    public byte[] encode(M value) {
        return Objects.requireNonNull(value, "value").toByteArray();
    }

    @Override
    public M decode(byte[] bytes) {
        try {
            return parser.parseFrom(Objects.requireNonNull(bytes, "bytes"));
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalArgumentException("bytes: " + bytes.length + " bytes that are not the expected message: "
                    + e.getMessage(), e);
        }
    }
}
