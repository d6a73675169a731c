/* Geometry, the variant table, argument checks, packing and shared decode helpers. */
#include <math.h>
#include <string.h>

#include "aq_internal.h"

int aq_geom_init(aq_geom *g, int h, int w, int c_in, int c_out, int kh, int kw, int stride,
                 int padding) {
    if (!g || h < 1 || w < 1 || c_in < 1 || c_out < 1 || kh < 1 || kw < 1 || stride < 1)
        return AQ_E_ARG;
    g->h = h; g->w = w; g->c_in = c_in; g->c_out = c_out; g->kh = kh; g->kw = kw;
    g->stride = stride; g->padding = padding;
    if (padding == AQ_PAD_VALID) {
        if (kh > h || kw > w) return AQ_E_GEOM;
        g->out_h = (h - kh) / stride + 1;
        g->out_w = (w - kw) / stride + 1;
        g->pad_top = g->pad_left = 0;
    } else if (padding == AQ_PAD_SAME) {
        int ph, pw;
        g->out_h = (h + stride - 1) / stride;
        g->out_w = (w + stride - 1) / stride;
        ph = (g->out_h - 1) * stride + kh - h;
        pw = (g->out_w - 1) * stride + kw - w;
        g->pad_top = ph > 0 ? ph / 2 : 0;
        g->pad_left = pw > 0 ? pw / 2 : 0;
    } else {
        return AQ_E_ARG;
    }
    return AQ_OK;
}

int aq_dense_geom(aq_geom *g, int n_in, int n_out) {
    return aq_geom_init(g, 1, 1, n_in, n_out, 1, 1, 1, AQ_PAD_VALID);
}

const aq_variant_info aq_variants[] = {
#define AQ_VARIANT(kind, kind_name, variant, fn) {kind, kind_name, variant, fn},
#include "aq_variants.inc"
#undef AQ_VARIANT
};
const int aq_num_variants = (int)(sizeof(aq_variants) / sizeof(aq_variants[0]));

const char *aq_kind_name(aq_kind kind) {
    static const char *names[AQ_NUM_KINDS] = {"f32", "lut", "shift", "xnor", "and", "int8"};
    return ((unsigned)kind < (unsigned)AQ_NUM_KINDS) ? names[kind] : "?";
}

int aq_find_variant(const char *kind_name, const char *variant) {
    int i;
    for (i = 0; i < aq_num_variants; i++)
        if (!strcmp(aq_variants[i].kind_name, kind_name) && !strcmp(aq_variants[i].variant, variant))
            return i;
    return -1;
}

size_t aq_scratch_bytes(aq_kind kind, const char *variant, const aq_geom *g) {
    size_t k = (size_t)g->kh * g->kw * g->c_in;
    if (!variant || strcmp(variant, "opt") != 0) return 0;
    switch (kind) {
    case AQ_F32:
        if (aq_f32_whole_window(g)) return 0;
        /* fall through */
    case AQ_LUT:
    case AQ_SHIFT: return k * AQ_F32_COB * sizeof(float);
    case AQ_XNOR:
    case AQ_AND: {
        /* interleaved weight blocks of all channels (+ one popcount per input pixel for and);
           the few-channel path (aq_bin_narrow) needs its own rows: the larger of the two, so
           the size does not depend on the SIMD level chosen at run time */
        size_t blocks = (size_t)(g->c_out + AQ_BIN_COB - 1) / AQ_BIN_COB * g->kh * g->kw *
                        aq_words(g->c_in) * AQ_BIN_COB * sizeof(uint64_t) +
                        (kind == AQ_AND ? (size_t)g->h * g->w * sizeof(int32_t) : 0);
        size_t narrow = aq_bin_narrow_fits(g) ? aq_bin_narrow_scratch(g) : 0;
        return blocks > narrow ? blocks : narrow;
    }
    case AQ_INT8: { /* zero-point-shifted input, then the widened weight block */
#if AQ_I8_DSP
        return aq_int8_dsp_scratch(g);
#elif AQ_I8_NEON
        return aq_int8_neon_scratch(g);
#endif
        size_t one = (((size_t)g->h * g->w * g->c_in + 7) & ~(size_t)7) * sizeof(int16_t) +
                     k * AQ_I8_COB * sizeof(aq_i8w_t);
#if AQ_DISPATCH /* the x86 pair path: int16 pairs of input channels (c_in padded to even) as int32 */
        size_t c2 = (size_t)(g->c_in + 1) / 2; /* input zero-padded to the covered extent */
        size_t hp = (size_t)(g->out_h - 1) * g->stride + g->kh, wp = (size_t)(g->out_w - 1) * g->stride + g->kw;
        size_t pairs = ((hp * wp * c2 + 7) & ~(size_t)7) * sizeof(int32_t) +
                       (size_t)g->kh * g->kw * c2 * AQ_I8_COB * sizeof(int32_t);
        if (pairs > one) one = pairs; /* the larger: the size must not depend on the SIMD level */
#endif
        return one;
    }
    default: return 0;
    }
}

