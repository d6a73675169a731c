/*
 * autoq_kernels.h — the one public header of autoq's C99 inference kernels.
 *
 * Kinds (docs/contracts.md, DESIGN.md "Kernel kinds"):
 *   f32    float weights, float activations          multiply-add
 *   lut    k-bit weight indices + float codebook      unpack index, look up, multiply-add
 *   shift  weights {-1,0,+1} x 2^-s[c_out]            add/subtract, one shift per output
 *   xnor   weights +-1, activations +-1 (bits)        XNOR + popcount
 *   and    weights +-1, activations {0,1} (bits)      AND + popcount
 *   int8   int8 weights, int8 activations             int32 accumulate, requantise
 * Each kind has a reference variant ("ref": the thesis's plain loop nest, index arithmetic in
 * the inner loop) and an optimised one ("opt": word-level popcount, output-channel blocking,
 * contiguous vectorisable runs). All variants are listed once in include/aq_variants.inc.
 *
 * ---------------------------------------------------------------------------------------
 * LAYOUTS (batch 1, row-major, little-endian targets only)
 *   activations  NHWC without N:  x[h][w][c]            (channels contiguous)
 *   weights      OHWI:            w[c_out][kh][kw][c_in] (input channels contiguous, so
 *                                 binary packing runs along c_in)
 *   output       y[out_h][out_w][c_out]
 * A dense layer is the 1x1 case: h = w = kh = kw = 1, c_in = n_in, c_out = n_out
 * (aq_dense_geom). Keras Conv2D kernels (kh, kw, c_in, c_out) are transposed to OHWI by the
 * caller (autoq.kernels does it).
 *
 * Geometry: one stride for both axes. Padding AQ_PAD_VALID: out = (in - k) / s + 1.
 * AQ_PAD_SAME matches Keras/TensorFlow 'same': out = ceil(in / s),
 *   pad_total = max((out - 1) * s + k - in, 0), pad_top = pad_total / 2 (extra row at the
 *   bottom / right). A padded position is an exact ZERO for every kind: it contributes
 *   nothing to the sum (for xnor it is NOT a -1; for int8 it is the real value 0, i.e. the
 *   activation zero point). Kernels skip the out-of-range taps.
 *
 * ---------------------------------------------------------------------------------------
 * PACKED BINARY (xnor, and): BIT 1 MEANS +1 (weights; xnor activations) or 1 (and
 * activations); bit 0 means -1 (weights, xnor activations) or 0 (and activations).
 *   Per pixel (activations) or per (c_out, ky, kx) tap (weights) the c_in bits are stored in
 *   aq_words(c_in) = ceil(c_in / 64) uint64_t words; channel ci is bit (ci % 64) of word
 *   (ci / 64), LSB first. Since the targets are little-endian, the same buffer read as
 *   uint32_t words holds channel ci at bit (ci % 32) of word (ci / 32): 32-bit targets use it
 *   unchanged. The tail bits (ci >= c_in) MUST be zero (aq_pack_bits guarantees it).
 *   activations  xb[h][w][aq_words(c_in)]     weights  wb[c_out][kh][kw][aq_words(c_in)]
 *   xnor: acc = sum over valid taps of (+-1)(+-1) = n_valid_bits - 2 * popcount(x ^ w)
 *   and : acc = sum over valid taps of x * (+-1)  = 2 * popcount(x & w) - popcount(x)
 *
 * PACKED INDICES (lut, shift) — the thesis layout: per output channel a row of
 *   K = kh*kw*c_in indices in OHWI order, q = 8 / bits indices per byte, index j of the row is
 *   (row[j / q] >> (bits * (j % q))) & (2^bits - 1) (LSB first). Each row starts on a byte:
 *   aq_index_row_bytes(K, bits) = ceil(K * bits / 8) bytes per row. bits in {1, 2, 4, 8}.
 *   lut  : value = codebook[index] (per layer, 2^bits floats) or codebook[c][index]
 *          (per output channel, c_out x 2^bits floats, codebook_per_channel = 1).
 *   shift: bits = 2; index 0 = -1, 1 = 0, 2 = +1 (the sorted codebook order of a ternary
 *          quantizer with codebook [-2^-s, 0, +2^-s]); index 3 is reserved and reads as 0.
 *          weight = code * 2^-shift[c]; shift[] holds s per output channel (int8, may be < 0).
 *
 * int8: x, w int8; w symmetric (zero point 0), x has zero point x_zero_point.
 *   WEIGHTS ARE PRE-PACKED (both variants, every target): a->w holds aq_pack_int8(g, w_ohwi)
 *   (call it once, e.g. at export time; the kernels never repack), 4-byte aligned (AQ_E_ARG
 *   otherwise). Layout: c4 = 4 * ceil(c_in / 4) (input channels padded with zero weights);
 *   output channels in blocks of AQ_I8_PACK_COB = 16, block b holds channels [16b, 16b + nb)
 *   with nb = min(16, c_out - 16b) rounded up to even (a padding channel is all zeros); in a
 *   block, for each tap t = ky * kw + kx and each group q of 4 input channels, nb runs of 4
 *   bytes: channel l's w[16b + l][ky][kx][4q .. 4q + 3]. Byte offset of (co, t, ci):
 *     16b * kh * kw * c4 + (t * c4 / 4 + ci / 4) * nb * 4 + (co % 16) * 4 + ci % 4.
 *   So a channel pair's 8 bytes per group are adjacent (one LDRD on a Cortex-M4, two SMLAD
 *   lanes after SXTB16), 16 channels x 4 bytes are one 512-bit row (x86 dot-product lanes),
 *   and the valid taps of a filter row stay one contiguous run of groups.
 *   Packed size (aq_int8_packed_bytes): 2 * ceil(c_out / 2) * kh * kw * 4 * ceil(c_in / 4)
 *   bytes (= the OHWI size when c_out is even and c_in a multiple of 4).
 *   acc = sum over valid taps of (x - x_zero_point) * w            (int32, exact)
 *   y_float = 0 (requantising mode, the default):
 *     y = clamp(lrintf(acc * scale[c] + bias[c]) + y_zero_point, -128, 127)   (int8 y)
 *     (float32 multiply and add, round half to even; on a Cortex-M4F the rounding is one
 *     VCVTR instruction inline, with the same result as lrintf)
 *   y_float = 1 (float-output mode, for a float network around an int8 layer):
 *     y = (float)acc * scale[c] + bias[c]                                    (float y)
 *     with scale[c] = x_step * w_step[c] this is the dequantised product; y_zero_point unused.
 *
 * EPILOGUE of the float-output kinds (f32, lut, shift, xnor, and), per output channel c:
 *   y = acc * m[c] * scale[c] + bias[c]     (float output)
 *   m[c] = 2^-shift[c] for shift, 1 otherwise; scale == NULL means 1, bias == NULL means 0.
 *   For xnor/and acc is the exact integer dot product (converted to float); the same
 *   epilogue (m = 1) is int8's y_float mode.
 *
 * RETURN CODES: AQ_OK (0) or a negative AQ_E_* value; kernels validate the arguments
 * (geometry, bits, NULL pointers, scratch size) before touching memory.
 * SCRATCH: the opt variants need caller-provided scratch memory of aq_scratch_bytes(kind,
 *   variant, &geom) bytes, 8-byte aligned (weights transposed/decoded into blocks of output
 *   channels, the zero-point-shifted int8 input, per-pixel popcounts); 0 for the ref variants
 *   and for f32 opt where the one output pixel sees the whole input (dense layers: it reads
 *   the OHWI weight rows in place).
 *   Nothing is allocated inside the kernels.
 * FLOATS: float results of ref and opt differ in the last bits (summation order, fused
 *   multiply-add in the opt float core); the integer kinds (xnor, and, int8) are bit-exact
 *   between variants, SIMD levels and targets, including their float epilogue.
 * THREADS: kernels are single-threaded and reentrant (the SIMD level is a process-wide cap).
 * SIMD: the portable C path is always compiled (GCC vector extensions where the target has
 *   SSE2 or NEON, plain scalar C otherwise, e.g. Cortex-M4); on x86-64 with AQ_X86_DISPATCH
 *   the hot loops are also compiled for AVX2 and AVX-512(VPOPCNTQ) and chosen at run time
 *   from the CPU (aq_simd_level), so one binary runs on any x86-64.
 * ---------------------------------------------------------------------------------------
 */
