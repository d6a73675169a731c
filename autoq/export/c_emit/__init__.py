"""C source for an ExportGraph on autoq's kernels (kernels/include/autoq_kernels.h).

Emits ``model.h`` / ``model.c`` (weights as ``const`` arrays so they live in flash, one static
activation arena planned from the tensor lifetimes, one call per layer) and ``main.c`` (a host
driver: float32 samples in, logits out). Builds and checks them:

- host: gcc, run on the test split, argmax must equal Keras' and logits stay within tolerance;
- m4: arm-none-eabi-gcc for Cortex-M4F, linked with --gc-sections, flash = text + rodata +
  data, SRAM = data + bss, compared with the profile's 256 KB flash / 32 KB SRAM.

Per kind (autoq_kernels.h gives the bit layouts), rendered from the quantizers' declared
deployment forms (autoq.quant.forms), never from quantizer names:
- f32: float OHWI weights.
- lut: indices packed at b' = 1, 2, 4 or 8 bits (the next width >= the quantizer's bits) +
  codebook padded to 2^b' entries per layer or per output channel.
- int8 (an integer weight form within int8, a grid input form within [-127, 127]): the int8
  kernel in its float-output mode. Weights w = the integer levels z as int8 in the kernels'
  packed layout (autoq.kernels.pack_int8_weights, 32-bit words), the float input
  quantized to int8 at run time with the input form's fixed step (round half to even), then
  y = acc * (x_step * w_step[c] * s[c]) + bias[c]: the exact integer product, dequantised once
  per output.
- shift (power-of-two form): scale[c] * z, z in {-1, 0, +1}, scale = 2^-s: 2-bit codes
  0 = -1, 1 = 0, 2 = +1.
- xnor / and (binary form): weights {-a, +a} as bits along c_in (bit 1 = +1), a folded into the
  epilogue scale; the input is quantized in float and packed with aq_pack_bits.
A layer whose weight form has no rendering for its kind runs as lut (recorded).
Input forms (sign, grid) are applied in float before the kernel (InputForm.apply), by the
quantizers of kernels/include/aq_input_quant.h (copied into the exported folder with the kernels).

Modules: literals (C literals and arrays), packing (weights per kernel kind), arena (the
activation arena plan), ops (the statements per op kind), emit (model.h / model.c / main.c),
toolchain (the folder's kernels and Makefile, host and Cortex-M4 builds), stack (stack estimate).
"""
from autoq.export.c_emit.arena import IN_PLACE, numel, plan_arena
from autoq.export.c_emit.emit import CEmission, emit_c, host_main
from autoq.export.c_emit.literals import C_TYPE_BYTES, CArray
from autoq.export.c_emit.packing import CLayer
from autoq.export.c_emit.toolchain import (HOST_CFLAGS, KERNEL_EXCLUDE, M4_CFLAGS, WARN_CFLAGS, build_host, build_m4,
                                           copy_kernels, kernel_sources, run_host, run_tool, write_makefile)

__all__ = ["C_TYPE_BYTES", "CArray", "CEmission", "CLayer", "HOST_CFLAGS", "IN_PLACE", "KERNEL_EXCLUDE", "M4_CFLAGS",
           "WARN_CFLAGS", "build_host", "build_m4", "copy_kernels", "emit_c", "host_main", "kernel_sources", "numel",
           "plan_arena", "run_host", "run_tool", "write_makefile"]
