/* Golden vectors for q4_1, q5_0, q5_1 and q8_1 from ggml's own reference quantizers
 * (libggml-base of llama.cpp).
 *
 *   cc -O2 make_golden_fmt32.c -L$BUILD/bin -lggml-base -Wl,-rpath,$BUILD/bin -o /tmp/mgf32
 *   /tmp/mgf32 .
 *
 * Reads input.f32 (24 rows of 256 values, written by make_golden.c; not regenerated here) and
 * writes <type>.bin (quantize_row_<type>_ref of all rows as one row) and <type>.deq.f32
 * (dequantize_row_<type> of that; ggml has no q8_1 decoder, so q8_1 has only the .bin).
 *
 * It also writes fmt32_extra.f32, 4 more rows of edge cases for these formats (max − min
 * overflowing f32, constant and ±0 blocks, subnormal scales whose inverse is finite, scales
 * overflowing f16, exact ties), and <type>.extra.bin / <type>.extra.deq.f32 of them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void quantize_row_q4_1_ref(const float *x, void *y, int64_t k);
void quantize_row_q5_0_ref(const float *x, void *y, int64_t k);
void quantize_row_q5_1_ref(const float *x, void *y, int64_t k);
void quantize_row_q8_1_ref(const float *x, void *y, int64_t k);
void dequantize_row_q4_1(const void *x, float *y, int64_t k);
void dequantize_row_q5_0(const void *x, float *y, int64_t k);
void dequantize_row_q5_1(const void *x, float *y, int64_t k);

#define N 256
#define ROWS 24
#define XROWS 4

static uint64_t s = 0x243f6a8885a308d3ull;
static uint64_t next(void) { s ^= s >> 12; s ^= s << 25; s ^= s >> 27; return s * 0x2545f4914f6cdd1dull; }
static float uni(void) { return (float)(next() >> 40) / (float)(1u << 23) - 1.0f; }
static float nrm(void) { return (uni() + uni() + uni() + uni()) * 0.87f; }

static void put(const char *dir, const char *name, const void *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) { perror(path); exit(1); }
    fclose(f);
}

static void get(const char *dir, const char *name, void *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f || fread(p, 1, n, f) != n) { perror(path); exit(1); }
    fclose(f);
}

/* Block b (32 values) of extra row r. */
static void extra_block(int r, int b, float *v) {
    for (int j = 0; j < 32; j++) v[j] = nrm();
    switch (r * 8 + b) {
    /* row 0: degenerate ranges */
    case 0: for (int j = 0; j < 32; j++) v[j] = (j & 1) ? -3e38f : 3e38f; break;  /* max − min = inf */
    case 1: for (int j = 0; j < 32; j++) v[j] = 1.0f; break;                      /* constant */
    case 2: for (int j = 0; j < 32; j++) v[j] = (j == 0 || (next() & 1)) ? 0.0f : -0.0f; break;
    case 3: for (int j = 0; j < 32; j++) v[j] = (j == 0 || (next() & 1)) ? -0.0f : 0.0f; break;
    case 4: for (int j = 0; j < 32; j++) v[j] = 1.0f + (float)(next() % 32) * 0x1p-23f; break;
    case 5: for (int j = 0; j < 32; j++) v[j] = (float)j * 3e-39f; break;          /* subnormal d, finite 1/d */
    case 6: for (int j = 0; j < 32; j++) v[j] = (float)(j - 16) * 3e-39f; break;
    case 7: for (int j = 0; j < 32; j++) v[j] = nrm() * 1e37f; v[3] = 1.7e38f; v[9] = -1.7e38f; break;
    /* row 1: per-block magnitudes (f16 scale overflow, sums overflowing f16, tiny) */
    case 8: for (int j = 0; j < 32; j++) v[j] *= 1e-30f; break;
    case 9: for (int j = 0; j < 32; j++) v[j] *= 1e30f; break;
    case 10: for (int j = 0; j < 32; j++) v[j] *= 9e37f; break;
    case 11: for (int j = 0; j < 32; j++) v[j] *= 65504.0f * 15.0f / 3.0f; break;
    case 12: for (int j = 0; j < 32; j++) v[j] *= 65504.0f * 16.0f / 3.0f; break;
    case 13: for (int j = 0; j < 32; j++) v[j] = 3000.0f + uni(); break;           /* s > 65504 */
    case 14: for (int j = 0; j < 32; j++) v[j] *= 1e-5f; break;
    case 15: for (int j = 0; j < 32; j++) v[j] = -v[j] * v[j]; break;
    /* row 2: exact ties against d = 1 */
    case 16: for (int j = 0; j < 32; j++) v[j] = (float)(next() % 15) + 0.5f; v[0] = 0.0f; v[7] = 15.0f; break;
    case 17: for (int j = 0; j < 32; j++) v[j] = (float)(next() % 31) + 0.5f; v[0] = 0.0f; v[30] = 31.0f; break;
    case 18: for (int j = 0; j < 32; j++) v[j] = (float)(next() % 15) - 7.5f; v[2] = -8.0f; v[5] = 7.0f; break;
    case 19: for (int j = 0; j < 32; j++) v[j] = (float)(next() % 32) - 15.5f; v[1] = -16.0f; break;
    case 20: for (int j = 0; j < 32; j++) v[j] = (float)((int)(next() % 255) - 127) * 0.5f; v[4] = 63.5f; break;
    case 21: for (int j = 0; j < 32; j++) v[j] = (j % 3 == 0) ? 16.0f : (j % 3 == 1) ? -16.0f : 0.5f; break;
    case 22: for (int j = 0; j < 32; j++) v[j] = (j % 2) ? 31.0f : 0.0f; break;
    case 23: for (int j = 0; j < 32; j++) v[j] = (float)j; break;
    /* row 3: constant blocks of many values, one ulp apart, and single outliers */
    case 24: for (int j = 0; j < 32; j++) v[j] = -2.75f; break;
    case 25: for (int j = 0; j < 32; j++) v[j] = 1e-3f; v[31] = 0x1.0624e0p-10f; /* one ulp above */ break;
    case 26: for (int j = 0; j < 32; j++) v[j] = 0.0f; v[13] = -1e-20f; break;
    case 27: for (int j = 0; j < 32; j++) v[j] = 0.0f; v[0] = 5.0f; break;
    case 28: for (int j = 0; j < 32; j++) v[j] = 0.0f; v[31] = -5.0f; break;
    case 29: for (int j = 0; j < 32; j++) v[j] = 0x1p-149f * (float)(next() % 64); break;
    case 30: for (int j = 0; j < 32; j++) v[j] = -3.4e38f; break;
    default: for (int j = 0; j < 32; j++) v[j] = (j < 16) ? 1.0f : -1.0f; break;
    }
}

