/* Opt int8 convolution for aarch64 NEON without the dot-product extension (ARMv8.0: Cortex-A53,
 * A72); aq_conv_int8_opt calls it there (AQ_I8_NEON).
 *
 * The input is shifted by its zero point once per call into int16 (scratch, c4 channels per
 * pixel, zero beyond c_in). One LD4 of a packed weight group (autoq_kernels.h: 16 channels x 4
 * input channels, channel-major) de-interleaves it into 4 vectors, one per input channel, of the
 * 16 channels' weights; SXTL widens them to int16 and SMLAL / SMLAL2 by element multiply them by
 * one input value and accumulate in int32 (16 channels = 4 accumulators): 4 instructions per 16
 * MACs, the weights shared by 2 output pixels. A partial last block (c_out % 16) is first copied
 * to a zero-padded 16-wide block in scratch. Padded taps are skipped (the valid taps of a filter
 * row are one run of groups). Integer arithmetic, shared requantisation: bit-exact with ref.
 */
#include "aq_internal.h"

#if AQ_I8_NEON
#include <arm_neon.h>

size_t aq_int8_neon_scratch(const aq_geom *g) {
    size_t k4 = (size_t)g->kh * g->kw * aq_i8p_c4(g);
    return (((size_t)g->h * g->w * aq_i8p_c4(g) * sizeof(int16_t) + 15) & ~(size_t)15) + k4 * AQ_I8_PACK_COB;
}

static void shift_input(const aq_conv_args *a, int16_t *xs) {
    const aq_geom *g = &a->g;
    const int8_t *x = (const int8_t *)a->x;
    long npx = (long)g->h * g->w, p;
    int c4 = aq_i8p_c4(g), i;
    for (p = 0; p < npx; p++, x += g->c_in, xs += c4) {
        for (i = 0; i < g->c_in; i++) xs[i] = (int16_t)(x[i] - a->x_zero_point);
        for (; i < c4; i++) xs[i] = 0;
    }
}

/* acc[p][0..3] (channels 0-3, 4-7, 8-11, 12-15) += pixel p's n groups of 4 input channels times
   the 16-channel weight groups at w (64 bytes each); np = 1 or 2 pixels (xa, xb). */