#ifndef AUTOQ_KERNELS_H
#define AUTOQ_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AQ_OK 0
#define AQ_E_ARG (-1)      /* NULL pointer or bad value (bits, zero points)  */
#define AQ_E_GEOM (-2)     /* impossible geometry (kernel larger than input) */
#define AQ_E_SCRATCH (-3)  /* scratch missing or too small                   */
#define AQ_E_KIND (-4)     /* unknown kind / variant                         */

#define AQ_PAD_VALID 0
#define AQ_PAD_SAME 1

/* Kinds, in the order of docs/contracts.md. */
typedef enum { AQ_F32 = 0, AQ_LUT, AQ_SHIFT, AQ_XNOR, AQ_AND, AQ_INT8, AQ_NUM_KINDS } aq_kind;

typedef struct {
    int h, w, c_in;        /* input                                  */
    int c_out, kh, kw;     /* filter                                 */
    int stride, padding;   /* stride >= 1; AQ_PAD_VALID / AQ_PAD_SAME */
    int out_h, out_w;      /* derived by aq_geom_init                */
    int pad_top, pad_left; /* derived by aq_geom_init                */
} aq_geom;

/* Fill the derived fields; AQ_E_GEOM / AQ_E_ARG for impossible shapes. */
int aq_geom_init(aq_geom *g, int h, int w, int c_in, int c_out, int kh, int kw, int stride,
                 int padding);
