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
Input forms (sign, grid) are applied in float before the kernel (InputForm.apply).
"""
from __future__ import annotations

import logging
import math
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autoq.errors import UserError
from autoq.export.graph import ExportGraph, Op, pad_amounts
from autoq.export.qbin import pack_rows
from autoq.kernel_flags import FLAGS_FILE, host_cflags, kernel_flags, m4_cflags
from autoq.kernels import pack_int8_weights

log = logging.getLogger(__name__)

IN_PLACE = ("act", "affine", "identity")   # element-wise: y[i] depends on x[i] only
KERNEL_EXCLUDE = ("aq_bench.c",)     # timing harness (clock_gettime): not part of inference
# the kernels' flags (kernels/flags.mk): the ones the extension was built and the profile measured with
_FLAGS = kernel_flags()
WARN_CFLAGS = ["-Wall", "-Wno-unused-function"]
HOST_CFLAGS = host_cflags(_FLAGS) + WARN_CFLAGS
M4_CFLAGS = m4_cflags(_FLAGS)


# --- C literals ----------------------------------------------------------------------------


def _c_float(v: float) -> str:
    v = float(np.float32(v))
    if not math.isfinite(v):
        raise UserError(f"cannot emit non-finite weight value {v} as C")
    return "0.0f" if v == 0 else f"{v.hex()}f"   # hex literal: exact float32


C_TYPE_BYTES = {"float": 4, "uint8_t": 1, "int8_t": 1, "int16_t": 2, "int32_t": 4, "uint32_t": 4,
                "uint64_t": 8, "int64_t": 8}


@dataclass(frozen=True)
class CArray:
    """One ``static const`` array of the emitted C. Its text is rendered only with the source
    (``str``); a plan only needs its bytes (``nbytes``), and writing the weight literals is most
    of the time of emit_c on a float ResNet-20."""

    ctype: str
    name: str
    values: np.ndarray
    fmt: object = str
    per_line: int = 12

    @property
    def count(self) -> int:
        return max(int(self.values.size), 1)          # an empty array is emitted as {0}

    @property
    def nbytes(self) -> int:
        return C_TYPE_BYTES[self.ctype] * self.count

    def __str__(self) -> str:
        vals = [self.fmt(v) for v in self.values.ravel()] or ["0"]
        lines = [", ".join(vals[i:i + self.per_line]) for i in range(0, len(vals), self.per_line)]
        return f"static const {self.ctype} {self.name}[{len(vals)}] = {{\n  " + ",\n  ".join(lines) + "\n};\n"


def _c_array(ctype: str, name: str, values, fmt=str, per_line: int = 12) -> CArray:
    values = np.asarray(values)
    if fmt is _c_float:       # the check _c_float makes per value, up front: the text may never be rendered
        bad = values[~np.isfinite(values.astype(np.float32))]
        if bad.size:
            _c_float(bad.ravel()[0])
    return CArray(ctype, name, values, fmt, per_line)


def _sym(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


# --- per-layer weight forms ------------------------------------------------------------------


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
        cl.arrays.append(_c_array("float", f"{sym}_scale", scale, _c_float, 6))
        cl.args["scale"] = f"{sym}_scale"
    if bias is not None:
        cl.arrays.append(_c_array("float", f"{sym}_bias", bias, _c_float, 6))
        cl.args["bias"] = f"{sym}_bias"


def _as_lut(cl: CLayer, sym: str) -> None:
    ql = cl.op.layer
    bits = next(b for b in (1, 2, 4, 8) if b >= ql.weight_bits)
    book = _book2d(ql)
    padded = np.zeros((book.shape[0], 1 << bits), np.float32)
    padded[:, :book.shape[1]] = book
    packed = np.frombuffer(pack_rows(ql.indices.reshape(ql.shape[0], -1), bits), np.uint8)
    cl.kind = "lut"
    cl.arrays.append(_c_array("uint8_t", f"{sym}_w", packed, lambda v: f"0x{int(v):02x}", 16))
    cl.arrays.append(_c_array("float", f"{sym}_codebook", padded, _c_float, 6))
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
    cl.arrays.append(_c_array("uint8_t", f"{sym}_w", packed, lambda v: f"0x{int(v):02x}", 16))
    cl.arrays.append(_c_array("int8_t", f"{sym}_shift", shifts, lambda v: str(int(v)), 16))
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
    cl.arrays.append(_c_array("uint64_t", f"{sym}_w", packed, lambda v: f"0x{int(v):016x}ull", 4))
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


def _as_int8(cl: CLayer, sym: str) -> None:
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
    cl.arrays.append(_c_array("uint32_t", f"{sym}_w", packed, lambda v: f"0x{int(v):08x}u", 8))
    cl.arrays.append(_c_array("float", f"{sym}_wscale", wscale, _c_float, 6))
    cl.args.update(w=f"{sym}_w", scale="aq_i8scale", y_float="1")
    if ql.bias is not None:
        cl.arrays.append(_c_array("float", f"{sym}_bias", ql.bias, _c_float, 6))
        cl.args["bias"] = f"{sym}_bias"
    cl.x_step = _c_float(form.step)
    cl.weight_bytes = 4 * packed.size + 4 * c_out


def _c_layer(op: Op) -> CLayer:
    ql, sym = op.layer, _sym(op.name)
    cl = CLayer(op=op, kind=ql.kind)
    if ql.indices is None:
        w = np.asarray(ql.weights, np.float32)
        cl.kind = "f32"
        cl.arrays.append(_c_array("float", f"{sym}_w", w, _c_float, 6))
        cl.args["w"] = f"{sym}_w"
        cl.weight_bytes = 4 * w.size
        _epilogue_arrays(cl, sym, ql.scale, ql.bias)
        return cl
    if ql.kind == "shift" and _as_shift(cl, sym):
        return cl
    if ql.kind in ("xnor", "and") and _as_binary(cl, sym):
        return cl
    why = _int8_form(op) if ql.kind == "int8" else ""
    if ql.kind == "int8" and not why:
        _as_int8(cl, sym)
        return cl
    if ql.kind == "int8":
        cl.note = f"int8 layer runs on the lut kernel (float activations): {why}"
    elif ql.kind != "lut":
        cl.note = f"weight form {ql.form} has no {ql.kind} rendering: runs on the lut kernel"
    cl.arrays.clear()
    _as_lut(cl, sym)
    return cl


# --- input quantizers ------------------------------------------------------------------------


def _input_quant_call(form, src: str, dst: str, n: int) -> str:
    """C statement applying an input form (autoq.quant.forms.InputForm.apply)."""
    if form.op == "sign":
        return f"aq_q_sign({src}, {dst}, {n});"
    if form.op == "grid":
        return (f"aq_q_grid({src}, {dst}, {n}, {_c_float(form.step)}, {_c_float(form.qmin)}, "
                f"{_c_float(form.qmax)});")
    raise UserError(f"input form {form.op!r} has no C form (supported: sign, grid)")


_HELPERS = r"""
/* ---- input quantizers (mirror autoq.quant.quantizers); the other ops: kernels/src/aq_ops.c --- */
/* Vector targets: keep GCC from specialising a quantizer to its call's constant step and range
   (interprocedural constant propagation): the specialised loop is no longer vectorised but a
   branchy scalar clamp, 1-6 ns per value instead of 0.3 on x86-64. Same arithmetic either way. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8 && (defined(__x86_64__) || defined(__aarch64__))
#define AQ_QUANT_FN __attribute__((noipa)) static
#else
#define AQ_QUANT_FN static
#endif
AQ_QUANT_FN void aq_q_sign(const float *x, float *y, long n) {
    long i; for (i = 0; i < n; i++) y[i] = x[i] >= 0.0f ? 1.0f : -1.0f;
}
/* grid input form: y = clamp(rint(x / step), qmin, qmax) * step (rintf: half to even). */
AQ_QUANT_FN void aq_q_grid(const float *x, float *y, long n, float step, float qmin, float qmax) {
    long i;
    for (i = 0; i < n; i++) { float r = rintf(x[i] / step);
        r = r < qmin ? qmin : (r > qmax ? qmax : r); y[i] = r * step; }
}
/* int8 kernel input: q = clamp(rint(x / step), -127, 127) as int8 (rintf rounds half to even
   in the default rounding mode, like np.round / tf.round), step the input form's fixed step.
   Returns the step; scale[c] = step * wscale[c] for the float epilogue. */
