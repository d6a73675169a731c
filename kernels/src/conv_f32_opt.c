/* Optimised f32 convolution: per block of AQ_F32_COB output channels, build the transposed
 * float weight block (aq_block_f32), then run the shared float core (src/aq_f32_core.c). */
#include "aq_internal.h"

int aq_conv_f32_opt(const aq_conv_args *a) {
    int c0, rc = aq_check_args(a, AQ_F32, "opt");
    if (rc) return rc;
    for (c0 = 0; c0 < a->g.c_out; c0 += AQ_F32_COB) {
        float *blk = (float *)a->scratch;
        aq_block_f32(a, c0, blk);
        aq_f32_core(a, blk, c0, 0);
    }
    return AQ_OK;
}
