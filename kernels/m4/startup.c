/* Minimal Cortex-M4F startup for the bare-metal tests: vector table, .data/.bss set-up, FPU
 * enable, semihosting init (newlib librdimon), then main(); the exit code goes back to the
 * host through semihosting (QEMU exits with it). Faults print a line and exit with code 3. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Default_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0,
    Default_Handler, Default_Handler};

void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst;
    for (dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    /* CPACR: full access to coprocessors 10 and 11 (the FPU) before any float instruction */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm volatile("dsb\n\tisb" ::: "memory");
    initialise_monitor_handles();
    exit(main());
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
