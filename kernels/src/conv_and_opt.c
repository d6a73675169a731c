/* Optimised and convolution: activations {0,1}, weights +-1, word-level AND + popcount.
 *
 * acc = sum x * w = popcount(x & w) - popcount(x & ~w) = 2 * popcount(x & w) - popcount(x).
 * popcount(x) does not depend on the output channel: it is computed once per input pixel
 * (scratch, after the weight blocks) and summed over the valid window once per output pixel,
 * leaving one AND and one popcount per word and output channel. Padded taps are skipped
 * (they are zeros).
 * The weights of all output channels are interleaved once per call into blocks of AQ_BIN_COB
 * channels (aq_block_bits: blk[t][l] = word t of channel l), so one input word meets the same
 * word of 8 channels at once: 8 popcounts, or one AVX-512 VPOPCNTQ when the CPU has it. For
 * one filter row the valid taps are one contiguous run of (kx1 - kx0) * words in input and
 * weights. Loop order: output pixel -> channel block -> valid filter rows, so the window
 * geometry and the window popcount is computed once per pixel. Bit-exact with aq_conv_and_ref.
 */
/* The epilogue must stay bit-exact with the reference: no fused multiply-add, whatever the
   build flags (the vector epilogue below would otherwise be contracted under -std=gnu99). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "aq_internal.h"
#if AQ_DISPATCH
#include <immintrin.h>
#endif

/* narrow: c_in <= 32, so only the low 32 bits of each word can be set (targets without a
   popcount instruction then count one 32-bit half instead of two). */
AQ_INLINE void body(const aq_conv_args *a, const uint64_t *blk_all, const int32_t *pix_pop, int narrow) {
    const aq_geom *g = &a->g;
    const uint64_t *x = (const uint64_t *)a->x;
    float *y = (float *)a->y;
    int nw = aq_words(g->c_in), oy, ox, ky, kx, t, l, c0;
    long blk_words = (long)g->kh * g->kw * nw * AQ_BIN_COB;
    for (oy = 0; oy < g->out_h; oy++) {
        int iy0, ky0, ky1;
        aq_tap_range(oy, g->stride, g->pad_top, g->kh, g->h, &iy0, &ky0, &ky1);
        for (ox = 0; ox < g->out_w; ox++) {
            int ix0, kx0, kx1, run;
            int32_t base = 0;
            float *yo = y + ((long)oy * g->out_w + ox) * g->c_out;
            aq_tap_range(ox, g->stride, g->pad_left, g->kw, g->w, &ix0, &kx0, &kx1);
            run = (kx1 - kx0) * nw;
            for (ky = ky0; ky < ky1; ky++) /* popcount(x) over the window */
                for (kx = kx0; kx < kx1; kx++) base += pix_pop[(long)(iy0 + ky) * g->w + ix0 + kx];
            for (c0 = 0; c0 < g->c_out; c0 += AQ_BIN_COB) {
                const uint64_t *blk = blk_all + (c0 / AQ_BIN_COB) * blk_words;
                uint64_t cnt[AQ_BIN_COB] = {0};
                for (ky = ky0; ky < ky1; ky++) {
                    const uint64_t *xr = x + ((long)(iy0 + ky) * g->w + ix0 + kx0) * nw;
                    const uint64_t *wb = blk + ((long)ky * g->kw + kx0) * nw * AQ_BIN_COB;
                    for (t = 0; t < run; t++) {
                        uint64_t xv = xr[t];
                        for (l = 0; l < AQ_BIN_COB; l++)
                            cnt[l] += (uint64_t)(narrow ? AQ_POPCOUNT32((uint32_t)(xv & wb[t * AQ_BIN_COB + l]))
                                                        : AQ_POPCOUNT64(xv & wb[t * AQ_BIN_COB + l]));
                    }
                }
                for (l = 0; l < AQ_BIN_COB && c0 + l < g->c_out; l++)
                    yo[c0 + l] = aq_epilogue((float)(2 * (int32_t)cnt[l] - base), a, c0 + l, 1.0f);
            }
        }
    }
    (void)kx; (void)pix_pop;
}

