/* Opt int8 convolution for 32-bit Arm cores with the DSP extension (Cortex-M4/M7/M33:
 * __ARM_FEATURE_DSP, no NEON); aq_conv_int8_opt calls it there (AQ_I8_DSP).
 *
 * SMLAD multiplies two int16 pairs and adds both products to an int32: 2 MACs per instruction.
 * The input is shifted by its zero point once per call into int16 (scratch, c4 channels per
 * pixel, zero beyond c_in): each group of 4 channels becomes the words (x'0, x'2) and (x'1, x'3)
 * (SXTAB16 of the int8 word and of the word rotated by 8). The packed weights (autoq_kernels.h)
 * give, per group, the 4 int8 weights of two adjacent output channels in 8 adjacent bytes (one
 * LDRD); SXTB16 of a weight word and of its rotation give (w0, w2) and (w1, w3), which line up
 * with the input words, so no weight is repacked at run time. The inner loop computes 2 output
 * channels x 2 output pixels (4 accumulators): per group of 4 input channels 3 LDRD, 4 SXTB16
 * and 8 SMLAD for 16 MACs. Pixels whose valid tap range differs from their neighbour's (the
 * 'same' border) run 2 channels x 1 pixel. Padded taps are skipped: the valid taps of one filter
 * row are one contiguous run of groups in both the input and the weights. Integer arithmetic and
 * the shared requantisation (aq_store_s8, inline VCVTR rounding): bit-exact with the reference.
 */
#include "aq_internal.h"

#if !AQ_VEC && defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
#include <arm_acle.h>

size_t aq_int8_dsp_scratch(const aq_geom *g) { return (size_t)g->h * g->w * aq_i8p_c4(g) * sizeof(int16_t); }

/* SXTB16 of the word rotated by 8: bytes 1 and 3 sign-extended (GCC 12's arm_acle.h has no
   __ror, and a C rotate is not folded into the instruction's ROR operand). */
AQ_INLINE int32_t sxtb16_ror8(int32_t v) {
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
AQ_INLINE int32_t sxtab16_ror8(int32_t acc, int32_t v) {
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(v));
    return r;
}

static uint32_t pair16(int lo, int hi) { return (uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16); }

/* x' = x - x_zero_point as int16 words (x'0, x'2), (x'1, x'3) per group of 4 channels. */
static void shift_input(const aq_conv_args *a, int32_t *xs) {
    const aq_geom *g = &a->g;
    const int8_t *x = (const int8_t *)a->x;
    long npx = (long)g->h * g->w, p;
    int full = g->c_in / 4, rem = g->c_in & 3, zx = a->x_zero_point, q, i;
    int32_t zp = (int32_t)pair16(-zx, -zx);
    for (p = 0; p < npx; p++, x += g->c_in) {
        for (q = 0; q < full; q++) {
            int32_t v;
            memcpy(&v, x + 4 * q, sizeof v);
            *xs++ = __sxtab16(zp, v);
            *xs++ = sxtab16_ror8(zp, v);
        }
        if (rem) {
            int e[4] = {0, 0, 0, 0};
            for (i = 0; i < rem; i++) e[i] = x[4 * full + i] - zx;
            *xs++ = (int32_t)pair16(e[0], e[2]);
            *xs++ = (int32_t)pair16(e[1], e[3]);
        }
    }
}

/* One group of 4 input channels for 2 pixels x 2 channels (GCC spills the C version of this
   loop on the M4's 13 registers; this order needs 13): the weight words of both channels (one
   LDRD, then WSTEP), the low input words of both pixels (x'0, x'2) times SXTB16 of each weight
   word, then the high words (x'1, x'3) times SXTB16 of the words rotated by 8. */
#define AQ_DSP_GROUP_2X2(WLOAD)                                                                  \
    WLOAD                                                                                       \
    "ldr %[xl], [%[xa]], #4\n\t"                                                                \
    "ldr %[xh], [%[xb]], #4\n\t"                                                                \
    "sxtb16 %[t], %[w0]\n\t"                                                                    \
    "smlad %[a0], %[xl], %[t], %[a0]\n\t"                                                       \
    "smlad %[a2], %[xh], %[t], %[a2]\n\t"                                                       \
    "sxtb16 %[t], %[w1]\n\t"                                                                    \
    "smlad %[a1], %[xl], %[t], %[a1]\n\t"                                                       \
    "smlad %[a3], %[xh], %[t], %[a3]\n\t"                                                       \
    "ldr %[xl], [%[xa]], #4\n\t"                                                                \
    "ldr %[xh], [%[xb]], #4\n\t"                                                                \
    "sxtb16 %[t], %[w0], ror #8\n\t"                                                            \
    "smlad %[a0], %[xl], %[t], %[a0]\n\t"                                                       \
    "smlad %[a2], %[xh], %[t], %[a2]\n\t"                                                       \
    "sxtb16 %[t], %[w1], ror #8\n\t"                                                            \
    "smlad %[a1], %[xl], %[t], %[a1]\n\t"                                                       \
    "smlad %[a3], %[xh], %[t], %[a3]\n\t"
