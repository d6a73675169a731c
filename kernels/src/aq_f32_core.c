/* Float core shared by the opt f32, lut and shift kernels: direct convolution over blocks of
 * AQ_F32_COB output channels (template src/aq_direct_core.inc, instantiated per SIMD level:
 * 128-bit vectors in the portable build (SSE2 / NEON), plain scalar C without a SIMD unit;
 * on x86 at SIMD level >= 1 the register-blocked micro-kernel of src/conv_f32_x86.c). */
/* Fused multiply-add where the ISA has it: float results already differ from the reference in
   the last bits (summation order), and -std=c99 would otherwise forbid the contraction. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif
#include <string.h>

#include "aq_internal.h"

static void block_rows(const aq_conv_args *a, int c0, float *blk, const float *rows_of, long k,
                       int stride_rows) {
    long j;
    int l;
    for (j = 0; j < k; j++)
        for (l = 0; l < AQ_F32_COB; l++)
            blk[j * AQ_F32_COB + l] = (c0 + l < a->g.c_out) ? rows_of[(long)l * stride_rows + j] : 0.0f;
}

void aq_block_f32(const aq_conv_args *a, int c0, float *blk) {
    long k = (long)a->g.kh * a->g.kw * a->g.c_in;
#if AQ_DISPATCH
    if (c0 + AQ_F32_COB <= a->g.c_out && aq_simd_level() >= 1) { aq_block_f32_x86(a, c0, blk); return; }
#endif
    block_rows(a, c0, blk, (const float *)a->w + c0 * k, k, (int)k);
}

static void store(const aq_conv_args *a, const float *acc, int oy, int ox, int c0, const void *ctx) {
    const aq_geom *g = &a->g;
    const float *m = (const float *)ctx;
    float *y = (float *)a->y + ((long)oy * g->out_w + ox) * g->c_out;
    int l;
    for (l = 0; l < AQ_F32_COB && c0 + l < g->c_out; l++)
        y[c0 + l] = aq_epilogue(acc[l], a, c0 + l, m ? m[l] : 1.0f);
}

#define CORE_X_T float
#define CORE_W_T float
#define CORE_ACC_T float
#define CORE_STORE store
#define CORE_COB AQ_F32_COB
#if AQ_VEC
#define CORE_FN core_portable
#define CORE_ATTR
#define CORE_VEC_T aq_v4f
#define CORE_LANES 4
#define CORE_PX 2
#define CORE_LOADW aq_ld4f
#include "aq_direct_core.inc"
#undef CORE_LOADW
#else
AQ_INLINE float ld1(const float *p) { return *p; }
#define CORE_FN core_portable
#define CORE_ATTR
#define CORE_VEC_T float
#define CORE_LANES 1
#define CORE_PX 2 /* 2 x 8 accumulators + 8 weights in the M4's 32 single registers */
#define CORE_LOADW ld1
#include "aq_direct_core.inc"
#undef CORE_LOADW
#endif
void aq_f32_core(const aq_conv_args *a, const float *blk, int c0, const float *m) {
#if AQ_DISPATCH
    int level = aq_simd_level();
    if (level >= 1) { aq_f32_core_x86(a, blk, c0, m, level); return; } /* conv_f32_x86.c */
#endif
    core_portable(a, (const float *)a->x, blk, c0, m);
}