static void body_portable(const aq_conv_args *a, const uint64_t *blk, const int32_t *pp) {
#if !AQ_HW_POPCOUNT
    if (a->g.c_in <= 32) {
        body(a, blk, pp, 1);
        return;
    }
#endif
    body(a, blk, pp, 0);
}
#if AQ_DISPATCH
/* AVX2 (no vector popcount): nibble-table popcount with VPSHUFB (Mula et al.) on 4 words per
   register; byte counts are summed for up to 31 words (<= 8 * 31 per byte), then folded to
   64-bit lanes with VPSADBW. AVX2_GROUP channel blocks per input broadcast. */
#ifndef AVX2_GROUP
#define AVX2_GROUP 2 /* channel blocks per input broadcast (4 measured no faster) */
#endif
AQ_TARGET_AVX2 static inline __m256i popcnt_bytes(__m256i v, __m256i lut, __m256i low4) {
    __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low4));
    __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
    return _mm256_add_epi8(lo, hi);
}

/* 8 channels from two vectors of 4 x 64-bit counts: aq_epilogue's operations in vector form. */
AQ_TARGET_AVX2 static inline void store8_avx2(const aq_conv_args *a, float *yo, int c0, int32_t base,
                                              __m256i q0, __m256i q1) {
    __m256i c32 = _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(q0), _mm256_castsi256_ps(q1),
                                                        _MM_SHUFFLE(2, 0, 2, 0)));
    __m256 v;
    c32 = _mm256_permute4x64_epi64(c32, _MM_SHUFFLE(3, 1, 2, 0)); /* low dwords in channel order */
    v = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_slli_epi32(c32, 1), _mm256_set1_epi32(base)));
    if (a->scale) v = _mm256_mul_ps(v, _mm256_loadu_ps(a->scale + c0));
    if (a->bias) v = _mm256_add_ps(v, _mm256_loadu_ps(a->bias + c0));
    _mm256_storeu_ps(yo + c0, v);
}

AQ_TARGET_AVX2 static void body_avx2(const aq_conv_args *a, const uint64_t *blk_all, const int32_t *pix_pop) {
    const aq_geom *g = &a->g;
    const uint64_t *x = (const uint64_t *)a->x;
    float *y = (float *)a->y;
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low4 = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
    int nw = aq_words(g->c_in), oy, ox, ky, kx, t, c0;
    long blk_words = (long)g->kh * g->kw * nw * AQ_BIN_COB;
    int full = g->c_out / (AVX2_GROUP * AQ_BIN_COB) * (AVX2_GROUP * AQ_BIN_COB);
    for (oy = 0; oy < g->out_h; oy++) {
        int iy0, ky0, ky1;
        aq_tap_range(oy, g->stride, g->pad_top, g->kh, g->h, &iy0, &ky0, &ky1);
        for (ox = 0; ox < g->out_w; ox++) {
            int ix0, kx0, kx1, run;
            int32_t base = 0;
            float *yo = y + ((long)oy * g->out_w + ox) * g->c_out;
            aq_tap_range(ox, g->stride, g->pad_left, g->kw, g->w, &ix0, &kx0, &kx1);
            run = (kx1 - kx0) * nw;
            for (ky = ky0; ky < ky1; ky++) /* popcount(x) over the window */
                for (kx = kx0; kx < kx1; kx++) base += pix_pop[(long)(iy0 + ky) * g->w + ix0 + kx];
            for (c0 = 0; c0 < full; c0 += AVX2_GROUP * AQ_BIN_COB) {
                const uint64_t *blk = blk_all + (c0 / AQ_BIN_COB) * blk_words;
                __m256i q[2 * AVX2_GROUP]; /* 64-bit counts, 2 registers per channel block */
                int b;
                for (b = 0; b < 2 * AVX2_GROUP; b++) q[b] = zero;
                for (ky = ky0; ky < ky1; ky++) {
                    const uint64_t *xr = x + ((long)(iy0 + ky) * g->w + ix0 + kx0) * nw;
                    const uint64_t *w0 = blk + ((long)ky * g->kw + kx0) * nw * AQ_BIN_COB;
                    for (t = 0; t < run;) {
                        int end = run - t > 31 ? t + 31 : run;
                        __m256i bc[2 * AVX2_GROUP]; /* byte counts */
                        for (b = 0; b < 2 * AVX2_GROUP; b++) bc[b] = zero;
                        for (; t < end; t++) {
                            __m256i xv = _mm256_set1_epi64x((long long)xr[t]);
                            const uint64_t *wt = w0 + (long)t * AQ_BIN_COB;
                            for (b = 0; b < 2 * AVX2_GROUP; b++)
                                bc[b] = _mm256_add_epi8(bc[b], popcnt_bytes(_mm256_and_si256(xv, _mm256_loadu_si256(
                                    (const __m256i *)(wt + (b / 2) * blk_words + (b % 2) * 4))), lut, low4));
                        }
                        for (b = 0; b < 2 * AVX2_GROUP; b++) q[b] = _mm256_add_epi64(q[b], _mm256_sad_epu8(bc[b], zero));
                    }
                }
                for (b = 0; b < AVX2_GROUP; b++) store8_avx2(a, yo, c0 + b * AQ_BIN_COB, base, q[2 * b], q[2 * b + 1]);
            }
            for (c0 = full; c0 < g->c_out; c0 += AQ_BIN_COB) { /* remaining channels: scalar */
                const uint64_t *blk = blk_all + (c0 / AQ_BIN_COB) * blk_words;
                uint64_t cnt[AQ_BIN_COB] = {0};
                int l;
                for (ky = ky0; ky < ky1; ky++) {
                    const uint64_t *xr = x + ((long)(iy0 + ky) * g->w + ix0 + kx0) * nw;
                    const uint64_t *wb = blk + ((long)ky * g->kw + kx0) * nw * AQ_BIN_COB;
                    for (t = 0; t < run; t++)
                        for (l = 0; l < AQ_BIN_COB; l++)
                            cnt[l] += (uint64_t)AQ_POPCOUNT64(xr[t] & wb[t * AQ_BIN_COB + l]);
                }
                for (l = 0; l < AQ_BIN_COB && c0 + l < g->c_out; l++)
                    yo[c0 + l] = aq_epilogue((float)(2 * (int32_t)cnt[l] - base), a, c0 + l, 1.0f);
            }
        }
    }
    (void)kx; (void)pix_pop;
}
/* y[c0 .. c0 + 8) from one accumulator vector: aq_epilogue's operations, in vector form. */
AQ_TARGET_AVX512 static inline void store8(const aq_conv_args *a, float *yo, int c0, int32_t base,
                                           __m512i acc) {
    __m256 v = _mm256_cvtepi32_ps(_mm512_cvtepi64_epi32(_mm512_sub_epi64(_mm512_slli_epi64(acc, 1), _mm512_set1_epi64(base))));
    if (a->scale) v = _mm256_mul_ps(v, _mm256_loadu_ps(a->scale + c0));
    if (a->bias) v = _mm256_add_ps(v, _mm256_loadu_ps(a->bias + c0));
    _mm256_storeu_ps(yo + c0, v);
}

