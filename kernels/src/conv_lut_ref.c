/* Reference lut convolution: the thesis's plain loop nest (output channel, output pixel, tap,
 * input channel) with per-weight index arithmetic. Correctness baseline; not for speed. */
#include "aq_internal.h"

int aq_conv_lut_ref(const aq_conv_args *a) {
    const aq_geom *g = &a->g;
    int co, oy, ox, ky, kx, ci, rc = aq_check_args(a, AQ_LUT, "ref");
    const float *x = (const float *)a->x;
    const uint8_t *w = (const uint8_t *)a->w;
    float *y = (float *)a->y;
    long k = (long)g->kh * g->kw * g->c_in;
    size_t rb;
    int bits = (a->bits >= 1 && a->bits <= 8) ? a->bits : 1; /* checked below */
    int q = 8 / bits, levels = 1 << bits;
    unsigned mask = (1u << bits) - 1u;
    rb = aq_index_row_bytes(k, bits);
    if (rc) return rc;
    for (co = 0; co < g->c_out; co++)
        for (oy = 0; oy < g->out_h; oy++)
            for (ox = 0; ox < g->out_w; ox++) {
                float acc = 0;
                for (ky = 0; ky < g->kh; ky++) {
                    int iy = oy * g->stride - g->pad_top + ky;
                    if (iy < 0 || iy >= g->h) continue; /* padded zero: contributes nothing */
                    for (kx = 0; kx < g->kw; kx++) {
                        int ix = ox * g->stride - g->pad_left + kx;
                        long tap = ((long)co * g->kh + ky) * g->kw + kx; /* OHWI tap index */
                        if (ix < 0 || ix >= g->w) continue;
                        for (ci = 0; ci < g->c_in; ci++) {
                            long j = (tap - (long)co * g->kh * g->kw) * g->c_in + ci; /* index in the row */
                            unsigned byte = w[co * rb + j / q];
                            unsigned idx = (byte >> (bits * (j % q))) & mask;
                            const float *cb = a->codebook + (a->codebook_per_channel ? co * levels : 0);
                            acc += x[((long)iy * g->w + ix) * g->c_in + ci] * cb[idx];
                        }
                    }
                }
                y[((long)oy * g->out_w + ox) * g->c_out + co] = aq_epilogue(acc, a, co, 1.0f);
            }
    return AQ_OK;
}
