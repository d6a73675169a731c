# Compiler flags of the kernels: the one source of truth. Read by kernels/Makefile, setup.py
# (the extension autoq._kernels, which `autoq calibrate --target host` measures),
# autoq/export/c_emit/toolchain.py (the exported Makefile and the export's own builds) and
# benchmarks/count_kernel_instructions.py, so what is measured is what is shipped.
# -fno-wrapv: Python's own CFLAGS (sysconfig) carry -fwrapv into every extension build; it
# blocks loop optimisations on signed indices (int8 up to 2x slower), so it is switched off.
AQ_CFLAGS = -std=c99 -O3 -fno-wrapv -fno-strict-aliasing -ffp-contract=off -Wno-psabi
# x86-64 hosts: baseline SSE4.2 + POPCNT, AVX2 / AVX-512 copies of the hot loops chosen at run time
AQ_X86_64_CFLAGS = -march=x86-64-v2 -DAQ_X86_DISPATCH=1
AQ_A53_CFLAGS = -mcpu=cortex-a53
AQ_M4_CFLAGS = -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard -ffunction-sections -fdata-sections -DAQ_BARE_METAL
