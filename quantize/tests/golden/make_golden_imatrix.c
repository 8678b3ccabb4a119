/* Golden vectors for the importance-weighted encoders, from ggml's own quantizers (libggml-base).
 *
 * Reads the stored input.f32 (24 rows of 256 values, written by make_golden.c; not regenerated
 * here), writes imatrix.f32 (256 positive per-column weights: a smooth pattern with a few large
 * and a few tiny entries, the same for every row as an imatrix is per column) and
 * <type>.imatrix.bin = quantize_<type>(x, y, 24, 256, imatrix) for every type whose ggml
 * quantizer uses the importance matrix (q8_0 ignores it, so it has none):
 *   cc -O2 make_golden_imatrix.c -lm -L$BIN -lggml-base -Wl,-rpath,$BIN -o /tmp/make_golden_imatrix
 *   /tmp/make_golden_imatrix .
 * with BIN the bin/ directory of a llama.cpp build. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef size_t (*quantize_fn)(const float *src, void *dst, int64_t nrow, int64_t n_per_row,
                              const float *imatrix);
size_t quantize_q2_K(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_q3_K(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_q4_K(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_q5_K(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_q6_K(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_q4_0(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_q4_1(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_q5_0(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_q5_1(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_iq4_nl(const float *, void *, int64_t, int64_t, const float *);
size_t quantize_iq4_xs(const float *, void *, int64_t, int64_t, const float *);

#define N 256
#define ROWS 24

static void path(char *out, size_t n, const char *dir, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

static void put(const char *dir, const char *name, const void *p, size_t n) {
    char f_path[4096];
    path(f_path, sizeof f_path, dir, name);
    FILE *f = fopen(f_path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) { perror(f_path); exit(1); }
    fclose(f);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    static float x[ROWS * N], qw[N];
    char in_path[4096];
    path(in_path, sizeof in_path, dir, "input.f32");
    FILE *f = fopen(in_path, "rb");
    if (!f || fread(x, 1, sizeof x, f) != sizeof x || fgetc(f) != EOF) {
        fprintf(stderr, "%s: expected %zu bytes\n", in_path, sizeof x);
        return 1;
    }
    fclose(f);
    for (int j = 0; j < N; ++j) {
        float v = 1.0f + 0.75f * sinf(0.13f * (float)j) + 0.25f * cosf(0.041f * (float)j * (float)j);
        if (j % 41 == 7) v *= 60.0f;   /* a few columns with large activations */
        if (j % 53 == 11) v = 1e-6f;   /* a few nearly dead columns */
        qw[j] = v;
    }
    put(dir, "imatrix.f32", qw, sizeof qw);
    static const struct { const char *name; quantize_fn fn; size_t block_bytes, block_len; } types[] = {
        {"q2_k", quantize_q2_K, 84, 256},    {"q3_k", quantize_q3_K, 110, 256},
        {"q4_k", quantize_q4_K, 144, 256},   {"q5_k", quantize_q5_K, 176, 256},
        {"q6_k", quantize_q6_K, 210, 256},   {"q4_0", quantize_q4_0, 18, 32},
        {"q4_1", quantize_q4_1, 20, 32},     {"q5_0", quantize_q5_0, 22, 32},
        {"q5_1", quantize_q5_1, 24, 32},     {"iq4_nl", quantize_iq4_nl, 18, 32},
        {"iq4_xs", quantize_iq4_xs, 136, 256},
    };
    static uint8_t q[ROWS * 256];
    for (size_t t = 0; t < sizeof types / sizeof types[0]; ++t) {
        size_t bytes = ROWS * (N / types[t].block_len) * types[t].block_bytes;
        size_t got = types[t].fn(x, q, ROWS, N, qw);
        if (got != bytes) { fprintf(stderr, "%s: %zu bytes, expected %zu\n", types[t].name, got, bytes); return 1; }
        char name[64];
        snprintf(name, sizeof name, "%s.imatrix.bin", types[t].name);
        put(dir, name, q, bytes);
    }
    return 0;
}
