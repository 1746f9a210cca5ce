/** Map-entry records, snapshot and delta encoding and decoding, snapshot files, gRPC marshallers and typed key/value codecs. */
package dev.mapcast.codec;
