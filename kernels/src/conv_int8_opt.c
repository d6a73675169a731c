/* Optimised int8 convolution: int32 accumulation, output channels in vector lanes.
 *
 * acc = sum (x - zx) * w over the valid taps. The input is first shifted by its zero point
 * into int16 (x - zx in [-255, 255], scratch), so a padded tap, whose real value is 0, is
 * simply skipped. The int8 weights of AQ_I8_COB output channels are widened to int16 and
 * transposed into blk[j][l] (like the float core), so the inner loop is
 *     acc[l] += (int32) x'[j] * (int32) blk[j][l]   for all l at once,
 * four interior output pixels at a time sharing each weight load. Integer arithmetic: bit-exact
 * with aq_conv_int8_ref (the requantisation is the same function).
 */
#include <string.h>

#include "aq_internal.h"

#if AQ_VEC
typedef int32_t aq_v8i __attribute__((vector_size(32)));
typedef int16_t aq_v8h __attribute__((vector_size(16)));
AQ_INLINE aq_v8i ld8h(const int16_t *p) {
    aq_v8h v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, aq_v8i);
}

AQ_INLINE void px1(const int16_t *x, const int16_t *w, int run, aq_v8i *acc) {
    aq_v8i a0 = acc[0], a1 = acc[1];
    int i;
    for (i = 0; i < run; i++) {
        int32_t xv = x[i];
        a0 += xv * ld8h(w + i * 16);
        a1 += xv * ld8h(w + i * 16 + 8);
    }
    acc[0] = a0; acc[1] = a1;
}

AQ_INLINE void px4(const int16_t *x, long dx, const int16_t *w, int run, aq_v8i *acc) {
    aq_v8i a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    aq_v8i a4 = acc[4], a5 = acc[5], a6 = acc[6], a7 = acc[7];
    int i;
    for (i = 0; i < run; i++) {
        aq_v8i w0 = ld8h(w + i * 16), w1 = ld8h(w + i * 16 + 8);
        int32_t x0 = x[i], x1 = x[dx + i], x2 = x[2 * dx + i], x3 = x[3 * dx + i];
        a0 += x0 * w0; a1 += x0 * w1;
        a2 += x1 * w0; a3 += x1 * w1;
        a4 += x2 * w0; a5 += x2 * w1;
        a6 += x3 * w0; a7 += x3 * w1;
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
    acc[4] = a4; acc[5] = a5; acc[6] = a6; acc[7] = a7;
}
#define ACC_T aq_v8i
#define ACC_N 2
#define ACC_GET(acc, l) ((acc)[(l) / 8][(l) % 8])
#else
AQ_INLINE void px1(const int16_t *x, const int16_t *w, int run, int32_t *acc) {
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int i;
    for (i = 0; i < run; i++) {
        int32_t xv = x[i];
        const int16_t *wi = w + i * 4;
        a0 += xv * wi[0]; a1 += xv * wi[1]; a2 += xv * wi[2]; a3 += xv * wi[3];
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}
#define ACC_T int32_t
#define ACC_N 4
#define ACC_GET(acc, l) ((acc)[l])
#endif

static void store(const aq_conv_args *a, const ACC_T *acc, int oy, int ox, int c0) {
    const aq_geom *g = &a->g;
    int8_t *y = (int8_t *)a->y + ((long)oy * g->out_w + ox) * g->c_out;
    int l;
    for (l = 0; l < AQ_I8_COB && c0 + l < g->c_out; l++) y[c0 + l] = aq_requant_s8(ACC_GET(acc, l), a, c0 + l);
}

AQ_INLINE void core_body(const aq_conv_args *a, const int16_t *x, const int16_t *blk, int c0) {
    const aq_geom *g = &a->g;
    int oy, ox, ky, p;
    for (oy = 0; oy < g->out_h; oy++) {
        int iy0, ky0, ky1;
        aq_tap_range(oy, g->stride, g->pad_top, g->kh, g->h, &iy0, &ky0, &ky1);
        for (ox = 0; ox < g->out_w;) {
            int ix0, kx0, kx1, run;
            aq_tap_range(ox, g->stride, g->pad_left, g->kw, g->w, &ix0, &kx0, &kx1);
#if AQ_VEC
            if (kx0 == 0 && ox + 3 < g->out_w && (ox + 3) * g->stride - g->pad_left + g->kw <= g->w) {
                ACC_T acc[8];
                memset(acc, 0, sizeof acc);
                run = g->kw * g->c_in;
                for (ky = ky0; ky < ky1; ky++)
                    px4(x + ((long)(iy0 + ky) * g->w + ix0) * g->c_in, (long)g->stride * g->c_in,
                        blk + (long)ky * run * AQ_I8_COB, run, acc);
                for (p = 0; p < 4; p++) store(a, acc + 2 * p, oy, ox + p, c0);
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
                        blk + ((long)ky * g->kw + kx0) * g->c_in * AQ_I8_COB, run, acc);
                store(a, acc, oy, ox, c0);
                ox += 1;
            }
        }
    }
    (void)p;
}

static void core_portable(const aq_conv_args *a, const int16_t *x, const int16_t *blk, int c0) {
    core_body(a, x, blk, c0);
}
#if AQ_DISPATCH
AQ_TARGET_AVX2 static void core_avx2(const aq_conv_args *a, const int16_t *x, const int16_t *blk, int c0) {
    core_body(a, x, blk, c0);
}
AQ_TARGET_AVX512 static void core_avx512(const aq_conv_args *a, const int16_t *x, const int16_t *blk,
                                         int c0) {
    core_body(a, x, blk, c0);
}
#endif

int aq_conv_int8_opt(const aq_conv_args *a) {
    const aq_geom *g = &a->g;
    const int8_t *x = (const int8_t *)a->x, *w = (const int8_t *)a->w;
    long k = (long)g->kh * g->kw * g->c_in, n = (long)g->h * g->w * g->c_in, j;
    int16_t *xs = (int16_t *)a->scratch, *blk = xs + ((n + 7) & ~7L);
    int c0, l, level, rc = aq_check_args(a, AQ_INT8, "opt");
    if (rc) return rc;
    for (j = 0; j < n; j++) xs[j] = (int16_t)(x[j] - a->x_zero_point);
    level = aq_simd_level();
    for (c0 = 0; c0 < g->c_out; c0 += AQ_I8_COB) {
        for (j = 0; j < k; j++)
            for (l = 0; l < AQ_I8_COB; l++)
                blk[j * AQ_I8_COB + l] = (int16_t)(c0 + l < g->c_out ? w[(long)(c0 + l) * k + j] : 0);
#if AQ_DISPATCH
        if (level >= 2) { core_avx512(a, xs, blk, c0); continue; }
        if (level == 1) { core_avx2(a, xs, blk, c0); continue; }
#endif
        core_portable(a, xs, blk, c0);
    }
    (void)level;
    return AQ_OK;
}
