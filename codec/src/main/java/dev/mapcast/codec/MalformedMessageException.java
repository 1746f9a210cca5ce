package dev.mapcast.codec;

/**
 * A received message that is not valid protobuf, or breaks a limit: nothing of it was applied.
 * {@link #offset()} is the byte, counted from the message's first, where reading failed.
 */
public final class MalformedMessageException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final String messageType;
    private final int offset;
    private final String reason;

    MalformedMessageException(String messageType, int offset, String reason) {
        super("malformed " + messageType + " at byte " + offset + ": " + reason);
        this.messageType = messageType;
        this.offset = offset;
        this.reason = reason;
    }

    public String messageType() {
        return messageType;
    }

    public int offset() {
        return offset;
    }

    public String reason() {
        return reason;
    }
}
