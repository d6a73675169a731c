"""ONNX export of an ExportGraph: quantized weights as integer initialisers + DequantizeLinear.

Weights are rendered from each layer's declared weight form (autoq.quant.forms): the integer
forms (binary {-1,+1}, ternary {-1,0,+1}, integer grids such as DoReFa's odd integers or the
uniform / LSQ grid) are stored as the integer levels ``z`` in the narrowest type onnxruntime
dequantizes (int4 when z fits [-8, 7], packed two per byte in raw_data; else int8, else int16)
followed by a (per-axis) DequantizeLinear with the form's scales, so the file size follows the
bit width. Table forms are stored as uint8 indices + a Gather from the float table (per-channel
tables as float). Float layers keep float initialisers.

Input forms: sign -> GreaterOrEqual + Where; grid -> Div, Round, Clip, Mul with the fixed step.

Layout: tensors are NHWC like Keras; convolutions and pooling (global average pooling too:
GlobalAveragePool sums each sample's channel on its own, where a ReduceMean over NHWC's H, W
axes sums in another order for batch 1 than for batch N) run in NCHW between two Transposes
(onnxruntime removes the pairs when it optimises). Dense layers run as 1x1
convolutions: batch-size independent, and onnxruntime's default DequantizeLinear -> MatMul fusion
(MatMulNBits, which quantizes the float activations to int8) cannot change the result. The exporter runs the model
in onnxruntime with its DEFAULT session options and compares it with Keras, so any drift fails
the export.
"""
from __future__ import annotations

import logging

import numpy as np

from autoq.errors import UserError
from autoq.export.graph import ExportGraph, Op, pad_amounts
from autoq.export.levels import LEVEL_CHECK_SAMPLES, compare_levels, describe, explained, quantized_layers

log = logging.getLogger(__name__)

OPSET = 21
INPUT_NAME, OUTPUT_NAME = "input", "logits"


class _Builder:
    def __init__(self, use_int4: bool):
        from onnx import helper

        self.helper = helper
        self.nodes, self.inits, self.use_int4 = [], [], use_int4
        self.count = 0
        self.weight_storage: dict[str, str] = {}

    def fresh(self, base: str) -> str:
        self.count += 1
        return f"{base}__{self.count}"

    def const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.fresh(name)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], base: str, **attrs) -> str:
        out = self.fresh(base)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


# --- weights ---------------------------------------------------------------------------------


def _int4_raw(values: np.ndarray) -> bytes:
    """ONNX INT4 raw_data: two's-complement nibbles, element 2k in the low nibble of byte k."""
    v = (np.asarray(values, np.int64).ravel() & 0xF).astype(np.uint8)
    if v.size % 2:
        v = np.append(v, np.uint8(0))
    return (v[0::2] | (v[1::2] << 4)).tobytes()


def _weight(b: _Builder, op: Op, keras_shape_axis: int) -> str:
    """The float weight tensor of a compute op in Keras layout (conv HWIO, dense (in, out)),
    rendered from the layer's weight form: integer forms (binary, ternary, integer) as the
    integer levels z in the narrowest type (int4 / int8 / int16) + DequantizeLinear with the
    form's scales; table forms as uint8 indices + Gather; float as float."""
    from onnx import TensorProto

    ql = op.layer
    name = op.name
    if ql.indices is None:
        b.weight_storage[name] = "float32"
        return b.const(f"{name}_w", ql.keras_kernel())
    to_keras = (lambda a: a.reshape(ql.shape[0], ql.shape[3]).T) if op.kind == "dense" else \
        (lambda a: a.transpose(1, 2, 3, 0))
    z = ql.integers()
    if z is None:
        if np.asarray(ql.codebook).ndim != 1:
            b.weight_storage[name] = "float32 (per-channel table)"
            return b.const(f"{name}_w", ql.keras_kernel())
        b.weight_storage[name] = "uint8 indices + Gather"
        table = b.const(f"{name}_codebook", np.asarray(ql.codebook, np.float32))
        ind = b.node("Cast", [b.const(f"{name}_idx", to_keras(ql.indices))], f"{name}_idx64", to=TensorProto.INT64)
        return b.node("Gather", [table, ind], f"{name}_w")
    scales = np.asarray(ql.scales, np.float32)
    per_channel = scales.size > 1
    q = to_keras(z)
    if b.use_int4 and -8 <= int(q.min(initial=0)) and int(q.max(initial=0)) <= 7:
        dtype = "int4"
        qname = b.fresh(f"{name}_wq")
        b.inits.append(b.helper.make_tensor(qname, TensorProto.INT4, q.shape, _int4_raw(q), raw=True))
        zp = b.fresh(f"{name}_wzp")
        n_zp = scales.size if per_channel else 1
        b.inits.append(b.helper.make_tensor(zp, TensorProto.INT4, [n_zp] if per_channel else [],
                                            _int4_raw(np.zeros(n_zp)), raw=True))
    else:
        dtype = "int8" if int(np.abs(q).max(initial=0)) <= 127 else "int16"
        q = q.astype(np.int8 if dtype == "int8" else np.int16)
        qname = b.const(f"{name}_wq", q)
        zp = b.const(f"{name}_wzp", np.zeros(scales.size if per_channel else (), q.dtype))
    b.weight_storage[name] = dtype
    scale = b.const(f"{name}_wscale", scales if per_channel else scales[:1].reshape(()))
    attrs = {"axis": keras_shape_axis} if per_channel else {}
    return b.node("DequantizeLinear", [qname, scale, zp], f"{name}_w", **attrs)