/* AVX-512: the 8 channel words of one input word in one register, VPOPCNTQ; 4 channel blocks
   (32 channels) per pass share each input broadcast. The integer accumulator and the epilogue
   operations are those of the portable body (bit-exact). */
AQ_TARGET_AVX512 static void body_avx512(const aq_conv_args *a, const uint64_t *blk_all,
                                         const int32_t *pix_pop) {
    const aq_geom *g = &a->g;
    const uint64_t *x = (const uint64_t *)a->x;
    float *y = (float *)a->y;
    int nw = aq_words(g->c_in), oy, ox, ky, kx, t, l, c0;
    long blk_words = (long)g->kh * g->kw * nw * AQ_BIN_COB;
    for (oy = 0; oy < g->out_h; oy++) {
        int iy0, ky0, ky1;
        aq_tap_range(oy, g->stride, g->pad_top, g->kh, g->h, &iy0, &ky0, &ky1);
        for (ox = 0; ox < g->out_w; ox++) {
            int ix0, kx0, kx1, run;
            int32_t base = 0;
            float *yo = y + ((long)oy * g->out_w + ox) * g->c_out;
            aq_tap_range(ox, g->stride, g->pad_left, g->kw, g->w, &ix0, &kx0, &kx1);
            run = (kx1 - kx0) * nw;
            for (ky = ky0; ky < ky1; ky++) /* popcount(x) over the window */
                for (kx = kx0; kx < kx1; kx++) base += pix_pop[(long)(iy0 + ky) * g->w + ix0 + kx];
            for (c0 = 0; c0 + 4 * AQ_BIN_COB <= g->c_out; c0 += 4 * AQ_BIN_COB) {
                const uint64_t *blk = blk_all + (c0 / AQ_BIN_COB) * blk_words;
                __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
                for (ky = ky0; ky < ky1; ky++) {
                    const uint64_t *xr = x + ((long)(iy0 + ky) * g->w + ix0 + kx0) * nw;
                    const uint64_t *w0 = blk + ((long)ky * g->kw + kx0) * nw * AQ_BIN_COB;
                    const uint64_t *w1 = w0 + blk_words, *w2 = w1 + blk_words, *w3 = w2 + blk_words;
                    for (t = 0; t < run; t++) {
                        __m512i xv = _mm512_set1_epi64((long long)xr[t]);
                        long o = (long)t * AQ_BIN_COB;
                        a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(_mm512_and_si512(xv, _mm512_loadu_si512((const void *)(w0 + o)))));
                        a1 = _mm512_add_epi64(a1, _mm512_popcnt_epi64(_mm512_and_si512(xv, _mm512_loadu_si512((const void *)(w1 + o)))));
                        a2 = _mm512_add_epi64(a2, _mm512_popcnt_epi64(_mm512_and_si512(xv, _mm512_loadu_si512((const void *)(w2 + o)))));
                        a3 = _mm512_add_epi64(a3, _mm512_popcnt_epi64(_mm512_and_si512(xv, _mm512_loadu_si512((const void *)(w3 + o)))));
                    }
                }
                store8(a, yo, c0, base, a0);
                store8(a, yo, c0 + AQ_BIN_COB, base, a1);
                store8(a, yo, c0 + 2 * AQ_BIN_COB, base, a2);
                store8(a, yo, c0 + 3 * AQ_BIN_COB, base, a3);
            }
            for (; c0 < g->c_out; c0 += AQ_BIN_COB) {
                const uint64_t *blk = blk_all + (c0 / AQ_BIN_COB) * blk_words;
                __m512i acc = _mm512_setzero_si512();
                int64_t cnt[AQ_BIN_COB];
                for (ky = ky0; ky < ky1; ky++) {
                    const uint64_t *xr = x + ((long)(iy0 + ky) * g->w + ix0 + kx0) * nw;
                    const uint64_t *wb = blk + ((long)ky * g->kw + kx0) * nw * AQ_BIN_COB;
                    for (t = 0; t < run; t++) {
                        __m512i xv = _mm512_set1_epi64((long long)xr[t]);
                        __m512i wv = _mm512_loadu_si512((const void *)(wb + t * AQ_BIN_COB));
                        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_and_si512(xv, wv)));
                    }
                }
                if (c0 + AQ_BIN_COB <= g->c_out) {
                    store8(a, yo, c0, base, acc);
                    continue;
                }
                _mm512_storeu_si512((void *)cnt, acc);
                for (l = 0; l < AQ_BIN_COB && c0 + l < g->c_out; l++)
                    yo[c0 + l] = aq_epilogue((float)(2 * (int32_t)cnt[l] - base), a, c0 + l, 1.0f);
            }
        }
    }
    (void)kx; (void)pix_pop;
}
#endif

