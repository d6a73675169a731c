/* Optimised shift convolution: per block of AQ_F32_COB output channels, build the transposed
 * float weight block (aq_block_shift), then run the shared float core (a multiply by +-1 / 0 is
 * exact: the add/subtract of the reference in vector form) and one power-of-two scale per output (src/aq_f32_core.c). */
#include "aq_internal.h"

int aq_conv_shift_opt(const aq_conv_args *a) {
    int c0, rc = aq_check_args(a, AQ_SHIFT, "opt");
    if (rc) return rc;
    for (c0 = 0; c0 < a->g.c_out; c0 += AQ_F32_COB) {
        float *blk = (float *)a->scratch;
        float m[AQ_F32_COB];
        int l;
        for (l = 0; l < AQ_F32_COB; l++) m[l] = c0 + l < a->g.c_out ? aq_pow2_neg(a->shift[c0 + l]) : 1.0f;
        aq_block_shift(a, c0, blk);
        aq_f32_core(a, blk, c0, m);
    }
    return AQ_OK;
}
