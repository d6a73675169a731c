/* Optimised int8 convolution: int32 accumulation, output channels in vector lanes.
 *
 * acc = sum (x - zx) * w over the valid taps. The input is first shifted by its zero point
 * into int16 (x - zx in [-255, 255], scratch), so a padded tap, whose real value is 0, is
 * simply skipped. The int8 weights of AQ_I8_COB output channels are widened (aq_i8w_t: int32
 * with SIMD, so vector loads need no conversion; int16 on scalar targets to save RAM) and transposed into blk[j][l] like the float core's, so
 * the inner loop is
 *     acc[l] += (int32) x'[j] * blk[j][l]   for all l at once,
 * four interior output pixels at a time sharing each weight load. Integer arithmetic: bit-exact
 * with aq_conv_int8_ref (the requantisation / float epilogue is the same function, aq_store_s8).
 */
#include <string.h>

#include "aq_internal.h"

static void store(const aq_conv_args *a, const int32_t *acc, int oy, int ox, int c0, const void *ctx) {
    const aq_geom *g = &a->g;
    long base = ((long)oy * g->out_w + ox) * g->c_out;
    int l;
    for (l = 0; l < AQ_I8_COB && c0 + l < g->c_out; l++) aq_store_s8(a, base + c0 + l, acc[l], c0 + l);
    (void)ctx;
}

/* The direct-convolution template (src/aq_direct_core.inc) on int16 inputs and weights with
   int32 lanes, in blocks of AQ_I8_COB output channels. */
#define CORE_X_T int16_t
#define CORE_W_T aq_i8w_t
#define CORE_ACC_T int32_t
#define CORE_STORE store
#define CORE_COB AQ_I8_COB
#if AQ_VEC
typedef int32_t aq_v4i __attribute__((vector_size(16)));
typedef int32_t aq_v8i __attribute__((vector_size(32)));
AQ_INLINE aq_v4i ld4w(const int32_t *p) { aq_v4i v; memcpy(&v, p, sizeof v); return v; }
AQ_INLINE aq_v8i ld8w(const int32_t *p) { aq_v8i v; memcpy(&v, p, sizeof v); return v; }
#define CORE_FN core_portable
#define CORE_ATTR
#define CORE_VEC_T aq_v4i
#define CORE_LANES 4
#define CORE_PX 2
#define CORE_LOADW ld4w
#include "aq_direct_core.inc"
#undef CORE_LOADW
#else
AQ_INLINE int32_t ld1w(const int16_t *p) { return *p; }
#define CORE_FN core_portable
#define CORE_ATTR
#define CORE_VEC_T int32_t
#define CORE_LANES 1
#define CORE_PX 1
#define CORE_LOADW ld1w
#include "aq_direct_core.inc"
#undef CORE_LOADW
#endif
#if AQ_DISPATCH
#define CORE_LOADW ld8w
#define CORE_VEC_T aq_v8i
#define CORE_LANES 8
#define CORE_PX 4
#define CORE_FN core_avx2
#define CORE_ATTR AQ_TARGET_AVX2
#include "aq_direct_core.inc"
#define CORE_VEC_T aq_v8i
#define CORE_LANES 8
#define CORE_PX 4
#define CORE_FN core_avx512
#define CORE_ATTR AQ_TARGET_AVX512
#include "aq_direct_core.inc"
#endif

int aq_conv_int8_opt(const aq_conv_args *a) {
    const aq_geom *g = &a->g;
    const int8_t *x = (const int8_t *)a->x, *w = (const int8_t *)a->w;
    long k = (long)g->kh * g->kw * g->c_in, n = (long)g->h * g->w * g->c_in, j;
    int16_t *xs = (int16_t *)a->scratch;
    aq_i8w_t *blk = (aq_i8w_t *)(xs + ((n + 7) & ~7L));
    int c0, l, level, rc = aq_check_args(a, AQ_INT8, "opt");
    if (rc) return rc;
    for (j = 0; j < n; j++) xs[j] = (int16_t)(x[j] - a->x_zero_point);
    level = aq_simd_level();
    for (c0 = 0; c0 < g->c_out; c0 += AQ_I8_COB) {
        for (j = 0; j < k; j++)
            for (l = 0; l < AQ_I8_COB; l++)
                blk[j * AQ_I8_COB + l] = c0 + l < g->c_out ? w[(long)(c0 + l) * k + j] : 0;
#if AQ_DISPATCH
        if (level >= 2) { core_avx512(a, xs, blk, c0, 0); continue; }
        if (level == 1) { core_avx2(a, xs, blk, c0, 0); continue; }
#endif
        core_portable(a, xs, blk, c0, 0);
    }
    (void)level;
    return AQ_OK;
}