# --- input forms (autoq.quant.forms.InputForm.apply) ----------------------------------------------


def _input_quant(b: _Builder, x: str, form, base: str) -> str:
    f = lambda v: b.const(f"{base}_c", np.array(v, np.float32))  # noqa: E731
    if form.op == "sign":
        ge = b.node("GreaterOrEqual", [x, f(0.0)], f"{base}_ge")
        return b.node("Where", [ge, f(1.0), f(-1.0)], f"{base}_sign")
    if form.op == "grid":
        step = f(np.float32(form.step))
        r = b.node("Round", [b.node("Div", [x, step], f"{base}_div")], f"{base}_round")
        c = b.node("Clip", [r, f(float(form.qmin)), f(float(form.qmax))], f"{base}_clip")
        return b.node("Mul", [c, step], f"{base}_q")
    raise UserError(f"input form {form.op!r} has no ONNX form (supported: sign, grid)")


# --- ops -------------------------------------------------------------------------------------


def _nchw(b, x, base):
    return b.node("Transpose", [x], f"{base}_nchw", perm=[0, 3, 1, 2])


def _nhwc(b, x, base):
    return b.node("Transpose", [x], f"{base}_nhwc", perm=[0, 2, 3, 1])


def _epilogue(b: _Builder, y: str, op: Op) -> str:
    ql = op.layer
    if ql.scale is not None:
        y = b.node("Mul", [y, b.const(f"{op.name}_scale", ql.scale)], f"{op.name}_scaled")
    if ql.bias is not None:
        y = b.node("Add", [y, b.const(f"{op.name}_bias", ql.bias)], f"{op.name}_biased")
    return y


def _emit(b: _Builder, op: Op, tensors: dict[str, str], shapes: dict[str, tuple]) -> str:
    """The ONNX nodes of one op; returns the name of its output tensor."""
    xs = [tensors[i] for i in op.inputs]
    if op.kind in ("conv2d", "dense") and op.input_form is not None:
        xs[0] = _input_quant(b, xs[0], op.input_form, f"{op.name}_inq")
    if op.kind not in _EMITTERS:
        raise UserError(f"op {op.name}: kind {op.kind!r} has no ONNX form")
    return _EMITTERS[op.kind](b, op, xs, shapes)


# one emitter per op kind: (builder, op, its input tensors, tensor shapes) -> output tensor


def _conv2d(b: _Builder, op: Op, xs: list[str], shapes: dict[str, tuple]) -> str:
    ql, base = op.layer, op.name
    c_out, kh, kw, _ = ql.shape
    h, w, _ = shapes[op.inputs[0]]
    _, pt, pb = pad_amounts(h, kh, ql.stride, ql.padding)
    _, pl, pr = pad_amounts(w, kw, ql.stride, ql.padding)
    w_hwio = _weight(b, op, keras_shape_axis=3)
    w_oihw = b.node("Transpose", [w_hwio], f"{base}_oihw", perm=[3, 2, 0, 1])
    y = b.node("Conv", [_nchw(b, xs[0], base), w_oihw], f"{base}_conv", kernel_shape=[kh, kw],
               strides=[ql.stride, ql.stride], pads=[pt, pl, pb, pr])
    return _epilogue(b, _nhwc(b, y, base), op)


