/* x86 int8 convolution on u8 x s8 byte dot products, straight from the packed weights
 * (autoq_kernels.h: per tap and group of 4 input channels, 16 channels x 4 bytes = one 512-bit
 * row), no per-call repacking: AVX-512 VNNI vpdpbusd (one zmm = 16 channels x 4 taps) or, on
 * AVX2, vpmaddubsw + vpmaddwd (two ymm per 16 channels).
 *
 * The input is copied once per call, offset by a constant c and zero-padded: xs = x + c on
 * valid taps, zx + c on padded ones (the real value 0), 0 on the input channels >= c_in (their
 * weights are 0). A pixel then sums over the taps T it is given (VNNI: its valid taps, the
 * output cut into regions of equal valid filter rows and columns; AVX2: all taps); a padded tap in T holds
 * xs = zx + c and adds 0 below, so with S[l] = the sum of channel l's weights over T,
 *     acc = sum_valid (x - zx) w = sum_T (xs - (zx + c)) w = D - (zx + c) * S[l],
 * D = sum_T xs * w. All in int32, exact: |acc| <= 255 * 128 * K fits for every legal K, and
 * the wrap-around vector adds are exact modulo 2^32, so D - (zx + c) S is exact when acc fits.
 *
 * Saturation (vpmaddubsw adds two u8 x s8 products into int16 WITH saturation):
 *   VNNI: c = 128, xs in [0, 255] as u8. vpdpbusd sums the four products in int32 with no
 *     intermediate saturation (only vpdpbusds saturates): exact for all inputs and weights.
 *   AVX2 'u7': when the input values (and zx) span at most 128 values, c = -min puts xs in
 *     [0, 127]: a pair is |xs0 w0 + xs1 w1| <= 2 * 127 * 128 = 32512 <= 32767, never saturates.
 *   AVX2 'sign': when they span at most 255 values, c = -127 - min puts xs in [-127, 127];
 *     vpmaddubsw(|w|, sign(xs, w)) multiplies the u8 |w| in [0, 128] by xs * sgn(w) in
 *     [-127, 127] (no int8 overflow: |xs| <= 127), each product = xs * w, a pair
 *     <= 2 * 128 * 127 = 32512 <= 32767: never saturates, for every int8 weight incl. -128.
 *   Only an input using all 256 int8 values (both -128 and 127, zx included) on a CPU without
 *     VNNI falls back to the int16 pair path (conv_int8_opt.c). The exporter's inputs are in
 *     [-127, 127] with zx = 0 (sign path; u7 after a ReLU).
 * The epilogue is aq_store_s8's float32 multiply, add, clamp to +-1e9, round half to even
 * (cvtps2dq under the default MXCSR, like lrintf), + y_zero_point, saturate to int8.
 */
#include "aq_internal.h"

#if AQ_DISPATCH
#include <immintrin.h>

#define PX_VNNI 14 /* output pixels x 2 blocks of 16 channels: 28 zmm accumulators (vpdpbusd latency 5
                      x 2 per cycle needs >= 10 independent chains; loads 16 per 28 dpbusd) */
#define PX_AVX2 4 /* 4 pixels x 2 ymm accumulators + weights, |weights|, temporaries: 16 ymm */

typedef struct {
    const aq_conv_args *a;
    const uint8_t *xs; /* padded, offset input: hp x wp x c4 bytes */
    int c4, taps, run; /* run: groups of 4 bytes per filter row (kw * c4 / 4) */
    long xrow;         /* bytes per padded input row */
    int corr;          /* zx + c */
    int wp;
    int lo, hi, k0, nrun; /* output columns [lo, hi) with valid filter columns from k0: nrun groups */
    int rlo, ky0, ky1;    /* output rows from rlo with valid filter rows [ky0, ky1) */
} x86_plan;

static int32_t ld32(const uint8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }

/* Input offsets (of filter row 0, column k0) and output indices of pixels i0 .. i0 + np - 1 of
   the column segment [lo, hi) x the rows from rlo, row-major (one division) */
