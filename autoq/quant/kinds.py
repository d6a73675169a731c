"""The one mapping from a layer's quantizers to the kernel kind that runs it (DESIGN.md table).

| kind  | weights                    | input activations | inner operation               |
|-------|----------------------------|-------------------|-------------------------------|
| f32   | float                      | any               | multiply-add                  |
| xnor  | 1-bit, symmetric codebook  | sign {-1,+1}      | XNOR + popcount               |
| and   | 1-bit, symmetric codebook  | {0,1}             | AND + popcount                |
| int8  | 8-bit uniform              | 8-bit uniform     | int32 multiply-add, requantise|
| shift | {-1,0,+1} x 2^-s           | float             | add/subtract, one shift       |
| lut   | k-bit indices + codebook   | float             | look up, multiply-add         |
"""
from __future__ import annotations

from autoq.quant.quantizers import KINDS, Quantizer


def _binary_symmetric(q: Quantizer) -> bool:
    return q.weight_form().form == "binary"


def layer_kind(weight_q: Quantizer | None, input_q: Quantizer | None) -> str:
    """Kernel kind for a conv/dense layer with these weight and input quantizers, read from
    their deployment forms (``q.kind`` is ``weight_form().kind`` / ``input_form().kind``)."""
    if weight_q is None:
        return "f32"
    if input_q is not None and _binary_symmetric(weight_q):
        if input_q.kind == "xnor":
            return "xnor"
        if input_q.kind == "and":
            return "and"
    if weight_q.kind == "int8" and input_q is not None and input_q.kind == "int8":
        return "int8"
    if weight_q.kind == "shift":
        return "shift"
    return "lut"


__all__ = ["KINDS", "layer_kind"]
