/* Float core shared by the opt f32, lut and shift kernels (direct convolution).
 *
 * Weights of AQ_F32_COB output channels are first transposed into a block blk[j][l]
 * (j = OHWI row position, l = channel in the block), so the inner loop is
 *     acc[l] += x[j] * blk[j][l]   for all l at once
 * a broadcast times a contiguous vector: vectorisable without reassociating any sum. For one
 * filter row the valid taps of an NHWC input row are one contiguous run of (kx1 - kx0) * c_in
 * floats, matching rows (ky * kw + kx0) * c_in ... of the block. Out-of-range (padded) taps are
 * never visited, which is exact. Interior output pixels are computed 4 at a time so each
 * weight vector load feeds 4 pixels (8 independent accumulator chains).
 */
/* Fused multiply-add where the ISA has it: float results already differ from the reference in
   the last bits (summation order), and -std=c99 would otherwise forbid the contraction. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif
#include <string.h>

#include "aq_internal.h"

static void block_rows(const aq_conv_args *a, int c0, float *blk, const float *rows_of, long k,
                       int stride_rows) {
    long j;
    int l;
    for (j = 0; j < k; j++)
        for (l = 0; l < AQ_F32_COB; l++)
            blk[j * AQ_F32_COB + l] = (c0 + l < a->g.c_out) ? rows_of[(long)l * stride_rows + j] : 0.0f;
}

void aq_block_f32(const aq_conv_args *a, int c0, float *blk) {
    long k = (long)a->g.kh * a->g.kw * a->g.c_in;
    block_rows(a, c0, blk, (const float *)a->w + c0 * k, k, (int)k);
}

#if AQ_VEC
typedef float aq_v8f __attribute__((vector_size(32)));
AQ_INLINE aq_v8f ld8(const float *p) { aq_v8f v; memcpy(&v, p, sizeof v); return v; }

/* One output pixel: acc[0..16) over `run` positions. */
AQ_INLINE void px1(const float *x, const float *w, int run, aq_v8f *acc) {
    aq_v8f a0 = acc[0], a1 = acc[1];
    int i;
    for (i = 0; i < run; i++) {
        float xv = x[i]; /* scalar op vector: a broadcast */
        a0 += xv * ld8(w + i * 16);
        a1 += xv * ld8(w + i * 16 + 8);
    }
    acc[0] = a0; acc[1] = a1;
}

/* Four output pixels whose inputs start dx floats apart. */
AQ_INLINE void px4(const float *x, long dx, const float *w, int run, aq_v8f *acc) {
    aq_v8f a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    aq_v8f a4 = acc[4], a5 = acc[5], a6 = acc[6], a7 = acc[7];
    int i;
    for (i = 0; i < run; i++) {
        aq_v8f w0 = ld8(w + i * 16), w1 = ld8(w + i * 16 + 8);
        float x0 = x[i], x1 = x[dx + i], x2 = x[2 * dx + i], x3 = x[3 * dx + i];
        a0 += x0 * w0; a1 += x0 * w1;
        a2 += x1 * w0; a3 += x1 * w1;
        a4 += x2 * w0; a5 += x2 * w1;
        a6 += x3 * w0; a7 += x3 * w1;
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
    acc[4] = a4; acc[5] = a5; acc[6] = a6; acc[7] = a7;
}
#define ACC_T aq_v8f
#define ACC_N 2 /* vectors per pixel */
#define ACC_GET(acc, l) ((acc)[(l) / 8][(l) % 8])
#else
/* Scalar path (no SIMD unit): AQ_F32_COB channels per pixel, one pixel at a time. */
AQ_INLINE void px1(const float *x, const float *w, int run, float *acc) {
    float a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int i;
    for (i = 0; i < run; i++) {
        float xv = x[i];
        const float *wi = w + i * 4;
        a0 += xv * wi[0]; a1 += xv * wi[1]; a2 += xv * wi[2]; a3 += xv * wi[3];
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}
#define ACC_T float
#define ACC_N 4
#define ACC_GET(acc, l) ((acc)[l])
#endif

static void store(const aq_conv_args *a, const ACC_T *acc, int oy, int ox, int c0, const float *m) {
    const aq_geom *g = &a->g;
    float *y = (float *)a->y + ((long)oy * g->out_w + ox) * g->c_out;
    int l;
    for (l = 0; l < AQ_F32_COB && c0 + l < g->c_out; l++)
        y[c0 + l] = aq_epilogue(ACC_GET(acc, l), a, c0 + l, m ? m[l] : 1.0f);
}

AQ_INLINE void core_body(const aq_conv_args *a, const float *blk, int c0, const float *m) {
    const aq_geom *g = &a->g;
    const float *x = (const float *)a->x;
    int oy, ox, ky, p;
    for (oy = 0; oy < g->out_h; oy++) {
        int iy0, ky0, ky1;
        aq_tap_range(oy, g->stride, g->pad_top, g->kh, g->h, &iy0, &ky0, &ky1);
        for (ox = 0; ox < g->out_w;) {
            int ix0, kx0, kx1, run;
            aq_tap_range(ox, g->stride, g->pad_left, g->kw, g->w, &ix0, &kx0, &kx1);
#if AQ_VEC
            /* four interior pixels in a row: same (full) tap range, inputs stride * c_in apart */
            if (kx0 == 0 && ox + 3 < g->out_w && (ox + 3) * g->stride - g->pad_left + g->kw <= g->w) {
                ACC_T acc[8];
                memset(acc, 0, sizeof acc);
                run = g->kw * g->c_in;
                for (ky = ky0; ky < ky1; ky++)
                    px4(x + ((long)(iy0 + ky) * g->w + ix0) * g->c_in, (long)g->stride * g->c_in,
                        blk + (long)ky * run * AQ_F32_COB, run, acc);
                for (p = 0; p < 4; p++) store(a, acc + 2 * p, oy, ox + p, c0, m);
                ox += 4;
                continue;
            }
#endif
            {
                ACC_T acc[ACC_N];
                memset(acc, 0, sizeof acc);
                run = (kx1 - kx0) * g->c_in;
                for (ky = ky0; ky < ky1; ky++)
                    px1(x + ((long)(iy0 + ky) * g->w + ix0 + kx0) * g->c_in,
                        blk + ((long)ky * g->kw + kx0) * g->c_in * AQ_F32_COB, run, acc);
                store(a, acc, oy, ox, c0, m);
                ox += 1;
            }
        }
    }
    (void)p;
}

static void core_portable(const aq_conv_args *a, const float *blk, int c0, const float *m) {
    core_body(a, blk, c0, m);
}
#if AQ_DISPATCH
AQ_TARGET_AVX2 static void core_avx2(const aq_conv_args *a, const float *blk, int c0, const float *m) {
    core_body(a, blk, c0, m);
}
AQ_TARGET_AVX512 static void core_avx512(const aq_conv_args *a, const float *blk, int c0,
                                         const float *m) {
    core_body(a, blk, c0, m);
}
#endif

void aq_f32_core(const aq_conv_args *a, const float *blk, int c0, const float *m) {
#if AQ_DISPATCH
    int level = aq_simd_level();
    if (level >= 2) { core_avx512(a, blk, c0, m); return; }
    if (level == 1) { core_avx2(a, blk, c0, m); return; }
#endif
    core_portable(a, blk, c0, m);
}
