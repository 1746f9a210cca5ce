/** Watch streams (one queue of encoded events per watcher, flow controlled) and snapshot streams. */
package dev.mapcast.server.fanout;
