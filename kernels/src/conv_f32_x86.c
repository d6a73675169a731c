/* x86 register-blocked float core (AVX2 / AVX-512 FMA), the dispatched form of aq_f32_core:
 * one block of AQ_F32_COB = 32 output channels (blk[j][32], aq_block_f32 / _lut / _shift)
 * times blocks of up to 12 output pixels: AVX-512 2 zmm x 12 pixels = 24 accumulators, 2
 * weight loads and 12 broadcasts per 24 FMAs; AVX2 each 16-channel half as 2 ymm x 6 pixels.
 * (FMA latency 4 x 2 ports needs >= 8 independent chains; one weight vector per pixel would
 * make it load-bound.) A block of <= 16 channels runs one zmm.
 *
 * Edge pixels at full speed: the output is cut into column segments with the same valid
 * filter-column range [kx0, kx1) (padded columns are skipped, as in the portable core); the
 * pixels of a segment, all rows, are blocked together, each with its own input pointer per
 * filter row, and a filter row that falls into the top / bottom padding reads a row of zeros
 * (0 * w adds an exact 0; F32_ZROW floats, else row segments with the same valid filter rows
 * are blocked instead). So a small map (8x8: 28 of 64 pixels on the border) or a few-channel
 * first layer (c_in = 3: runs of 9 floats) runs full register blocks, not single-pixel loops.
 */
#include "aq_internal.h"

#if AQ_DISPATCH
#include <immintrin.h>

#define PX512 12
#define PX256 6
#define F32_ZROW 4096

static const float zero_row[F32_ZROW];

typedef struct {
    const aq_conv_args *a;
    const float *blk, *m; /* m: per-channel multiplier of the block (NULL = 1) */
    int c0, n;            /* first channel, channels in the block (<= 32) */
    long xrow, wrow;      /* floats per input row, per filter row of blk */
} fplan;

/* Pixels i0.. of the segment pair: input row of filter row 0, input offset of the first valid
   filter column, output pixel index */
static void fpixels(const fplan *pl, const aq_oseg *r, const aq_oseg *c, long i0, int np, long *iy, long *xo, long *pix) {
    const aq_geom *g = &pl->a->g;
    int ncol = c->hi - c->lo, p;
    long oy = r->lo + i0 / ncol, ox = c->lo + i0 % ncol;
    for (p = 0; p < np; p++) {
        iy[p] = oy * g->stride - g->pad_top;
        xo[p] = (ox * g->stride - g->pad_left + c->k0) * g->c_in;
        pix[p] = oy * g->out_w + ox;
        if (++ox == c->hi) { ox = c->lo; oy++; }
    }
}

/* Input row pointers of filter row ky for np pixels (the zero row where it is padding) */
AQ_INLINE void frow(const fplan *pl, int ky, const long *iy, const long *xo, const int np, const float **xp) {
    const aq_geom *g = &pl->a->g;
    int p;
    for (p = 0; p < np; p++) {
        long y = iy[p] + ky;
        xp[p] = y >= 0 && y < g->h ? (const float *)pl->a->x + y * pl->xrow + xo[p] : zero_row;
    }
}

/* ---- AVX-512 --------------------------------------------------------------------------- */

AQ_INLINE __attribute__((target("avx512f,fma"))) void
blk512(const fplan *pl, int ky0, int ky1, const float *wb, int run, const long *iy, const long *xo, const int np,
       const int nv, __m512 *out) {
    __m512 acc[2][PX512];
    int ky, j, p, v;
    for (v = 0; v < nv; v++)
        for (p = 0; p < np; p++) acc[v][p] = _mm512_setzero_ps();
    for (ky = ky0; ky < ky1; ky++) {
        const float *xp[PX512], *wr = wb + ky * pl->wrow;
        frow(pl, ky, iy, xo, np, xp);
        for (j = 0; j < run; j++) {
            __m512 w[2];
            for (v = 0; v < nv; v++) {
                w[v] = _mm512_loadu_ps(wr + (long)j * 32 + 16 * v);
                /* blk streams from L2 for each pixel block (K x 128 bytes): ask early */
                _mm_prefetch((const char *)(wr + (long)(j + 12) * 32 + 16 * v), _MM_HINT_T0);
            }
#pragma GCC unroll 12
            for (p = 0; p < np; p++) {
                __m512 xb = _mm512_set1_ps(xp[p][j]);
                for (v = 0; v < nv; v++) acc[v][p] = _mm512_fmadd_ps(xb, w[v], acc[v][p]);
            }
        }
    }
    for (v = 0; v < nv; v++)
        for (p = 0; p < np; p++) out[v * PX512 + p] = acc[v][p];
}

/* aq_epilogue of channels c0 + c .. (up to 16, n of the block) of output pixel pix */
AQ_INLINE __attribute__((target("avx512f"))) void store512(const fplan *pl, __m512 v, long pix, int c) {
    const aq_conv_args *a = pl->a;
    int n = pl->n - c > 16 ? 16 : pl->n - c;
    __mmask16 m = (__mmask16)((1u << n) - 1);
    if (pl->m) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, pl->m + c));
    if (a->scale) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, a->scale + pl->c0 + c));
    if (a->bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, a->bias + pl->c0 + c));
    _mm512_mask_storeu_ps((float *)a->y + pix * a->g.c_out + pl->c0 + c, m, v);
}

