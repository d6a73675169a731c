/* Reference and convolution: the thesis's plain loop nest (output channel, output pixel, tap,
 * input channel) with per-weight index arithmetic. Correctness baseline; not for speed. */
#include "aq_internal.h"

int aq_conv_and_ref(const aq_conv_args *a) {
    const aq_geom *g = &a->g;
    int co, oy, ox, ky, kx, ci, rc = aq_check_args(a, AQ_AND, "ref");
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
                            if (xb) acc += wb ? 1 : -1; /* activation {0,1} times weight +-1 */
                        }
                    }
                }
                y[((long)oy * g->out_w + ox) * g->c_out + co] = aq_epilogue((float)acc, a, co, 1.0f);
            }
    return AQ_OK;
}
