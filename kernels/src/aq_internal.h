/* Shared helpers of the kernel sources (not part of the public API). */
#ifndef AQ_INTERNAL_H
#define AQ_INTERNAL_H

#include <math.h>
#include <string.h>

#include "autoq_kernels.h"


/* Builtin popcount where the CPU has an instruction for it (x86 POPCNT, aarch64 CNT); an
   inline SWAR sequence elsewhere (Cortex-M4 has none, and libgcc's would be a call). */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__POPCNT__) || defined(__aarch64__))
#define AQ_POPCOUNT64(v) ((int)__builtin_popcountll(v))
#define AQ_POPCOUNT32(v) ((int)__builtin_popcount(v))
#define AQ_HW_POPCOUNT 1
#else
static inline int aq_popcount32_swar(uint32_t v) {
    v = v - ((v >> 1) & 0x55555555u);
    v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
    v = (v + (v >> 4)) & 0x0F0F0F0Fu;
    return (int)((v * 0x01010101u) >> 24);
}
static inline int aq_popcount64_swar(uint64_t v) {
    return aq_popcount32_swar((uint32_t)v) + aq_popcount32_swar((uint32_t)(v >> 32));
}
#define AQ_POPCOUNT64(v) aq_popcount64_swar(v)
#define AQ_POPCOUNT32(v) aq_popcount32_swar(v)
#define AQ_HW_POPCOUNT 0
#endif

/* Runtime dispatch of the hot loops (x86-64 + GCC/Clang, AQ_X86_DISPATCH): the portable body is
   an always-inline function instantiated three times with different target ISAs; the
   level is chosen once from the CPU (aq_simd_level, capped by aq_set_simd_level). */
#if defined(AQ_X86_DISPATCH) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define AQ_DISPATCH 1
#define AQ_TARGET_AVX2 __attribute__((target("avx2,fma,popcnt,bmi2")))
#define AQ_TARGET_AVX512 \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vpopcntdq,avx2,fma,popcnt,bmi2")))
#define AQ_TARGET_AVX512_VNNI \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vpopcntdq,avx512vnni,avx2,fma,popcnt,bmi2")))
#else
#define AQ_DISPATCH 0
#endif
#if defined(__GNUC__) || defined(__clang__)
#define AQ_INLINE static inline __attribute__((always_inline))
#else
#define AQ_INLINE static inline
#endif
/* GCC vector extensions for the float core where a SIMD unit exists; scalar C elsewhere. */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__SSE2__) || defined(__ARM_NEON))
#define AQ_VEC 1
#else
#define AQ_VEC 0
#endif
#if AQ_VEC
/* 4 float lanes (SSE2 / NEON) and their unaligned load: the float core's and the f32 dot product's */
typedef float aq_v4f __attribute__((vector_size(16)));
AQ_INLINE aq_v4f aq_ld4f(const float *p) { aq_v4f v; memcpy(&v, p, sizeof v); return v; }
#endif

/* Output channels per block of the opt float kernels (vector lanes) and binary kernels. */
#if AQ_VEC
#if AQ_DISPATCH
#define AQ_F32_COB 32 /* x86: 2 zmm (4 ymm) of channels per block, see src/conv_f32_x86.c */
#else
#define AQ_F32_COB 16
#endif
#define AQ_I8_COB 16
typedef int32_t aq_i8w_t; /* widened int8 weights of the opt int8 kernel */
#else
#define AQ_F32_COB 8 /* 8 float accumulators + 8 weights fit the M4's 32 single registers */
#define AQ_I8_COB 4  /* int accumulators live in the 13 core registers */
typedef int16_t aq_i8w_t;
#endif
#define AQ_BIN_COB 8

/* Opt int8 on 32-bit Arm cores with the DSP extension (SMLAD; src/conv_int8_dsp.c). */
#if !AQ_VEC && defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
#define AQ_I8_DSP 1
size_t aq_int8_dsp_scratch(const aq_geom *g);
void aq_int8_dsp(const aq_conv_args *a);
#else
#define AQ_I8_DSP 0
#endif
/* Opt int8 on aarch64 NEON (SMLAL by element on int16; src/conv_int8_neon.c). */
#if defined(__aarch64__) && defined(__ARM_NEON) && defined(__GNUC__)
#define AQ_I8_NEON 1
size_t aq_int8_neon_scratch(const aq_geom *g);
void aq_int8_neon(const aq_conv_args *a);
#else
#define AQ_I8_NEON 0
#endif