AQ_INLINE __attribute__((target("avx512f,fma"))) void pair512_t(const fplan *pl, const aq_oseg *r, const aq_oseg *c,
                                                               const int nv) {
    const aq_geom *g = &pl->a->g;
    long n = (long)(r->hi - r->lo) * (c->hi - c->lo), i0;
    int run = (c->k1 - c->k0) * g->c_in, p, v;
    const float *wb = pl->blk + (long)c->k0 * g->c_in * 32;
    for (i0 = 0; i0 < n;) {
        __m512 acc[2 * PX512];
        long iy[PX512], xo[PX512], pix[PX512];
        int np = n - i0 >= PX512 ? PX512 : n - i0 >= 4 ? 4 : 1;
        fpixels(pl, r, c, i0, np, iy, xo, pix);
        if (np == PX512) blk512(pl, r->k0, r->k1, wb, run, iy, xo, PX512, nv, acc);
        else if (np == 4) blk512(pl, r->k0, r->k1, wb, run, iy, xo, 4, nv, acc);
        else blk512(pl, r->k0, r->k1, wb, run, iy, xo, 1, nv, acc);
        for (v = 0; v < nv; v++)
            for (p = 0; p < np; p++) store512(pl, acc[v * PX512 + p], pix[p], 16 * v);
        i0 += np;
    }
}

__attribute__((target("avx512f,fma"))) static void pair512(const fplan *pl, const aq_oseg *r, const aq_oseg *c) {
    if (pl->n > 16) pair512_t(pl, r, c, 2);
    else pair512_t(pl, r, c, 1);
}

/* ---- AVX2 ------------------------------------------------------------------------------ */

/* Pixels of the next register block when `left` remain: the rest split evenly into blocks of
   at most px (16 pixels: 6 + 5 + 5, not 6 + 6 + 4 x 1; a single pixel is FMA-latency-bound) */
static int split_block(long left, int px) {
    long nblocks = (left + px - 1) / px;
    return (int)((left + nblocks - 1) / nblocks);
}

AQ_INLINE __attribute__((target("avx2,fma"))) void
blk256(const fplan *pl, int ky0, int ky1, const float *wb, int run, const long *iy, const long *xo, const int np,
       __m256 *out) { /* wb: the 16-channel half of the block */
    __m256 acc[2 * PX256];
    int ky, j, p;
    for (p = 0; p < 2 * np; p++) acc[p] = _mm256_setzero_ps();
    for (ky = ky0; ky < ky1; ky++) {
        const float *xp[PX256], *wr = wb + ky * pl->wrow;
        frow(pl, ky, iy, xo, np, xp);
        for (j = 0; j < run; j++) {
            __m256 w0 = _mm256_loadu_ps(wr + (long)j * 32), w1 = _mm256_loadu_ps(wr + (long)j * 32 + 8);
#pragma GCC unroll 6
            for (p = 0; p < np; p++) {
                __m256 xb = _mm256_broadcast_ss(xp[p] + j);
                acc[2 * p] = _mm256_fmadd_ps(xb, w0, acc[2 * p]);
                acc[2 * p + 1] = _mm256_fmadd_ps(xb, w1, acc[2 * p + 1]);
            }
        }
    }
    for (p = 0; p < 2 * np; p++) out[p] = acc[p];
}

AQ_INLINE __attribute__((target("avx2"))) void store256(const fplan *pl, __m256 v, long pix, int c) {
    const aq_conv_args *a = pl->a;
    int n = pl->n - c, l;
    float *y = (float *)a->y + pix * a->g.c_out + pl->c0 + c;
    if (n >= 8) {
        if (pl->m) v = _mm256_mul_ps(v, _mm256_loadu_ps(pl->m + c));
        if (a->scale) v = _mm256_mul_ps(v, _mm256_loadu_ps(a->scale + pl->c0 + c));
        if (a->bias) v = _mm256_add_ps(v, _mm256_loadu_ps(a->bias + pl->c0 + c));
        _mm256_storeu_ps(y, v);
        return;
    }
    {
        float t[8];
        _mm256_storeu_ps(t, v);
        for (l = 0; l < n; l++) y[l] = aq_epilogue(t[l], a, pl->c0 + c + l, pl->m ? pl->m[c + l] : 1.0f);
    }
}

