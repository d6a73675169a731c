"""The LayerPlan of the C that ``autoq export`` emits (the data model is :mod:`autoq.plan`).

:func:`plan_from_model` builds the export graph of a Keras model (:mod:`autoq.export.graph`)
and renders it with :mod:`autoq.export.c_emit` (sizes only, no C text);
:func:`plan_from_emission` reads the plan off a graph and its emission: the byte counts of
the emitted arrays and buffers, the kernel kind each layer runs on, the non-kernel ops the C
performs and the static arena (see :mod:`autoq.plan` for what each field means).

It lives on the export side because it reads the export's structures; :mod:`autoq.plan`,
which the cost model and the search read, imports nothing from :mod:`autoq.export`.
"""
from __future__ import annotations

import math

from autoq.errors import UserError
from autoq.export.c_emit import emit_c
from autoq.export.graph import build_graph
from autoq.plan import OP_KINDS, LayerEntry, LayerPlan, OpEntry

_EPILOGUE_SUFFIXES = ("_scale", "_bias")


def plan_from_model(model) -> LayerPlan:
    """The deployment plan of a built Keras model: what ``autoq export`` emits as C for it."""
    graph = build_graph(model, fold_bn=False)
    if not graph.compute:
        raise UserError(f"model {model.name!r} has no Conv2D/Dense layers to plan")
    return plan_from_emission(graph, emit_c(graph, variant="ref", render=False))   # sizes only: no C text


def plan_from_emission(graph, emission) -> LayerPlan:
    """LayerPlan of an ExportGraph and its CEmission (autoq.export.c_emit.emit_c)."""
    shapes = {op.output: op.shape for op in graph.ops}
    by_op = {cl.op.name: cl for cl in emission.layers}
    layers, ops = [], []
    for op in graph.ops:
        if op.kind in ("conv2d", "dense"):
            cl = by_op[op.name]
            ops += _input_ops(op, cl.kind, shapes)
            layers.append(_entry_from_c(op, cl, shapes))
        elif op.kind != "input":
            entry = _op_entry(op, shapes, emission)
            if entry is not None:
                ops.append(entry)
    return LayerPlan(input_shape=[int(v) for v in graph.input_shape], layers=layers, ops=ops,
                     arena_bytes=emission.static_ram_bytes)


def _numel(shape) -> int:
    return math.prod(int(v) for v in shape) if len(shape) else 1


def _entry_from_c(op, cl, shapes) -> LayerEntry:
    """Entry of one compute layer with the byte counts of its emitted arrays."""
    ql = op.layer
    h, w, c_in, c_out, kh, kw, stride, _ = cl.geom
    sizes = {a.name: a.nbytes for a in cl.arrays}
    weights = sum(n for k, n in sizes.items() if k.endswith("_w"))
    epilogue = sum(n for k, n in sizes.items() if k.endswith(_EPILOGUE_SUFFIXES))
    out_shape = op.shape
    h_out, w_out = (int(out_shape[0]), int(out_shape[1])) if len(out_shape) == 3 else (1, 1)
    book = None if ql.codebook is None else ql.codebook
    iq = op.input_quantizer
    return LayerEntry(
        name=op.name, op=op.kind, kind=cl.kind, weight_bits=32 if cl.kind == "f32" else int(ql.weight_bits),
        act_bits=32 if iq is None else int(iq.bits), c_in=c_in, c_out=c_out, h_in=h, w_in=w,
        h_out=h_out, w_out=w_out, kh=kh, kw=kw, stride=stride, padding=ql.padding,
        macs=h_out * w_out * c_out * kh * kw * c_in, weight_count=kh * kw * c_in * c_out,
        codebook_len=0 if book is None or cl.kind == "f32" else int(book.shape[-1]),
        per_channel=book is not None and book.ndim == 2 and cl.kind != "f32",
        weight_bytes=weights, codebook_bytes=sum(sizes.values()) - weights - epilogue, bias_bytes=epilogue,
        in_bytes=4 * h * w * c_in, out_bytes=4 * h_out * w_out * c_out)


def _input_ops(op, kind: str, shapes) -> list[OpEntry]:
    """The quantize / int8 quantize / bit packing the C runs in front of a kernel."""
    n = _numel(shapes[op.inputs[0]])
    result = []
    if kind == "int8":
        result.append(OpEntry(f"{op.name}:quantize", "quantize_int8", n, n))
    elif op.input_quantizer is not None:
        result.append(OpEntry(f"{op.name}:quantize", "quantize", n, n))
    if kind in ("xnor", "and"):
        result.append(OpEntry(f"{op.name}:pack", "pack_bits", n, n))
    return result


def _op_entry(op, shapes, emission) -> OpEntry | None:
    """Entry of one non-kernel op, or None where the C does nothing (an in-place flatten)."""
    n_in = sum(_numel(shapes[t]) for t in op.inputs)
    n_out = _numel(op.shape)
    if op.kind in ("flatten", "identity"):
        return OpEntry(op.name, "copy", n_in, n_out) if op.name in emission.copies else None
    if op.kind in ("maxpool", "avgpool"):
        return OpEntry(op.name, op.kind, n_in, n_out, window=op.attrs["size"] ** 2)
    if op.kind == "affine":
        return OpEntry(op.name, "affine", n_in, n_out, const_bytes=8 * int(op.shape[-1]))
    if op.kind in OP_KINDS:
        return OpEntry(op.name, op.kind, n_in, n_out)
    raise UserError(f"op {op.name}: kind {op.kind!r} has no plan entry")
