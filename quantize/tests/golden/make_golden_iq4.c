/* Golden vectors for iq4_nl and iq4_xs from ggml's own reference quantizers (libggml-base).
 *
 * Reads the stored input.f32 (24 rows x 256 values, written by make_golden.c) and writes, for
 * all rows as one long row:
 *   iq4_nl.bin / iq4_nl.deq.f32   quantize_row_iq4_nl_ref / dequantize_row_iq4_nl
 *   iq4_xs.bin / iq4_xs.deq.f32   quantize_row_iq4_xs_ref / dequantize_row_iq4_xs
 *   iq4_nl_q.bin                  quantize_iq4_nl without importance matrix (the 15-trial
 *                                 search llama-quantize runs; the _ref above runs none)
 *
 *   cc -O2 make_golden_iq4.c -L$BIN -lggml-base -Wl,-rpath,$BIN -o /tmp/make_golden_iq4
 *   /tmp/make_golden_iq4 .
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void quantize_row_iq4_nl_ref(const float *x, void *y, int64_t k);
void quantize_row_iq4_xs_ref(const float *x, void *y, int64_t k);
size_t quantize_iq4_nl(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *imatrix);
void dequantize_row_iq4_nl(const void *x, float *y, int64_t k);
void dequantize_row_iq4_xs(const void *x, float *y, int64_t k);

#define N 256
#define ROWS 24
#define K ((int64_t)ROWS * N)

static void get(const char *dir, const char *name, void *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f || fread(p, 1, n, f) != n || fgetc(f) != EOF) { fprintf(stderr, "%s: not %zu bytes\n", path, n); exit(1); }
    fclose(f);
}

static void put(const char *dir, const char *name, const void *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) { perror(path); exit(1); }
    fclose(f);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    static float x[K], deq[K];
    static uint8_t q[K / 32 * 18];
    get(dir, "input.f32", x, sizeof x);
    quantize_row_iq4_nl_ref(x, q, K);   put(dir, "iq4_nl.bin", q, K / 32 * 18);
    dequantize_row_iq4_nl(q, deq, K);   put(dir, "iq4_nl.deq.f32", deq, sizeof deq);
    quantize_iq4_nl(x, q, 1, K, NULL);  put(dir, "iq4_nl_q.bin", q, K / 32 * 18);
    quantize_row_iq4_xs_ref(x, q, K);   put(dir, "iq4_xs.bin", q, K / 256 * 136);
    dequantize_row_iq4_xs(q, deq, K);   put(dir, "iq4_xs.deq.f32", deq, sizeof deq);
    return 0;
}
