/*
 * A self-check of pipeline/sources/mysql_wire.c, compiled together with it for another architecture and run
 * there (`python -m infra.native --check aarch64` runs it under qemu-user): builds row packets of every length
 * class and NULLs from a fixed pseudo-random sequence, walks and splits them, and compares every value, offset
 * and validity bit with what it encoded. Prints "ok: N rows, M values" and exits 0, or names the first mismatch.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t kpi_walk(const uint8_t *, int64_t, int64_t, int64_t *, int64_t, int64_t *, int32_t *);
int64_t kpi_split(const uint8_t *, int64_t, const int64_t *, int64_t, int32_t, int32_t **, uint8_t **, int64_t **,
                  int64_t *);
void kpi_gather(const uint8_t *, const int64_t *, const int32_t *, int64_t, uint8_t *);

#define ROWS 300
#define COLUMNS 4

static uint32_t state = 12345;
static uint32_t next_random(void) {
    state = state * 1103515245u + 12345u;
    return state >> 8;
}

static const int32_t SIZES[] = {0, 1, 250, 251, 252, 65535, 65536, 70000};

int main(void) {
    static int32_t size_of[ROWS][COLUMNS]; /* -1: NULL */
    int64_t capacity = 64 * 1024 * 1024;
    uint8_t *buf = malloc((size_t)capacity);
    int64_t len = 0;
    for (int r = 0; r < ROWS; r++) {
        int64_t header = len;
        len += 4;
        for (int c = 0; c < COLUMNS; c++) {
            int32_t size = (next_random() % 5 == 0) ? -1 : SIZES[next_random() % 8];
            size_of[r][c] = size;
            if (size < 0) {
                buf[len++] = 0xFB;
            } else if (size < 0xFB) {
                buf[len++] = (uint8_t)size;
            } else if (size < 65536) {
                buf[len++] = 0xFC;
                buf[len++] = (uint8_t)size;
                buf[len++] = (uint8_t)(size >> 8);
            } else {
                buf[len++] = 0xFD;
                buf[len++] = (uint8_t)size;
                buf[len++] = (uint8_t)(size >> 8);
                buf[len++] = (uint8_t)(size >> 16);
            }
            for (int32_t i = 0; i < size; i++) buf[len++] = (uint8_t)('A' + (r + c + i) % 26);
        }
        int64_t payload = len - header - 4;
        buf[header] = (uint8_t)payload;
        buf[header + 1] = (uint8_t)(payload >> 8);
        buf[header + 2] = (uint8_t)(payload >> 16);
        buf[header + 3] = (uint8_t)r;
    }
    static int64_t starts[ROWS];
    int64_t next = 0;
    int32_t long_row = 0;
    int64_t rows = kpi_walk(buf, len, 0, starts, ROWS, &next, &long_row);
    if (rows != ROWS || next != len || long_row) {
        printf("walk: %lld rows, next %lld of %lld, long %d\n", (long long)rows, (long long)next, (long long)len,
               long_row);
        return 1;
    }
    int32_t *offsets[COLUMNS];
    uint8_t *validity[COLUMNS];
    int64_t *value_starts[COLUMNS];
    int64_t nulls[COLUMNS];
    for (int c = 0; c < COLUMNS; c++) {
        offsets[c] = malloc(sizeof(int32_t) * (ROWS + 1));
        validity[c] = malloc((ROWS + 7) / 8);
        value_starts[c] = malloc(sizeof(int64_t) * ROWS);
    }
    if (kpi_split(buf, len, starts, ROWS, COLUMNS, offsets, validity, value_starts, nulls) != 0) {
        printf("split refused well-formed rows\n");
        return 1;
    }
    int64_t values = 0;
    for (int c = 0; c < COLUMNS; c++) {
        uint8_t *data = malloc((size_t)offsets[c][ROWS] + 1);
        kpi_gather(buf, value_starts[c], offsets[c], ROWS, data);
        int64_t expected_nulls = 0;
        for (int r = 0; r < ROWS; r++) {
            int32_t size = size_of[r][c];
            int valid = (validity[c][r >> 3] >> (r & 7)) & 1;
            int32_t got = offsets[c][r + 1] - offsets[c][r];
            if (size < 0) {
                expected_nulls++;
                if (valid || got != 0) {
                    printf("row %d column %d: NULL expected\n", r, c);
                    return 1;
                }
                continue;
            }
            if (!valid || got != size) {
                printf("row %d column %d: %d bytes expected, %d found (valid %d)\n", r, c, size, got, valid);
                return 1;
            }
            for (int32_t i = 0; i < size; i++) {
                if (data[offsets[c][r] + i] != (uint8_t)('A' + (r + c + i) % 26)) {
                    printf("row %d column %d: byte %d differs\n", r, c, i);
                    return 1;
                }
            }
            values++;
        }
        if (nulls[c] != expected_nulls) {
            printf("column %d: %lld NULLs counted, %lld expected\n", c, (long long)nulls[c], (long long)expected_nulls);
            return 1;
        }
        free(data);
    }
    buf[starts[7] - 4] += 1; /* row 7's packet claims one byte more than its columns hold */
    if (kpi_split(buf, len, starts, 8, COLUMNS, offsets, validity, value_starts, nulls) != -8) {
        printf("split accepted a malformed row\n");
        return 1;
    }
    printf("ok: %d rows, %lld values\n", ROWS, (long long)values);
    return 0;
}
