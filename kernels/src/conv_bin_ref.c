/* Reference xnor and and convolutions: the thesis's plain loop nest (output channel, output
 * pixel, tap, input channel) with per-weight index arithmetic. Correctness baseline; not for
 * speed. The two kinds differ only in the product of one activation bit and one weight bit. */
#include "aq_internal.h"

/* Product of an activation bit and a weight bit (bit 1 = +1):
 * xnor: both +-1, XNOR of the signs; and: activation {0,1} times weight +-1. */
static int32_t bit_product(aq_kind kind, unsigned xb, unsigned wb) {
    if (kind == AQ_XNOR) return (xb == wb) ? 1 : -1;
    return xb ? (wb ? 1 : -1) : 0;
}

static int conv_bin_ref(const aq_conv_args *a, aq_kind kind) {
    const aq_geom *g = &a->g;
    int co, oy, ox, ky, kx, ci, rc = aq_check_args(a, kind, "ref");
    const uint64_t *x = (const uint64_t *)a->x;
    const uint64_t *w = (const uint64_t *)a->w;
    float *y = (float *)a->y;
    int nw = aq_words(g->c_in);
    if (rc) return rc;
    for (co = 0; co < g->c_out; co++)
        for (oy = 0; oy < g->out_h; oy++)
            for (ox = 0; ox < g->out_w; ox++) {
                int32_t acc = 0;
                for (ky = 0; ky < g->kh; ky++) {
                    int iy = oy * g->stride - g->pad_top + ky;
                    if (iy < 0 || iy >= g->h) continue; /* padded zero: contributes nothing */
                    for (kx = 0; kx < g->kw; kx++) {
                        int ix = ox * g->stride - g->pad_left + kx;
                        long tap = ((long)co * g->kh + ky) * g->kw + kx; /* OHWI tap index */
                        if (ix < 0 || ix >= g->w) continue;
                        for (ci = 0; ci < g->c_in; ci++) {
                            unsigned xb = (unsigned)(x[((long)iy * g->w + ix) * nw + ci / 64] >> (ci % 64)) & 1u;
                            unsigned wb = (unsigned)(w[tap * nw + ci / 64] >> (ci % 64)) & 1u;
                            acc += bit_product(kind, xb, wb);
                        }
                    }
                }
                y[((long)oy * g->out_w + ox) * g->c_out + co] = aq_epilogue((float)acc, a, co, 1.0f);
            }
    return AQ_OK;
}

int aq_conv_xnor_ref(const aq_conv_args *a) { return conv_bin_ref(a, AQ_XNOR); }

int aq_conv_and_ref(const aq_conv_args *a) { return conv_bin_ref(a, AQ_AND); }
