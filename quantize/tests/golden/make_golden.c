/* Golden vectors from ggml's own reference quantizers (libggml-base of llama.cpp).
 *
 * Build against a llama.cpp build (e.g. the one ../shared/tools/peer-llamacpp.sh makes):
 *   cc -O2 make_golden.c -L$BUILD/bin -lggml-base -Wl,-rpath,$BUILD/bin -o /tmp/make_golden
 *   /tmp/make_golden .        # writes input.f32 and <type>.bin / <type>.deq.f32 here
 *
 * Rows (256 values each, the same generator as tests/common/mod.rs is NOT required: the input
 * is stored): normal-ish, zeros, one outlier, ±0, subnormals, ×1e6, ×1e9, ×1e-38, exact halves,
 * one sign with magnitude ties, all positive, sparse. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void quantize_row_q8_0_ref(const float *x, void *y, int64_t k);
void quantize_row_q4_0_ref(const float *x, void *y, int64_t k);
void quantize_row_q4_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q6_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q8_K_ref(const float *x, void *y, int64_t k);
void dequantize_row_q8_0(const void *x, float *y, int64_t k);
void dequantize_row_q4_0(const void *x, float *y, int64_t k);
void dequantize_row_q4_K(const void *x, float *y, int64_t k);
void dequantize_row_q6_K(const void *x, float *y, int64_t k);

#define N 256
#define KINDS 12
#define REPS 2
#define ROWS (KINDS * REPS)

static uint64_t s = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) { s ^= s >> 12; s ^= s << 25; s ^= s >> 27; return s * 0x2545f4914f6cdd1dull; }
static float uni(void) { return (float)(next() >> 40) / (float)(1u << 23) - 1.0f; }
static float nrm(void) { return (uni() + uni() + uni() + uni()) * 0.87f; }

static void row(int kind, float *v) {
    for (int i = 0; i < N; i++) v[i] = nrm();
    switch (kind) {
    case 0: break;
    case 1: memset(v, 0, N * sizeof(float)); break;
    case 2: v[next() % N] = (next() & 1) ? 1e4f : -1e4f; break;
    case 3: for (int i = 0; i < N; i++) v[i] = (next() & 1) ? 0.0f : -0.0f; break;
    case 4: for (int i = 0; i < N; i++) { uint32_t b = (uint32_t)next() & 0x807fffffu; memcpy(&v[i], &b, 4); } break;
    case 5: for (int i = 0; i < N; i++) v[i] *= 1e6f; break;
    case 6: for (int i = 0; i < N; i++) v[i] *= 1e9f; break;
    case 7: for (int i = 0; i < N; i++) v[i] *= 1e-38f; break;
    case 8: for (int i = 0; i < N; i++) v[i] = (i % 32 == 0) ? 127.0f : (float)((int)(next() % 254) - 127) + 0.5f; break;
    case 9: for (int i = 0; i < N; i++) v[i] = (i % 5 == 0) ? -3.0f : (i % 7 == 0) ? 3.0f : (v[i] < 0 ? -v[i] : v[i]); break;
    case 10: for (int i = 0; i < N; i++) v[i] = (v[i] < 0 ? -v[i] : v[i]) + 0.5f; break;
    default: for (int i = 0; i < N; i++) if (next() % 8) v[i] = 0.0f; break;
    }
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
    static float x[ROWS * N], deq[ROWS * N];
    for (int r = 0; r < ROWS; r++) row(r % KINDS, x + r * N);
    put(dir, "input.f32", x, sizeof x);
    static uint8_t q[ROWS * 292];
    const int64_t k = (int64_t)ROWS * N;
    quantize_row_q8_0_ref(x, q, k);  put(dir, "q8_0.bin", q, ROWS * 8 * 34);
    dequantize_row_q8_0(q, deq, k);  put(dir, "q8_0.deq.f32", deq, sizeof deq);
    quantize_row_q4_0_ref(x, q, k);  put(dir, "q4_0.bin", q, ROWS * 8 * 18);
    dequantize_row_q4_0(q, deq, k);  put(dir, "q4_0.deq.f32", deq, sizeof deq);
    quantize_row_q4_K_ref(x, q, k);  put(dir, "q4_k.bin", q, ROWS * 144);
    dequantize_row_q4_K(q, deq, k);  put(dir, "q4_k.deq.f32", deq, sizeof deq);
    quantize_row_q6_K_ref(x, q, k);  put(dir, "q6_k.bin", q, ROWS * 210);
    dequantize_row_q6_K(q, deq, k);  put(dir, "q6_k.deq.f32", deq, sizeof deq);
    memset(q, 0, sizeof q);
    quantize_row_q8_K_ref(x, q, k);  put(dir, "q8_k.bin", q, ROWS * 292);
    return 0;
}
