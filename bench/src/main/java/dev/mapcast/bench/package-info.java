/** JMH benchmarks of mapcast against the peers named in DESIGN.md; never part of the tests. */
package dev.mapcast.bench;
