/** The client SDK: live replica, writes, resume and verification. */
package dev.mapcast.client;
