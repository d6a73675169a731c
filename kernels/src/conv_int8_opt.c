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
#if AQ_DISPATCH
#include <immintrin.h>
#endif

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
#undef CORE_LOADW

/* x86 pair path (AVX2 and up), the fallback of the byte-dot-product paths (conv_int8_x86.c)
   for an input using all 256 int8 values on a CPU without VNNI: input channels taken two at a
   time (weights re-blocked per call, unlike there). A 32-bit lane holds the
   int16 pair (x'[2i], x'[2i+1]) of one pixel, resp. (w[2i], w[2i+1]) of one output channel
   (c_in padded to even with zeros), and vpmaddwd computes x0*w0 + x1*w1 per lane in int32:
   one multiply instruction per two taps instead of vpmulld per tap. Exact: |x'| <= 255,
   |w| <= 128, so a pair sum is at most 65280 (vpmaddwd saturates only for -32768 * -32768). */
/* Output of the pair path, 4 channels per SSE2 step (x86-64 baseline), bit-exact with
   aq_store_s8: the same float32 multiply then add (scale 1 / bias 0 when absent are exact),
   clamp to +-1e9, cvtps2dq rounds half to even like lrintf (default MXCSR mode), + y_zero_point,
   and the two saturating packs are the clamp to [-128, 127]. */
static void store_sse2(const aq_conv_args *a, const int32_t *acc, int oy, int ox, int c0, const void *ctx) {
    const aq_geom *g = &a->g;
    long base = ((long)oy * g->out_w + ox) * g->c_out + c0;
    int l, n = g->c_out - c0 < AQ_I8_COB ? g->c_out - c0 : AQ_I8_COB;
    const __m128 one = _mm_set1_ps(1.0f), zero = _mm_setzero_ps();
    const __m128 hi = _mm_set1_ps(1e9f), lo = _mm_set1_ps(-1e9f);
    const __m128i zp = _mm_set1_epi32(a->y_zero_point);
    for (l = 0; l + 4 <= n; l += 4) {
        __m128 v = _mm_cvtepi32_ps(_mm_loadu_si128((const __m128i *)(acc + l)));
        v = _mm_mul_ps(v, a->scale ? _mm_loadu_ps(a->scale + c0 + l) : one);
        v = _mm_add_ps(v, a->bias ? _mm_loadu_ps(a->bias + c0 + l) : zero);
        if (a->y_float) { _mm_storeu_ps((float *)a->y + base + l, v); continue; }
        {
            __m128i q = _mm_add_epi32(_mm_cvtps_epi32(_mm_max_ps(_mm_min_ps(v, hi), lo)), zp);
            int32_t b4 = _mm_cvtsi128_si32(_mm_packs_epi16(_mm_packs_epi32(q, q), _mm_setzero_si128()));
            memcpy((int8_t *)a->y + base + l, &b4, 4);
        }
    }
    for (; l < n; l++) aq_store_s8(a, base + l, acc[l], c0 + l);
    (void)ctx;
}

#undef CORE_X_T
#undef CORE_W_T
#undef CORE_STORE
#define CORE_STORE store_sse2
#define CORE_X_T int32_t
#define CORE_W_T int32_t
#define CORE_LOADW ld8w
#define CORE_VEC_T aq_v8i
#define CORE_LANES 8
#define CORE_PX 4
#define CORE_MAC(acc, xs, w) ((acc) += (aq_v8i)_mm256_madd_epi16((__m256i)(w), _mm256_set1_epi32(xs)))
#define CORE_FN core_pairs_avx2
#define CORE_ATTR AQ_TARGET_AVX2
#include "aq_direct_core.inc"
#define CORE_VEC_T aq_v8i
#define CORE_LANES 8
#define CORE_PX 4
#define CORE_MAC(acc, xs, w) ((acc) += (aq_v8i)_mm256_madd_epi16((__m256i)(w), _mm256_set1_epi32(xs)))
#define CORE_FN core_pairs_avx512
#define CORE_ATTR AQ_TARGET_AVX512
#include "aq_direct_core.inc"
/* AVX-512 VNNI (where the CPU has it): vpdpwssd fuses the pair multiply and the accumulation
   (no saturation: the sum is exact, as above). */