static void pixel_offsets(const x86_plan *pl, long i0, int np, long *off, long *pix) {
    const aq_geom *g = &pl->a->g;
    long ncol = pl->hi - pl->lo, oy = pl->rlo + i0 / ncol, ox = pl->lo + i0 % ncol;
    int p;
    for (p = 0; p < np; p++) {
        off[p] = (oy * g->stride * pl->wp + ox * g->stride + pl->k0) * pl->c4;
        pix[p] = oy * g->out_w + ox;
        if (++ox == pl->hi) { ox = pl->lo; oy++; }
    }
}

/* ---- AVX-512 VNNI ---------------------------------------------------------------------- */

AQ_INLINE __attribute__((target("avx512f,avx512bw,avx512vnni"))) void
vnni_block(const x86_plan *pl, const int8_t *wb, long bstride, const int nblk, int nb, __mmask16 m,
           const long *off, const int np, __m512i *out) {
    int ky, j, p, b;
    long wrow = (long)pl->run * nb * 4;
    __m512i acc[2][PX_VNNI]; /* local: kept in registers (a pointer target would be stored back) */
    for (b = 0; b < nblk; b++)
        for (p = 0; p < (np == 1 ? 2 : np); p++) acc[b][p] = _mm512_setzero_si512();
    for (ky = pl->ky0; ky < pl->ky1; ky++) {
        const uint8_t *xr = pl->xs + ky * pl->xrow;
        const int8_t *wr = wb + ky * wrow;
        for (j = 0; j < pl->nrun; j++) {
            __m512i w[2];
            for (b = 0; b < nblk; b++) {
                w[b] = _mm512_maskz_loadu_epi32(m, wr + b * bstride + (long)j * nb * 4);
                /* the weight streams come from L2 for each pixel block: ask for them early */
                _mm_prefetch((const char *)(wr + b * bstride + (long)(j + 8) * nb * 4), _MM_HINT_T0);
            }
            if (np == 1) { /* one pixel: two chains per block, even and odd j (vpdpbusd latency) */
                __m512i xb = _mm512_set1_epi32(ld32(xr + off[0] + 4 * j));
                if (j & 1) for (b = 0; b < nblk; b++) acc[b][1] = _mm512_dpbusd_epi32(acc[b][1], xb, w[b]);
                else for (b = 0; b < nblk; b++) acc[b][0] = _mm512_dpbusd_epi32(acc[b][0], xb, w[b]);
                continue;
            }
#pragma GCC unroll 14
            for (p = 0; p < np; p++) {
                __m512i xb = _mm512_set1_epi32(ld32(xr + off[p] + 4 * j));
                for (b = 0; b < nblk; b++) acc[b][p] = _mm512_dpbusd_epi32(acc[b][p], xb, w[b]);
            }
        }
    }
    for (b = 0; b < nblk && np == 1; b++) acc[b][0] = _mm512_add_epi32(acc[b][0], acc[b][1]);
    for (b = 0; b < nblk; b++)
        for (p = 0; p < np; p++) out[b * PX_VNNI + p] = acc[b][p];
}

/* Requantise (or with y_float, the float epilogue of) the n <= 16 channels c0.. of pixel i. */
AQ_INLINE __attribute__((target("avx512f,avx512bw"))) void
store16(const aq_conv_args *a, __m512i acc, long i, int c0, __mmask16 m) {
    long base = i * a->g.c_out + c0;
    __m512 v = _mm512_cvtepi32_ps(acc);
    if (a->scale) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, a->scale + c0));
    if (a->bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, a->bias + c0));
    if (a->y_float) { _mm512_mask_storeu_ps((float *)a->y + base, m, v); return; }
    v = _mm512_max_ps(_mm512_min_ps(v, _mm512_set1_ps(1e9f)), _mm512_set1_ps(-1e9f));
    _mm512_mask_cvtsepi32_storeu_epi8((int8_t *)a->y + base, m,
                                      _mm512_add_epi32(_mm512_cvtps_epi32(v), _mm512_set1_epi32(a->y_zero_point)));
}

/* Pixels of the next register block when `left` of `total` remain: the total split evenly into
   ceil(total / PX_VNNI) blocks (48 pixels: 4 x 12, not 3 x 14 + 4 + 1 + 1, single pixels being
   latency-bound), rounded down to an instantiated size (even, or 1) */