#define AQ_DSP_GROUP_1X2(WLOAD)                                                                  \
    WLOAD                                                                                       \
    "ldr %[xl], [%[xa]], #4\n\t"                                                                \
    "ldr %[xh], [%[xa]], #4\n\t"                                                                \
    "sxtb16 %[t], %[w0]\n\t"                                                                    \
    "smlad %[a0], %[xl], %[t], %[a0]\n\t"                                                       \
    "sxtb16 %[t], %[w1]\n\t"                                                                    \
    "smlad %[a1], %[xl], %[t], %[a1]\n\t"                                                       \
    "sxtb16 %[t], %[w0], ror #8\n\t"                                                            \
    "smlad %[a0], %[xh], %[t], %[a0]\n\t"                                                       \
    "sxtb16 %[t], %[w1], ror #8\n\t"                                                            \
    "smlad %[a1], %[xh], %[t], %[a1]\n\t"
/* weight step: an immediate for full 16-channel blocks (64 bytes); partial blocks advance wp in C */
#define AQ_DSP_W16 "ldrd %[w0], %[w1], [%[wp]], #64\n\t"
#define AQ_DSP_WNB "ldrd %[w0], %[w1], [%[wp]]\n\t"
#define AQ_DSP_OPS2 [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xa] "+r"(xa), \
                    [xb] "+r"(xb), [wp] "+r"(wp), [n] "+r"(n), [xl] "=&r"(xl), [xh] "=&r"(xh), \
                    [w0] "=&r"(w0), [w1] "=&r"(w1), [t] "=&r"(t)
#define AQ_DSP_OPS1 [a0] "+r"(a0), [a1] "+r"(a1), [xa] "+r"(xa), [wp] "+r"(wp), [n] "+r"(n), \
                    [xl] "=&r"(xl), [xh] "=&r"(xh), [w0] "=&r"(w0), [w1] "=&r"(w1), [t] "=&r"(t)
/* full blocks: an odd group first, then two groups per loop iteration (n >= 1) */
#define AQ_DSP_LOOP(BODY) \
    "tst %[n], #1\n\t" "beq 2f\n\t" BODY(AQ_DSP_W16) "subs %[n], %[n], #1\n\t" "beq 3f\n\t" \
    "2:\n\t" BODY(AQ_DSP_W16) BODY(AQ_DSP_W16) "subs %[n], %[n], #2\n\t" "bne 2b\n\t" "3:\n\t"

/* acc[0..3] += (pixel A, ch 0), (A, ch 1), (B, ch 0), (B, ch 1) over n >= 1 groups; ws = words
   from one group's weights to the next (the block width nb). */
AQ_INLINE void mac_2x2(const int32_t *xa, const int32_t *xb, const int32_t *wp, int n, int ws, int32_t *acc) {
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], xl, xh, w0, w1, t;
    if (ws == AQ_I8_PACK_COB)
        __asm__ volatile(AQ_DSP_LOOP(AQ_DSP_GROUP_2X2) : AQ_DSP_OPS2 : : "cc", "memory");
    else
        for (; n > 0; n--, wp += ws)
            __asm__ volatile(AQ_DSP_GROUP_2X2(AQ_DSP_WNB) : AQ_DSP_OPS2 : : "cc", "memory");
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}

AQ_INLINE void mac_1x2(const int32_t *xa, const int32_t *wp, int n, int ws, int32_t *acc) {
    int32_t a0 = acc[0], a1 = acc[1], xl, xh, w0, w1, t;
    if (ws == AQ_I8_PACK_COB)
        __asm__ volatile(AQ_DSP_LOOP(AQ_DSP_GROUP_1X2) : AQ_DSP_OPS1 : : "cc", "memory");
    else
        for (; n > 0; n--, wp += ws)
            __asm__ volatile(AQ_DSP_GROUP_1X2(AQ_DSP_WNB) : AQ_DSP_OPS1 : : "cc", "memory");
    acc[0] = a0; acc[1] = a1;
}

/* Outputs of channels c, c + 1 at one pixel; q = {scale, scale, bias, bias} of the two channels
   (1 and 0 where absent: exact, so the same values as aq_store_s8's). */
