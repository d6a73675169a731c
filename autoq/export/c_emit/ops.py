"""The statements of ``autoq_model_run``: one small function per op kind (OP_EMITTERS).

Compute layers (conv2d, dense) call a kernel of autoq_kernels.h after their input ops (the int8
input quantize, an input form, the bit packing of the binary kinds); the other ops call
kernels/src/aq_ops.c, the input quantizers kernels/include/aq_input_quant.h. Each emitter
appends its lines after the op's ``/* name: kind -> shape */`` comment, which
autoq.cost.calibrate_ops reads to time the ops one by one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from autoq.errors import UserError
from autoq.export.c_emit.arena import numel, plan_arena
from autoq.export.c_emit.literals import CArray, c_float, c_symbol, float_array
from autoq.export.c_emit.packing import CLayer, c_layer
from autoq.export.graph import ExportGraph, Op, pad_amounts

VARIANTS = ("opt", "ref")


@dataclass
class ModelBody:
    """What the ops of a graph emit: the statements of autoq_model_run, the const arrays, and
    the sizes of the static buffers the layers share (the largest need of any layer)."""

    graph: ExportGraph
    variant: str
    offsets: dict[str, int]          # op output -> float offset in aq_arena (plan_arena)
    arena_floats: int
    shapes: dict = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    arrays: list[CArray] = field(default_factory=list)
    layers: list[CLayer] = field(default_factory=list)
    copies: set = field(default_factory=set)   # flatten/identity ops that copy (not in place)
    qtmp_floats: int = 0             # quantized-input buffer
    bits_words: int = 0              # packed input bits of the binary kinds
    i8scale_floats: int = 0          # run-time epilogue scales of the int8 layers

    def ref(self, tensor: str) -> str:
        """C expression of ``tensor``'s first float."""
        return "input" if tensor == self.graph.input_name else f"(aq_arena + {self.offsets[tensor]})"


# --- compute layers ------------------------------------------------------------------------


def _geom(op: Op, shapes: dict) -> tuple:
    ql = op.layer
    c_out, kh, kw, c_in = ql.shape
    if op.kind == "dense":
        return 1, 1, c_in, c_out, 1, 1, 1, "AQ_PAD_VALID"
    h, w, _ = shapes[op.inputs[0]]
    return h, w, c_in, c_out, kh, kw, ql.stride, "AQ_PAD_SAME" if ql.padding == "same" else "AQ_PAD_VALID"


def input_quant_call(form, src: str, dst: str, n: int) -> str:
    """C statement applying an input form (autoq.quant.forms.InputForm.apply)."""
    if form.op == "sign":
        return f"aq_q_sign({src}, {dst}, {n});"
    if form.op == "grid":
        return (f"aq_q_grid({src}, {dst}, {n}, {c_float(form.step)}, {c_float(form.qmin)}, "
                f"{c_float(form.qmax)});")
    raise UserError(f"input form {form.op!r} has no C form (supported: sign, grid)")