#if AQ_DISPATCH
/* Opt int8 on x86 from the packed bytes (src/conv_int8_x86.c): vpdpbusd with vnni at level 2,
   else vpmaddubsw; 0 (nothing written) when the input spans all 256 values and there is no
   VNNI, the one case that is not provably saturation-free. */
int aq_int8_x86(const aq_conv_args *a, int level, int vnni);
/* aq_f32_core at SIMD level >= 1: register-blocked FMA micro-kernel (src/conv_f32_x86.c) */
void aq_f32_core_x86(const aq_conv_args *a, const float *blk, int c0, const float *m, int level);
void aq_block_f32_x86(const aq_conv_args *a, int c0, float *blk); /* full 32-channel blocks */
#endif

/* Valid tap range [k0, k1) of an output coordinate: input index i0 + k must be in [0, n). */
static inline void aq_tap_range(int out, int stride, int pad, int k, int n, int *i0, int *k0,
                                int *k1) {
    int start = out * stride - pad;
    *i0 = start;
    *k0 = start < 0 ? -start : 0;
    *k1 = (start + k > n) ? n - start : k;
}

/* A segment of output coordinates [lo, hi) sharing o = lo's valid tap range [k0, k1): the
   x86 cores block the pixels of one segment together (src/conv_f32_x86.c, conv_int8_x86.c). */
typedef struct { int lo, hi, k0, k1; } aq_oseg;
static inline aq_oseg aq_out_segment(int o, int out, int stride, int pad, int k, int n) {
    aq_oseg s;
    int i0, a0, a1;
    aq_tap_range(o, stride, pad, k, n, &i0, &s.k0, &s.k1);
    s.lo = o;
    for (s.hi = o + 1; s.hi < out; s.hi++) {
        aq_tap_range(s.hi, stride, pad, k, n, &i0, &a0, &a1);
        if (a0 != s.k0 || a1 != s.k1) break;
    }
    return s;
}

/* Float epilogue shared by ref and opt so that integer kinds stay bit-exact. */
static inline float aq_epilogue(float acc, const aq_conv_args *a, int c, float m) {
    float v = acc * m;
    if (a->scale) v *= a->scale[c];
    if (a->bias) v += a->bias[c];
    return v;
}

/* Round half to even to an integer (|v| <= 1e9): one VCVTR on a Cortex-M4F (FPSCR's default
   round-to-nearest-even, the same result as lrintf without its ~60-instruction libm call). */
static inline long aq_round_half_even(float v) {
#if defined(__GNUC__) && defined(__ARM_FP) && !defined(__aarch64__) && (__ARM_FP & 4)
    float r;
    int32_t i;
    __asm__("vcvtr.s32.f32 %0, %1" : "=t"(r) : "t"(v));
    memcpy(&i, &r, sizeof i);
    return i;
#else
    return lrintf(v);
#endif
}

#if defined(__GNUC__) && defined(__ARM_FP) && !defined(__aarch64__) && (__ARM_FP & 4) && defined(__ARM_FEATURE_DSP)
/* y = clamp(round(v) + zp, -128, 127) with VCVTR (saturates out of int32 range) and SSAT: the
   same value as the portable clamp-to-1e9 / lrintf / clamp sequence for every finite v. */
static inline int8_t aq_requant_m4(float v, int32_t zp) {
    float r;
    int32_t q;
    __asm__("vcvtr.s32.f32 %0, %1" : "=t"(r) : "t"(v));
    memcpy(&q, &r, sizeof q);
    __asm__("ssat %0, #24, %1" : "=r"(q) : "r"(q));
    q += zp;
    __asm__("ssat %0, #8, %1" : "=r"(q) : "r"(q));
    return (int8_t)q;
}
#define AQ_REQUANT_M4 1
#endif

