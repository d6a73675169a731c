/* Non-kernel operations of the exported models (autoq/export/c_emit/ops.py calls them; the plan
 * lists them as LayerPlan.ops and the cost model prices them, autoq/cost/ops.py).
 * Compiled once with the kernels (kernels/flags.mk) instead of as static helpers in every
 * model.c, so their speed does not depend on per-model inlining decisions (a ReLU not inlined
 * kept its run-time `relu` test in the loop: 3-5 ns per value instead of 0.2). The arithmetic is
 * that of the Keras layers (autoq.export.graph): same operations in the same order. */
#include <math.h>
#include "autoq_kernels.h"

void aq_act(const float *x, float *y, long n, float slope, int relu) {
    long i;
    if (relu) {
        for (i = 0; i < n; i++) { float v = x[i] < 0.0f ? 0.0f : x[i]; y[i] = v * slope; }
    } else {
        for (i = 0; i < n; i++) y[i] = x[i] * slope;
    }
}

void aq_affine(const float *x, float *y, long npix, int c, const float *s, const float *t) {
    long p; int k;
    for (p = 0; p < npix; p++) for (k = 0; k < c; k++) y[p * c + k] = x[p * c + k] * s[k] + t[k];
}

void aq_pool(const float *x, float *y, int h, int w, int c, int k, int s, int oh, int ow,
             int pt, int pl, int is_max) {
    int oy, ox, ky, kx, ch;
    for (oy = 0; oy < oh; oy++) for (ox = 0; ox < ow; ox++) for (ch = 0; ch < c; ch++) {
        float acc = is_max ? -INFINITY : 0.0f; int cnt = 0;
        for (ky = 0; ky < k; ky++) { int iy = oy * s - pt + ky; if (iy < 0 || iy >= h) continue;
            for (kx = 0; kx < k; kx++) { int ix = ox * s - pl + kx; float v;
                if (ix < 0 || ix >= w) continue;
                v = x[((long)iy * w + ix) * c + ch]; cnt++;
                if (is_max) { if (v > acc) acc = v; } else acc += v; } }
        y[((long)oy * ow + ox) * c + ch] = is_max ? acc : acc / (float)cnt;
    }
}

void aq_gap(const float *x, float *y, int h, int w, int c) {
    long p; int k; long n = (long)h * w;
    for (k = 0; k < c; k++) y[k] = 0.0f;
    for (p = 0; p < n; p++) for (k = 0; k < c; k++) y[k] += x[p * c + k];
    for (k = 0; k < c; k++) y[k] /= (float)n;
}

void aq_add(const float *a, const float *b, float *y, long n) {
    long i; for (i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void aq_concat_part(const float *x, int cx, float *y, int cy, int offset, long npix) {
    long p; int k;
    for (p = 0; p < npix; p++) for (k = 0; k < cx; k++) y[p * cy + offset + k] = x[p * cx + k];
}
