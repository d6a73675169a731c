"""The quantizer library: one small object per method, one registry.

Each quantizer gives
- ``q(x)``: the TensorFlow forward pass with its straight-through gradient (tf.custom_gradient),
- ``q.encode(w) -> (indices, codebook)`` and ``q.decode(indices, codebook)``: the integer form
  used by the cost model, the packer, the C kernels and ONNX, with ``decode(*encode(w)) == q(w)``
  exactly (statistics such as mean|w| are reduced in float64 on both sides so the float32
  results agree bit for bit),
- ``bits``, ``kind`` (f32, lut, shift, xnor, and, int8), ``signed``, ``role`` and a complete
  ``get_config``.

Index convention: indices are uint8 and address ``codebook[i]`` (per output channel:
``codebook[c, i]``, c = last axis of ``w``); levels are sorted ascending, so for binary
quantizers index 0 is the negative value and index 1 the positive one (bit 1 = +1).

Formulas are the thesis's (methods.md section 1, equations 3-x); TensorFlow is imported only
when a forward pass runs.
"""
from __future__ import annotations

from autoq.kinds import KINDS  # the one list of kernel kinds
from autoq.quant.base import (_REGISTRY, Quantizer, _straight_through, describe_all, for_role, get, names,
                              packed_nbytes, register)
from autoq.quant.binary import (BinaryConnect, BinaryConnectStochastic, ScaledBinary, SignActivation, Ternary,
                                TrainedTernary, XnorWeight)
from autoq.quant.multibit import DoReFa, LearnedStepSize, Uniform

__all__ = ["KINDS", "Quantizer", "_REGISTRY", "_straight_through", "describe_all", "for_role", "get", "names",
           "packed_nbytes", "register", "BinaryConnect", "BinaryConnectStochastic", "ScaledBinary",
           "SignActivation", "Ternary", "TrainedTernary", "XnorWeight", "DoReFa", "LearnedStepSize", "Uniform"]
