/* Golden vectors for q2_k, q3_k and q5_k from ggml's own reference quantizers (libggml-base).
 *
 * Reads the stored input.f32 (24 rows of 256 values, written by make_golden.c; not regenerated
 * here) and writes <type>.bin (quantize_row_<type>_ref of all rows as one long row) and
 * <type>.deq.f32 (dequantize_row_<type> of that) next to it:
 *   cc -O2 make_golden_kquant.c -L$BIN -lggml-base -Wl,-rpath,$BIN -o /tmp/make_golden_kquant
 *   /tmp/make_golden_kquant .
 * with BIN the bin/ directory of a llama.cpp build (e.g. the one ../shared/tools/peer-llamacpp.sh
 * makes). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void quantize_row_q2_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q3_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q5_K_ref(const float *x, void *y, int64_t k);
void dequantize_row_q2_K(const void *x, float *y, int64_t k);
void dequantize_row_q3_K(const void *x, float *y, int64_t k);
void dequantize_row_q5_K(const void *x, float *y, int64_t k);

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
    static float x[ROWS * N], deq[ROWS * N];
    char in_path[4096];
    path(in_path, sizeof in_path, dir, "input.f32");
    FILE *f = fopen(in_path, "rb");
    if (!f || fread(x, 1, sizeof x, f) != sizeof x || fgetc(f) != EOF) {
        fprintf(stderr, "%s: expected %zu bytes\n", in_path, sizeof x);
        return 1;
    }
    fclose(f);
    static uint8_t q[ROWS * 176];
    const int64_t k = (int64_t)ROWS * N;
    quantize_row_q2_K_ref(x, q, k);  put(dir, "q2_k.bin", q, ROWS * 84);
    dequantize_row_q2_K(q, deq, k);  put(dir, "q2_k.deq.f32", deq, sizeof deq);
    quantize_row_q3_K_ref(x, q, k);  put(dir, "q3_k.bin", q, ROWS * 110);
    dequantize_row_q3_K(q, deq, k);  put(dir, "q3_k.deq.f32", deq, sizeof deq);
    quantize_row_q5_K_ref(x, q, k);  put(dir, "q5_k.bin", q, ROWS * 176);
    dequantize_row_q5_K(q, deq, k);  put(dir, "q5_k.deq.f32", deq, sizeof deq);
    return 0;
}