def _dense(b: _Builder, op: Op, xs: list[str], shapes: dict[str, tuple]) -> str:
    # A 1x1 Conv over (N, n_in, 1, 1): onnxruntime convolves each sample on its own, so a
    # sample's logits do not depend on the batch size (MatMul switches between GEMV and GEMM
    # kernels with another summation order), and the default DequantizeLinear -> MatMul fusion
    # (MatMulNBits, which quantizes the float activations to int8 on the fly) does not apply.
    base = op.name
    n_out, n_in = op.layer.shape[0], op.layer.shape[3]
    w = b.node("Transpose", [_weight(b, op, keras_shape_axis=1)], f"{base}_wt", perm=[1, 0])
    w = b.node("Reshape", [w, b.const(f"{base}_wshape", np.array([n_out, n_in, 1, 1], np.int64))], f"{base}_w4")
    x4 = b.node("Reshape", [xs[0], b.const(f"{base}_xshape", np.array([-1, n_in, 1, 1], np.int64))], f"{base}_x4")
    y = b.node("Conv", [x4, w], f"{base}_conv", kernel_shape=[1, 1])
    y = b.node("Reshape", [y, b.const(f"{base}_yshape", np.array([-1, n_out], np.int64))], f"{base}_y")
    return _epilogue(b, y, op)


def _affine(b: _Builder, op: Op, xs: list[str], shapes: dict[str, tuple]) -> str:
    y = b.node("Mul", [xs[0], b.const(f"{op.name}_s", op.attrs["scale"])], f"{op.name}_mul")
    return b.node("Add", [y, b.const(f"{op.name}_t", op.attrs["shift"])], f"{op.name}_add")


def _act(b: _Builder, op: Op, xs: list[str], shapes: dict[str, tuple]) -> str:
    x, base = xs[0], op.name
    y = b.node("Relu", [x], f"{base}_relu") if op.attrs["relu"] else x
    if op.attrs["slope"] != 1.0:
        y = b.node("Mul", [y, b.const(f"{base}_slope", np.array(op.attrs["slope"], np.float32))], f"{base}_mul")
    return y if y != x else b.node("Identity", [x], f"{base}_id")


def _pool(b: _Builder, op: Op, xs: list[str], shapes: dict[str, tuple]) -> str:
    k, s = op.attrs["size"], op.attrs["stride"]
    h, w, _ = shapes[op.inputs[0]]
    _, pt, pb = pad_amounts(h, k, s, op.attrs["padding"])
    _, pl, pr = pad_amounts(w, k, s, op.attrs["padding"])
    attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[pt, pl, pb, pr])
    if op.kind == "avgpool":
        attrs["count_include_pad"] = 0
    pool = "MaxPool" if op.kind == "maxpool" else "AveragePool"
    return _nhwc(b, b.node(pool, [_nchw(b, xs[0], op.name)], f"{op.name}_pool", **attrs), op.name)


def _gap(b: _Builder, op: Op, xs: list[str], shapes: dict[str, tuple]) -> str:
    # GlobalAveragePool in NCHW: every (sample, channel) row is summed on its own. A
    # ReduceMean over the H, W axes of NHWC takes another summation order for batch 1 (a
    # plain row reduction) than for batch N (a strided one): 1e-7 relative, but not batch-free.
    y = b.node("GlobalAveragePool", [_nchw(b, xs[0], op.name)], f"{op.name}_gap")
    return b.node("Flatten", [y], f"{op.name}_flat", axis=1)


def _flatten(b: _Builder, op: Op, xs: list[str], shapes: dict[str, tuple]) -> str:
    return b.node("Flatten", [xs[0]], f"{op.name}_flat", axis=1)


def _add(b: _Builder, op: Op, xs: list[str], shapes: dict[str, tuple]) -> str:
    y = xs[0]
    for other in xs[1:]:
        y = b.node("Add", [y, other], f"{op.name}_add")
    return y


def _concat(b: _Builder, op: Op, xs: list[str], shapes: dict[str, tuple]) -> str:
    return b.node("Concat", xs, f"{op.name}_concat", axis=-1)


def _identity(b: _Builder, op: Op, xs: list[str], shapes: dict[str, tuple]) -> str:
    return b.node("Identity", [xs[0]], f"{op.name}_id")


