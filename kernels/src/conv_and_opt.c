/* Optimised and convolution: activations {0,1}, weights +-1, word-level AND + popcount.
 *
 * acc = sum x * w = popcount(x & w) - popcount(x & ~w) = 2 * popcount(x & w) - popcount(x).
 * popcount(x) does not depend on the output channel: it is computed once per input pixel
 * (scratch, after the weight blocks) and summed over the valid window once per output pixel,
 * leaving one AND and one popcount per word and output channel. Padded taps are skipped
 * (they are zeros). Structure, weight blocks and SIMD paths (portable, AVX2, AVX-512) are those
 * of the template aq_bin_opt.inc, shared with the xnor kernel. Bit-exact with aq_conv_and_ref.
 */
/* The epilogue must stay bit-exact with the reference: no fused multiply-add, whatever the
   build flags (the vector epilogue would otherwise be contracted under -std=gnu99). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "aq_internal.h"

#define BIN_KIND AQ_AND
#define BIN_OP(x, w) ((x) & (w))
#define BIN_OP256 _mm256_and_si256
#define BIN_OP512 _mm512_and_si512
#define BIN_ACC(SUB, twice_cnt, base) SUB(twice_cnt, base)

/* base = popcount(x) over the window. */
AQ_INLINE int32_t window_base(const aq_geom *g, const int32_t *pix_pop, int iy0, int ix0, int ky0, int ky1,
                              int kx0, int kx1) {
    int32_t base = 0;
    int ky, kx;
    for (ky = ky0; ky < ky1; ky++)
        for (kx = kx0; kx < kx1; kx++) base += pix_pop[(long)(iy0 + ky) * g->w + ix0 + kx];
    return base;
}

/* pix_pop[p] = popcount of input pixel p (all its words). */
static void prepare_pixels(const aq_conv_args *a, int32_t *pix_pop) {
    const uint64_t *x = (const uint64_t *)a->x;
    int nw = aq_words(a->g.c_in), t;
    long p;
    for (p = 0; p < (long)a->g.h * a->g.w; p++) {
        int32_t s = 0;
        for (t = 0; t < nw; t++) s += AQ_POPCOUNT64(x[p * nw + t]);
        pix_pop[p] = s;
    }
}

#include "aq_bin_opt.inc"

int aq_conv_and_opt(const aq_conv_args *a) { return bin_opt(a); }
