/** The {@code mapcast} command: serve, put/get/del/ls/watch, snapshot save/restore/inspect. */
package dev.mapcast.cli;
