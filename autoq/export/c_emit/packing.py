"""Weights of one compute layer in the layout of the kernel that runs it (autoq_kernels.h).

Rendered from the quantizers' declared deployment forms (autoq.quant.forms), never from
quantizer names; the package docstring (autoq.export.c_emit) lists the layouts per kind. A
layer whose weight form has no rendering for its kind runs as lut (recorded in ``note``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from autoq.export.c_emit.literals import CArray, c_array, c_byte, c_float, c_int, c_symbol, float_array
from autoq.export.graph import Op
from autoq.export.qbin import pack_rows
from autoq.kernels import pack_int8_weights
from autoq.kinds import lut_bits


@dataclass
class CLayer:
    op: Op
    kind: str                        # the kernel that runs it
    arrays: list[CArray] = field(default_factory=list)
    args: dict = field(default_factory=dict)   # aq_conv_args field -> C expression
    weight_bytes: int = 0
    note: str = ""
    geom: tuple = ()                 # h, w, c_in, c_out, kh, kw, stride, padding macro
    x_step: str = ""                 # int8: C expression of the fixed input step ("" = max|x| / 127)


def _book2d(ql) -> np.ndarray:
    book = np.asarray(ql.codebook, np.float32)
    return book[None, :] if book.ndim == 1 else book


def _epilogue_arrays(cl: CLayer, sym: str, scale: np.ndarray | None, bias: np.ndarray | None) -> None:
    if scale is not None:
        cl.arrays.append(float_array(f"{sym}_scale", scale))
        cl.args["scale"] = f"{sym}_scale"
    if bias is not None:
        cl.arrays.append(float_array(f"{sym}_bias", bias))
        cl.args["bias"] = f"{sym}_bias"


def _as_f32(cl: CLayer, sym: str) -> None:
    """Float OHWI weights (a layer without weight indices)."""
    ql = cl.op.layer
    w = np.asarray(ql.weights, np.float32)
    cl.kind = "f32"
    cl.arrays.append(float_array(f"{sym}_w", w))
    cl.args["w"] = f"{sym}_w"
    cl.weight_bytes = 4 * w.size
    _epilogue_arrays(cl, sym, ql.scale, ql.bias)


def _as_lut(cl: CLayer, sym: str) -> None:
    """Indices packed at the next lut width + the codebook padded to 2^width entries."""
    ql = cl.op.layer
    bits = lut_bits(ql.weight_bits)
    book = _book2d(ql)
    padded = np.zeros((book.shape[0], 1 << bits), np.float32)
    padded[:, :book.shape[1]] = book
    packed = np.frombuffer(pack_rows(ql.indices.reshape(ql.shape[0], -1), bits), np.uint8)
    cl.kind = "lut"
    cl.arrays.append(c_array("uint8_t", f"{sym}_w", packed, c_byte, 16))
    cl.arrays.append(float_array(f"{sym}_codebook", padded))
    cl.args.update(w=f"{sym}_w", codebook=f"{sym}_codebook", bits=str(bits),
                   codebook_per_channel="1" if book.shape[0] > 1 else "0")
    cl.weight_bytes = packed.size + 4 * padded.size
    _epilogue_arrays(cl, sym, ql.scale, ql.bias)


def _as_shift(cl: CLayer, sym: str) -> bool:
    """Power-of-two form: 2-bit codes (level + 1: 0 = -1, 1 = 0, 2 = +1) and one shift per channel."""
    ql = cl.op.layer
    if ql.form is None or not ql.form.power_of_two:
        return False
    c_out = ql.shape[0]
    code = (ql.integers().reshape(c_out, -1) + 1).astype(np.uint8)
    shifts = np.broadcast_to(np.round(-np.log2(ql.scales.astype(np.float64))).astype(np.int64), (c_out,))
    packed = np.frombuffer(pack_rows(code, 2), np.uint8)
    cl.arrays.append(c_array("uint8_t", f"{sym}_w", packed, c_byte, 16))
    cl.arrays.append(c_array("int8_t", f"{sym}_shift", shifts, c_int, 16))
    cl.args.update(w=f"{sym}_w", bits="2", shift=f"{sym}_shift")
    cl.weight_bytes = packed.size + c_out
    _epilogue_arrays(cl, sym, ql.scale, ql.bias)
    return True


def _as_binary(cl: CLayer, sym: str) -> bool:
    """Binary form: bits along c_in (bit 1 = +1), the magnitude folded into the epilogue scale."""
    ql = cl.op.layer
    if ql.form is None or ql.form.form != "binary" or np.any(ql.scales <= 0):
        return False
    c_out, kh, kw, c_in = ql.shape
    words = (c_in + 63) // 64
    bits = np.zeros((c_out, kh, kw, words * 64), np.uint8)
    bits[..., :c_in] = ql.integers() > 0
    packed = np.packbits(bits, axis=-1, bitorder="little").view("<u8").reshape(-1)
    cl.arrays.append(c_array("uint64_t", f"{sym}_w", packed, lambda v: f"0x{int(v):016x}ull", 4))
    magnitude = np.broadcast_to(ql.scales, (c_out,)).astype(np.float32)
    scale = magnitude if ql.scale is None else (magnitude * ql.scale).astype(np.float32)
    cl.args["w"] = f"{sym}_w"
    cl.weight_bytes = packed.size * 8
    _epilogue_arrays(cl, sym, scale, ql.bias)
    return True


def _int8_form(op: Op) -> str:
    """Why layer ``op`` cannot run on the int8 kernel ("" when it can): weights an integer form
    within int8, the input a fixed-step grid within [-127, 127] (aq_q_int8's range)."""
    ql, form = op.layer, op.input_form
    if form is None or form.op != "grid" or form.qmin < -127 or form.qmax > 127:
        return f"input form {form} is not a grid within [-127, 127]"
    z = ql.integers()
    if z is None or int(z.min(initial=0)) < -128 or int(z.max(initial=0)) > 127:
        return "weights are not an integer form within int8"
    return ""


def _as_int8(cl: CLayer, sym: str) -> bool:
    """The int8 kernel in its float-output mode (autoq.kernels.pack_int8_weights' layout), or
    False with the reason in ``note``."""
    why = _int8_form(cl.op)
    if why:
        cl.note = f"int8 layer runs on the lut kernel (float activations): {why}"
        return False
    ql, form = cl.op.layer, cl.op.input_form
    c_out = ql.shape[0]
    w8 = ql.integers().astype(np.int8)
    w_step = np.broadcast_to(np.asarray(ql.scales, np.float32), (c_out,))
    # per-channel part of the dequantisation (w_step * folded scale); x_step is multiplied in at run time
    wscale = (w_step * ql.scale).astype(np.float32) if ql.scale is not None else w_step.astype(np.float32)
    cl.kind = "int8"
    # the kernels read pre-packed weights (autoq_kernels.h), 4-byte aligned: packed once here,
    # emitted as little-endian 32-bit words
    packed = pack_int8_weights(w8.reshape(ql.shape)).view("<u4")
    cl.arrays.append(c_array("uint32_t", f"{sym}_w", packed, lambda v: f"0x{int(v):08x}u", 8))
    cl.arrays.append(float_array(f"{sym}_wscale", wscale))
    cl.args.update(w=f"{sym}_w", scale="aq_i8scale", y_float="1")
    if ql.bias is not None:
        cl.arrays.append(float_array(f"{sym}_bias", ql.bias))
        cl.args["bias"] = f"{sym}_bias"
    cl.x_step = c_float(form.step)
    cl.weight_bytes = 4 * packed.size + 4 * c_out
    return True


# the rendering of each kernel kind besides lut; lut renders every indexed weight form
RENDERINGS = {"shift": _as_shift, "xnor": _as_binary, "and": _as_binary, "int8": _as_int8}


def c_layer(op: Op) -> CLayer:
    """The weights of compute layer ``op`` (conv2d or dense) as C arrays and kernel arguments."""
    ql, sym = op.layer, c_symbol(op.name)
    cl = CLayer(op=op, kind=ql.kind)
    if ql.indices is None:
        _as_f32(cl, sym)
        return cl
    render = RENDERINGS.get(ql.kind)
    if render is not None and render(cl, sym):
        return cl
    if ql.kind not in ("lut", "int8"):
        cl.note = f"weight form {ql.form} has no {ql.kind} rendering: runs on the lut kernel"
    cl.arrays.clear()
    _as_lut(cl, sym)
    return cl
