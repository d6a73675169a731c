/* aq_input_quant.h -- the input quantizers of the exported models (they mirror
 * autoq.quant.quantizers, autoq.quant.forms.InputForm.apply; autoq/export/c_emit/ops.py emits
 * the calls). Static functions compiled into each model.c, which includes this header once,
 * unlike the other non-kernel ops (src/aq_ops.c, compiled with the kernels).
 * tests/aq_test_main.c checks them on the host, aarch64 and the Cortex-M4. */
#ifndef AQ_INPUT_QUANT_H
#define AQ_INPUT_QUANT_H
#include <math.h>
#include <stdint.h>

/* Vector targets: keep GCC from specialising a quantizer to its call's constant step and range
   (interprocedural constant propagation): the specialised loop is no longer vectorised but a
   branchy scalar clamp, 1-6 ns per value instead of 0.3 on x86-64. Same arithmetic either way. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8 && (defined(__x86_64__) || defined(__aarch64__))
#define AQ_QUANT_FN __attribute__((noipa)) static
#else
#define AQ_QUANT_FN static
#endif
AQ_QUANT_FN void aq_q_sign(const float *x, float *y, long n) {
    long i; for (i = 0; i < n; i++) y[i] = x[i] >= 0.0f ? 1.0f : -1.0f;
}
/* grid input form: y = clamp(rint(x / step), qmin, qmax) * step (rintf: half to even). */
AQ_QUANT_FN void aq_q_grid(const float *x, float *y, long n, float step, float qmin, float qmax) {
    long i;
    for (i = 0; i < n; i++) { float r = rintf(x[i] / step);
        r = r < qmin ? qmin : (r > qmax ? qmax : r); y[i] = r * step; }
}
/* int8 kernel input: q = clamp(rint(x / step), -127, 127) as int8 (rintf rounds half to even
   in the default rounding mode, like np.round / tf.round), step the input form's fixed step.
   Returns the step; scale[c] = step * wscale[c] for the float epilogue. */
AQ_QUANT_FN float aq_q_int8(const float *x, int8_t *q, long n, float step, const float *wscale, float *scale, int c_out) {
    long i; int c;
    for (i = 0; i < n; i++) { float r = rintf(x[i] / step);
        q[i] = (int8_t)(r < -127.0f ? -127.0f : (r > 127.0f ? 127.0f : r)); }
    for (c = 0; c < c_out; c++) scale[c] = step * wscale[c];
    return step;
}

#endif /* AQ_INPUT_QUANT_H */