static int geom_consistent(const aq_geom *g) {
    aq_geom t;
    if (aq_geom_init(&t, g->h, g->w, g->c_in, g->c_out, g->kh, g->kw, g->stride, g->padding))
        return 0;
    return t.out_h == g->out_h && t.out_w == g->out_w && t.pad_top == g->pad_top &&
           t.pad_left == g->pad_left;
}

int aq_check_args(const aq_conv_args *a, aq_kind kind, const char *variant) {
    size_t need;
    if (!a || !a->x || !a->w || !a->y) return AQ_E_ARG;
    if (!geom_consistent(&a->g)) return AQ_E_GEOM;
    switch (kind) {
    case AQ_LUT:
        if (!a->codebook) return AQ_E_ARG;
        if (a->bits != 1 && a->bits != 2 && a->bits != 4 && a->bits != 8) return AQ_E_ARG;
        break;
    case AQ_SHIFT:
        if (!a->shift || a->bits != 2) return AQ_E_ARG;
        break;
    case AQ_INT8:
        if (a->x_zero_point < -128 || a->x_zero_point > 127) return AQ_E_ARG;
        if (a->y_zero_point < -128 || a->y_zero_point > 127) return AQ_E_ARG;
        if (a->y_float != 0 && a->y_float != 1) return AQ_E_ARG;
        if ((uintptr_t)a->w & 3) return AQ_E_ARG; /* packed weights are read as words */
        break;
    default: break;
    }
    need = aq_scratch_bytes(kind, variant, &a->g);
    if (need && (!a->scratch || a->scratch_bytes < need)) return AQ_E_SCRATCH;
    return AQ_OK;
}

float aq_pow2_neg(int s) { return ldexpf(1.0f, -s); }

/* ---- packing ------------------------------------------------------------------------- */

size_t aq_int8_packed_bytes(const aq_geom *g) {
    return (size_t)((g->c_out + 1) & ~1) * g->kh * g->kw * aq_i8p_c4(g);
}

int aq_pack_int8(const aq_geom *g, const int8_t *w_ohwi, int8_t *out) {
    int co, t, ci, taps;
    if (!g || !w_ohwi || !out) return AQ_E_ARG;
    taps = g->kh * g->kw;
    memset(out, 0, aq_int8_packed_bytes(g));
    for (co = 0; co < g->c_out; co++)
        for (t = 0; t < taps; t++)
            for (ci = 0; ci < g->c_in; ci++)
                out[aq_i8p_offset(g, co, t, ci)] = w_ohwi[((long)co * taps + t) * g->c_in + ci];
    return AQ_OK;
}

void aq_pack_bits(const float *x, long n, int c, float threshold, uint64_t *out) {
    int nw = aq_words(c);
    long r;
    for (r = 0; r < n; r++) {
        const float *row = x + r * c;
        uint64_t *o = out + r * nw;
        int wi;
        for (wi = 0; wi < nw; wi++) {
            int base = wi * 64, m = c - base < 64 ? c - base : 64, b;
            uint64_t word = 0;
            for (b = 0; b < m; b++) word |= (uint64_t)(row[base + b] > threshold) << b;
            o[wi] = word;
        }
    }
}

void aq_unpack_bits(const uint64_t *p, long n, int c, float lo, float hi, float *out) {
    int nw = aq_words(c);
    long r;
    int ci;
    for (r = 0; r < n; r++)
        for (ci = 0; ci < c; ci++)
            out[r * c + ci] = ((p[r * nw + ci / 64] >> (ci % 64)) & 1u) ? hi : lo;
}

int aq_pack_indices(const uint8_t *idx, long n, long k, int bits, uint8_t *out) {
    size_t rb = aq_index_row_bytes(k, bits);
    int q = 8 / bits;
    long r, j;
    if (bits != 1 && bits != 2 && bits != 4 && bits != 8) return AQ_E_ARG;
    memset(out, 0, rb * (size_t)n);
    for (r = 0; r < n; r++)
        for (j = 0; j < k; j++) {
            unsigned v = idx[r * k + j];
            if (v >> bits) return AQ_E_ARG;
            out[r * rb + j / q] |= (uint8_t)(v << (bits * (j % q)));
        }
    return AQ_OK;
}