AQ_QUANT_FN float aq_q_int8(const float *x, int8_t *q, long n, float step, const float *wscale, float *scale, int c_out) {
    long i; int c;
    for (i = 0; i < n; i++) { float r = rintf(x[i] / step);
        q[i] = (int8_t)(r < -127.0f ? -127.0f : (r > 127.0f ? 127.0f : r)); }
    for (c = 0; c < c_out; c++) scale[c] = step * wscale[c];
    return step;
}
"""


# --- memory plan -----------------------------------------------------------------------------


def _numel(shape) -> int:
    return int(np.prod(shape)) if len(shape) else 1


def plan_arena(graph: ExportGraph) -> tuple[dict[str, int], int]:
    """First-fit offsets (in floats) of every op output in one arena; returns (offsets, size).

    A tensor lives from its producer to its last reader (the graph output to the end); an
    op's output never overlaps its own inputs, except that the element-wise ops (act, affine,
    identity) write in place over an input they are the last reader of.
    """
    order = [op for op in graph.ops if op.kind != "input"]
    last = {}
    for i, op in enumerate(order):
        for t in op.inputs:
            last[t] = i
    last[graph.output] = len(order)
    live: list[tuple[int, int, str]] = []
    offsets, size = {}, 0
    for i, op in enumerate(order):
        need = _numel(op.shape)
        src = op.inputs[0] if op.inputs else None
        if op.kind in IN_PLACE and src in offsets and last.get(src) == i:
            offsets[op.output] = offsets[src]          # take over the input's block
            live = [(off, n, op.output if t == src else t) for off, n, t in live]
            live = [blk for blk in live if last.get(blk[2], -1) > i]
            continue
        start = 0
        for off, n, _ in sorted(live):
            if off - start >= need:
                break
            start = max(start, off + n)
        offsets[op.output] = start
        live.append((start, need, op.output))
        size = max(size, start + need)
        live = [blk for blk in live if last.get(blk[2], -1) > i]
    return offsets, size


# --- emission --------------------------------------------------------------------------------


@dataclass
class CEmission:
    header: str
    source: str
    main: str
    arena_floats: int
    qtmp_floats: int
    bits_words: int
    layers: list[CLayer]
    scratch_bytes: int = 0
    i8scale_floats: int = 0          # run-time epilogue scales of the int8 layers
    copies: set = field(default_factory=set)   # flatten/identity ops that copy (not in place)

    @property
    def static_ram_bytes(self) -> int:
        """The static buffers the linked program keeps, without the scratch (an unused
        one-element buffer is dropped by the compiler)."""
        return 4 * (max(self.arena_floats, 1) + self.qtmp_floats + self.i8scale_floats) + 8 * self.bits_words

    @property
    def ram_bytes(self) -> int:
        return (4 * (self.arena_floats + self.qtmp_floats + self.i8scale_floats) + 8 * self.bits_words
                + self.scratch_bytes)

    @property
    def weight_bytes(self) -> int:
        return sum(cl.weight_bytes for cl in self.layers)


def _geom(op: Op, shapes: dict) -> tuple:
    ql = op.layer
    c_out, kh, kw, c_in = ql.shape
    if op.kind == "dense":
        return 1, 1, c_in, c_out, 1, 1, 1, "AQ_PAD_VALID"
    h, w, _ = shapes[op.inputs[0]]
    return h, w, c_in, c_out, kh, kw, ql.stride, "AQ_PAD_SAME" if ql.padding == "same" else "AQ_PAD_VALID"


def emit_c(graph: ExportGraph, model_name: str = "model", comment: str = "", variant: str = "opt",
           scratch_bytes: int = 0, render: bool = True) -> CEmission:
    """C source for ``graph``. variant "opt" calls the optimised kernels with a static scratch
    buffer of ``scratch_bytes`` (the target build's need: autoq.cost.deploy.scratch_need of the
    plan; ``-DAUTOQ_SCRATCH_BYTES=N``
    overrides it) and falls back to the reference kernel for any layer whose scratch need, as
    computed by ``aq_scratch_bytes`` on the machine it runs on, is larger; "ref" uses the
    reference kernels only (no scratch). ``render=False``: everything but the text of model.c
    (``source`` is empty; the arrays, buffers and layers a plan is read from are the same)."""
    if variant not in ("opt", "ref"):
        raise UserError(f"C variant must be 'opt' or 'ref', got {variant!r}")
    shapes = {op.output: op.shape for op in graph.ops}
    offsets, arena = plan_arena(graph)

    def ref(t: str) -> str:
        return "input" if t == graph.input_name else f"(aq_arena + {offsets[t]})"

    layers, body, arrays, copies = [], [], [], set()
    qtmp = bits_words = i8scale = 0
    for op in graph.ops:
        if op.kind == "input":
            continue
        out = ref(op.output)
        n_out = _numel(op.shape)
        body.append(f"    /* {op.name}: {op.kind} -> {'x'.join(map(str, op.shape))} */")
        if op.kind in ("conv2d", "dense"):
            cl = _c_layer(op)
            layers.append(cl)
            arrays += cl.arrays
            h, w, c_in, c_out, kh, kw, stride, pad = cl.geom = _geom(op, shapes)
            x = ref(op.inputs[0])
            n_in = h * w * c_in
            if cl.kind == "int8":   # int8 input in the quantized-input buffer (bytes, char may alias)
                qtmp = max(qtmp, (n_in + 3) // 4)
                i8scale = max(i8scale, c_out)
                body.append(f"    aq_q_int8({x}, (int8_t *)aq_qtmp, {n_in}, {cl.x_step}, {_sym(op.name)}_wscale, "
                            f"aq_i8scale, {c_out});")
                x = "(const int8_t *)aq_qtmp"
            elif op.input_quantizer is not None:
                qtmp = max(qtmp, n_in)
                body.append("    " + _input_quant_call(op.input_form, x, "aq_qtmp", n_in))
                x = "aq_qtmp"
            if cl.kind in ("xnor", "and"):
                words = h * w * ((c_in + 63) // 64)
                bits_words = max(bits_words, words)
                thr = "0.0f" if cl.kind == "xnor" else "0.5f"
                body.append(f"    aq_pack_bits({x}, {h * w}, {c_in}, {thr}, aq_bits);")
                x = "aq_bits"
            body.append("    memset(&a, 0, sizeof a);")
            body.append(f"    rc = aq_geom_init(&a.g, {h}, {w}, {c_in}, {c_out}, {kh}, {kw}, {stride}, {pad});"
                        " if (rc) return rc;")
            fields = {"x": x, **cl.args, "y": out}
            body.append("    " + " ".join(f"a.{k} = {v};" for k, v in fields.items()))
            if variant == "opt":
                enum = f"AQ_{cl.kind.upper()}"
                body.append("    a.scratch = aq_scratch; a.scratch_bytes = sizeof aq_scratch;")
                body.append(f"    rc = aq_scratch_bytes({enum}, \"opt\", &a.g) <= sizeof aq_scratch ? "
                            f"aq_conv_{cl.kind}_opt(&a) : aq_conv_{cl.kind}_ref(&a); if (rc) return rc;")
            else:
                body.append(f"    rc = aq_conv_{cl.kind}_ref(&a); if (rc) return rc;")
            continue
        xs = [ref(t) for t in op.inputs]
        if op.kind == "act":
            body.append(f"    aq_act({xs[0]}, {out}, {n_out}, {_c_float(op.attrs['slope'])}, {int(op.attrs['relu'])});")
        elif op.kind == "affine":
            sym = _sym(op.name)
            arrays.append(_c_array("float", f"{sym}_s", op.attrs["scale"], _c_float, 6))
            arrays.append(_c_array("float", f"{sym}_t", op.attrs["shift"], _c_float, 6))
            c = op.shape[-1]
            body.append(f"    aq_affine({xs[0]}, {out}, {n_out // c}, {c}, {sym}_s, {sym}_t);")
        elif op.kind in ("maxpool", "avgpool"):
            h, w, c = shapes[op.inputs[0]]
            k, s = op.attrs["size"], op.attrs["stride"]
            oh, pt, _ = pad_amounts(h, k, s, op.attrs["padding"])
            ow, pl, _ = pad_amounts(w, k, s, op.attrs["padding"])
            body.append(f"    aq_pool({xs[0]}, {out}, {h}, {w}, {c}, {k}, {s}, {oh}, {ow}, {pt}, {pl}, "
                        f"{int(op.kind == 'maxpool')});")
        elif op.kind == "gap":
            h, w, c = shapes[op.inputs[0]]
            body.append(f"    aq_gap({xs[0]}, {out}, {h}, {w}, {c});")
        elif op.kind in ("flatten", "identity"):
            if out != xs[0]:
                copies.add(op.name)
                body.append(f"    memmove({out}, {xs[0]}, {n_out} * sizeof(float));")
        elif op.kind == "add":
            body.append(f"    aq_add({xs[0]}, {xs[1]}, {out}, {n_out});")
            for extra in xs[2:]:
                body.append(f"    aq_add({out}, {extra}, {out}, {n_out});")
        elif op.kind == "concat":
            cy, offset = op.shape[-1], 0
            npix = n_out // cy
            for t, x in zip(op.inputs, xs):
                cx = shapes[t][-1]
                body.append(f"    aq_concat_part({x}, {cx}, {out}, {cy}, {offset}, {npix});")
                offset += cx
        else:
            raise UserError(f"op {op.name}: kind {op.kind!r} has no C form")
    n_in, n_out = _numel(graph.input_shape), _numel(graph.output_shape)
    guard = f"AUTOQ_{_sym(model_name).upper()}_H"
    header = f"""/* {model_name}.h -- generated by `autoq export`; do not edit. {comment}
 * Input : float32 NHWC {'x'.join(map(str, graph.input_shape))} (one sample, the Keras preprocessing).
 * Output: float32 logits [{n_out}].
 * RAM   : {4 * arena} B activation arena + {4 * qtmp} B quantized-input buffer + {8 * bits_words} B packed bits + {4 * i8scale} B int8 scales
 *         (static, planned from the tensor lifetimes){f" + {scratch_bytes} B kernel scratch" if variant == "opt" else ""};
 *         weights are const (flash). Kernels: {"optimised (ref where the scratch is too small)" if variant == "opt" else "reference"}. */
