/** Map-entry records, snapshot and delta encoding and decoding, snapshot files, gRPC marshallers, typed key/value codecs, the PEM files of TLS, and one-line JSON objects. */
package dev.mapcast.codec;
