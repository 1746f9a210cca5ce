/**
 * The maps by name ({@link dev.mapcast.server.map.MapRegistry}), each with its entries, revision,
 * history of deltas and subscribers ({@link dev.mapcast.server.map.HostedMap}): where an ordered,
 * normalised write is applied, whatever gave its order.
 */
package dev.mapcast.server.map;