int aq_conv_and_opt(const aq_conv_args *a) {
    const aq_geom *g = &a->g;
    uint64_t *blk = (uint64_t *)a->scratch;
    long blk_words = (long)g->kh * g->kw * aq_words(g->c_in) * AQ_BIN_COB;
    int n_blk = (g->c_out + AQ_BIN_COB - 1) / AQ_BIN_COB, b, level;
    int32_t *pix_pop = (int32_t *)(blk + n_blk * blk_words);
    int rc = aq_check_args(a, AQ_AND, "opt");
    if (rc) return rc;
    if (aq_bin_narrow_applies(g)) return aq_bin_narrow(a, 1); /* few input channels */
    for (b = 0; b < n_blk; b++) aq_block_bits(a, b * AQ_BIN_COB, blk + b * blk_words);
    {
        const uint64_t *x = (const uint64_t *)a->x;
        int nw = aq_words(g->c_in), t;
        long p;
        for (p = 0; p < (long)g->h * g->w; p++) {
            int32_t s = 0;
            for (t = 0; t < nw; t++) s += AQ_POPCOUNT64(x[p * nw + t]);
            pix_pop[p] = s;
        }
    }
    level = aq_simd_level();
#if AQ_DISPATCH
    if (level >= 2) { body_avx512(a, blk, pix_pop); return AQ_OK; }
    if (level == 1) { body_avx2(a, blk, pix_pop); return AQ_OK; }
#endif
    body_portable(a, blk, pix_pop);
    (void)level;
    return AQ_OK;
}
