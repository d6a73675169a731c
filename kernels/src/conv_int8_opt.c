/* Optimised int8 convolution: int32 accumulation over contiguous runs, zero point folded out.
 *
 * acc = sum (x - zx) * w = sum x * w - zx * sum w over the valid taps. The weight sums per
 * (output channel, tap) are computed once per call (scratch), so the inner loop is a plain
 * int8 x int8 -> int32 dot product (vectorisable); padded taps are skipped, which is exact
 * because a padded position holds the real value 0 = zx. Bit-exact with aq_conv_int8_ref.
 */
#include "aq_internal.h"

static void dot4_s8(const int8_t *restrict x, const int8_t *restrict w0,
                           const int8_t *restrict w1, const int8_t *restrict w2,
                           const int8_t *restrict w3, int n, int32_t *acc) {
    int32_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;
    int i;
    for (i = 0; i < n; i++) {
        int32_t xv = x[i];
        c0 += xv * w0[i]; c1 += xv * w1[i]; c2 += xv * w2[i]; c3 += xv * w3[i];
    }
    acc[0] += c0; acc[1] += c1; acc[2] += c2; acc[3] += c3;
}

int aq_conv_int8_opt(const aq_conv_args *a) {
    const aq_geom *g = &a->g;
    const int8_t *x = (const int8_t *)a->x, *w = (const int8_t *)a->w;
    int8_t *y = (int8_t *)a->y;
    int32_t *tap_sum = (int32_t *)a->scratch; /* [c_out][kh][kw] */
    int taps = g->kh * g->kw, oy, ox, ky, kx, c0, i, t;
    long row = (long)taps * g->c_in, j;
    int rc = aq_check_args(a, AQ_INT8, "opt");
    if (rc) return rc;
    for (j = 0; j < (long)g->c_out * taps; j++) {
        int32_t s = 0;
        for (t = 0; t < g->c_in; t++) s += w[j * g->c_in + t];
        tap_sum[j] = s;
    }
    for (oy = 0; oy < g->out_h; oy++) {
        int iy0, ky0, ky1;
        aq_tap_range(oy, g->stride, g->pad_top, g->kh, g->h, &iy0, &ky0, &ky1);
        for (ox = 0; ox < g->out_w; ox++) {
            int ix0, kx0, kx1, run;
            int8_t *yo = y + ((long)oy * g->out_w + ox) * g->c_out;
            aq_tap_range(ox, g->stride, g->pad_left, g->kw, g->w, &ix0, &kx0, &kx1);
            run = (kx1 - kx0) * g->c_in;
            for (c0 = 0; c0 < g->c_out; c0 += AQ_CO_BLOCK) {
                int nb = g->c_out - c0 < AQ_CO_BLOCK ? g->c_out - c0 : AQ_CO_BLOCK;
                int32_t acc[AQ_CO_BLOCK] = {0};
                for (ky = ky0; ky < ky1; ky++) {
                    const int8_t *xr = x + ((long)(iy0 + ky) * g->w + ix0 + kx0) * g->c_in;
                    const int8_t *wr = w + c0 * row + ((long)ky * g->kw + kx0) * g->c_in;
                    if (nb == AQ_CO_BLOCK)
                        dot4_s8(xr, wr, wr + row, wr + 2 * row, wr + 3 * row, run, acc);
                    else
                        for (i = 0; i < nb; i++)
                            for (t = 0; t < run; t++) acc[i] += (int32_t)xr[t] * wr[i * row + t];
                    for (i = 0; i < nb; i++)
                        for (kx = kx0; kx < kx1; kx++)
                            acc[i] -= a->x_zero_point * tap_sum[((long)(c0 + i) * g->kh + ky) * g->kw + kx];
                }
                for (i = 0; i < nb; i++) yo[c0 + i] = aq_requant_s8(acc[i], a, c0 + i);
            }
        }
    }
    return AQ_OK;
}
