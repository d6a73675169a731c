/* Instruction-count harness: runs one kernel variant `reps` times on random inputs of one
 * shape (the same set-up as the bench harness) and nothing else, so that an instruction
 * counter outside the program (QEMU TCG plugin tools/icount_plugin.c) gives the instructions
 * per call as (count(reps = 3) - count(reps = 1)) / 2; benchmarks/count_kernel_instructions.py
 * drives it for aarch64 (qemu-aarch64) and the Cortex-M4 (qemu-system-arm, semihosting).
 *
 * usage: aq_count <kind> <variant> <bits> <c_in,c_out,h,w,f,stride,valid|same> <reps>
 * (':' may replace ',' in the shape: QEMU's -semihosting-config splits arguments at commas) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoq_kernels.h"

int main(int argc, char **argv) {
    int vi, bits, c_in, c_out, h, w, f, stride, reps, rc;
    char pad[16];
    double med, mn;
    long long macs;
    char *c;
    if (argc == 6)
        for (c = argv[4]; *c; c++)
            if (*c == ':') *c = ',';
    if (argc != 6 || sscanf(argv[4], "%d,%d,%d,%d,%d,%d,%15s", &c_in, &c_out, &h, &w, &f, &stride, pad) != 7) {
        printf("usage: aq_count kind variant bits c_in,c_out,h,w,f,stride,pad reps\n");
        return 2;
    }
    vi = aq_find_variant(argv[1], argv[2]);
    bits = atoi(argv[3]);
    reps = atoi(argv[5]);
    if (vi < 0) { printf("aq_count: unknown variant %s/%s\n", argv[1], argv[2]); return 2; }
    rc = aq_bench_case(vi, bits, c_in, c_out, h, w, f, stride, strcmp(pad, "same") ? AQ_PAD_VALID : AQ_PAD_SAME,
                       reps, 0, &med, &mn, &macs);
    printf("aq_count %s %s bits=%d macs=%lld reps=%d rc=%d\n", argv[1], argv[2], bits, macs, reps, rc);
    return rc ? 1 : 0;
}
