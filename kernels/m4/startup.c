/* Minimal Cortex-M4F startup for the bare-metal tests: vector table, .data/.bss set-up, FPU
 * enable, semihosting init (newlib librdimon), command line from semihosting, then
 * main(argc, argv); the exit code goes back to the
 * host through semihosting (QEMU exits with it). Faults print a line and exit with code 3. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(int argc, char **argv);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Default_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0,
    Default_Handler, Default_Handler};

/* Semihosting SYS_GET_CMDLINE (0x15): QEMU passes -semihosting-config ...,arg=a,arg=b. */
static int semihost(int op, void *arg) {
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static int command_line(char **argv, int max) {
    static char buf[256];
    struct { char *ptr; int len; } block = {buf, (int)sizeof buf - 1};
    int argc = 0;
    char *p = buf;
    if (semihost(0x15, &block) != 0) return 0;
    buf[block.len] = 0;
    while (*p && argc < max) {
        while (*p == ' ') *p++ = 0;
        if (!*p) break;
        argv[argc++] = p;
        while (*p && *p != ' ') p++;
    }
    return argc;
}

void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst;
    for (dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    /* CPACR: full access to coprocessors 10 and 11 (the FPU) before any float instruction */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm volatile("dsb\n\tisb" ::: "memory");
    initialise_monitor_handles();
    {
        static char *argv[16];
        int argc = command_line(argv, 16);
        exit(main(argc, argv));
    }
}

void Fault_Handler(void) {
    printf("fault: CFSR=0x%08lx\n", (unsigned long)*(volatile uint32_t *)0xE000ED28);
    exit(3);
}

void Default_Handler(void) {
    printf("unexpected interrupt\n");
    exit(4);
}

/* -nostartfiles: newlib's __libc_init_array still calls these */
void _init(void) {}
void _fini(void) {}
