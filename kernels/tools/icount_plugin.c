/* Minimal QEMU TCG plugin (API version 1, QEMU 7.x): counts executed guest instructions and
 * prints "icount N" at exit. Build: make build/icount_plugin.so; use:
 *   qemu-aarch64 -plugin build/icount_plugin.so -d plugin prog ...
 * With the argument tbs=FILE (-plugin build/icount_plugin.so,tbs=FILE) it also
 * writes one line per translated block, "start_pc end_pc n_insns executions taken" (hex pc,
 * end = address after the last instruction; taken = executions after which the next block did
 * not start at end, i.e. the closing branch was taken), for the cycle model
 * (autoq/cost/cycles.py). That mode uses a callback per block execution (slower than the
 * inline add); a block translated twice gives two lines (the reader sums them).
 * Only the few plugin-API entry points used here are declared (Debian ships no plugin header). */
#define _POSIX_C_SOURCE 200809L /* strdup under -std=c99 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
    const char *target_name;
    struct { int min, cur; } version;
    _Bool system_emulation;
} qemu_info_t; /* leading fields only; read, never allocated here */
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, void (*cb)(unsigned int, void *),
                                          enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, void *),
                                    void *userdata);
void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

typedef struct block {
    uint64_t pc, end, n, execs, taken;
    struct block *next;
} block;

static uint64_t insns; /* single vCPU: the inline add is exact */
static char *tbs_path; /* per-block mode when set */
static block *blocks, *prev;

static void on_exec(unsigned int vcpu, void *udata) {
    block *b = udata;
    (void)vcpu;
    b->execs++;
    insns += b->n;
    if (prev && prev->end != b->pc) prev->taken++;
    prev = b;
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    if (!tbs_path) {
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns, n);
        return;
    }
    block *b = calloc(1, sizeof *b);
    if (!b) abort();
    struct qemu_plugin_insn *last = qemu_plugin_tb_get_insn(tb, n - 1);
    b->pc = qemu_plugin_tb_vaddr(tb);
    size_t size = qemu_plugin_insn_size(last);
    /* QEMU 7.2 reports 6 bytes for a 32-bit Thumb instruction cut off by a page boundary
     * (the halfword read ahead); no Thumb or A64 instruction is longer than 4 bytes */
    b->end = qemu_plugin_insn_vaddr(last) + (size > 4 ? 4 : size);
    b->n = n;
    b->next = blocks;
    blocks = b;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, b);
}

static void on_exit(qemu_plugin_id_t id, void *p) {
    char line[64];
    (void)id; (void)p;
    if (prev) prev->taken++; /* the last block left the program */
    if (tbs_path) {
        FILE *f = fopen(tbs_path, "w");
        if (!f) {
            qemu_plugin_outs("icount_plugin: cannot write the tbs file\n");
            return;
        }
        for (block *b = blocks; b; b = b->next)
            if (b->execs)
                fprintf(f, "%" PRIx64 " %" PRIx64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", b->pc, b->end, b->n,
                        b->execs, b->taken);
        fclose(f);
    }
    snprintf(line, sizeof line, "icount %" PRIu64 "\n", insns);
    qemu_plugin_outs(line);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "tbs=", 4) == 0) tbs_path = strdup(argv[i] + 4);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
