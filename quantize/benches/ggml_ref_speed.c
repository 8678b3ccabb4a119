/* Single-thread speed of ggml's reference quantizers (what llama-quantize runs for q8_0, q4_0,
 * and for q4_K/q6_K without an importance matrix), in GB/s of f32 input over 4096-value rows, on
 * on-CPU time, for comparison with `cargo run --release -p llamapack-quantize --example cputime`.
 *
 *   cc -O2 ggml_ref_speed.c -L$BUILD/bin -lggml-base -Wl,-rpath,$BUILD/bin -o /tmp/ggml_ref_speed
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
void quantize_row_q8_0_ref(const float *x, void *y, int64_t k);
void quantize_row_q4_0_ref(const float *x, void *y, int64_t k);
void quantize_row_q4_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q6_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q8_K_ref(const float *x, void *y, int64_t k);
static double cpu(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(void){
  const int n=4096; float *x=malloc(n*4); uint8_t *y=malloc(n*2);
  uint32_t s=2654435761u;
  for(int i=0;i<n;i++){s^=s<<13;s^=s>>17;s^=s<<5;x[i]=(float)(s>>8)/(float)(1u<<24)-0.5f;}
  struct {const char*name; void(*f)(const float*,void*,int64_t);} fs[]={{"q8_0",quantize_row_q8_0_ref},{"q4_0",quantize_row_q4_0_ref},{"q4_k",quantize_row_q4_K_ref},{"q6_k",quantize_row_q6_K_ref},{"q8_k",quantize_row_q8_K_ref}};
  for(int j=0;j<5;j++){ double t0=cpu(); long it=0; while(cpu()-t0<0.3){fs[j].f(x,y,n);it++;} double dt=cpu()-t0; printf("%s ggml-ref %.3f GB/s\n",fs[j].name,4.0*n*it/dt/1e9);}
}