#define CORE_VEC_T aq_v8i
#define CORE_LANES 8
#define CORE_PX 4
#define CORE_MAC(acc, xs, w) \
    ((acc) = (aq_v8i)_mm256_dpwssd_epi32((__m256i)(acc), _mm256_set1_epi32(xs), (__m256i)(w)))
#define CORE_FN core_pairs_vnni
#define CORE_ATTR AQ_TARGET_AVX512_VNNI
#include "aq_direct_core.inc"
#undef CORE_LOADW

static int has_vnni(void) {
    static int v = -1;
    if (v < 0) { __builtin_cpu_init(); v = __builtin_cpu_supports("avx512vnni") ? 1 : 0; }
    return v;
}

static uint32_t pair16(int a, int b) { return (uint32_t)(uint16_t)(int16_t)a | ((uint32_t)(uint16_t)(int16_t)b << 16); }

/* The int16 pairs of one block of nl <= 16 channels from c0, from the packed weights wb of the
   block (autoq_kernels.h): input channels 2i, 2i+1 of channel l are adjacent bytes of its run
   of 4 (channels >= c_in are zero there). A full block: vpmovsxbw of 4 channels x 4 inputs and
   one lane permutation give both pair rows (scalar, this was a quarter of a 512-channel layer). */
AQ_TARGET_AVX2 static void pair_block(const aq_geom *g, const int8_t *wb, int c0, int nl, int32_t *blk) {
    int c2 = (g->c_in + 1) / 2, taps = g->kh * g->kw, gq = aq_i8p_c4(g) / 4, nb = aq_i8p_nb(g, c0), t, i, l, q;
    const __m256i perm = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    for (t = 0; t < taps; t++)
        for (i = 0; i < c2; i += 2) { /* pairs i and i + 1: bytes 0, 1 and 2, 3 of each run */
            const int8_t *src = wb + (long)(t * gq + (i >> 1)) * nb * 4;
            int32_t *o = blk + ((long)t * c2 + i) * AQ_I8_COB, two = i + 1 < c2;
            if (nl == AQ_I8_COB) {
                for (q = 0; q < 4; q++) {
                    __m256i v = _mm256_permutevar8x32_epi32(
                        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(src + 16 * q))), perm);
                    _mm_storeu_si128((__m128i *)(o + 4 * q), _mm256_castsi256_si128(v));
                    if (two) _mm_storeu_si128((__m128i *)(o + AQ_I8_COB + 4 * q), _mm256_extracti128_si256(v, 1));
                }
                continue;
            }
            for (l = 0; l < nl; l++) {
                o[l] = (int32_t)pair16(src[4 * l], src[4 * l + 1]);
                if (two) o[AQ_I8_COB + l] = (int32_t)pair16(src[4 * l + 2], src[4 * l + 3]);
            }
        }
}

/* The int8 convolution on the pair path. The input is copied zero-padded (pad_top / pad_left
   rows and columns of exact zeros, the 'same' tail too), so the core sees a 'valid' geometry of
   ceil(c_in / 2) pair channels in which every output pixel is interior: it runs the 4-pixel
   block everywhere (a padded tap adds 0 * w, exact in integers). */