__attribute__((target("avx2,fma"))) static void pair256(const fplan *pl, const aq_oseg *r, const aq_oseg *c) {
    const aq_geom *g = &pl->a->g;
    long n = (long)(r->hi - r->lo) * (c->hi - c->lo), i0;
    int run = (c->k1 - c->k0) * g->c_in, p, h;
    for (h = 0; h < pl->n; h += 16) {
        const float *wb = pl->blk + (long)c->k0 * g->c_in * 32 + h;
        for (i0 = 0; i0 < n;) {
            __m256 acc[2 * PX256];
            long iy[PX256], xo[PX256], pix[PX256];
            int np = split_block(n - i0, PX256);
            fpixels(pl, r, c, i0, np, iy, xo, pix);
            switch (np) { /* compile-time pixel counts: the accumulators stay in registers */
            case 6: blk256(pl, r->k0, r->k1, wb, run, iy, xo, 6, acc); break;
            case 5: blk256(pl, r->k0, r->k1, wb, run, iy, xo, 5, acc); break;
            case 4: blk256(pl, r->k0, r->k1, wb, run, iy, xo, 4, acc); break;
            case 3: blk256(pl, r->k0, r->k1, wb, run, iy, xo, 3, acc); break;
            case 2: blk256(pl, r->k0, r->k1, wb, run, iy, xo, 2, acc); break;
            default: blk256(pl, r->k0, r->k1, wb, run, iy, xo, 1, acc); break;
            }
            for (p = 0; p < np; p++) {
                store256(pl, acc[2 * p], pix[p], h);
                if (pl->n > h + 8) store256(pl, acc[2 * p + 1], pix[p], h + 8);
            }
            i0 += np;
        }
    }
}

/* ---- weight block --------------------------------------------------------------------- */

/* blk[j .. j + 7][l0 .. l0 + 7] from rows l0 .. l0 + 7 (r = row l0, k floats apart): one 8 x 8
   transpose */
AQ_INLINE __attribute__((target("avx2"))) void transpose8(const float *r, long k, long j, float *blk, int l0) {
    __m256 t[8], u[8];
    int i;
    for (i = 0; i < 8; i += 2) {
        __m256 r0 = _mm256_loadu_ps(r + i * k + j), r1 = _mm256_loadu_ps(r + (i + 1) * k + j);
        t[i] = _mm256_unpacklo_ps(r0, r1);
        t[i + 1] = _mm256_unpackhi_ps(r0, r1);
    }
    for (i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (i = 0; i < 4; i++) { /* column i and i + 4 of the 8 rows */
        _mm256_storeu_ps(blk + (j + i) * 32 + l0, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
        _mm256_storeu_ps(blk + (j + i + 4) * 32 + l0, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
    }
}

/* aq_block_f32 for a full block (c0 + 32 <= c_out): 8 x 8 transposes of the OHWI rows, one half
   of 16 rows at a time over all of K, each row prefetched a few lines ahead. (All 32 rows per
   step was 3-4x slower on a 512-channel layer: 32 read streams K floats apart, for K * 4 =
   18432 bytes on only 2 L1 sets, and half-line writes; here each step writes whole 64-byte
   lines of blk.) */
__attribute__((target("avx2"))) void aq_block_f32_x86(const aq_conv_args *a, int c0, float *blk) {
    long k = (long)a->g.kh * a->g.kw * a->g.c_in, j;
    const float *w = (const float *)a->w + c0 * k;
    int h, i;
    for (h = 0; h < 32; h += 16) {
        for (j = 0; j + 8 <= k; j += 8) {
            if ((j & 15) == 0)
                for (i = 0; i < 16; i++) _mm_prefetch((const char *)(w + (h + i) * k + j + 64), _MM_HINT_T0);
            transpose8(w + h * k, k, j, blk, h);
            transpose8(w + (h + 8) * k, k, j, blk, h + 8);
        }
    }
    for (j = k & ~7L; j < k; j++)
        for (i = 0; i < 32; i++) blk[j * 32 + i] = w[i * k + j];
}

/* ---- driver ---------------------------------------------------------------------------- */

void aq_f32_core_x86(const aq_conv_args *a, const float *blk, int c0, const float *m, int level) {
    const aq_geom *g = &a->g;
    fplan pl;
    int oy, ox;
    pl.a = a;
    pl.blk = blk;
    pl.m = m;
    pl.c0 = c0;
    pl.n = g->c_out - c0 < 32 ? g->c_out - c0 : 32;
    pl.xrow = (long)g->w * g->c_in;
    pl.wrow = (long)g->kw * g->c_in * 32;
    for (oy = 0; oy < g->out_h;) {
        aq_oseg r = aq_out_segment(oy, g->out_h, g->stride, g->pad_top, g->kh, g->h);
        if (g->kw * g->c_in <= F32_ZROW) { /* all rows at once, padded filter rows read zeros */
            r.lo = 0, r.hi = g->out_h, r.k0 = 0, r.k1 = g->kh;
        }
        for (ox = 0; ox < g->out_w;) {
            aq_oseg c = aq_out_segment(ox, g->out_w, g->stride, g->pad_left, g->kw, g->w);
            if (level >= 2) pair512(&pl, &r, &c); /* an empty tap range stores the epilogue of 0 */
            else pair256(&pl, &r, &c);
            ox = c.hi;
        }
        oy = r.hi;
    }
}
#endif
