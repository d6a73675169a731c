/* Timing of one kernel variant on random inputs. Shared by the bench program
 * (bench/aq_bench_main.c), the Python binding (so both print the same numbers) and the
 * instruction-count program (bench/aq_count_main.c; on bare metal, AQ_BARE_METAL, there is no
 * clock and the times are 0). */
#if !defined(AQ_BARE_METAL) && (!defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 199309L)
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 199309L
#endif
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aq_internal.h"

#ifdef AQ_BARE_METAL
static double now_ns(void) { return 0.0; }
#else
static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}
#endif

static uint32_t lcg(uint32_t *s) { *s = *s * 1664525u + 1013904223u; return *s >> 8; }

static void fill_bytes(void *p, size_t n, uint32_t *s) {
    size_t i;
    for (i = 0; i < n; i++) ((uint8_t *)p)[i] = (uint8_t)lcg(s);
}

static void fill_floats(float *p, size_t n, uint32_t *s) {
    size_t i;
    for (i = 0; i < n; i++) p[i] = (float)(lcg(s) % 2001) / 1000.0f - 1.0f;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int aq_bench_case(int vi, int bits, int c_in, int c_out, int h, int w, int f, int stride,
                  int padding, int reps, int warmup, double *ns_median, double *ns_min,
                  long long *macs) {
    aq_conv_args a;
    const aq_variant_info *v;
    size_t xn, wn, yn, k, i, out_px;
    int nw, rc, levels, r;
    double *times;
    uint32_t seed = 12345u;
    void *x = 0, *wt = 0, *y = 0, *scratch = 0;
    float *cb = 0, *scale = 0, *bias = 0;
    int8_t *shift = 0;
    if (vi < 0 || vi >= aq_num_variants || reps < 1 || warmup < 0) return AQ_E_ARG;
    v = &aq_variants[vi];
    memset(&a, 0, sizeof a);
    rc = aq_geom_init(&a.g, h, w, c_in, c_out, f, f, stride, padding);
    if (rc) return rc;
    nw = aq_words(c_in);
    k = (size_t)f * f * c_in;
    out_px = (size_t)a.g.out_h * a.g.out_w;
    switch (v->kind) {
    case AQ_XNOR: case AQ_AND:
        xn = (size_t)h * w * nw * 8; wn = (size_t)c_out * f * f * nw * 8; break;
    case AQ_INT8: xn = (size_t)h * w * c_in; wn = (size_t)c_out * k + aq_int8_packed_bytes(&a.g); break;
    case AQ_LUT: case AQ_SHIFT:
        if (v->kind == AQ_SHIFT) bits = 2;
        xn = (size_t)h * w * c_in * 4; wn = (size_t)c_out * aq_index_row_bytes((long)k, bits); break;
    default: xn = (size_t)h * w * c_in * 4; wn = (size_t)c_out * k * 4; break;
    }
    yn = out_px * c_out * (v->kind == AQ_INT8 ? 1 : 4);
    levels = (bits >= 1 && bits <= 8) ? 1 << bits : 2;
    x = malloc(xn); wt = malloc(wn + 8); y = malloc(yn);
    cb = (float *)malloc(sizeof(float) * (size_t)levels * c_out);
    scale = (float *)malloc(sizeof(float) * c_out); bias = (float *)malloc(sizeof(float) * c_out);
    shift = (int8_t *)malloc((size_t)c_out);
    a.scratch_bytes = aq_scratch_bytes(v->kind, v->variant, &a.g);
    scratch = a.scratch_bytes ? malloc(a.scratch_bytes) : 0;
    times = (double *)malloc(sizeof(double) * reps);
    if (!x || !wt || !y || !cb || !scale || !bias || !shift || !times || (a.scratch_bytes && !scratch)) {
        rc = AQ_E_ARG;
        goto done;
    }
    if (v->kind == AQ_F32 || v->kind == AQ_LUT || v->kind == AQ_SHIFT) fill_floats((float *)x, xn / 4, &seed);
    else fill_bytes(x, xn, &seed);
    if (v->kind == AQ_F32) fill_floats((float *)wt, wn / 4, &seed);
    else fill_bytes(wt, wn, &seed);
    if (v->kind == AQ_XNOR || v->kind == AQ_AND) { /* keep the tail bits zero */
        size_t p, nx = xn / 8, nwt = wn / 8;
        uint64_t tail = (c_in % 64) ? ((uint64_t)1 << (c_in % 64)) - 1 : ~(uint64_t)0;
        for (p = nw - 1; p < nx; p += nw) ((uint64_t *)x)[p] &= tail;
        for (p = nw - 1; p < nwt; p += nw) ((uint64_t *)wt)[p] &= tail;
    }
    fill_floats(cb, (size_t)levels * c_out, &seed);
    for (i = 0; i < (size_t)c_out; i++) { scale[i] = 0.5f; bias[i] = 0.25f; shift[i] = (int8_t)(i % 4); }
    a.x = x; a.w = wt; a.y = y; a.scratch = scratch;
    if (v->kind == AQ_INT8) { /* packed once, after the OHWI weights (set-up, not timed) */
        size_t ohwi = (size_t)c_out * k, off = (ohwi + 7) & ~(size_t)7;
        if (off + aq_int8_packed_bytes(&a.g) > wn + 7) { rc = AQ_E_ARG; goto done; }
        a.w = (int8_t *)wt + off;
        aq_pack_int8(&a.g, (const int8_t *)wt, (int8_t *)a.w);
    }
    a.codebook = cb; a.bits = bits; a.codebook_per_channel = 0; a.shift = shift;
    a.x_zero_point = 3; a.y_zero_point = -2; a.scale = scale; a.bias = bias;
    if (v->kind == AQ_INT8) for (i = 0; i < (size_t)c_out; i++) scale[i] = 1.0f / 512.0f;
    for (r = 0; r < warmup; r++)
        if ((rc = v->fn(&a)) != AQ_OK) goto done;
    for (r = 0; r < reps; r++) {
        double t0 = now_ns();
        rc = v->fn(&a);
        times[r] = now_ns() - t0;
        if (rc) goto done;
    }
    qsort(times, reps, sizeof(double), cmp_double);
    *ns_min = times[0];
    *ns_median = (reps % 2) ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
    *macs = (long long)out_px * c_out * (long long)k;
done:
    free(x); free(wt); free(y); free(cb); free(scale); free(bias); free(shift); free(scratch);
    free(times);
    return rc;
}
