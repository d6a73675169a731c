"""Quantizers (NumPy + TensorFlow) and the kernel-kind mapping; layers live in
``autoq.quant.layers`` (imports TensorFlow)."""
from autoq.quant.quantizers import (
    KINDS,
    Quantizer,
    describe_all,
    for_role,
    get,
    names,
    packed_nbytes,
    register,
)
from autoq.quant.kinds import layer_kind

__all__ = ["KINDS", "Quantizer", "describe_all", "for_role", "get", "layer_kind", "names",
           "packed_nbytes", "register"]