def _layer_input(body: ModelBody, op: Op, cl: CLayer) -> str:
    """Emit the input ops of a compute layer; returns the kernel's input expression."""
    h, w, c_in, c_out = cl.geom[:4]
    x = body.ref(op.inputs[0])
    n_in = h * w * c_in
    if cl.kind == "int8":   # int8 input in the quantized-input buffer (bytes, char may alias)
        body.qtmp_floats = max(body.qtmp_floats, (n_in + 3) // 4)
        body.i8scale_floats = max(body.i8scale_floats, c_out)
        body.lines.append(f"    aq_q_int8({x}, (int8_t *)aq_qtmp, {n_in}, {cl.x_step}, {c_symbol(op.name)}_wscale, "
                          f"aq_i8scale, {c_out});")
        x = "(const int8_t *)aq_qtmp"
    elif op.input_quantizer is not None:
        body.qtmp_floats = max(body.qtmp_floats, n_in)
        body.lines.append("    " + input_quant_call(op.input_form, x, "aq_qtmp", n_in))
        x = "aq_qtmp"
    if cl.kind in ("xnor", "and"):
        body.bits_words = max(body.bits_words, h * w * ((c_in + 63) // 64))
        thr = "0.0f" if cl.kind == "xnor" else "0.5f"
        body.lines.append(f"    aq_pack_bits({x}, {h * w}, {c_in}, {thr}, aq_bits);")
        x = "aq_bits"
    return x


def _kernel_call(body: ModelBody, cl: CLayer, x: str, y: str) -> None:
    """aq_conv_args of the layer, then its kernel: opt where the scratch suffices, else ref."""
    h, w, c_in, c_out, kh, kw, stride, pad = cl.geom
    body.lines.append("    memset(&a, 0, sizeof a);")
    body.lines.append(f"    rc = aq_geom_init(&a.g, {h}, {w}, {c_in}, {c_out}, {kh}, {kw}, {stride}, {pad});"
                      " if (rc) return rc;")
    fields = {"x": x, **cl.args, "y": y}
    body.lines.append("    " + " ".join(f"a.{k} = {v};" for k, v in fields.items()))
    if body.variant == "opt":
        enum = f"AQ_{cl.kind.upper()}"
        body.lines.append("    a.scratch = aq_scratch; a.scratch_bytes = sizeof aq_scratch;")
        body.lines.append(f"    rc = aq_scratch_bytes({enum}, \"opt\", &a.g) <= sizeof aq_scratch ? "
                          f"aq_conv_{cl.kind}_opt(&a) : aq_conv_{cl.kind}_ref(&a); if (rc) return rc;")
    else:
        body.lines.append(f"    rc = aq_conv_{cl.kind}_ref(&a); if (rc) return rc;")


def _compute_layer(body: ModelBody, op: Op) -> None:
    cl = c_layer(op)
    body.layers.append(cl)
    body.arrays += cl.arrays
    cl.geom = _geom(op, body.shapes)
    x = _layer_input(body, op, cl)
    _kernel_call(body, cl, x, body.ref(op.output))


# --- the other ops (kernels/src/aq_ops.c) ----------------------------------------------------


def _act(body: ModelBody, op: Op) -> None:
    body.lines.append(f"    aq_act({body.ref(op.inputs[0])}, {body.ref(op.output)}, {numel(op.shape)}, "
                      f"{c_float(op.attrs['slope'])}, {int(op.attrs['relu'])});")


def _affine(body: ModelBody, op: Op) -> None:
    sym = c_symbol(op.name)
    body.arrays.append(float_array(f"{sym}_s", op.attrs["scale"]))
    body.arrays.append(float_array(f"{sym}_t", op.attrs["shift"]))
    c = op.shape[-1]
    body.lines.append(f"    aq_affine({body.ref(op.inputs[0])}, {body.ref(op.output)}, {numel(op.shape) // c}, {c}, "
                      f"{sym}_s, {sym}_t);")


def _pool(body: ModelBody, op: Op) -> None:
    h, w, c = body.shapes[op.inputs[0]]
    k, s = op.attrs["size"], op.attrs["stride"]
    oh, pt, _ = pad_amounts(h, k, s, op.attrs["padding"])
    ow, pl, _ = pad_amounts(w, k, s, op.attrs["padding"])
    body.lines.append(f"    aq_pool({body.ref(op.inputs[0])}, {body.ref(op.output)}, {h}, {w}, {c}, {k}, {s}, "
                      f"{oh}, {ow}, {pt}, {pl}, {int(op.kind == 'maxpool')});")


def _gap(body: ModelBody, op: Op) -> None:
    h, w, c = body.shapes[op.inputs[0]]
    body.lines.append(f"    aq_gap({body.ref(op.inputs[0])}, {body.ref(op.output)}, {h}, {w}, {c});")


def _copy(body: ModelBody, op: Op) -> None:
    """flatten / identity: nothing when the arena plan put the output on the input."""
    x, out = body.ref(op.inputs[0]), body.ref(op.output)
    if out != x:
        body.copies.add(op.name)
        body.lines.append(f"    memmove({out}, {x}, {numel(op.shape)} * sizeof(float));")


def _add(body: ModelBody, op: Op) -> None:
    xs, out, n = [body.ref(t) for t in op.inputs], body.ref(op.output), numel(op.shape)
    body.lines.append(f"    aq_add({xs[0]}, {xs[1]}, {out}, {n});")
    for extra in xs[2:]:
        body.lines.append(f"    aq_add({out}, {extra}, {out}, {n});")


def _concat(body: ModelBody, op: Op) -> None:
    cy, offset = op.shape[-1], 0
    npix = numel(op.shape) // cy
    for t in op.inputs:
        cx = body.shapes[t][-1]
        body.lines.append(f"    aq_concat_part({body.ref(t)}, {cx}, {body.ref(op.output)}, {cy}, {offset}, {npix});")
        offset += cx


OP_EMITTERS = {"conv2d": _compute_layer, "dense": _compute_layer, "act": _act, "affine": _affine,
               "maxpool": _pool, "avgpool": _pool, "gap": _gap, "flatten": _copy, "identity": _copy,
               "add": _add, "concat": _concat}


def emit_ops(graph: ExportGraph, variant: str) -> ModelBody:
    """The statements, arrays and buffer sizes of every op of ``graph``, in graph order."""
    if variant not in VARIANTS:
        raise UserError(f"C variant must be 'opt' or 'ref', got {variant!r}")
    offsets, arena = plan_arena(graph)
    body = ModelBody(graph, variant, offsets, arena, shapes={op.output: op.shape for op in graph.ops})
    for op in graph.ops:
        if op.kind == "input":
            continue
        body.lines.append(f"    /* {op.name}: {op.kind} -> {'x'.join(map(str, op.shape))} */")
        emit = OP_EMITTERS.get(op.kind)
        if emit is None:
            raise UserError(f"op {op.name}: kind {op.kind!r} has no C form")
        emit(body, op)
    return body
