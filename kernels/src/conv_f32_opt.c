/* Optimised f32 convolution: per block of AQ_F32_COB output channels, build the transposed
 * float weight block (aq_block_f32), then run the shared float core (src/aq_f32_core.c).
 * A layer whose one output pixel sees the whole input (aq_f32_whole_window: dense layers)
 * instead takes each output channel as one dot product of two contiguous runs of K floats,
 * its OHWI weight row and the input: the weights are read in place (the block copy cost as
 * much as the MACs there: 17 Cortex-M4 instructions per MAC on a 64 -> 10 dense layer). */
/* Fused multiply-add where the ISA has it (as in the float core) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif
#include "aq_internal.h"

/* s[i] = dot(x, r[i]) over k floats for 4 weight rows: each input value loaded once for the
   4 rows; with a SIMD unit 4 lanes of k per row, added up at the end */
static void dot4(const float *x, const float *const r[4], long k, float s[4]) {
    const float *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    long j = 0;
#if AQ_VEC
    aq_v4f v0 = {0.0f, 0.0f, 0.0f, 0.0f}, v1 = v0, v2 = v0, v3 = v0;
    for (; j + 4 <= k; j += 4) {
        aq_v4f xv = aq_ld4f(x + j);
        v0 += xv * aq_ld4f(r0 + j);
        v1 += xv * aq_ld4f(r1 + j);
        v2 += xv * aq_ld4f(r2 + j);
        v3 += xv * aq_ld4f(r3 + j);
    }
    s0 = (v0[0] + v0[1]) + (v0[2] + v0[3]);
    s1 = (v1[0] + v1[1]) + (v1[2] + v1[3]);
    s2 = (v2[0] + v2[1]) + (v2[2] + v2[3]);
    s3 = (v3[0] + v3[1]) + (v3[2] + v3[3]);
#endif
    for (; j < k; j++) {
        float xv = x[j];
        s0 += xv * r0[j];
        s1 += xv * r1[j];
        s2 += xv * r2[j];
        s3 += xv * r3[j];
    }
    s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3;
}

static void whole_window(const aq_conv_args *a) {
    const aq_geom *g = &a->g;
    long k = (long)g->kh * g->kw * g->c_in;
    const float *w = (const float *)a->w;
    float *y = (float *)a->y, s[4];
    int c0, i;
    for (c0 = 0; c0 < g->c_out; c0 += 4) {
        int n = g->c_out - c0 < 4 ? g->c_out - c0 : 4;
        const float *r[4];
        for (i = 0; i < 4; i++) r[i] = w + (long)(c0 + (i < n ? i : 0)) * k; /* a tail repeats row 0 */
        dot4((const float *)a->x, r, k, s);
        for (i = 0; i < n; i++) y[c0 + i] = aq_epilogue(s[i], a, c0 + i, 1.0f);
    }
}

int aq_conv_f32_opt(const aq_conv_args *a) {
    int c0, rc = aq_check_args(a, AQ_F32, "opt");
    if (rc) return rc;
    if (aq_f32_whole_window(&a->g)) {
        whole_window(a);
        return AQ_OK;
    }
    for (c0 = 0; c0 < a->g.c_out; c0 += AQ_F32_COB) {
        float *blk = (float *)a->scratch;
        aq_block_f32(a, c0, blk);
        aq_f32_core(a, blk, c0, 0);
    }
    return AQ_OK;
}
