"""The one table of kernel kinds: what each kind reads, how it stores its weights, its C entry points.

The plan, the cost model, the .qbin format, the kernels binding and the C emitter all take
the list and the per-kind facts from here (DESIGN.md "Kernel kinds"). Pure Python: imports
nothing, so every module may use it.

Weight storage, exactly as the exported C arrays hold it (kernels/include/autoq_kernels.h),
for a layer of ``c_out`` output channels, ``kh x kw`` taps, ``c_in`` input channels,
``K = kh * kw * c_in`` weights per output channel, quantizer bits ``b`` and ``L`` codebook
levels (per tensor, or per output channel when ``per_channel``)::

    f32    weights 4 * c_out * K                                  (float OHWI)
    lut    weights c_out * ceil(K * b' / 8),  b' = smallest of 1, 2, 4, 8 >= b
           params  4 * 2^b' * (c_out if per_channel else 1)      (float codebook padded to 2^b')
    shift  weights c_out * ceil(K * 2 / 8)                        (2-bit codes -1, 0, +1)
           params  c_out                                          (int8 shift per channel)
    xnor   weights 8 * c_out * kh * kw * ceil(c_in / 64)          (bits along c_in in 64-bit words)
    and    (as xnor)
    int8   weights 2 * ceil(c_out / 2) * kh * kw * 4 * ceil(c_in / 4)   (int8, the kernels'
                                                                  pre-packed layout, aq_pack_int8)
           params  4 * c_out                                      (float weight scale per channel)

plus the epilogue: ``4 * c_out`` for a per-channel scale (always for xnor/and: the binary
magnitude) and ``4 * c_out`` for a bias. What each kind reads: ``float`` (the input
quantizer, if any, runs in float before the kernel), ``int8`` (quantized into an int8 buffer
at run time) or ``bits`` (packed, aq_pack_bits). Every kind writes float32 outputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

LUT_BITS = (1, 2, 4, 8)


@dataclass(frozen=True)
class KernelKind:
    name: str
    reads: str           # float | int8 | bits
    weights: str         # the stored weight form (docs, `autoq kinds`)
    operation: str       # the inner operation

    @property
    def c_enum(self) -> str:
        return f"AQ_{self.name.upper()}"

    def entry(self, variant: str) -> str:
        """C function of this kind's ``variant`` ("ref" or "opt")."""
        return f"aq_conv_{self.name}_{variant}"


TABLE = (
    KernelKind("f32", "float", "float", "multiply-add"),
    KernelKind("lut", "float", "k-bit indices + codebook", "unpack index, look up, multiply-add"),
    KernelKind("shift", "float", "{-1,0,+1} x 2^-s", "add/subtract, one shift per output"),
    KernelKind("xnor", "bits", "{-1,+1} bits", "XNOR + popcount"),
    KernelKind("and", "bits", "{-1,+1} bits", "AND + popcount (inputs {0,1})"),
    KernelKind("int8", "int8", "int8", "integer multiply-add, dequantise"),
)
KINDS = tuple(k.name for k in TABLE)
BY_NAME = {k.name: k for k in TABLE}


def lut_bits(bits: int) -> int:
    """Stored index width of the lut kernel for a ``bits``-bit quantizer."""
    for b in LUT_BITS:
        if b >= bits:
            return b
    raise ValueError(f"lut kernel indices have at most 8 bits, got {bits}")


def weight_storage(kind: str, *, c_out: int, kh: int, kw: int, c_in: int, bits: int = 32,
                   codebook_len: int = 0, per_channel: bool = False) -> tuple[int, int]:
    """(weight bytes, other per-layer parameter bytes) of ``kind`` (module docstring)."""
    k = kh * kw * c_in
    if kind == "f32":
        return 4 * c_out * k, 0
    if kind == "lut":
        b = lut_bits(bits)
        return c_out * math.ceil(k * b / 8), 4 * (1 << b) * (c_out if per_channel else 1)
    if kind == "shift":
        return c_out * math.ceil(k * 2 / 8), c_out
    if kind in ("xnor", "and"):
        return 8 * c_out * kh * kw * math.ceil(c_in / 64), 0
    if kind == "int8":
        return 2 * math.ceil(c_out / 2) * kh * kw * 4 * math.ceil(c_in / 4), 4 * c_out
    raise ValueError(f"kind {kind!r} unknown; allowed: {', '.join(KINDS)}")


def epilogue_bytes(kind: str, c_out: int, bias: bool, scale: bool) -> int:
    """Bytes of the per-channel epilogue arrays (xnor/and always carry a scale)."""
    return 4 * c_out * (int(bias) + int(scale or kind in ("xnor", "and")))


__all__ = ["BY_NAME", "KINDS", "KernelKind", "LUT_BITS", "TABLE", "epilogue_bytes", "lut_bits",
           "weight_storage"]
