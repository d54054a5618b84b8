/* W2 (layer_norm(gelu(x*w + b) + x), summed, forward and backward) written by hand as one pass
   over rows: x is read once and dx written once, every other value of a row stays in L1. OpenMP
   over rows; column sums (the gradients of w, b and the layer norm's weight and bias) are
   per-thread partials added in thread order. The reference benchmarks/bench_w2_hand.py times
   gradc's generated code against. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

/* glibc's vector erf and exp (libmvec), declared to the compiler as gradc's generated code does */
#pragma omp declare simd notinbranch
float erff(float);
#pragma omp declare simd notinbranch
float expf(float);

#define MAXD 4096

void w2_step(const float *x, const float *w, const float *b, const float *lnw, const float *lnb,
             long n, long d, float eps, float *dx, float *dw, float *db, float *dlnw, float *dlnb,
             double *loss, float *scratch /* 4 * d * threads */) {
    int threads = omp_get_max_threads();
    memset(scratch, 0, sizeof(float) * 4 * d * threads);
    double total = 0.0;
    float mean_lnw = 0.0f;
    for (long j = 0; j < d; j++) mean_lnw += lnw[j];
    mean_lnw /= (float)d;
#pragma omp parallel reduction(+ : total)
    {
        float *pw = scratch + 4 * d * omp_get_thread_num(), *pb = pw + d, *plw = pb + d, *plb = plw + d;
        float h[MAXD], r[MAXD];
#pragma omp for schedule(static)
        for (long i = 0; i < n; i++) {
            const float *xi = x + i * d;
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (long j = 0; j < d; j++) {
                float hj = xi[j] * w[j] + b[j];
                h[j] = hj;
                float rj = 0.5f * hj * (1.0f + erff(hj * 0.70710678f)) + xi[j];
                r[j] = rj;
                sum += rj;
            }
            float mean = sum / (float)d, var = 0.0f;
#pragma omp simd reduction(+ : var)
            for (long j = 0; j < d; j++) {
                float c = r[j] - mean;
                var += c * c;
            }
            float rstd = 1.0f / sqrtf(var / (float)d + eps);
            float dot = 0.0f, ysum = 0.0f;
#pragma omp simd reduction(+ : dot, ysum)
            for (long j = 0; j < d; j++) {
                float rh = (r[j] - mean) * rstd;
                r[j] = rh;
                dot += lnw[j] * rh;
                ysum += rh * lnw[j] + lnb[j];
                plw[j] += rh;
                plb[j] += 1.0f;
            }
            total += ysum;
            dot /= (float)d;
            float *dxi = dx + i * d;
#pragma omp simd
            for (long j = 0; j < d; j++) {
                float dr = rstd * (lnw[j] - mean_lnw - r[j] * dot);
                float hj = h[j];
                float dg = 0.5f * (1.0f + erff(hj * 0.70710678f)) + hj * 0.39894228f * expf(-0.5f * hj * hj);
                float dh = dr * dg;
                dxi[j] = dr + dh * w[j];
                pw[j] += dh * xi[j];
                pb[j] += dh;
            }
        }
    }
    for (long j = 0; j < d; j++) {
        float sw = 0.0f, sb = 0.0f, slw = 0.0f, slb = 0.0f;
        for (int t = 0; t < threads; t++) {
            const float *pw = scratch + 4 * d * t;
            sw += pw[j]; sb += pw[d + j]; slw += pw[2 * d + j]; slb += pw[3 * d + j];
        }
        dw[j] = sw; db[j] = sb; dlnw[j] = slw; dlnb[j] = slb;
    }
    *loss = total;
}
