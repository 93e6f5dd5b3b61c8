/*
 * The exporter's hot loop in C: MySQL text-protocol row packets → Arrow binary columns.
 *
 * Loaded by pipeline/sources/mysql_native.py through ctypes, so it uses no Python API and no headers but the C
 * standard's: the same source builds, without Python's headers, for x86_64 and aarch64 Linux (zig cc from PyPI's
 * `ziglang` cross-compiles it for Lambda's arm64; see infra/native.py). Every function only reads the bytes it is
 * given and writes into buffers the caller allocated with the sizes stated; nothing is allocated or freed here.
 *
 * Protocol (https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response_text_resultset.html):
 * a packet is <3-byte little-endian length><1-byte sequence><payload>; a row's payload holds one length-encoded
 * string per column: a first byte < 0xFB is the length, 0xFB is NULL, 0xFC/0xFD/0xFE are followed by a 2/3/8-byte
 * length. A payload starting 0xFF is an error packet; 0xFE with a payload under 9 bytes ends the result.
 */

#include <stdint.h>
#include <string.h>

#define MAX_PACKET 0xFFFFFF

static int64_t packet_length(const uint8_t *header) {
    return (int64_t)header[0] | ((int64_t)header[1] << 8) | ((int64_t)header[2] << 16);
}

/*
 * Walk the packet headers of buf[pos:len] and append the payload offset of each complete packet to starts, at most
 * `capacity` of them. The walk stops before an incomplete packet, before a packet of the maximum size (the first
 * piece of a row of 16 MiB or more: *stopped_at_long = 1), and after an error or end-of-result packet (the caller
 * looks at the last start). Returns how many starts were appended; *next is where the next walk begins.
 */
int64_t kpi_walk(const uint8_t *buf, int64_t len, int64_t pos, int64_t *starts, int64_t capacity, int64_t *next,
                 int32_t *stopped_at_long) {
    int64_t count = 0;
    *stopped_at_long = 0;
    while (count < capacity && pos + 4 <= len) {
        int64_t length = packet_length(buf + pos);
        if (length == MAX_PACKET) {
            *stopped_at_long = 1;
            break;
        }
        if (pos + 4 + length > len) {
            break; /* incomplete: walked again once the rest has arrived */
        }
        starts[count++] = pos + 4;
        pos += 4 + length;
        if (length > 0) {
            uint8_t first = buf[pos - length];
            if (first == 0xFF || (first == 0xFE && length < 9)) {
                break;
            }
        }
    }
    *next = pos;
    return count;
}

/*
 * Split `rows` row payloads (starting at starts[i], each as long as its packet header says) into `columns` columns.
 * For column c: offsets[c] has rows + 1 int32 (Arrow's binary offsets, from 0), validity[c] has (rows + 7) / 8
 * bytes (bit i set: row i is not NULL), value_starts[c] has rows int64 (where each value's bytes begin in buf),
 * and nulls[c] receives the number of NULLs.
 *
 * Returns 0, or -(i + 1) when row i is malformed (a length past the end of its packet, a 0xFF length byte, bytes
 * left after the last column), or -(rows + 1) - i when column data of row i would pass 2 GiB (int32 offsets).
 */
int64_t kpi_split(const uint8_t *buf, int64_t len, const int64_t *starts, int64_t rows, int32_t columns,
                  int32_t **offsets, uint8_t **validity, int64_t **value_starts, int64_t *nulls) {
    int64_t validity_bytes = (rows + 7) / 8;
    for (int32_t c = 0; c < columns; c++) {
        offsets[c][0] = 0;
        memset(validity[c], 0, (size_t)validity_bytes);
        nulls[c] = 0;
    }
    for (int64_t i = 0; i < rows; i++) {
        int64_t pos = starts[i];
        if (pos < 4 || pos > len) {
            return -(i + 1);
        }
        int64_t end = pos + packet_length(buf + pos - 4);
        if (end > len) {
            return -(i + 1);
        }
        for (int32_t c = 0; c < columns; c++) {
            if (pos >= end) {
                return -(i + 1);
            }
            uint8_t lead = buf[pos];
            int64_t size;
            if (lead < 0xFB) {
                size = lead;
                pos += 1;
            } else if (lead == 0xFB) {
                offsets[c][i + 1] = offsets[c][i];
                value_starts[c][i] = pos;
                nulls[c] += 1;
                pos += 1;
                continue;
            } else if (lead == 0xFC) {
                if (pos + 3 > end) return -(i + 1);
                size = (int64_t)buf[pos + 1] | ((int64_t)buf[pos + 2] << 8);
                pos += 3;
            } else if (lead == 0xFD) {
                if (pos + 4 > end) return -(i + 1);
                size = (int64_t)buf[pos + 1] | ((int64_t)buf[pos + 2] << 8) | ((int64_t)buf[pos + 3] << 16);
                pos += 4;
            } else if (lead == 0xFE) {
                if (pos + 9 > end) return -(i + 1);
                uint64_t wide = 0;
                for (int b = 8; b >= 1; b--) wide = (wide << 8) | buf[pos + b];
                if (wide > (uint64_t)(end - pos - 9)) return -(i + 1);
                size = (int64_t)wide;
                pos += 9;
            } else {
                return -(i + 1);
            }
            if (size > end - pos) {
                return -(i + 1);
            }
            int64_t total = (int64_t)offsets[c][i] + size;
            if (total > INT32_MAX) {
                return -(rows + 1) - i;
            }
            offsets[c][i + 1] = (int32_t)total;
            value_starts[c][i] = pos;
            validity[c][i >> 3] |= (uint8_t)(1u << (i & 7));
            pos += size;
        }
        if (pos != end) {
            return -(i + 1);
        }
    }
    return 0;
}

/* Copy each of `rows` values of one column (from kpi_split) into data, which holds offsets[rows] bytes. */
void kpi_gather(const uint8_t *buf, const int64_t *value_starts, const int32_t *offsets, int64_t rows, uint8_t *data) {
    for (int64_t i = 0; i < rows; i++) {
        int32_t size = offsets[i + 1] - offsets[i];
        if (size > 0) {
            memcpy(data + offsets[i], buf + value_starts[i], (size_t)size);
        }
    }
}
