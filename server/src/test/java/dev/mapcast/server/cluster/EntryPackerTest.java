package dev.mapcast.server.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/** The packing of changes into entries, with the linger waits run by hand. */
class EntryPackerTest {

    /** The entries sent, each with the future that answers it, and the linger waits started. */
    private final List<List<String>> sent = new ArrayList<>();
    private final List<CompletableFuture<Void>> answers = new ArrayList<>();
    private final List<Runnable> lingers = new ArrayList<>();

    private EntryPacker<String> packer(int maxItems, int maxBytes) {
        return new EntryPacker<>(1, maxItems, maxBytes, String::length, lingers::add, batch -> {
            sent.add(batch);
            CompletableFuture<Void> answer = new CompletableFuture<>();
            answers.add(answer);
            return answer;
        });
    }

    private void answerLast() {
        answers.get(answers.size() - 1).complete(null);
    }

    @Test
    void aLoneWriterIsSentAtOnceEveryTime() {
        EntryPacker<String> p = packer(512, 1 << 20);
        for (int i = 0; i < 5; i++) {
            p.add("w" + i);
            assertEquals(List.of("w" + i), sent.get(i), "write " + i + " went out at once, alone");
            answerLast();
        }
        assertEquals(0, lingers.size(), "a lone writer never waits");
    }

    @Test
    void theWritersJustAnsweredAreAwaitedToGoWithTheOnesQueued() {
        EntryPacker<String> p = packer(512, 1 << 20);
        p.add("a");
        p.add("b");
        p.add("c");
        assertEquals(List.of(List.of("a")), sent, "one entry in flight; the rest wait for it");
        answerLast();
        assertEquals(1, sent.size(), "a's writer is awaited");
        assertEquals(1, lingers.size());
        p.add("a2");
        assertEquals(List.of("b", "c", "a2"), sent.get(1), "the expected count reached: sent at once");
        answerLast();
        p.add("b2");
        p.add("c2");
        assertEquals(2, sent.size(), "three answered, two back: still waiting");
        p.add("a3");
        assertEquals(List.of("b2", "c2", "a3"), sent.get(2), "one entry for the three writers");
        lingers.forEach(Runnable::run);  // waits that ended by count: their timers send nothing
        assertEquals(3, sent.size());
    }

    @Test
    void theWaitEndsWithWhatCame() {
        EntryPacker<String> p = packer(512, 1 << 20);
        p.add("a");
        p.add("b");
        answerLast();
        p.add("c");  // a's writer did not come back; another one did
        assertEquals(List.of("b", "c"), sent.get(1));
        answerLast();
        p.add("d");
        lingers.get(lingers.size() - 1).run();
        assertEquals(List.of("d"), sent.get(2), "the wait over, what came goes");
        answerLast();  // one answered, none queued: nothing waits
        p.add("e");
        assertEquals(List.of("e"), sent.get(3));
    }

    @Test
    void aWaitThatEndsWithNothingFreesTheSlot() {
        EntryPacker<String> p = packer(512, 1 << 20);
        p.add("a");
        p.add("b");
        answerLast();
        p.add("c");
        answerLast();
        lingers.get(lingers.size() - 1).run();
        assertEquals(2, sent.size(), "nothing queued, nothing sent");
        p.add("d");
        assertEquals(List.of("d"), sent.get(2), "the slot is free again");
    }

    @Test
    void entriesAreCappedByCountAndBytes() {
        EntryPacker<String> byCount = packer(3, 1 << 20);
        byCount.add("first");
        for (int i = 0; i < 7; i++) {
            byCount.add("c" + i);
        }
        answerLast();
        assertEquals(List.of("c0", "c1", "c2"), sent.get(1), "queued beyond the cap: no wait");
        answerLast();
        assertEquals(List.of("c3", "c4", "c5"), sent.get(2));
        sent.clear();
        answers.clear();

        EntryPacker<String> byBytes = packer(512, 10);
        byBytes.add("x");
        byBytes.add("aaaa");
        byBytes.add("bbbb");
        byBytes.add("cccc");
        answerLast();
        assertEquals(List.of("aaaa", "bbbb"), sent.get(1), "10 bytes at most an entry; no wait when 10 are queued");
        answerLast();
        lingers.get(lingers.size() - 1).run();
        assertEquals(List.of("cccc"), sent.get(2));
    }

    @Test
    void aFailedOrThrowingSendFreesTheSlot() {
        List<List<String>> tried = new ArrayList<>();
        EntryPacker<String> p = new EntryPacker<>(1, 512, 1 << 20, String::length, Runnable::run, batch -> {
            tried.add(batch);
            if (batch.contains("throw")) {
                throw new IllegalStateException("refused");
            }
            return CompletableFuture.failedFuture(new IllegalStateException("no leader"));
        });
        p.add("throw");
        p.add("next");
        assertEquals(List.of(List.of("throw"), List.of("next")), tried);
        p.add("again");
        assertTrue(tried.contains(List.of("again")), "the slot is free after failures");
    }
}