static int even_block(long total, long left) {
    long nblocks = (total + PX_VNNI - 1) / PX_VNNI, t = (total + nblocks - 1) / nblocks;
    if (t > left) t = left;
    return t >= 2 ? (int)(t & ~1L) : 1;
}

/* Each channel's weights summed over nrun groups from wr (one filter row's valid columns), in
   4 register chains (vpdpbusd latency; an indexed array of chains lived in memory) */
AQ_INLINE __attribute__((target("avx512f,avx512bw,avx512vnni"))) __m512i
row_weight_sum(const int8_t *wr, int nrun, int nb, __mmask16 m) {
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    long st = (long)nb * 4;
    int j;
    for (j = 0; j + 4 <= nrun; j += 4) {
        s0 = _mm512_dpbusd_epi32(s0, ones, _mm512_maskz_loadu_epi32(m, wr + j * st));
        s1 = _mm512_dpbusd_epi32(s1, ones, _mm512_maskz_loadu_epi32(m, wr + (j + 1) * st));
        s2 = _mm512_dpbusd_epi32(s2, ones, _mm512_maskz_loadu_epi32(m, wr + (j + 2) * st));
        s3 = _mm512_dpbusd_epi32(s3, ones, _mm512_maskz_loadu_epi32(m, wr + (j + 3) * st));
    }
    for (; j < nrun; j++) s0 = _mm512_dpbusd_epi32(s0, ones, _mm512_maskz_loadu_epi32(m, wr + j * st));
    return _mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3));
}

/* The pixels of one region of the output (rows with the same valid filter rows x columns with
   the same valid filter columns) for nblk (1 or 2) blocks of 16 channels from c0, in register
   blocks of 14 / 12 / .. / 1 pixels. ws: block 0's weights from the first valid column;
   rsum[b * kh + ky]: block b's weight sums of filter row ky over the region's valid columns;
   the correction is (zx + c) times their sum over its rows. */
AQ_INLINE __attribute__((target("avx512f,avx512bw,avx512vnni"))) void
vnni_region(const x86_plan *pl, int c0, const int nblk, long npix, const int8_t *ws, const __m512i *rsum) {
    const aq_conv_args *a = pl->a;
    const aq_geom *g = &a->g;
    int nb = aq_i8p_nb(g, c0), b, p, ky;
    long i0, bs = 16L * pl->taps * pl->c4;
    __mmask16 m = (__mmask16)((1u << nb) - 1);
    __m512i corr[2];
    for (b = 0; b < nblk; b++) {
        corr[b] = _mm512_setzero_si512();
        for (ky = pl->ky0; ky < pl->ky1; ky++) corr[b] = _mm512_add_epi32(corr[b], rsum[b * g->kh + ky]);
        corr[b] = _mm512_mullo_epi32(corr[b], _mm512_set1_epi32(pl->corr));
    }
    for (i0 = 0; i0 < npix;) {
        __m512i acc[2 * PX_VNNI];
        long off[PX_VNNI], pix[PX_VNNI], left = npix - i0;
        int np = even_block(npix, left);
        pixel_offsets(pl, i0, np, off, pix);
        switch (np) { /* compile-time pixel counts: the accumulators stay in registers */
        case 14: vnni_block(pl, ws, bs, nblk, nb, m, off, 14, acc); break;
        case 12: vnni_block(pl, ws, bs, nblk, nb, m, off, 12, acc); break;
        case 10: vnni_block(pl, ws, bs, nblk, nb, m, off, 10, acc); break;
        case 8: vnni_block(pl, ws, bs, nblk, nb, m, off, 8, acc); break;
        case 6: vnni_block(pl, ws, bs, nblk, nb, m, off, 6, acc); break;
        case 4: vnni_block(pl, ws, bs, nblk, nb, m, off, 4, acc); break;
        case 2: vnni_block(pl, ws, bs, nblk, nb, m, off, 2, acc); break;
        default: vnni_block(pl, ws, bs, nblk, nb, m, off, 1, acc); break;
        }
        for (b = 0; b < nblk; b++) {
            int c = c0 + 16 * b, n = g->c_out - c < 16 ? g->c_out - c : 16;
            __mmask16 mo = (__mmask16)((1u << n) - 1);
            for (p = 0; p < np; p++) store16(a, _mm512_sub_epi32(acc[b * PX_VNNI + p], corr[b]), pix[p], c, mo);
        }
        i0 += np;
    }
}