AQ_INLINE void store_pair(const aq_conv_args *a, int oy, int ox, int c, const int32_t *acc, const float *q) {
    long i = ((long)oy * a->g.out_w + ox) * a->g.c_out + c;
    int8_t *y = (int8_t *)a->y + i;
#ifdef AQ_REQUANT_M4
    if (!a->y_float) {
        y[0] = aq_requant_m4((float)acc[0] * q[0] + q[2], a->y_zero_point);
        if (c + 1 < a->g.c_out) y[1] = aq_requant_m4((float)acc[1] * q[1] + q[3], a->y_zero_point);
        return;
    }
#endif
    {
        aq_store_s8(a, i, acc[0], c);
        if (c + 1 < a->g.c_out) aq_store_s8(a, i + 1, acc[1], c + 1);
    }
    (void)y; (void)q;
}

/* Output channels c, c + 1 (w: their first weight word; wst = block width nb) for all pixels.
   Inlined twice: wst = 16 (full blocks: the weight step is an immediate) and variable. */
AQ_INLINE void channel_pair(const aq_conv_args *a, const int32_t *xs, const int32_t *w, int wst, int c) {
    const aq_geom *g = &a->g;
    int gq = aq_i8p_c4(g) / 4, pxw = 2 * gq, oy, ox, ky;
    long dx = (long)g->stride * pxw;
    int c1 = c + 1 < g->c_out ? c + 1 : c;
    float q[4];
    q[0] = a->scale ? a->scale[c] : 1.0f; q[1] = a->scale ? a->scale[c1] : 1.0f;
    q[2] = a->bias ? a->bias[c] : 0.0f; q[3] = a->bias ? a->bias[c1] : 0.0f;
    for (oy = 0; oy < g->out_h; oy++) {
        int iy0, ky0, ky1;
        aq_tap_range(oy, g->stride, g->pad_top, g->kh, g->h, &iy0, &ky0, &ky1);
        for (ox = 0; ox < g->out_w;) {
            int ix0, kx0, kx1, jx0, jx1, jx, n;
            int32_t acc[4] = {0, 0, 0, 0};
            aq_tap_range(ox, g->stride, g->pad_left, g->kw, g->w, &ix0, &kx0, &kx1);
            n = (kx1 - kx0) * gq;
            if (ox + 1 < g->out_w) aq_tap_range(ox + 1, g->stride, g->pad_left, g->kw, g->w, &jx, &jx0, &jx1);
            else jx0 = jx1 = -1;
            if (jx0 == kx0 && jx1 == kx1) { /* both pixels see the same taps */
                for (ky = ky0; ky < ky1; ky++) {
                    const int32_t *xr = xs + ((long)(iy0 + ky) * g->w + ix0 + kx0) * pxw;
                    mac_2x2(xr, xr + dx, w + (long)(ky * g->kw + kx0) * gq * wst, n, wst, acc);
                }
                store_pair(a, oy, ox, c, acc, q);
                store_pair(a, oy, ox + 1, c, acc + 2, q);
                ox += 2;
                continue;
            }
            for (ky = ky0; ky < ky1; ky++)
                mac_1x2(xs + ((long)(iy0 + ky) * g->w + ix0 + kx0) * pxw,
                        w + (long)(ky * g->kw + kx0) * gq * wst, n, wst, acc);
            store_pair(a, oy, ox, c, acc, q);
            ox += 1;
        }
    }
}

static void channel_pair_16(const aq_conv_args *a, const int32_t *xs, const int32_t *w, int c) {
    channel_pair(a, xs, w, AQ_I8_PACK_COB, c);
}

static void channel_pair_nb(const aq_conv_args *a, const int32_t *xs, const int32_t *w, int nb, int c) {
    channel_pair(a, xs, w, nb, c);
}

void aq_int8_dsp(const aq_conv_args *a) {
    const aq_geom *g = &a->g;
    int32_t *xs = (int32_t *)a->scratch;
    long k4 = (long)g->kh * g->kw * aq_i8p_c4(g);
    int c0, l;
    shift_input(a, xs);
    for (c0 = 0; c0 < g->c_out; c0 += AQ_I8_PACK_COB) {
        int nb = aq_i8p_nb(g, c0);
        const int32_t *wb = (const int32_t *)((const int8_t *)a->w + (long)c0 * k4);
        for (l = 0; l < nb; l += 2) {
            if (nb == AQ_I8_PACK_COB) channel_pair_16(a, xs, wb + l, c0 + l);
            else channel_pair_nb(a, xs, wb + l, nb, c0 + l);
        }
    }
}
#else
typedef int aq_int8_dsp_unused; /* ISO C: a translation unit must declare something */
#endif
