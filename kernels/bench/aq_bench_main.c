/* Bench harness: times every variant of aq_variants.inc and prints the measurements CSV of
 * docs/contracts.md: kind,bits,variant,c_in,c_out,h,w,f,stride,pad,macs,ns_median,ns_min
 *
 * usage: aq_bench [c_in,c_out,h,w,f,stride,pad ...] [--reps N] [--kinds f32,xnor,...]
 * pad is "valid" or "same". Default shapes: the 64->64 16x16 3x3 same layer and the thesis
 * setting 3x16x16 -> 8, 3x3 / 4x4 / 5x5 valid. lut runs at bits 1, 2, 4 and 8. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoq_kernels.h"

typedef struct { int c_in, c_out, h, w, f, stride, pad; } shape_t;

static int parse_shape(const char *s, shape_t *o) {
    char pad[16];
    if (sscanf(s, "%d,%d,%d,%d,%d,%d,%15s", &o->c_in, &o->c_out, &o->h, &o->w, &o->f, &o->stride, pad) != 7)
        return -1;
    if (!strcmp(pad, "valid")) o->pad = AQ_PAD_VALID;
    else if (!strcmp(pad, "same")) o->pad = AQ_PAD_SAME;
    else return -1;
    return 0;
}

static int kind_selected(const char *kinds, const char *name) {
    const char *p = kinds;
    size_t n = strlen(name);
    if (!kinds) return 1;
    while ((p = strstr(p, name)) != NULL) {
        if ((p == kinds || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
        p += n;
    }
    return 0;
}

int main(int argc, char **argv) {
    shape_t shapes[32];
    int n_shapes = 0, reps = 50, i, s, b;
    const char *kinds = NULL;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kinds") && i + 1 < argc) kinds = argv[++i];
        else if (n_shapes < 32 && parse_shape(argv[i], &shapes[n_shapes]) == 0) n_shapes++;
        else {
            fprintf(stderr, "aq_bench: bad argument '%s' (expected c_in,c_out,h,w,f,stride,valid|same, "
                            "--reps N or --kinds k1,k2)\n", argv[i]);
            return 2;
        }
    }
    if (n_shapes == 0) {
        shape_t d[4] = {{64, 64, 16, 16, 3, 1, AQ_PAD_SAME}, {3, 8, 16, 16, 3, 1, AQ_PAD_VALID},
                        {3, 8, 16, 16, 4, 1, AQ_PAD_VALID}, {3, 8, 16, 16, 5, 1, AQ_PAD_VALID}};
        memcpy(shapes, d, sizeof d);
        n_shapes = 4;
    }
    printf("kind,bits,variant,c_in,c_out,h,w,f,stride,pad,macs,ns_median,ns_min\n");
    for (s = 0; s < n_shapes; s++)
        for (i = 0; i < aq_num_variants; i++) {
            const aq_variant_info *v = &aq_variants[i];
            static const int lut_bits[4] = {1, 2, 4, 8};
            int nb = v->kind == AQ_LUT ? 4 : 1;
            if (!kind_selected(kinds, v->kind_name)) continue;
            for (b = 0; b < nb; b++) {
                int bits = v->kind == AQ_LUT ? lut_bits[b] : v->kind == AQ_SHIFT ? 2 :
                           v->kind == AQ_INT8 ? 8 : v->kind == AQ_F32 ? 32 : 1;
                double med, mn;
                long long macs;
                const shape_t *sh = &shapes[s];
                int rc = aq_bench_case(i, bits, sh->c_in, sh->c_out, sh->h, sh->w, sh->f, sh->stride,
                                       sh->pad, reps, 3, &med, &mn, &macs);
                if (rc) {
                    fprintf(stderr, "aq_bench: %s/%s failed with code %d\n", v->kind_name, v->variant, rc);
                    return 1;
                }
                printf("%s,%d,%s,%d,%d,%d,%d,%d,%d,%s,%lld,%.0f,%.0f\n", v->kind_name, bits, v->variant,
                       sh->c_in, sh->c_out, sh->h, sh->w, sh->f, sh->stride,
                       sh->pad == AQ_PAD_SAME ? "same" : "valid", macs, med, mn);
            }
        }
    return 0;
}