#ifndef {guard}
#define {guard}
#define AUTOQ_MODEL_INPUT_SIZE {n_in}
#define AUTOQ_MODEL_OUTPUT_SIZE {n_out}
#define AUTOQ_MODEL_INPUT_H {graph.input_shape[0]}
#define AUTOQ_MODEL_INPUT_W {graph.input_shape[1] if len(graph.input_shape) > 1 else 1}
#define AUTOQ_MODEL_INPUT_C {graph.input_shape[-1]}
#define AUTOQ_MODEL_ARENA_BYTES {4 * arena + 4 * qtmp + 8 * bits_words + 4 * i8scale}  /* without the kernel scratch */
/* Run one sample: returns 0 (AQ_OK) or a negative AQ_E_* code from the kernels. */
int autoq_model_run(const float *input, float *output);
#endif
"""
    source = "" if not render else "\n".join([
        f"/* {model_name}.c -- generated by `autoq export`; do not edit. {comment} */",
        "#include <math.h>", "#include <stdint.h>", "#include <string.h>",
        '#include "autoq_kernels.h"', f'#include "{model_name}.h"', _HELPERS,
        "/* ---- weights (const: flash) ---- */", *map(str, arrays),
        "/* ---- activations (static RAM) ---- */",
        f"static float aq_arena[{max(arena, 1)}];",
        f"static float aq_qtmp[{max(qtmp, 1)}];",
        f"static uint64_t aq_bits[{max(bits_words, 1)}];",
        f"static float aq_i8scale[{max(i8scale, 1)}];  /* int8 layers: x_step * w_step[c] of this run */",
        *([f"#ifndef AUTOQ_SCRATCH_BYTES", f"#define AUTOQ_SCRATCH_BYTES {int(scratch_bytes)}", "#endif",
           "/* scratch of the optimised kernels (8-byte aligned); a layer needing more runs the ref kernel */",
           "static uint64_t aq_scratch[(AUTOQ_SCRATCH_BYTES + 7) / 8 + 1];"] if variant == "opt" else []), "",
        "int autoq_model_run(const float *input, float *output) {",
        "    aq_conv_args a;", "    int rc = 0;",
        "    (void)aq_qtmp; (void)aq_bits; (void)aq_i8scale; (void)rc; (void)a;",
        *body,
        f"    memcpy(output, {ref(graph.output)}, {n_out} * sizeof(float));",
        "    return 0;", "}", ""])
    main = host_main(model_name, n_in, n_out)
    return CEmission(header, source, main, arena, qtmp, bits_words, layers,
                     scratch_bytes=8 * ((int(scratch_bytes) + 7) // 8 + 1) if variant == "opt" else 0,
                     i8scale_floats=i8scale, copies=copies)


def host_main(model_name: str, n_in: int, n_out: int) -> str:
    """main.c of model_host: runs every float32 sample of a file; refuses NaN/inf input and a
    partial trailing sample (message on stderr, exit 1)."""
    return f"""/* main.c -- host driver generated by `autoq export`.
 * Usage: ./model_host INPUT.f32 [LOGITS.f32]
 * INPUT.f32: raw little-endian float32 samples of {n_in} values (NHWC) each; NaN/inf values or a
 * partial trailing sample are refused (message, exit 1).
 * Prints the argmax of each sample; with LOGITS.f32 also writes the {n_out} logits per sample. */