_EMITTERS = {"conv2d": _conv2d, "dense": _dense, "affine": _affine, "act": _act, "maxpool": _pool,
             "avgpool": _pool, "gap": _gap, "flatten": _flatten, "add": _add, "concat": _concat,
             "identity": _identity}


def build_onnx(graph: ExportGraph, use_int4: bool = True, name: str = "autoq", debug_outputs: bool = False):
    """The ONNX ModelProto of ``graph`` (batch dimension symbolic) and the weight storage types.

    debug_outputs: also expose every op's output as a graph output named after the op.
    """
    import onnx
    from onnx import TensorProto, helper

    b = _Builder(use_int4)
    tensors, shapes = {graph.input_name: INPUT_NAME}, {}
    for op in graph.ops:
        shapes[op.output] = op.shape
        if op.kind == "input":
            continue
        tensors[op.output] = _emit(b, op, tensors, shapes)
    b.nodes.append(helper.make_node("Identity", [tensors[graph.output]], [OUTPUT_NAME], name="output"))
    debug = []
    if debug_outputs:
        for op in graph.ops[1:]:
            b.nodes.append(helper.make_node("Identity", [tensors[op.output]], [f"debug:{op.name}"]))
            debug.append(helper.make_tensor_value_info(f"debug:{op.name}", TensorProto.FLOAT, ["batch", *op.shape]))
    g = helper.make_graph(
        b.nodes, name, [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", *graph.input_shape])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", *graph.output_shape]), *debug],
        b.inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="autoq")
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model, b.weight_storage


def run_onnx(model_bytes: bytes, x: np.ndarray, per_sample: bool = False, batch: int = 256,
             exact: bool = False) -> np.ndarray:
    """Logits of onnxruntime for ``x`` (NHWC float32) with the DEFAULT session options (what
    users run), in batches of ``batch`` (``per_sample``: one at a time).

    exact: run without graph optimisations instead (``ORT_DISABLE_ALL``), for diagnosis only.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    if exact:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    step = 1 if per_sample else batch
    outs = [sess.run([OUTPUT_NAME], {INPUT_NAME: x[i:i + step]})[0] for i in range(0, len(x), step)]
    return np.concatenate(outs, axis=0)


BATCH_TOLERANCE = 1e-5      # one sample alone vs in a batch of 256 (absolute: the graph is batch-free)


def logit_scale(logits: np.ndarray) -> np.ndarray:
    """Per sample max(1, max |logit|): what a summation-order difference is relative to."""
    return np.maximum(1.0, np.abs(logits).max(axis=1)) if len(logits) else np.ones(0)


def level_agreement(graph: ExportGraph, model_proto, x: np.ndarray, keras_inputs: dict) -> dict:
    """Quantized inputs of ONNX (its debug outputs) vs Keras' (``keras_inputs[layer]``), layer
    by layer, for samples ``x`` (autoq.export.levels)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(None, {INPUT_NAME: x})))
    producer = {op.output: op.name for op in graph.ops if op.kind != "input"}
    ours = {op.name: x if op.inputs[0] == graph.input_name else outs[f"debug:{producer[op.inputs[0]]}"]
            for op in quantized_layers(graph)}
    return compare_levels(graph, ours, keras_inputs, len(x))


def export_onnx(graph: ExportGraph, x: np.ndarray, reference: np.ndarray, path, tolerance: float = 1e-4,
                allowed_flips: int = 0, keras_inputs=None) -> dict:
    """Write ``path`` and check onnxruntime (default session options) against ``reference``
    (Keras logits for ``x``).

    int4 storage is tried first and replaced by int8 if onnxruntime cannot run it. Raises
    UserError (the export fails) if any argmax differs, if more than ``allowed_flips`` samples
    differ by more than ``tolerance`` x max(1, the sample's max |logit|) (:func:`logit_scale`;
    the absolute difference is reported too), or if a sample run alone differs from the same
    sample in a batch by more than BATCH_TOLERANCE (absolute). ``allowed_flips`` > 0 only for models with quantized
    activations, where a last-bit difference in a preceding sum can move a value to the next
    level (the same rule as the C check). ``keras_inputs(x) -> {layer: Keras input}`` (models
    with quantized inputs): when more samples than allowed differ, the quantized inputs of those
    samples are compared layer by layer (:func:`level_agreement`) and the check passes if, at
    the first layer where each sample's levels part, at most MAX_LEVEL_SHARE of the values are
    one level apart and none more (deep networks: a few level flips per layer add up to many
    samples, and move the layers after them by more).
    """
    last_error = None
    for use_int4 in (True, False):
        model, storage = build_onnx(graph, use_int4=use_int4)
        data = model.SerializeToString()
        try:
            got = run_onnx(data, x)
        except Exception as exc:  # noqa: BLE001 -- an unsupported int4 kernel: retry with int8
            last_error = exc
            log.warning("onnxruntime could not run the %s model (%s)", "int4" if use_int4 else "int8", exc)
            continue
        check = _check_against_keras(graph, data, got, x, reference, tolerance, allowed_flips, keras_inputs,
                                     use_int4, storage)
        with open(path, "wb") as fh:
            fh.write(data)
        exact = run_onnx(data, x, exact=True)
        check["no_optimisation_max_abs_diff"] = float(np.max(np.abs(exact - reference), initial=0.0))
        return check
    raise UserError(f"ONNX export failed: onnxruntime cannot run the model: {last_error}")