/* Dense layer n_in -> n_out as a 1x1 convolution over a 1x1 input. */
int aq_dense_geom(aq_geom *g, int n_in, int n_out);

typedef struct {
    aq_geom g;
    const void *x;       /* f32/lut/shift: float; xnor/and: uint64_t bits; int8: int8_t */
    const void *w;       /* f32: float; lut/shift: uint8_t rows; xnor/and: uint64_t; int8: int8_t */
    const float *codebook;     /* lut only */
    int bits;                  /* lut: 1, 2, 4, 8; shift: 2 */
    int codebook_per_channel;  /* lut: 0 = per layer, 1 = per output channel */
    const int8_t *shift;       /* shift: s per output channel */
    int32_t x_zero_point;      /* int8: in [-128, 127] */
    int32_t y_zero_point;      /* int8: in [-128, 127] */
    int32_t y_float;           /* int8: 0 = requantise to int8 y, 1 = float y (see above) */
    const float *scale;        /* per output channel, NULL = 1 */
    const float *bias;         /* per output channel, NULL = 0 */
    void *y;                   /* float, or int8_t for int8 unless y_float */
    void *scratch;
    size_t scratch_bytes;
} aq_conv_args;

typedef int (*aq_conv_fn)(const aq_conv_args *a);

/* ---- kernels: one declaration per entry of aq_variants.inc ----------------------------- */
#define AQ_VARIANT(kind, kind_name, variant, fn) int fn(const aq_conv_args *a);
#include "aq_variants.inc"
#undef AQ_VARIANT

/* ---- variant table (tests, bench and the Python binding iterate it) -------------------- */
typedef struct {
    aq_kind kind;
    const char *kind_name;   /* "f32", "lut", ... */
    const char *variant;     /* "ref" / "opt" */
    aq_conv_fn fn;
} aq_variant_info;

