/* Optimised xnor convolution: word-level XOR + popcount, 64 binary MACs per word.
 *
 * acc = n_valid_bits - 2 * sum popcount(x ^ w) over the valid taps: out-of-range taps are
 * skipped (a padded zero contributes 0, not -1) and the zero tail bits of both operands cancel
 * in the XOR. Structure, weight blocks and SIMD paths (portable, AVX2, AVX-512) are those of
 * the template aq_bin_opt.inc, shared with the `and` kernel. Bit-exact with aq_conv_xnor_ref.
 */
/* The epilogue must stay bit-exact with the reference: no fused multiply-add, whatever the
   build flags (the vector epilogue would otherwise be contracted under -std=gnu99). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "aq_internal.h"

#define BIN_KIND AQ_XNOR
#define BIN_OP(x, w) ((x) ^ (w))
#define BIN_OP256 _mm256_xor_si256
#define BIN_OP512 _mm512_xor_si512
#define BIN_ACC(SUB, twice_cnt, base) SUB(base, twice_cnt)

/* base = n_valid_bits of the window. */
AQ_INLINE int32_t window_base(const aq_geom *g, const int32_t *pix_pop, int iy0, int ix0, int ky0, int ky1,
                              int kx0, int kx1) {
    (void)pix_pop; (void)iy0; (void)ix0;
    return (int32_t)(ky1 - ky0) * (kx1 - kx0) * g->c_in;
}

/* xnor needs no per-pixel data. */
static void prepare_pixels(const aq_conv_args *a, int32_t *pix_pop) { (void)a; (void)pix_pop; }

#include "aq_bin_opt.inc"

int aq_conv_xnor_opt(const aq_conv_args *a) { return bin_opt(a); }
