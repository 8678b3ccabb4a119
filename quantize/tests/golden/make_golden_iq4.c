/* Golden vectors for iq4_nl and iq4_xs from ggml's own reference quantizers (libggml-base).
 *
 * Reads the stored input.f32 (24 rows x 256 values, written by make_golden.c) and writes, for
 * all rows as one long row:
 *   iq4_nl.bin / iq4_nl.deq.f32   quantize_row_iq4_nl_ref / dequantize_row_iq4_nl
 *   iq4_xs.bin / iq4_xs.deq.f32   quantize_row_iq4_xs_ref / dequantize_row_iq4_xs
 *   iq4_nl_q.bin                  quantize_iq4_nl without importance matrix (the 15-trial
 *                                 search llama-quantize runs; the _ref above runs none)
 * and, from its own input iq4_extreme.f32 (16 rows x 256 made here: weights x^2 that overflow,
 * sub-blocks from 1e-40 to 3e38, blocks at the 1e-15 threshold, exact grid ties), the same
 * three encodings as iq4_nl_extreme.bin, iq4_nl_q_extreme.bin and iq4_xs_extreme.bin.
 *
 *   cc -O2 make_golden_iq4.c -L$BIN -lggml-base -Wl,-rpath,$BIN -o /tmp/make_golden_iq4
 *   /tmp/make_golden_iq4 .
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

void quantize_row_iq4_nl_ref(const float *x, void *y, int64_t k);
void quantize_row_iq4_xs_ref(const float *x, void *y, int64_t k);
size_t quantize_iq4_nl(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *imatrix);
void dequantize_row_iq4_nl(const void *x, float *y, int64_t k);
void dequantize_row_iq4_xs(const void *x, float *y, int64_t k);

#define N 256
#define ROWS 24
#define K ((int64_t)ROWS * N)

static uint64_t s = 0x243f6a8885a308d3ull;
static uint64_t next(void) { s ^= s >> 12; s ^= s << 25; s ^= s >> 27; return s * 0x2545f4914f6cdd1dull; }
static float uni(void) { return (float)(next() >> 40) / (float)(1u << 23) - 1.0f; }
static float nrm(void) { return (uni() + uni() + uni() + uni()) * 0.87f; }

static float clampf(double v) { return v > 3.4028234663852886e38 ? 3.4028234663852886e38f : v < -3.4028234663852886e38 ? -3.4028234663852886e38f : (float)v; }

static const int8_t grid[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static void extreme_row(int r, float *v) {
    static const double big[8] = {1e17, 1e19, 2e19, 1e20, 1e25, 1e30, 1e36, 1e39};
    static const double mixed[2][8] = {{1, 1e30, 1, 3e38, 1e-3, 1e20, 1, 1e-30},
                                       {1e-40, 1e38, 1e-20, 1e10, 1e-15, 1e19, 1e-5, 2e19}};
    static const float eps[4] = {1e-15f, 0x1.203af8p-50f /* below 1e-15 */, 0x1.203afcp-50f /* above */, 1e-38f};
    for (int i = 0; i < N; i++) v[i] = nrm();
    if (r < 8) {
        for (int i = 0; i < N; i++) v[i] = clampf(v[i] * big[r]);
    } else if (r < 10) {
        for (int i = 0; i < N; i++) v[i] = clampf(v[i] * mixed[r - 8][i / 32]);
    } else if (r < 14) {
        /* near-zero blocks around one normal block */
        for (int i = 0; i < N; i++) if (i / 32 != 5) v[i] = eps[r - 10] * (float)((i % 7) - 3) / 3.0f;
    } else {
        /* max = -127 and the midpoints of the grid and their float neighbours */
        for (int i = 0; i < N; i++) {
            float m = ((float)grid[i % 15] + (float)grid[i % 15 + 1]) / 2.0f;
            v[i] = i % 32 == 0 ? -127.0f : i % 3 == 0 ? m : i % 3 == 1 ? nextafterf(m, -1e9f) : nextafterf(m, 1e9f);
            if (r == 15) v[i] *= 0.0078125f;
        }
    }
}

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

    static float e[16 * N];
    const int64_t ke = 16 * N;
    for (int r = 0; r < 16; r++) extreme_row(r, e + r * N);
    put(dir, "iq4_extreme.f32", e, sizeof e);
    quantize_row_iq4_nl_ref(e, q, ke);   put(dir, "iq4_nl_extreme.bin", q, ke / 32 * 18);
    quantize_iq4_nl(e, q, 1, ke, NULL);  put(dir, "iq4_nl_q_extreme.bin", q, ke / 32 * 18);
    quantize_row_iq4_xs_ref(e, q, ke);   put(dir, "iq4_xs_extreme.bin", q, ke / 256 * 136);
    return 0;
}