/* All output pixels of nblk blocks of 16 channels from c0: per column segment (equal valid
   filter columns) its filter rows' weight sums, then its regions of equal valid filter rows
   (padded taps skipped: 16 % of the MACs of a 3x3 'same' on 8x8). A column narrower than 4
   is one region of all rows, its padded rows computed (the corners would be single pixels). */
AQ_INLINE __attribute__((target("avx512f,avx512bw,avx512vnni"))) void
vnni_blocks(const x86_plan *pl0, int c0, const int nblk) {
    const aq_geom *g = &pl0->a->g;
    int oy, ox, b, ky, nb = aq_i8p_nb(g, c0);
    long bs = 16L * pl0->taps * pl0->c4, wrow = (long)pl0->run * nb * 4;
    __m512i rsum[2 * g->kh]; /* C99 variable-length array: kh is small */
    for (ox = 0; ox < g->out_w;) {
        aq_oseg sg = aq_out_segment(ox, g->out_w, g->stride, g->pad_left, g->kw, g->w);
        x86_plan ps = *pl0;
        const int8_t *ws = (const int8_t *)ps.a->w + (long)c0 * ps.taps * ps.c4 + (long)sg.k0 * ps.c4 * nb;
        ps.lo = sg.lo, ps.hi = sg.hi, ps.k0 = sg.k0, ps.nrun = (sg.k1 - sg.k0) * ps.c4 / 4;
        for (b = 0; b < nblk; b++)
            for (ky = 0; ky < g->kh; ky++)
                rsum[b * g->kh + ky] = row_weight_sum(ws + b * bs + ky * wrow, ps.nrun, nb, (__mmask16)((1u << nb) - 1));
        for (oy = 0; oy < g->out_h;) {
            aq_oseg r = aq_out_segment(oy, g->out_h, g->stride, g->pad_top, g->kh, g->h);
            if (sg.hi - sg.lo < 4) r.lo = 0, r.hi = g->out_h, r.k0 = 0, r.k1 = g->kh;
            ps.rlo = r.lo, ps.ky0 = r.k0, ps.ky1 = r.k1;
            vnni_region(&ps, c0, nblk, (long)(r.hi - r.lo) * (sg.hi - sg.lo), ws, rsum);
            oy = r.hi;
        }
        ox = sg.hi;
    }
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void conv_vnni(const x86_plan *pl) {
    int c0, c_out = pl->a->g.c_out;
    for (c0 = 0; c0 < c_out;) {
        if (c_out - c0 >= 32) { vnni_blocks(pl, c0, 2); c0 += 32; } /* two full blocks */
        else { vnni_blocks(pl, c0, 1); c0 += 16; }
    }
}

/* ---- AVX2 ------------------------------------------------------------------------------ */

/* acc += the int32 4-tap dot products of 8 channels: xb = one pixel's 4 input bytes in every
   lane, w / aw = 8 channels' 4 weights and their absolute values (see the header comment). */
AQ_INLINE __attribute__((target("avx2"))) __m256i mac8(__m256i acc, __m256i xb, __m256i w, __m256i aw,
                                                        const int sign) {
    __m256i t = sign ? _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xb, w)) : _mm256_maddubs_epi16(xb, w);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(t, _mm256_set1_epi16(1)));
}

AQ_INLINE __attribute__((target("avx2"))) __m256i load8(const int8_t *p, __m256i mask, const int full) {
    return full ? _mm256_loadu_si256((const __m256i *)p) : _mm256_maskload_epi32((const int *)p, mask);
}