#define AQ_NEON_STEP(e, X, A)                                                                  \
    A[0] = vmlal_lane_s16(A[0], vget_low_s16(lo##e), X, e); A[1] = vmlal_high_lane_s16(A[1], lo##e, X, e); \
    A[2] = vmlal_lane_s16(A[2], vget_low_s16(hi##e), X, e); A[3] = vmlal_high_lane_s16(A[3], hi##e, X, e);
#define AQ_NEON_WIDEN(e) \
    int16x8_t lo##e = vmovl_s8(vget_low_s8(v.val[e])), hi##e = vmovl_high_s8(v.val[e]);
AQ_INLINE void mac_px(const int16_t *xa, const int16_t *xb, const int8_t *w, int n, int np, int32x4_t acc[2][4]) {
    int32x4_t *a0 = acc[0], *a1 = acc[1];
    for (; n > 0; n--, xa += 4, xb += 4, w += 4 * AQ_I8_PACK_COB) {
        int8x16x4_t v = vld4q_s8(w);
        int16x4_t x0 = vld1_s16(xa);
        AQ_NEON_WIDEN(0) AQ_NEON_WIDEN(1) AQ_NEON_WIDEN(2) AQ_NEON_WIDEN(3)
        AQ_NEON_STEP(0, x0, a0) AQ_NEON_STEP(1, x0, a0) AQ_NEON_STEP(2, x0, a0) AQ_NEON_STEP(3, x0, a0)
        if (np == 2) {
            int16x4_t x1 = vld1_s16(xb);
            AQ_NEON_STEP(0, x1, a1) AQ_NEON_STEP(1, x1, a1) AQ_NEON_STEP(2, x1, a1) AQ_NEON_STEP(3, x1, a1)
        }
    }
}

static void store_px(const aq_conv_args *a, int oy, int ox, int c0, int32x4_t acc[4]) {
    int32_t out[AQ_I8_PACK_COB];
    long i = ((long)oy * a->g.out_w + ox) * a->g.c_out;
    int l;
    vst1q_s32(out, acc[0]); vst1q_s32(out + 4, acc[1]); vst1q_s32(out + 8, acc[2]); vst1q_s32(out + 12, acc[3]);
    for (l = 0; l < AQ_I8_PACK_COB && c0 + l < a->g.c_out; l++) aq_store_s8(a, i + c0 + l, out[l], c0 + l);
}

/* All pixels for the 16 channels of one block (w: its 16-wide packed weights). */
static void block(const aq_conv_args *a, const int16_t *xs, const int8_t *w, int c0) {
    const aq_geom *g = &a->g;
    int c4 = aq_i8p_c4(g), gq = c4 / 4, oy, ox, ky, p, v;
    for (oy = 0; oy < g->out_h; oy++) {
        int iy0, ky0, ky1;
        aq_tap_range(oy, g->stride, g->pad_top, g->kh, g->h, &iy0, &ky0, &ky1);
        for (ox = 0; ox < g->out_w;) {
            int ix0, kx0, kx1, jx, jx0 = -1, jx1 = -1, np;
            int32x4_t acc[2][4];
            for (p = 0; p < 2; p++)
                for (v = 0; v < 4; v++) acc[p][v] = vdupq_n_s32(0);
            aq_tap_range(ox, g->stride, g->pad_left, g->kw, g->w, &ix0, &kx0, &kx1);
            if (ox + 1 < g->out_w) aq_tap_range(ox + 1, g->stride, g->pad_left, g->kw, g->w, &jx, &jx0, &jx1);
            np = (jx0 == kx0 && jx1 == kx1) ? 2 : 1; /* both pixels see the same taps */
            for (ky = ky0; ky < ky1; ky++) {
                const int16_t *xr = xs + ((long)(iy0 + ky) * g->w + ix0 + kx0) * c4;
                const int8_t *wr = w + (long)(ky * g->kw + kx0) * gq * 4 * AQ_I8_PACK_COB;
                if (np == 2) mac_px(xr, xr + (long)g->stride * c4, wr, (kx1 - kx0) * gq, 2, acc);
                else mac_px(xr, xr, wr, (kx1 - kx0) * gq, 1, acc);
            }
            for (p = 0; p < np; p++) store_px(a, oy, ox + p, c0, acc[p]);
            ox += np;
        }
    }
}

void aq_int8_neon(const aq_conv_args *a) {
    const aq_geom *g = &a->g;
    int16_t *xs = (int16_t *)a->scratch;
    long k4 = (long)g->kh * g->kw * aq_i8p_c4(g), q;
    int8_t *wide = (int8_t *)a->scratch + (((size_t)g->h * g->w * aq_i8p_c4(g) * sizeof(int16_t) + 15) & ~(size_t)15);
    int c0, l;
    shift_input(a, xs);
    for (c0 = 0; c0 < g->c_out; c0 += AQ_I8_PACK_COB) {
        int nb = aq_i8p_nb(g, c0);
        const int8_t *wb = (const int8_t *)a->w + c0 * k4;
        if (nb < AQ_I8_PACK_COB) { /* partial block: zero-padded to 16 channels */
            memset(wide, 0, (size_t)k4 * AQ_I8_PACK_COB);
            for (q = 0; q < k4 / 4; q++)
                for (l = 0; l < nb; l++) memcpy(wide + (q * AQ_I8_PACK_COB + l) * 4, wb + (q * nb + l) * 4, 4);
            wb = wide;
        }
        block(a, xs, wb, c0);
    }
}
#else
typedef int aq_int8_neon_unused; /* ISO C: a translation unit must declare something */
#endif
