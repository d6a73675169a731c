/* CMSIS-NN count program, the peer of autoq's int8 kernel on the Cortex-M4: runs CMSIS-NN's
 * arm_convolve_wrapper_s8 `reps` times on random int8 NHWC data of one shape, so the QEMU icount
 * plugin gives instructions per call = (count(3) - count(1)) / 2. Only this driver is ours; it is
 * compiled against a CMSIS-NN source tree the user supplies (nothing of CMSIS-NN is in autoq):
 *     python benchmarks/count_kernel_instructions.py --m4-table --cmsis-nn PATH/TO/CMSIS-NN
 * builds it with the kernels' own M4 flags (kernels/flags.mk) and linker script (1 MB SRAM).
 *
 * usage: prog c_in:c_out:h:w:f:stride:same|valid reps [check]
 * `check` also compares the output with a plain reference conv (same requantisation). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arm_nnfunctions.h"
#include "arm_nnsupportfunctions.h"

static uint32_t lcg(uint32_t *s) { *s = *s * 1664525u + 1013904223u; return *s >> 8; }

static int out_size(int n, int f, int s, int same) { return same ? (n + s - 1) / s : (n - f) / s + 1; }
static int pad_lo(int n, int f, int s, int same) {
    int o = out_size(n, f, s, same), t = (o - 1) * s + f - n;
    return same && t > 0 ? t / 2 : 0;
}

static const char *path_name(const cmsis_nn_conv_params *cp, const cmsis_nn_dims *in, const cmsis_nn_dims *fd) {
    if (arm_nn_is_convolve_1x1(cp, in, fd)) return arm_nn_is_convolve_1x1_fast(cp) ? "1x1_fast" : "1x1";
    if (arm_nn_is_convolve_1_x_n(cp, in, fd)) return "1_x_n";
    return "generic_im2col(arm_convolve_s8)";
}

static int check(const cmsis_nn_conv_params *cp, const cmsis_nn_dims *in, const int8_t *x, const cmsis_nn_dims *fd,
                 const int8_t *wt, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                 const cmsis_nn_dims *od, const int8_t *y) {
    int oy, ox, oc, ky, kx, ic, bad = 0;
    for (oy = 0; oy < od->h; oy++)
        for (ox = 0; ox < od->w; ox++)
            for (oc = 0; oc < od->c; oc++) {
                int32_t acc = bias[oc];
                for (ky = 0; ky < fd->h; ky++)
                    for (kx = 0; kx < fd->w; kx++) {
                        int iy = oy * cp->stride.h - cp->padding.h + ky, ix = ox * cp->stride.w - cp->padding.w + kx;
                        if (iy < 0 || iy >= in->h || ix < 0 || ix >= in->w) continue;
                        for (ic = 0; ic < in->c; ic++)
                            acc += (x[(iy * in->w + ix) * in->c + ic] + cp->input_offset) *
                                   wt[((oc * fd->h + ky) * fd->w + kx) * in->c + ic];
                    }
                acc = arm_nn_requantize(acc, mult[oc], shift[oc]) + cp->output_offset;
                acc = acc < cp->activation.min ? cp->activation.min : acc > cp->activation.max ? cp->activation.max : acc;
                if (y[(oy * od->w + ox) * od->c + oc] != (int8_t)acc) bad++;
            }
    return bad;
}

int main(int argc, char **argv) {
    int c_in, c_out, h, w, f, s, same, reps, r, i, bufsz, rc = 0;
    char pad[16];
    uint32_t seed = 12345u;
    if (argc < 3 || sscanf(argv[1], "%d:%d:%d:%d:%d:%d:%15s", &c_in, &c_out, &h, &w, &f, &s, pad) != 7) {
        printf("usage: prog c_in:c_out:h:w:f:stride:pad reps [check]\n");
        return 2;
    }
    reps = atoi(argv[2]);
    same = strcmp(pad, "same") == 0;
    cmsis_nn_dims in = {1, h, w, c_in}, fd = {c_out, f, f, c_in}, bd = {1, 1, 1, c_out};
    cmsis_nn_dims od = {1, out_size(h, f, s, same), out_size(w, f, s, same), c_out};
    /* input_offset = -input zero point (TFLite int8 activations: zero point -128) */
    cmsis_nn_conv_params cp = {128, -2, {s, s}, {pad_lo(w, f, s, same), pad_lo(h, f, s, same)}, {1, 1}, {-128, 127}};
    size_t xn = (size_t)h * w * c_in, wn = (size_t)c_out * f * f * c_in, yn = (size_t)od.h * od.w * c_out;
    int8_t *x = malloc(xn), *wt = malloc(wn), *y = malloc(yn);
    int32_t *bias = malloc(4 * c_out), *mult = malloc(4 * c_out), *shift = malloc(4 * c_out);
    cmsis_nn_per_channel_quant_params qp = {mult, shift};
    cmsis_nn_context ctx;
    bufsz = arm_convolve_wrapper_s8_get_buffer_size(&cp, &in, &fd, &od);
    ctx.buf = bufsz > 0 ? malloc(bufsz) : NULL;
    ctx.size = bufsz;
    if (!x || !wt || !y || !bias || !mult || !shift || (bufsz > 0 && !ctx.buf)) { printf("out of memory\n"); return 1; }
    for (i = 0; i < (int)xn; i++) x[i] = (int8_t)lcg(&seed);
    for (i = 0; i < (int)wn; i++) wt[i] = (int8_t)lcg(&seed);
    for (i = 0; i < c_out; i++) {
        bias[i] = (int32_t)(lcg(&seed) % 20001) - 10000;
        mult[i] = 1073741824 + (int32_t)(lcg(&seed) % 1000000); /* ~0.5 in Q31 */
        shift[i] = -8 - (i % 4);                                  /* right shifts 8..11 */
    }
    for (r = 0; r < reps; r++)
        if ((rc = arm_convolve_wrapper_s8(&ctx, &cp, &qp, &in, x, &fd, wt, &bd, bias, &od, y)) != ARM_CMSIS_NN_SUCCESS) break;
    printf("cmsis_count %s path=%s buf=%d out=%dx%d pad=%d reps=%d rc=%d\n", argv[1], path_name(&cp, &in, &fd), bufsz,
           od.h, od.w, cp.padding.h, reps, rc);
    if (rc == 0 && argc > 3 && strcmp(argv[3], "check") == 0) {
        int bad = check(&cp, &in, x, &fd, wt, bias, mult, shift, &od, y);
        printf("check: %d of %d outputs differ\n", bad, (int)yn);
        if (bad) rc = 1;
    }
    return rc ? 1 : 0;
}