#include <math.h>
#include <stdio.h>
#include "{model_name}.h"

int main(int argc, char **argv) {{
    static float x[AUTOQ_MODEL_INPUT_SIZE], y[AUTOQ_MODEL_OUTPUT_SIZE];
    FILE *in, *out = NULL;
    long n = 0;
    size_t got;
    if (argc < 2) {{ fprintf(stderr, "usage: %s INPUT.f32 [LOGITS.f32]\\n", argv[0]); return 2; }}
    in = fopen(argv[1], "rb");
    if (!in) {{ perror(argv[1]); return 2; }}
    if (argc > 2 && !(out = fopen(argv[2], "wb"))) {{ perror(argv[2]); return 2; }}
    while ((got = fread(x, 1, sizeof x, in)) > 0) {{
        int k, best = 0, rc;
        if (got != sizeof x) {{
            fprintf(stderr, "%s: partial trailing sample %ld: %lu of %lu bytes (%d float32 values)\\n", argv[1], n,
                    (unsigned long)got, (unsigned long)sizeof x, AUTOQ_MODEL_INPUT_SIZE);
            return 1;
        }}
        for (k = 0; k < AUTOQ_MODEL_INPUT_SIZE; k++)
            if (!isfinite(x[k])) {{
                fprintf(stderr, "%s: sample %ld value %d is NaN or infinite; inputs must be finite\\n", argv[1], n, k);
                return 1;
            }}
        rc = autoq_model_run(x, y);
        if (rc) {{ fprintf(stderr, "sample %ld: autoq_model_run returned %d\\n", n, rc); return 1; }}
        for (k = 1; k < AUTOQ_MODEL_OUTPUT_SIZE; k++) if (y[k] > y[best]) best = k;
        if (out) fwrite(y, sizeof(float), AUTOQ_MODEL_OUTPUT_SIZE, out); else printf("%d\\n", best);
        n++;
    }}
    if (ferror(in)) {{ perror(argv[1]); return 1; }}
    fclose(in);
    if (out) fclose(out);
    fprintf(stderr, "%ld samples\\n", n);
    return 0;
}}
"""


# --- building --------------------------------------------------------------------------------


def kernel_sources(kernels_dir: Path) -> list[Path]:
    """Every kernels/src/*.c except the bench harness."""
    files = [f for f in sorted((kernels_dir / "src").glob("*.c")) if f.name not in KERNEL_EXCLUDE]
    if not any(f.name.startswith("conv_") for f in files) or not (kernels_dir / "include" / "autoq_kernels.h").is_file():
        raise UserError(f"kernel sources missing under {kernels_dir} (need include/autoq_kernels.h and src/conv_*.c)")
    return files


def copy_kernels(kernels_dir: Path, out: Path) -> list[Path]:
    """Copy the kernel header and sources next to the model so the folder builds on its own;
    returns the files written."""
    dst = out / "kernels"
    (dst / "include").mkdir(parents=True, exist_ok=True)
    (dst / "src").mkdir(parents=True, exist_ok=True)
    written = []
    for f in sorted((kernels_dir / "include").glob("*")):
        written.append(Path(shutil.copy2(f, dst / "include" / f.name)))
    written.append(Path(shutil.copy2(kernels_dir / FLAGS_FILE, dst / FLAGS_FILE)))
    for f in kernel_sources(kernels_dir) + sorted((kernels_dir / "src").glob("*.h")) + \
            sorted((kernels_dir / "src").glob("*.inc")):
        written.append(Path(shutil.copy2(f, dst / "src" / f.name)))
    return written


def write_makefile(out: Path, model_name: str = "model") -> Path:
    text = f"""# Generated by `autoq export`: build the model on the host or for a Cortex-M4F.
# Compiler flags: kernels/{FLAGS_FILE}, the flags autoq's kernels were measured with (x86-64:
# -march=x86-64-v2 + run-time AVX2/AVX-512 dispatch, AQ_X86_DISPATCH).
include kernels/{FLAGS_FILE}
ifeq ($(shell uname -m),x86_64)
HOST_ARCH_CFLAGS = $(AQ_X86_64_CFLAGS)
endif
HOST_CFLAGS = $(AQ_CFLAGS) $(HOST_ARCH_CFLAGS) {' '.join(WARN_CFLAGS)}
KSRC = $(filter-out kernels/src/aq_bench.c,$(wildcard kernels/src/*.c))
KOBJ = $(KSRC:.c=.o)
KDEPS = $(wildcard kernels/include/* kernels/src/*.h kernels/src/*.inc) kernels/{FLAGS_FILE}
INC = -Ikernels/include -Ikernels/src
host: {model_name}_host
objects: $(KOBJ)
kernels/src/%.o: kernels/src/%.c $(KDEPS)
\tcc $(HOST_CFLAGS) $(INC) -c -o $@ $<
{model_name}_host: {model_name}.c main.c {model_name}.h $(KOBJ)
\tcc $(HOST_CFLAGS) $(INC) -o $@ {model_name}.c main.c $(KOBJ) -lm
# object files for a Cortex-M4F firmware (link them with your startup code and linker script)
m4:
\tmkdir -p build_m4 && cd build_m4 && arm-none-eabi-gcc $(AQ_CFLAGS) $(AQ_M4_CFLAGS) $(addprefix -I../,kernels/include kernels/src) -c $(addprefix ../,{model_name}.c $(KSRC))
.PHONY: host objects m4
"""
    path = out / "Makefile"
    path.write_text(text)
    return path


def _run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd[:3])} ...\n{proc.stderr[-3000:]}")
    return proc


def build_host(out: Path, build_dir: Path, model_name: str = "model", cc: str = "gcc") -> Path:
    """Compile model.c + main.c + the kernels for this machine; returns the executable."""
    if shutil.which(cc) is None:
        raise UserError(f"C compiler {cc!r} not found; install gcc or pass --no-c")
    out, build_dir = Path(out).resolve(), Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    kdir = out / "kernels"
    exe = build_dir / f"{model_name}_host"
    _run([cc, *HOST_CFLAGS, f"-I{kdir / 'include'}", f"-I{kdir / 'src'}", "-o", str(exe),
          str(out / f"{model_name}.c"), str(out / "main.c"), *map(str, kernel_sources(kdir)), "-lm"],
         build_dir, "host C build")
    return exe


def run_host(exe: Path, x: np.ndarray, n_out: int, work: Path) -> np.ndarray:
    """Logits of the compiled model for samples ``x`` (float32 NHWC)."""
    inp, outp = work / "inputs.f32", work / "logits.f32"
    np.ascontiguousarray(x, "<f4").tofile(inp)
    _run([str(exe), str(inp), str(outp)], work, "running the host C model")
    return np.fromfile(outp, "<f4").reshape(len(x), n_out)


def build_m4(out: Path, build_dir: Path, model_name: str = "model") -> dict:
    """Link the model for a Cortex-M4F with --gc-sections (entry autoq_model_run) and measure it.

    flash = .text + .rodata + .data (+ .ARM.exidx); SRAM = .data + .bss (static buffers; the
    stack is not included).
    """
    cc, size = "arm-none-eabi-gcc", "arm-none-eabi-size"
    if shutil.which(cc) is None or shutil.which(size) is None:
        raise UserError("arm-none-eabi-gcc not found (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    out, build_dir = Path(out).resolve(), Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    kdir = out / "kernels"
    elf = build_dir / f"{model_name}_m4.elf"
    _run([cc, *M4_CFLAGS, "-fstack-usage", f"-I{kdir / 'include'}", f"-I{kdir / 'src'}", "--specs=nosys.specs",
          "-nostartfiles", "-Wl,--gc-sections", "-Wl,-e,autoq_model_run", "-o", str(elf), str(out / f"{model_name}.c"),
          *map(str, kernel_sources(kdir)), "-lm"], build_dir, "Cortex-M4 build")
    sections = {}
    for line in _run([size, "-A", str(elf)], build_dir, "arm-none-eabi-size").stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    flash = sum(v for k, v in sections.items() if k in (".text", ".rodata", ".data", ".ARM.exidx", ".init",
                                                         ".fini", ".init_array", ".fini_array"))
    sram = sections.get(".data", 0) + sections.get(".bss", 0)
    return {"elf": str(elf), "sections": sections, "flash_bytes": flash, "sram_bytes": sram,
            "stack_bytes_estimate": _stack_estimate(build_dir, elf)}


def _stack_estimate(build_dir: Path, elf: Path) -> int | None:
    """autoq_model_run's frame + the two largest frames of the other functions linked in
    (the call depth is run -> kernel -> core), from gcc's -fstack-usage; an estimate."""
    nm = shutil.which("arm-none-eabi-nm")
    if nm is None:
        return None
    linked = {line.split()[-1] for line in _run([nm, str(elf)], build_dir, "arm-none-eabi-nm").stdout.splitlines()
              if len(line.split()) == 3 and line.split()[1] in "tT"}
    frames = {}
    for su in build_dir.glob("*.su"):
        for line in su.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1].isdigit():
                name = parts[0].rsplit(":", 1)[-1]
                if name in linked:
                    frames[name] = max(frames.get(name, 0), int(parts[1]))
    if "autoq_model_run" not in frames:
        return None
    others = sorted((v for k, v in frames.items() if k != "autoq_model_run"), reverse=True)
    return frames["autoq_model_run"] + sum(others[:2])