/* Requantise an int8 accumulator (the int8 contract of autoq_kernels.h), inline. */
static inline int8_t aq_requant_s8(int32_t acc, const aq_conv_args *a, int c) {
    float v = (float)acc;
    long q;
    if (a->scale) v *= a->scale[c];
    if (a->bias) v += a->bias[c];
#ifdef AQ_REQUANT_M4
    return aq_requant_m4(v, a->y_zero_point);
#endif
    if (v > 1e9f) v = 1e9f; /* keep the rounding in range; saturates below anyway */
    if (v < -1e9f) v = -1e9f;
    q = aq_round_half_even(v) + a->y_zero_point;
    if (q > 127) q = 127;
    if (q < -128) q = -128;
    return (int8_t)q;
}

/* Packed int8 weights (autoq_kernels.h): c4, block width and byte offset of (co, tap, ci). */
static inline int aq_i8p_c4(const aq_geom *g) { return (g->c_in + 3) & ~3; }
static inline int aq_i8p_nb(const aq_geom *g, int c0) {
    int n = g->c_out - c0 < AQ_I8_PACK_COB ? g->c_out - c0 : AQ_I8_PACK_COB;
    return (n + 1) & ~1;
}
static inline long aq_i8p_offset(const aq_geom *g, int co, int tap, int ci) {
    int c0 = co - co % AQ_I8_PACK_COB, c4 = aq_i8p_c4(g);
    return (long)c0 * g->kh * g->kw * c4 + ((long)tap * (c4 / 4) + ci / 4) * aq_i8p_nb(g, c0) * 4 +
           (co - c0) * 4 + (ci & 3);
}

/* Store output i (channel c) of an int8 kernel: requantised int8, or with a->y_float the
   float epilogue acc * scale[c] + bias[c]. Shared by ref and opt so they stay bit-exact. */
static inline void aq_store_s8(const aq_conv_args *a, long i, int32_t acc, int c) {
    if (a->y_float) ((float *)a->y)[i] = aq_epilogue((float)acc, a, c, 1.0f);
    else ((int8_t *)a->y)[i] = aq_requant_s8(acc, a, c);
}

/* Argument checks common to all kernels; kind-specific checks; scratch check. */
int aq_check_args(const aq_conv_args *a, aq_kind kind, const char *variant);

/* 2^-s as a float (exact for |s| < 126). */
float aq_pow2_neg(int s);

/* Weight blocks of the opt float kernels: output channels [c0, c0 + AQ_F32_COB) transposed to
   blk[j][l] = weight of channel c0 + l at OHWI row position j (K x AQ_F32_COB floats);
   channels >= c_out are zero. One function per weight encoding. */
void aq_block_f32(const aq_conv_args *a, int c0, float *blk);
/* The one output pixel sees the whole input (a dense layer; a valid conv as large as its
   input): the f32 opt kernel then reads the weight rows in place and needs no scratch. */
static inline int aq_f32_whole_window(const aq_geom *g) {
    return g->out_h == 1 && g->out_w == 1 && g->kh == g->h && g->kw == g->w;
}
void aq_block_lut(const aq_conv_args *a, int c0, float *blk);
void aq_block_shift(const aq_conv_args *a, int c0, float *blk);

/* Shared float core of the opt f32/lut/shift kernels: all output pixels for the channels of
   one block; m = per-channel multiplier (NULL = 1). */
void aq_f32_core(const aq_conv_args *a, const float *blk, int c0, const float *m);

/* Opt xnor / and for c_in * kw <= 64: one popcount per filter row (src/aq_bin_narrow.c). */
int aq_bin_narrow_fits(const aq_geom *g);    /* c_in * kw <= 64 */
int aq_bin_narrow_applies(const aq_geom *g); /* fits and SIMD level 0 */
size_t aq_bin_narrow_scratch(const aq_geom *g);
int aq_bin_narrow(const aq_conv_args *a, int is_and);

/* Binary weight block of the opt xnor/and kernels: blk[t][l] = word t of the weight row of
   channel c0 + l (t over kh * kw * words), AQ_BIN_COB words per t; zero for c >= c_out. */
void aq_block_bits(const aq_conv_args *a, int c0, uint64_t *blk);

#endif