def _check_against_keras(graph: ExportGraph, data: bytes, got: np.ndarray, x: np.ndarray, reference: np.ndarray,
                         tolerance: float, allowed_flips: int, keras_inputs, use_int4: bool, storage: dict) -> dict:
    """The checks of :func:`export_onnx` on onnxruntime's logits ``got`` of the model ``data``;
    UserError when they fail, else the numbers for the manifest."""
    per_sample_diff = np.max(np.abs(got - reference), axis=1) if len(x) else np.zeros(0)
    diff = float(per_sample_diff.max(initial=0.0))
    # onnxruntime sums in another order than TensorFlow: an error relative to the size of
    # the logits (ResNet-20 trained for an epoch has logits in the hundreds: 1e-3 apart is
    # float rounding there), so the bound scales with the sample's max |logit| (at least 1)
    rel_diff = per_sample_diff / logit_scale(reference)
    over = int(np.sum(rel_diff > tolerance))
    argmax_differ = int(np.sum(np.argmax(got, 1) != np.argmax(reference, 1))) if len(x) else 0
    alone = run_onnx(data, x, per_sample=True)
    batch_diff = float(np.max(np.abs(alone - got), initial=0.0))
    batch_rel = float(np.max(np.abs(alone - got).max(axis=1) / logit_scale(got), initial=0.0)) if len(x) else 0.0
    levels = None
    if allowed_flips and over > allowed_flips and keras_inputs is not None and not argmax_differ:
        worst = np.argsort(-per_sample_diff)[:LEVEL_CHECK_SAMPLES]
        levels = level_agreement(graph, build_onnx(graph, use_int4, debug_outputs=True)[0], x[worst],
                                 keras_inputs(x[worst]))
        if explained(levels):
            allowed_flips = over          # single-level flips where ONNX and Keras part
    if over > allowed_flips or argmax_differ or batch_diff > BATCH_TOLERANCE:
        raise UserError(f"ONNX export check failed (onnxruntime default session options): logits differ from "
                        f"Keras by up to {diff:.3g} ({float(rel_diff.max(initial=0.0)):.3g} of the sample's max "
                        f"|logit|; tolerance {tolerance:g} x max(1, max |logit|)) on {over} of {len(x)} test samples "
                        f"(allowed {allowed_flips}: quantized-activation level flips), {argmax_differ} argmax "
                        f"differ; one sample alone vs in a batch: max diff {batch_diff:.3g} (allowed "
                        f"{BATCH_TOLERANCE:g})" + (f"; {describe(levels)}" if levels else ""))
    return {"max_abs_diff": diff, "argmax_agreement": 1.0 - argmax_differ / len(x) if len(x) else 1.0,
            "argmax_differ": argmax_differ, "samples": int(len(x)), "weights": storage,
            "max_rel_diff": float(rel_diff.max(initial=0.0)), "tolerance": f"{tolerance:g} x max(1, max |logit|)",
            "samples_beyond_tolerance": over, "allowed_level_flips": allowed_flips,
            "batch1_vs_batch_max_rel_diff": batch_rel,
            "batch1_vs_batch_max_abs_diff": batch_diff, "opset": OPSET, "int4": use_int4,
            "level_check": levels,
            "session_options": "onnxruntime defaults (graph_optimization_level ORT_ENABLE_ALL)"}