struct fmt {
    const char *name;
    size_t block;
    void (*q)(const float *, void *, int64_t);
    void (*dq)(const void *, float *, int64_t);
};

static void emit(const char *dir, const struct fmt *f, const float *x, int rows, const char *tag) {
    static uint8_t q[ROWS * 8 * 36];
    static float deq[ROWS * N];
    const int64_t k = (int64_t)rows * N;
    char name[256];
    memset(q, 0, sizeof q);
    f->q(x, q, k);
    snprintf(name, sizeof name, "%s%s.bin", f->name, tag);
    put(dir, name, q, (size_t)rows * 8 * f->block);
    if (f->dq) {
        f->dq(q, deq, k);
        snprintf(name, sizeof name, "%s%s.deq.f32", f->name, tag);
        put(dir, name, deq, (size_t)k * sizeof(float));
    }
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    static float x[ROWS * N], xx[XROWS * N];
    get(dir, "input.f32", x, sizeof x);
    for (int r = 0; r < XROWS; r++)
        for (int b = 0; b < 8; b++) extra_block(r, b, xx + r * N + 32 * b);
    put(dir, "fmt32_extra.f32", xx, sizeof xx);
    const struct fmt fmts[] = {
        {"q4_1", 20, quantize_row_q4_1_ref, dequantize_row_q4_1},
        {"q5_0", 22, quantize_row_q5_0_ref, dequantize_row_q5_0},
        {"q5_1", 24, quantize_row_q5_1_ref, dequantize_row_q5_1},
        {"q8_1", 36, quantize_row_q8_1_ref, NULL},
    };
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        emit(dir, &fmts[i], x, ROWS, "");
        emit(dir, &fmts[i], xx, XROWS, ".extra");
    }
    return 0;
}
