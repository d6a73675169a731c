/* Reference int8 convolution: the thesis's plain loop nest (output channel, output pixel, tap,
 * input channel) with per-weight index arithmetic (into the packed weights, aq_i8p_offset).
 * Correctness baseline; not for speed. */
#include "aq_internal.h"

int aq_conv_int8_ref(const aq_conv_args *a) {
    const aq_geom *g = &a->g;
    int co, oy, ox, ky, kx, ci, rc = aq_check_args(a, AQ_INT8, "ref");
    const int8_t *x = (const int8_t *)a->x;
    const int8_t *w = (const int8_t *)a->w;
    if (rc) return rc;
    for (co = 0; co < g->c_out; co++)
        for (oy = 0; oy < g->out_h; oy++)
            for (ox = 0; ox < g->out_w; ox++) {
                int32_t acc = 0, run = 4 * aq_i8p_nb(g, co - co % AQ_I8_PACK_COB);
                for (ky = 0; ky < g->kh; ky++) {
                    int iy = oy * g->stride - g->pad_top + ky;
                    if (iy < 0 || iy >= g->h) continue; /* padded zero: contributes nothing */
                    for (kx = 0; kx < g->kw; kx++) {
                        int ix = ox * g->stride - g->pad_left + kx;
                        const int8_t *wt; /* packed: runs of 4 input channels, `run` bytes apart */
                        if (ix < 0 || ix >= g->w) continue;
                        wt = w + aq_i8p_offset(g, co, ky * g->kw + kx, 0);
                        for (ci = 0; ci < g->c_in; ci++) {
                            acc += ((int32_t)x[((long)iy * g->w + ix) * g->c_in + ci] - a->x_zero_point) *
                                   (int32_t)wt[(ci >> 2) * run + (ci & 3)];
                        }
                    }
                }
                aq_store_s8(a, ((long)oy * g->out_w + ox) * g->c_out + co, acc, co);
            }
    return AQ_OK;
}