extern const aq_variant_info aq_variants[];
extern const int aq_num_variants;
const char *aq_kind_name(aq_kind kind);
/* Index into aq_variants of (kind_name, variant), or -1. */
int aq_find_variant(const char *kind_name, const char *variant);

/* Bytes of scratch the variant needs for this geometry (0 for the ref variants). */
size_t aq_scratch_bytes(aq_kind kind, const char *variant, const aq_geom *g);

/* SIMD level of the opt kernels: 0 portable C, 1 x86 AVX2+FMA, 2 x86 AVX-512 with VPOPCNTQ
   (always 0 unless built with AQ_X86_DISPATCH on x86-64). aq_set_simd_level caps the level
   (the tests run every level) and returns the level now in use. */
int aq_simd_level(void);
int aq_set_simd_level(int max_level);

/* ---- packing --------------------------------------------------------------------------- */
#define AQ_I8_PACK_COB 16
/* Bytes of the packed int8 weights of geometry g (formula in the int8 section above). */
size_t aq_int8_packed_bytes(const aq_geom *g);
/* OHWI int8 weights (c_out x kh x kw x c_in) -> the packed layout (aq_int8_packed_bytes(g)
   bytes, padding zero). AQ_E_ARG for NULL pointers. */
int aq_pack_int8(const aq_geom *g, const int8_t *w_ohwi, int8_t *out);
static inline int aq_words(int c) { return (c + 63) / 64; }
static inline size_t aq_index_row_bytes(long k, int bits) { return (size_t)((k * bits + 7) / 8); }

/* n rows of c floats -> n rows of aq_words(c) words; bit = (x > threshold). Tail bits 0.
   {-1,+1} values: threshold 0; {0,1} values: threshold 0 (or 0.5). */
void aq_pack_bits(const float *x, long n, int c, float threshold, uint64_t *out);
/* Inverse: bits -> {lo, hi} floats (lo = -1 for xnor, 0 for and; hi = +1). */
void aq_unpack_bits(const uint64_t *p, long n, int c, float lo, float hi, float *out);
/* n rows of k indices (uint8, each < 2^bits) -> n rows of aq_index_row_bytes(k, bits). */
int aq_pack_indices(const uint8_t *idx, long n, long k, int bits, uint8_t *out);
int aq_unpack_indices(const uint8_t *p, long n, long k, int bits, uint8_t *out);

/* ---- non-kernel ops of the exported models (src/aq_ops.c), float NHWC --------------------- */
/* y = (relu && x < 0 ? 0 : x) * slope; y may be x. */
void aq_act(const float *x, float *y, long n, float slope, int relu);
/* y[p][k] = x[p][k] * s[k] + t[k] (a BatchNorm not folded into the kernel); y may be x. */
void aq_affine(const float *x, float *y, long npix, int c, const float *s, const float *t);
/* k x k max (is_max) or average pooling, stride s, padding pt (top) / pl (left); the average
   counts only taps inside the input. */
void aq_pool(const float *x, float *y, int h, int w, int c, int k, int s, int oh, int ow,
             int pt, int pl, int is_max);
/* global average pooling: y[k] = mean over the h*w pixels of channel k */
void aq_gap(const float *x, float *y, int h, int w, int c);
void aq_add(const float *a, const float *b, float *y, long n);
/* copy x's cx channels into channels [offset, offset + cx) of y (cy channels), npix pixels */
void aq_concat_part(const float *x, int cx, float *y, int cy, int offset, long npix);

/* ---- timing (host and Linux targets; used by bench/ and the Python binding) ------------- */
/* Time `reps` calls of the variant on random inputs of this shape after `warmup` calls.
   Returns AQ_OK and the median / minimum ns per call, and the MAC count of one call. */
int aq_bench_case(int variant_index, int bits, int c_in, int c_out, int h, int w, int f,
                  int stride, int padding, int reps, int warmup, double *ns_median,
                  double *ns_min, long long *macs);

#ifdef __cplusplus
}
#endif
#endif /* AUTOQ_KERNELS_H */
