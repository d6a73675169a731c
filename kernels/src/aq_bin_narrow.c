/* Opt xnor / and for few input channels: one filter row per popcount.
 *
 * With c_in * kw <= 64 (e.g. a first layer on RGB input: 3 x 3 = 9 bits per filter row) the
 * per-pixel words of the standard layout hold only c_in useful bits of 64. Here each input row
 * is first re-packed into one bit stream (pixel ix at bits [ix * c_in, (ix + 1) * c_in)), and
 * each weight row (c_out, ky) into one word of kw * c_in bits, so the valid taps of one filter
 * row of one output pixel are one bit field: extracted once per pixel (two shifts), then one
 * XOR/AND + popcount per output channel and filter row instead of one per tap. Padded taps are
 * outside the extracted field (exact zeros). Results are identical to the reference:
 *   xnor: acc = n_valid_bits - 2 * sum popcount(E ^ W)
 *   and : acc = 2 * sum popcount(E & W) - sum popcount(E)
 * Scratch: aq_bin_narrow_scratch(); the weight words are stored [ky][c_out rounded up to 8].
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off") /* the epilogue stays bit-exact with the reference */
#endif
#include "aq_internal.h"

static long row_words(const aq_geom *g) { return ((long)g->w * g->c_in + 63) / 64 + 1; }
static int cpad(const aq_geom *g) { return (g->c_out + 7) / 8 * 8; }

/* Used at SIMD level 0 (portable C: ARM targets, old x86): measured there it takes 30-40% fewer
   instructions (A53, M4) / less time (x86 without AVX2) than the per-tap path; with AVX2 or
   AVX-512 the per-tap path, 8+ channels per vector, is faster and is kept. */
int aq_bin_narrow_fits(const aq_geom *g) { return g->c_in * g->kw <= 64 && g->kh <= 64; }
int aq_bin_narrow_applies(const aq_geom *g) { return aq_bin_narrow_fits(g) && aq_simd_level() == 0; }

size_t aq_bin_narrow_scratch(const aq_geom *g) {
    return ((size_t)g->h * row_words(g) + (size_t)g->kh * cpad(g)) * sizeof(uint64_t);
}

static inline uint64_t low_mask(int n) { return n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1); }

AQ_INLINE void body(const aq_conv_args *a, const uint64_t *rows, const uint64_t *wrow, int is_and,
                    int narrow32) {
    const aq_geom *g = &a->g;
    float *y = (float *)a->y;
    long rw = row_words(g);
    int cp = cpad(g), oy, ox, ky, c0, l;
    uint64_t e[64];      /* extracted field per filter row (kh <= 64 checked by the caller) */
    int32_t pe[64];
    for (oy = 0; oy < g->out_h; oy++) {
        int iy0, ky0, ky1;
        aq_tap_range(oy, g->stride, g->pad_top, g->kh, g->h, &iy0, &ky0, &ky1);
        for (ox = 0; ox < g->out_w; ox++) {
            int ix0, kx0, kx1, nbits, sh;
            int32_t base = 0;
            uint64_t mask;
            float *yo = y + ((long)oy * g->out_w + ox) * g->c_out;
            aq_tap_range(ox, g->stride, g->pad_left, g->kw, g->w, &ix0, &kx0, &kx1);
            nbits = (kx1 - kx0) * g->c_in;
            mask = low_mask(nbits);
            sh = kx0 * g->c_in; /* the weight word starts at tap 0 */
            for (ky = ky0; ky < ky1; ky++) {
                const uint64_t *r = rows + (long)(iy0 + ky) * rw;
                long s = (long)(ix0 + kx0) * g->c_in;
                int b = (int)(s & 63);
                uint64_t v = r[s >> 6] >> b;
                if (b) v |= r[(s >> 6) + 1] << (64 - b);
                e[ky] = v & mask;
                pe[ky] = narrow32 ? AQ_POPCOUNT32((uint32_t)e[ky]) : AQ_POPCOUNT64(e[ky]);
                base += is_and ? pe[ky] : nbits;
            }
            for (c0 = 0; c0 < g->c_out; c0 += 8) {
                uint64_t cnt[8] = {0};
                for (ky = ky0; ky < ky1; ky++) {
                    const uint64_t *wk = wrow + (long)ky * cp + c0;
                    uint64_t ev = e[ky];
                    for (l = 0; l < 8; l++) {
                        uint64_t wv = (wk[l] >> sh) & mask;
                        uint64_t t = is_and ? (ev & wv) : (ev ^ wv);
                        cnt[l] += (uint64_t)(narrow32 ? AQ_POPCOUNT32((uint32_t)t) : AQ_POPCOUNT64(t));
                    }
                }
                for (l = 0; l < 8 && c0 + l < g->c_out; l++) {
                    int32_t acc = is_and ? 2 * (int32_t)cnt[l] - base : base - 2 * (int32_t)cnt[l];
                    yo[c0 + l] = aq_epilogue((float)acc, a, c0 + l, 1.0f);
                }
            }
        }
    }
}

static void run_portable(const aq_conv_args *a, const uint64_t *rows, const uint64_t *wrow, int is_and) {
#if !AQ_HW_POPCOUNT
    if (a->g.c_in * a->g.kw <= 32) {
        body(a, rows, wrow, is_and, 1);
        return;
    }
#endif
    body(a, rows, wrow, is_and, 0);
}

int aq_bin_narrow(const aq_conv_args *a, int is_and) {
    const aq_geom *g = &a->g;
    const uint64_t *x = (const uint64_t *)a->x, *w = (const uint64_t *)a->w;
    uint64_t *rows = (uint64_t *)a->scratch, *wrow = rows + (long)g->h * row_words(g);
    long rw = row_words(g), i;
    int cp = cpad(g), iy, ix, co, ky, kx;
    for (i = 0; i < (long)g->h * rw; i++) rows[i] = 0;
    for (iy = 0; iy < g->h; iy++) /* one bit stream per input row (nw == 1: c_in <= 64) */
        for (ix = 0; ix < g->w; ix++) {
            uint64_t v = x[(long)iy * g->w + ix];
            long s = (long)ix * g->c_in;
            int b = (int)(s & 63);
            rows[iy * rw + (s >> 6)] |= v << b;
            if (b && b + g->c_in > 64) rows[iy * rw + (s >> 6) + 1] |= v >> (64 - b);
        }
    for (ky = 0; ky < g->kh; ky++) /* one word per weight row, channels contiguous */
        for (co = 0; co < cp; co++) {
            uint64_t v = 0;
            if (co < g->c_out)
                for (kx = 0; kx < g->kw; kx++)
                    v |= w[((long)co * g->kh + ky) * g->kw + kx] << (kx * g->c_in);
            wrow[(long)ky * cp + co] = v;
        }
    run_portable(a, rows, wrow, is_and);
    return AQ_OK;
}