AQ_INLINE __attribute__((target("avx2"))) void
avx2_block(const x86_plan *pl, const int8_t *wb, int nb, const __m256i *mk, const long *off, const int np,
           const int full, const int sign, __m256i *out) {
    int ky, j, p, nv = full || nb > 8 ? 2 : 1;
    long wrow = (long)pl->run * nb * 4;
    __m256i acc[2 * PX_AVX2];
    for (p = 0; p < 2 * np; p++) acc[p] = _mm256_setzero_si256();
    for (ky = 0; ky < pl->a->g.kh; ky++) {
        const uint8_t *xr = pl->xs + ky * pl->xrow;
        const int8_t *wr = wb + ky * wrow;
        for (j = 0; j < pl->nrun; j++) {
            const int8_t *wj = wr + (long)j * nb * 4;
            __m256i w0 = load8(wj, mk[0], full), w1 = nv == 2 ? load8(wj + 32, mk[1], full) : w0;
            __m256i a0 = sign ? _mm256_abs_epi8(w0) : w0, a1 = sign ? _mm256_abs_epi8(w1) : w1;
#pragma GCC unroll 4
            for (p = 0; p < np; p++) {
                __m256i xb = _mm256_set1_epi32(ld32(xr + off[p] + 4 * j));
                acc[2 * p] = mac8(acc[2 * p], xb, w0, a0, sign);
                if (nv == 2) acc[2 * p + 1] = mac8(acc[2 * p + 1], xb, w1, a1, sign);
            }
        }
    }
    for (p = 0; p < 2 * np; p++) out[p] = acc[p];
}

/* store16's AVX2 form: 8 channels c0.. (n of them valid) of pixel i */
AQ_INLINE __attribute__((target("avx2"))) void store8(const aq_conv_args *a, __m256i acc, long i, int c0, int n) {
    long base = i * a->g.c_out + c0;
    int32_t q[8];
    __m256 v = _mm256_cvtepi32_ps(acc);
    int l;
    if (n < 8) { /* channel tail: the scalar epilogue */
        _mm256_storeu_si256((__m256i *)q, acc);
        for (l = 0; l < n; l++) aq_store_s8(a, base + l, q[l], c0 + l);
        return;
    }
    if (a->scale) v = _mm256_mul_ps(v, _mm256_loadu_ps(a->scale + c0));
    if (a->bias) v = _mm256_add_ps(v, _mm256_loadu_ps(a->bias + c0));
    if (a->y_float) { _mm256_storeu_ps((float *)a->y + base, v); return; }
    v = _mm256_max_ps(_mm256_min_ps(v, _mm256_set1_ps(1e9f)), _mm256_set1_ps(-1e9f));
    {
        __m256i r = _mm256_add_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(a->y_zero_point));
        __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        int64_t b8 = _mm_cvtsi128_si64(_mm_packs_epi16(p16, p16));
        memcpy((int8_t *)a->y + base, &b8, 8);
    }
}

AQ_INLINE __attribute__((target("avx2"))) void conv_avx2_t(const x86_plan *pl, const int sign) {
    const aq_conv_args *a = pl->a;
    const aq_geom *g = &a->g;
    long npix = (long)g->out_h * g->out_w, i0, r, rows = (long)pl->taps * pl->c4 / 4;
    int c0, p;
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (c0 = 0; c0 < g->c_out; c0 += AQ_I8_PACK_COB) {
        const int8_t *wb = (const int8_t *)a->w + (long)c0 * pl->taps * pl->c4;
        int nb = aq_i8p_nb(g, c0), n = g->c_out - c0 < 16 ? g->c_out - c0 : 16, full = nb == 16;
        __m256i mk[2], s[2], corr[2], ones = _mm256_set1_epi8(1);
        mk[0] = _mm256_cmpgt_epi32(_mm256_set1_epi32(nb), iota);
        mk[1] = _mm256_cmpgt_epi32(_mm256_set1_epi32(nb - 8), iota);
        for (p = 0; p < 2; p++) {
            s[p] = _mm256_setzero_si256();
            if (p * 8 < nb)
                for (r = 0; r < rows; r++)
                    s[p] = mac8(s[p], ones, load8(wb + r * nb * 4 + 32 * p, mk[p], full), ones, 0);
            corr[p] = _mm256_mullo_epi32(s[p], _mm256_set1_epi32(pl->corr));
        }
        for (i0 = 0; i0 < npix;) {
            __m256i acc[2 * PX_AVX2];
            long off[PX_AVX2], pix[PX_AVX2];
            int np = npix - i0 >= PX_AVX2 ? PX_AVX2 : 1;
            pixel_offsets(pl, i0, np, off, pix);
            if (full && np == PX_AVX2) avx2_block(pl, wb, nb, mk, off, PX_AVX2, 1, sign, acc);
            else if (full) avx2_block(pl, wb, nb, mk, off, 1, 1, sign, acc);
            else if (np == PX_AVX2) avx2_block(pl, wb, nb, mk, off, PX_AVX2, 0, sign, acc);
            else avx2_block(pl, wb, nb, mk, off, 1, 0, sign, acc);
            for (p = 0; p < np; p++) {
                store8(a, _mm256_sub_epi32(acc[2 * p], corr[0]), pix[p], c0, n < 8 ? n : 8);
                if (n > 8) store8(a, _mm256_sub_epi32(acc[2 * p + 1], corr[1]), pix[p], c0 + 8, n - 8);
            }
            i0 += np;
        }
    }
}

