"""C source for an ExportGraph on autoq's kernels (kernels/include/autoq_kernels.h).

Emits ``model.h`` / ``model.c`` (weights as ``const`` arrays so they live in flash, one static
activation arena planned from the tensor lifetimes, one call per layer) and ``main.c`` (a host
driver: float32 samples in, logits out). Builds and checks them:

- host: gcc, run on the test split, argmax must equal Keras' and logits stay within tolerance;
- m4: arm-none-eabi-gcc for Cortex-M4F, linked with --gc-sections, flash = text + rodata +
  data, SRAM = data + bss, compared with the profile's 256 KB flash / 32 KB SRAM.

Per kind (autoq_kernels.h gives the bit layouts):
- f32: float OHWI weights.
- lut: indices packed at b' = 1, 2, 4 or 8 bits (the next width >= the quantizer's bits) +
  codebook padded to 2^b' entries per layer or per output channel.
- int8 (uniform 8-bit weights, uniform 8-bit per-tensor input quantizer): the int8 kernel in
  its float-output mode. Weights w_q = index - 127 (Uniform.encode: index = q + qmax) as int8
  in the kernels' packed layout (autoq.kernels.pack_int8_weights, 32-bit words),
  the float input quantized to int8 at run time by the uniform rule (step = max|x| / 127 over
  the tensor, or alpha / 127; round half to even), then y = acc * (x_step * w_step[c] * s[c]) +
  bias[c]: the exact integer product, dequantised once per output.
- shift: codebook c * 2^-s[c] with c in {-1, 0, +1}: 2-bit codes 0 = -1, 1 = 0, 2 = +1.
- xnor / and: weights {-a, +a} as bits along c_in (bit 1 = +1), a folded into the epilogue
  scale; the input is quantized in float and packed with aq_pack_bits.
A layer whose codebook does not have the form its kind needs runs as lut (recorded).
Input quantizers are applied in float before the kernel, mirroring autoq.quant.quantizers.
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
from autoq.kernels import pack_int8_weights

log = logging.getLogger(__name__)

IN_PLACE = ("act", "affine", "identity")   # element-wise: y[i] depends on x[i] only
KERNEL_EXCLUDE = ("aq_bench.c",)     # timing harness (clock_gettime): not part of inference
HOST_CFLAGS = ["-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wno-unused-function", "-Wno-psabi"]
M4_CFLAGS = ["-std=c99", "-O2", "-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard",
             "-ffunction-sections", "-fdata-sections", "-ffp-contract=off", "-DAQ_BARE_METAL"]


# --- C literals ----------------------------------------------------------------------------


def _c_float(v: float) -> str:
    v = float(np.float32(v))
    if not math.isfinite(v):
        raise UserError(f"cannot emit non-finite weight value {v} as C")
    return "0.0f" if v == 0 else f"{v.hex()}f"   # hex literal: exact float32


def _c_array(ctype: str, name: str, values, fmt=str, per_line: int = 12) -> str:
    vals = [fmt(v) for v in np.asarray(values).ravel()]
    if not vals:
        vals = ["0"]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return f"static const {ctype} {name}[{len(vals)}] = {{\n  " + ",\n  ".join(lines) + "\n};\n"


def _sym(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


# --- per-layer weight forms ------------------------------------------------------------------


@dataclass
class CLayer:
    op: Op
    kind: str                        # the kernel that runs it
    arrays: list[str] = field(default_factory=list)
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
    ql = cl.op.layer
    book = _book2d(ql).astype(np.float64)
    mag = np.abs(book).max(axis=1)
    if np.any(mag <= 0):
        return False
    s = -np.log2(mag)
    codes = book / mag[:, None]
    if not (np.all(s == np.round(s)) and np.all(np.abs(s) <= 127) and np.all(np.isin(codes, (-1.0, 0.0, 1.0)))):
        return False
    c_out = ql.shape[0]
    rows = ql.indices.reshape(c_out, -1).astype(np.intp)
    channel = np.arange(c_out)[:, None] if book.shape[0] > 1 else np.zeros((c_out, 1), np.intp)
    code = (codes[np.broadcast_to(channel, rows.shape), rows] + 1).astype(np.uint8)   # -1,0,1 -> 0,1,2
    shifts = np.broadcast_to(s.astype(np.int64), (c_out,)) if book.shape[0] == 1 else s.astype(np.int64)
    packed = np.frombuffer(pack_rows(code, 2), np.uint8)
    cl.arrays.append(_c_array("uint8_t", f"{sym}_w", packed, lambda v: f"0x{int(v):02x}", 16))
    cl.arrays.append(_c_array("int8_t", f"{sym}_shift", shifts, lambda v: str(int(v)), 16))
    cl.args.update(w=f"{sym}_w", bits="2", shift=f"{sym}_shift")
    cl.weight_bytes = packed.size + c_out
    _epilogue_arrays(cl, sym, ql.scale, ql.bias)
    return True


def _as_binary(cl: CLayer, sym: str) -> bool:
    ql = cl.op.layer
    book = _book2d(ql)
    if book.shape[1] != 2 or not np.array_equal(book[:, 0], -book[:, 1]) or np.any(book[:, 1] <= 0):
        return False
    c_out, kh, kw, c_in = ql.shape
    words = (c_in + 63) // 64
    bits = np.zeros((c_out, kh, kw, words * 64), np.uint8)
    bits[..., :c_in] = ql.indices            # index 1 = +1 = bit 1
    packed = np.packbits(bits, axis=-1, bitorder="little").view("<u8").reshape(-1)
    cl.arrays.append(_c_array("uint64_t", f"{sym}_w", packed, lambda v: f"0x{int(v):016x}ull", 4))
    magnitude = np.broadcast_to(book[:, 1], (c_out,)).astype(np.float32)
    scale = magnitude if ql.scale is None else (magnitude * ql.scale).astype(np.float32)
    cl.args["w"] = f"{sym}_w"
    cl.weight_bytes = packed.size * 8
    _epilogue_arrays(cl, sym, scale, ql.bias)
    return True


def _int8_form(op: Op) -> str:
    """Why layer ``op`` cannot run on the int8 kernel ("" when it can)."""
    ql, iq = op.layer, op.input_quantizer
    if iq is None or getattr(iq, "name", "") != "uniform" or int(iq.bits) != 8:
        return f"input quantizer {getattr(iq, 'name', None)!r} is not uniform 8-bit"
    if iq.per_channel and iq.alpha is None:
        return "per-channel input range (one step per channel) has no int8 kernel form"
    if ql.scales is None or ql.zero_point != 127 or ql.levels != 255:
        return "weight codebook is not the symmetric 255-level uniform form (index - 127) * step"
    return ""


def _as_int8(cl: CLayer, sym: str) -> None:
    ql, iq = cl.op.layer, cl.op.input_quantizer
    c_out = ql.shape[0]
    w8 = (ql.indices.astype(np.int16) - 127).astype(np.int8)          # index = q + qmax
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
    cl.x_step = "-1.0f" if iq.alpha is None else _c_float(np.float32(iq.alpha / 127))
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
        cl.note = f"{ql.kind} codebook not in {ql.kind} form: runs on the lut kernel"
    cl.arrays.clear()
    _as_lut(cl, sym)
    return cl


# --- input quantizers ------------------------------------------------------------------------


def _input_quant_call(q, src: str, dst: str, n: int) -> str:
    """C statement applying input quantizer ``q`` (mirrors its TF forward pass)."""
    if q.name == "sign":
        return f"aq_q_sign({src}, {dst}, {n});"
    if q.name == "dorefa":
        return f"aq_q_dorefa({src}, {dst}, {n}, {_c_float(2 ** q.bits - 1)});"
    if q.name == "uniform":
        qmax = 2 ** (q.bits - 1) - 1
        step = "-1.0f" if q.alpha is None else _c_float(np.float32(q.alpha / qmax))
        return f"aq_q_uniform({src}, {dst}, {n}, {_c_float(qmax)}, {step});"
    if q.name == "lsq":
        qn, qp = q._range()
        return f"aq_q_lsq({src}, {dst}, {n}, {_c_float(q._step_value())}, {_c_float(qn)}, {_c_float(qp)});"
    raise UserError(f"input quantizer {q.name!r} has no C form (supported: sign, dorefa, uniform, lsq)")


_HELPERS = r"""
/* ---- element-wise ops and input quantizers (mirror autoq.quant.quantizers) ---------------- */
static void aq_act(const float *x, float *y, long n, float slope, int relu) {
    long i;
    for (i = 0; i < n; i++) { float v = (relu && x[i] < 0.0f) ? 0.0f : x[i]; y[i] = v * slope; }
}
static void aq_affine(const float *x, float *y, long npix, int c, const float *s, const float *t) {
    long p; int k;
    for (p = 0; p < npix; p++) for (k = 0; k < c; k++) y[p * c + k] = x[p * c + k] * s[k] + t[k];
}
static void aq_pool(const float *x, float *y, int h, int w, int c, int k, int s, int oh, int ow,
                    int pt, int pl, int is_max) {
    int oy, ox, ky, kx, ch;
    for (oy = 0; oy < oh; oy++) for (ox = 0; ox < ow; ox++) for (ch = 0; ch < c; ch++) {
        float acc = is_max ? -INFINITY : 0.0f; int cnt = 0;
        for (ky = 0; ky < k; ky++) { int iy = oy * s - pt + ky; if (iy < 0 || iy >= h) continue;
            for (kx = 0; kx < k; kx++) { int ix = ox * s - pl + kx; float v;
                if (ix < 0 || ix >= w) continue;
                v = x[((long)iy * w + ix) * c + ch]; cnt++;
                if (is_max) { if (v > acc) acc = v; } else acc += v; } }
        y[((long)oy * ow + ox) * c + ch] = is_max ? acc : acc / (float)cnt;
    }
}
static void aq_gap(const float *x, float *y, int h, int w, int c) {
    long p; int k; long n = (long)h * w;
    for (k = 0; k < c; k++) y[k] = 0.0f;
    for (p = 0; p < n; p++) for (k = 0; k < c; k++) y[k] += x[p * c + k];
    for (k = 0; k < c; k++) y[k] /= (float)n;
}
static void aq_add(const float *a, const float *b, float *y, long n) {
    long i; for (i = 0; i < n; i++) y[i] = a[i] + b[i];
}
static void aq_concat_part(const float *x, int cx, float *y, int cy, int offset, long npix) {
    long p; int k;
    for (p = 0; p < npix; p++) for (k = 0; k < cx; k++) y[p * cy + offset + k] = x[p * cx + k];
}
static void aq_q_sign(const float *x, float *y, long n) {
    long i; for (i = 0; i < n; i++) y[i] = x[i] >= 0.0f ? 1.0f : -1.0f;
}
static void aq_q_dorefa(const float *x, float *y, long n, float levels) {
    long i;
    for (i = 0; i < n; i++) { float v = x[i] < 0.0f ? 0.0f : (x[i] > 1.0f ? 1.0f : x[i]);
        y[i] = rintf(v * levels) / levels; }
}
/* step <= 0: dynamic, alpha = max|x| over the tensor (reduced like the TF side: float64 division). */
static void aq_q_uniform(const float *x, float *y, long n, float qmax, float step) {
    long i;
    if (step <= 0.0f) { float amax = 0.0f; double alpha;
        for (i = 0; i < n; i++) { float a = fabsf(x[i]); if (a > amax) amax = a; }
        alpha = amax > 0.0f ? (double)amax : 1.0;
        step = (float)(alpha / (double)qmax); }
    for (i = 0; i < n; i++) { float r = rintf(x[i] / step);
        r = r < -qmax ? -qmax : (r > qmax ? qmax : r); y[i] = r * step; }
}
/* int8 kernel input: q = clamp(rint(x / step), -127, 127) as int8 (rintf rounds half to even
   in the default rounding mode, like np.round / tf.round); step <= 0: max|x| / 127 as in
   aq_q_uniform. Returns the step; scale[c] = step * wscale[c] for the float epilogue. */