static void conv_pairs(const aq_conv_args *a, int level) {
    const aq_geom *g = &a->g;
    const int8_t *x = (const int8_t *)a->x, *w = (const int8_t *)a->w;
    int c2 = (g->c_in + 1) / 2, taps = g->kh * g->kw, c0, i, y, xx;
    int hp = (g->out_h - 1) * g->stride + g->kh, wp = (g->out_w - 1) * g->stride + g->kw;
    int odd = g->c_in & 1, full = g->c_in / 2, zx = a->x_zero_point, c4 = aq_i8p_c4(g);
    int32_t *xs = (int32_t *)a->scratch, *blk = xs + (((long)hp * wp * c2 + 7) & ~7L);
    aq_conv_args pa = *a;
    aq_geom_init(&pa.g, hp, wp, c2, g->c_out, g->kh, g->kw, g->stride, AQ_PAD_VALID);
    for (y = 0; y < hp; y++)
        for (xx = 0; xx < wp; xx++) {
            int iy = y - g->pad_top, ix = xx - g->pad_left;
            int32_t *o = xs + ((long)y * wp + xx) * c2;
            const int8_t *px = x + ((long)iy * g->w + ix) * g->c_in;
            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) { memset(o, 0, (size_t)c2 * sizeof *o); continue; }
            for (i = 0; i < full; i++) o[i] = (int32_t)pair16(px[2 * i] - zx, px[2 * i + 1] - zx);
            if (odd) o[full] = (int32_t)pair16(px[2 * full] - zx, 0);
        }
    for (c0 = 0; c0 < g->c_out; c0 += AQ_I8_COB) {
        int nl = g->c_out - c0 < AQ_I8_COB ? g->c_out - c0 : AQ_I8_COB;
        if (nl < AQ_I8_COB) memset(blk, 0, (size_t)taps * c2 * AQ_I8_COB * sizeof *blk);
        pair_block(g, w + (long)c0 * taps * c4, c0, nl, blk);
        if (level >= 2 && has_vnni()) core_pairs_vnni(&pa, xs, blk, c0, 0);
        else if (level >= 2) core_pairs_avx512(&pa, xs, blk, c0, 0);
        else core_pairs_avx2(&pa, xs, blk, c0, 0);
    }
}
#endif

int aq_conv_int8_opt(const aq_conv_args *a) {
    const aq_geom *g = &a->g;
    const int8_t *x = (const int8_t *)a->x, *w = (const int8_t *)a->w;
    long k = (long)g->kh * g->kw * g->c_in, n = (long)g->h * g->w * g->c_in, j;
    int16_t *xs = (int16_t *)a->scratch;
    aq_i8w_t *blk = (aq_i8w_t *)(xs + ((n + 7) & ~7L));
    int c0, l, level, rc = aq_check_args(a, AQ_INT8, "opt");
    if (rc) return rc;
    level = aq_simd_level();
#if AQ_DISPATCH
    if (level >= 1) { /* byte dot products (conv_int8_x86.c); the int16 pairs where not exact */
        if (!aq_int8_x86(a, level, has_vnni())) conv_pairs(a, level);
        return AQ_OK;
    }
#endif
#if AQ_I8_DSP
    aq_int8_dsp(a);
    return AQ_OK;
#elif AQ_I8_NEON
    aq_int8_neon(a);
    return AQ_OK;
#endif
    for (j = 0; j < n; j++) xs[j] = (int16_t)(x[j] - a->x_zero_point);
    for (c0 = 0; c0 < g->c_out; c0 += AQ_I8_COB) {
        for (l = 0; l < AQ_I8_COB; l++) /* from the packed layout: per tap, runs of 4 channels */
            for (j = 0; j < k; j += g->c_in) {
                const int8_t *wt = w + (c0 + l < g->c_out ? aq_i8p_offset(g, c0 + l, (int)(j / g->c_in), 0) : 0);
                int ci, step = 4 * aq_i8p_nb(g, (c0 + l) - (c0 + l) % AQ_I8_PACK_COB);
                for (ci = 0; ci < g->c_in; ci++)
                    blk[(j + ci) * AQ_I8_COB + l] = c0 + l < g->c_out ? wt[(ci >> 2) * step + (ci & 3)] : 0;
            }
#if AQ_DISPATCH
        if (level >= 2) { core_avx512(a, xs, blk, c0, 0); continue; }
        if (level == 1) { core_avx2(a, xs, blk, c0, 0); continue; }
#endif
        core_portable(a, xs, blk, c0, 0);
    }
    (void)level;
    return AQ_OK;
}