__attribute__((target("avx2"))) static void conv_avx2_u7(const x86_plan *pl) { conv_avx2_t(pl, 0); }
__attribute__((target("avx2"))) static void conv_avx2_sign(const x86_plan *pl) { conv_avx2_t(pl, 1); }

/* ---- driver ---------------------------------------------------------------------------- */

/* Copy the input into the padded, offset layout (header comment) */
static void copy_input(const aq_conv_args *a, int c, uint8_t *xs, int hp, int wp, int c4) {
    const aq_geom *g = &a->g;
    const int8_t *x = (const int8_t *)a->x;
    const int cin = g->c_in, h = g->h, w = g->w, pt = g->pad_top, pl = g->pad_left; /* locals: */
    const uint8_t zv = (uint8_t)(a->x_zero_point + c), cc = (uint8_t)c; /* the stores may alias g */
    int y, xx, i;
    for (y = 0; y < hp; y++)
        for (xx = 0; xx < wp; xx++) {
            int iy = y - pt, ix = xx - pl;
            uint8_t *o = xs + ((long)y * wp + xx) * c4;
            const uint8_t *px = (const uint8_t *)x + ((long)iy * w + ix) * cin;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) memset(o, zv, (size_t)cin);
            else for (i = 0; i < cin; i++) o[i] = (uint8_t)(px[i] + cc); /* x + c modulo 256 */
            for (i = cin; i < c4; i++) o[i] = 0;
        }
}

int aq_int8_x86(const aq_conv_args *a, int level, int vnni) {
    const aq_geom *g = &a->g;
    const int8_t *x = (const int8_t *)a->x;
    long n = (long)g->h * g->w * g->c_in, j;
    int lo = a->x_zero_point, hi = a->x_zero_point, c, sign = 0;
    x86_plan pl;
    pl.a = a;
    pl.c4 = aq_i8p_c4(g);
    pl.taps = g->kh * g->kw;
    pl.run = g->kw * pl.c4 / 4;
    pl.wp = (g->out_w - 1) * g->stride + g->kw;
    pl.xrow = (long)pl.wp * pl.c4;
    pl.xs = (const uint8_t *)a->scratch;
    pl.lo = 0, pl.hi = g->out_w, pl.k0 = 0, pl.nrun = pl.run; /* all taps (the AVX2 paths) */
    pl.rlo = 0, pl.ky0 = 0, pl.ky1 = g->kh;
    if (level >= 2 && vnni) {
        c = 128;
    } else {
        for (j = 0; j < n; j++) { lo = x[j] < lo ? x[j] : lo; hi = x[j] > hi ? x[j] : hi; }
        if (hi - lo > 254) return 0; /* all 256 values: not saturation-free without VNNI */
        sign = hi - lo > 127;
        c = sign ? -127 - lo : -lo;
    }
    pl.corr = a->x_zero_point + c;
    copy_input(a, c, (uint8_t *)a->scratch, (g->out_h - 1) * g->stride + g->kh, pl.wp, pl.c4);
    if (level >= 2 && vnni) conv_vnni(&pl);
    else if (sign) conv_avx2_sign(&pl);
    else conv_avx2_u7(&pl);
    return 1;
}
#endif