static float aq_q_int8(const float *x, int8_t *q, long n, float step, const float *wscale, float *scale, int c_out) {
    long i; int c;
    if (step <= 0.0f) { float amax = 0.0f; double alpha;
        for (i = 0; i < n; i++) { float a = fabsf(x[i]); if (a > amax) amax = a; }
        alpha = amax > 0.0f ? (double)amax : 1.0;
        step = (float)(alpha / 127.0); }
    for (i = 0; i < n; i++) { float r = rintf(x[i] / step);
        q[i] = (int8_t)(r < -127.0f ? -127.0f : (r > 127.0f ? 127.0f : r)); }
    for (c = 0; c < c_out; c++) scale[c] = step * wscale[c];
    return step;
}
static void aq_q_lsq(const float *x, float *y, long n, float step, float qn, float qp) {
    long i;
    for (i = 0; i < n; i++) { float r = x[i] / step; r = r < -qn ? -qn : (r > qp ? qp : r);
        y[i] = rintf(r) * step; }
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
           scratch_bytes: int = 0) -> CEmission:
    """C source for ``graph``. variant "opt" calls the optimised kernels with a static scratch
    buffer of ``scratch_bytes`` (see :func:`measure_scratch`; ``-DAUTOQ_SCRATCH_BYTES=N``
    overrides it) and falls back to the reference kernel for any layer whose scratch need, as
    computed by ``aq_scratch_bytes`` on the machine it runs on, is larger; "ref" uses the
    reference kernels only (no scratch)."""
    if variant not in ("opt", "ref"):
        raise UserError(f"C variant must be 'opt' or 'ref', got {variant!r}")
    shapes = {op.output: op.shape for op in graph.ops}
    offsets, arena = plan_arena(graph)

    def ref(t: str) -> str:
        return "input" if t == graph.input_name else f"(aq_arena + {offsets[t]})"

    layers, body, arrays = [], [], []
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
                body.append("    " + _input_quant_call(op.input_quantizer, x, "aq_qtmp", n_in))
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
    source = "\n".join([
        f"/* {model_name}.c -- generated by `autoq export`; do not edit. {comment} */",
        "#include <math.h>", "#include <stdint.h>", "#include <string.h>",
        '#include "autoq_kernels.h"', f'#include "{model_name}.h"', _HELPERS,
        "/* ---- weights (const: flash) ---- */", *arrays,
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
    main = f"""/* main.c -- host driver generated by `autoq export`.
 * Usage: ./model_host INPUT.f32 [LOGITS.f32]
 * INPUT.f32: raw little-endian float32 samples of {n_in} values (NHWC) each.
 * Prints the argmax of each sample; with LOGITS.f32 also writes the {n_out} logits per sample. */
#include <stdio.h>
#include "{model_name}.h"

int main(int argc, char **argv) {{
    static float x[AUTOQ_MODEL_INPUT_SIZE], y[AUTOQ_MODEL_OUTPUT_SIZE];
    FILE *in, *out = NULL;
    long n = 0;
    if (argc < 2) {{ fprintf(stderr, "usage: %s INPUT.f32 [LOGITS.f32]\\n", argv[0]); return 2; }}
    in = fopen(argv[1], "rb");
    if (!in) {{ perror(argv[1]); return 2; }}
    if (argc > 2 && !(out = fopen(argv[2], "wb"))) {{ perror(argv[2]); return 2; }}
    while (fread(x, sizeof(float), AUTOQ_MODEL_INPUT_SIZE, in) == AUTOQ_MODEL_INPUT_SIZE) {{
        int k, best = 0, rc = autoq_model_run(x, y);
        if (rc) {{ fprintf(stderr, "sample %ld: autoq_model_run returned %d\\n", n, rc); return 1; }}
        for (k = 1; k < AUTOQ_MODEL_OUTPUT_SIZE; k++) if (y[k] > y[best]) best = k;
        if (out) fwrite(y, sizeof(float), AUTOQ_MODEL_OUTPUT_SIZE, out); else printf("%d\\n", best);
        n++;
    }}
    fclose(in);
    if (out) fclose(out);
    fprintf(stderr, "%ld samples\\n", n);
    return 0;
}}
"""
    return CEmission(header, source, main, arena, qtmp, bits_words, layers,
                     scratch_bytes=8 * ((int(scratch_bytes) + 7) // 8 + 1) if variant == "opt" else 0,
                     i8scale_floats=i8scale)


# --- building --------------------------------------------------------------------------------


def kernel_sources(kernels_dir: Path) -> list[Path]:
    """Every kernels/src/*.c except the bench harness."""
    files = [f for f in sorted((kernels_dir / "src").glob("*.c")) if f.name not in KERNEL_EXCLUDE]
    if not any(f.name.startswith("conv_") for f in files) or not (kernels_dir / "include" / "autoq_kernels.h").is_file():
        raise UserError(f"kernel sources missing under {kernels_dir} (need include/autoq_kernels.h and src/conv_*.c)")
    return files


def copy_kernels(kernels_dir: Path, out: Path) -> Path:
    """Copy the kernel header and sources next to the model so the folder builds on its own."""
    dst = out / "kernels"
    (dst / "include").mkdir(parents=True, exist_ok=True)
    (dst / "src").mkdir(parents=True, exist_ok=True)
    for f in (kernels_dir / "include").glob("*"):
        shutil.copy2(f, dst / "include" / f.name)
    for f in kernel_sources(kernels_dir) + sorted((kernels_dir / "src").glob("*.h")) + \
            sorted((kernels_dir / "src").glob("*.inc")):
        shutil.copy2(f, dst / "src" / f.name)
    return dst


def write_makefile(out: Path, model_name: str = "model") -> Path:
    text = f"""# Generated by `autoq export`: build the model on the host or for a Cortex-M4F.
KSRC = $(filter-out kernels/src/aq_bench.c,$(wildcard kernels/src/*.c))
INC = -Ikernels/include -Ikernels/src
host: {model_name}_host
{model_name}_host: {model_name}.c main.c $(KSRC)
\tcc {' '.join(HOST_CFLAGS)} $(INC) -o $@ {model_name}.c main.c $(KSRC) -lm
# object files for a Cortex-M4F firmware (link them with your startup code and linker script)
m4:
\tmkdir -p build_m4 && cd build_m4 && arm-none-eabi-gcc {' '.join(M4_CFLAGS)} $(addprefix -I../,kernels/include kernels/src) -c $(addprefix ../,{model_name}.c $(KSRC))
.PHONY: host m4
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


def measure_scratch(em: CEmission, out: Path, work: Path, cc: str = "gcc") -> int:
    """Largest ``aq_scratch_bytes(kind, "opt", geom)`` over the layers, computed by the kernels
    themselves in a small program built and run here (the kernels' block sizes are
    compile-time constants; another architecture may need more and then uses ref kernels)."""
    out, work = Path(out).resolve(), Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    kdir = out / "kernels"
    lines = ['#include <stdio.h>', '#include "autoq_kernels.h"', "int main(void) {",
             "    aq_geom g; size_t s, m = 0;"]
    for cl in em.layers:
        h, w, c_in, c_out, kh, kw, stride, pad = cl.geom
        lines.append(f"    if (aq_geom_init(&g, {h}, {w}, {c_in}, {c_out}, {kh}, {kw}, {stride}, {pad})) return 1;")
        lines.append(f'    s = aq_scratch_bytes(AQ_{cl.kind.upper()}, "opt", &g); if (s > m) m = s;')
    lines += ['    printf("%lu\\n", (unsigned long)m);', "    return 0;", "}", ""]
    (work / "probe.c").write_text("\n".join(lines))
    exe = work / "probe"
    _run([cc, *HOST_CFLAGS, f"-I{kdir / 'include'}", f"-I{kdir / 'src'}", "-o", str(exe), str(work / "probe.c"),
          *map(str, kernel_sources(kdir)), "-lm"], work, "kernel scratch probe build")
    return int(_run([str(exe)], work, "kernel scratch probe").stdout.strip())
