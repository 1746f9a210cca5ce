/** Map-entry records, snapshot and delta encoding and decoding, snapshot files, gRPC marshallers, typed key/value codecs, and the PEM files of TLS. */
package dev.mapcast.codec;