int aq_unpack_indices(const uint8_t *p, long n, long k, int bits, uint8_t *out) {
    size_t rb = aq_index_row_bytes(k, bits);
    int q = 8 / bits;
    unsigned mask = (1u << bits) - 1u;
    long r, j;
    if (bits != 1 && bits != 2 && bits != 4 && bits != 8) return AQ_E_ARG;
    for (r = 0; r < n; r++)
        for (j = 0; j < k; j++) out[r * k + j] = (uint8_t)((p[r * rb + j / q] >> (bits * (j % q))) & mask);
    return AQ_OK;
}

/* ---- decoding of index rows for the opt float kernels ---------------------------------- */

/* nt indices of one byte of each of the n rows into blk rows o[t][l] (inline: q constant) */
static inline void decode_bytes(float *o, const uint8_t *const *rows, const float *const *books, long jb, int n,
                                int bits, int nt) {
    unsigned mask = (1u << bits) - 1u;
    int l, t;
    for (l = 0; l < n; l++) {
        unsigned byte = rows[l][jb];
        for (t = 0; t < nt; t++) o[t * AQ_F32_COB + l] = books[l][(byte >> (bits * t)) & mask];
    }
    for (; l < AQ_F32_COB; l++)
        for (t = 0; t < nt; t++) o[t * AQ_F32_COB + l] = 0.0f;
}

/* Index rows of channels c0 .. c0 + AQ_F32_COB - 1 decoded into blk[j][l] (zero for channels
   >= c_out). Byte by byte over all channels of the block at once: each row byte gives q indices,
   and the q rows blk[j] it fills are written whole (a channel-at-a-time decode writes one float
   per cache line of blk). books[l] = the codebook of channel l (codes + l * book_step). */
static void decode_block(const aq_conv_args *a, int c0, float *blk, int bits, const float *codes, int book_step) {
    long k = (long)a->g.kh * a->g.kw * a->g.c_in, jb, full;
    size_t rb = aq_index_row_bytes(k, bits);
    int q = 8 / bits, l, n = a->g.c_out - c0 < AQ_F32_COB ? a->g.c_out - c0 : AQ_F32_COB;
    const uint8_t *rows[AQ_F32_COB];
    const float *books[AQ_F32_COB];
    for (l = 0; l < n; l++) {
        rows[l] = (const uint8_t *)a->w + (size_t)(c0 + l) * rb;
        books[l] = codes + (long)(c0 + l) * book_step;
    }
    full = k / q; /* whole bytes, with q a constant per case so the index loop unrolls */
    for (jb = 0; jb < full; jb++) {
        float *o = blk + jb * q * AQ_F32_COB;
        switch (bits) {
        case 1: decode_bytes(o, rows, books, jb, n, 1, 8); break;
        case 2: decode_bytes(o, rows, books, jb, n, 2, 4); break;
        case 4: decode_bytes(o, rows, books, jb, n, 4, 2); break;
        default: decode_bytes(o, rows, books, jb, n, 8, 1); break;
        }
    }
    if (full * q < k) decode_bytes(blk + full * q * AQ_F32_COB, rows, books, full, n, bits, (int)(k - full * q));
}

void aq_block_lut(const aq_conv_args *a, int c0, float *blk) {
    decode_block(a, c0, blk, a->bits, a->codebook, a->codebook_per_channel ? 1 << a->bits : 0);
}

void aq_block_shift(const aq_conv_args *a, int c0, float *blk) {
    static const float codes[4] = {-1.0f, 0.0f, 1.0f, 0.0f}; /* index 3 reserved: 0 */
    decode_block(a, c0, blk, 2, codes, 0);
}

void aq_block_bits(const aq_conv_args *a, int c0, uint64_t *blk) {
    long row = (long)a->g.kh * a->g.kw * aq_words(a->g.c_in), t;
    const uint64_t *w = (const uint64_t *)a->w;
    int l;
    for (t = 0; t < row; t++)
        for (l = 0; l < AQ_BIN_COB; l++)
            blk[t * AQ_BIN_COB + l] = c0 + l < a->g.c_out ? w[(long)(c0 + l) * row + t] : 0;
}

/* ---- SIMD level ------------------------------------------------------------------------ */

static int simd_cap = 99, simd_detected = -1;

static int detect_simd(void) {
#if AQ_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vpopcntdq"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

int aq_simd_level(void) {
    if (simd_detected < 0) simd_detected = detect_simd();
    return simd_detected < simd_cap ? simd_detected : simd_cap;
}

int aq_set_simd_level(int max_level) {
    simd_cap = max_level < 0 ? 0 : max_level;
    return aq_simd_level();
}
