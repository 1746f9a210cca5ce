package dev.mapcast.server.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** --node-id and --cluster: what is accepted, and each bad value named. */
class ClusterConfigTest {

    @Test
    void parsesTheMembersInOrder() {
        ClusterConfig c = ClusterConfig.parse("b", "a=127.0.0.1:7001, b=127.0.0.1:7002,c=h3:7003", false);
        assertEquals(List.of("a", "b", "c"), List.copyOf(c.members().keySet()));
        assertEquals("127.0.0.1:7002", c.peerAddress());
        assertEquals("a=127.0.0.1:7001,b=127.0.0.1:7002,c=h3:7003", ClusterConfig.format(c.members()));
    }

    @Test
    void membersStartedWithTheSameListAgreeOnTheGroupWhateverTheOrder() {
        ClusterConfig a = ClusterConfig.parse("a", "a=h:1,b=h:2,c=h:3", false);
        ClusterConfig c = ClusterConfig.parse("c", "c=h:3,a=h:1,b=h:2", false);
        assertEquals(a.initialGroupId(), c.initialGroupId());
        assertNotEquals(a.initialGroupId(), ClusterConfig.parse("a", "a=h:1,b=h:2,c=h:4", false).initialGroupId());
    }

    @Test
    void eachBadValueIsNamed() {
        Map<String, String[]> cases = Map.of(
                "--cluster: member id 'a' given twice", new String[] {"a", "a=h:1,a=h:2"},
                "--cluster: members 'a' and 'b' have the same address h:1", new String[] {"a", "a=h:1,b=h:1"},
                "--node-id: 'x' is not in --cluster", new String[] {"x", "a=h:1"},
                "--cluster: 'a' (expected: ID=HOST:PORT", new String[] {"a", "a"},
                "--cluster: member a: address 'h:0'", new String[] {"a", "a=h:0"},
                "--cluster: member a: address 'h'", new String[] {"a", "a=h"},
                "--node-id: 'bad id'", new String[] {"bad id", "a=h:1"},
                "--cluster: member id '-a'", new String[] {"a", "-a=h:1"});
        cases.forEach((expected, args) -> {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> ClusterConfig.parse(args[0], args[1], false), expected);
            assertEquals(true, e.getMessage().startsWith(expected), e.getMessage() + " (expected: " + expected + ")");
        });
    }
}
