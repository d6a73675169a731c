"""The export graph: a trained Keras model as a small list of operations on named tensors.

Both back ends (ONNX and C) read this one description, so they run the same network. Each
operation reads tensors produced earlier (execution order = Keras' topological layer order)
and writes one tensor; shapes are NHWC without the batch axis.

BatchNormalization directly after a conv/dense layer (and read by nothing else) is folded
into that layer's per-channel epilogue, the form the kernels apply after the accumulation:

    BN(acc + b) = gamma * (acc + b - mean) / sqrt(var + eps) + beta = acc * s + ((b - mean) * s + beta),
    s = gamma / sqrt(var + eps)

so the quantized weights stay untouched (folding s into the weights would destroy their
integer form). Any other BatchNormalization becomes a standalone per-channel affine op.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np

from autoq.errors import UserError
from autoq.export.qbin_layer import QLayer, encode_layer


@dataclass
class Op:
    """One operation. ``kind`` is the op type; ``attrs`` its parameters (see build_graph)."""

    name: str
    kind: str                 # input|conv2d|dense|affine|act|maxpool|avgpool|gap|flatten|add|concat|identity
    inputs: list[str]
    output: str
    shape: tuple[int, ...]    # output shape without batch (H, W, C) or (N,)
    attrs: dict = field(default_factory=dict)
    layer: QLayer | None = None      # conv2d / dense: weights, kind, epilogue
    input_quantizer: object = None   # conv2d / dense: Quantizer applied to the input (or None)
    input_form: object = None        # its deployment form (autoq.quant.forms.InputForm): what back ends render


@dataclass
class ExportGraph:
    input_name: str
    input_shape: tuple[int, ...]
    ops: list[Op]
    output: str
    output_shape: tuple[int, ...]

    @property
    def compute(self) -> list[Op]:
        return [op for op in self.ops if op.kind in ("conv2d", "dense")]

    def consumers(self, tensor: str) -> list[Op]:
        return [op for op in self.ops if tensor in op.inputs]


def _shape(tensor) -> tuple[int, ...]:
    return tuple(int(v) for v in tensor.shape[1:])


def _tensor_name(tensor) -> str:
    layer, node_index, tensor_index = tensor._keras_history
    return f"{layer.name}:{node_index}:{tensor_index}"


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _bn_params_tf(bn) -> tuple[np.ndarray, np.ndarray]:
    """(inv, t) computed by the same float32 TensorFlow ops as Keras' inference pass
    (tf.nn.batch_normalization: inv = rsqrt(var + eps) * gamma, t = beta - mean * inv), so that
    ``x * inv + t`` reproduces the Keras output bit for bit."""
    from autoq.tf_env import import_tf

    tf = import_tf()
    inv = tf.math.rsqrt(tf.convert_to_tensor(bn.moving_variance) + bn.epsilon)
    if bn.scale:
        inv = inv * tf.convert_to_tensor(bn.gamma)
    mean_inv = tf.convert_to_tensor(bn.moving_mean) * inv
    t = tf.convert_to_tensor(bn.beta) - mean_inv if bn.center else -mean_inv
    return np.asarray(inv.numpy(), np.float32), np.asarray(t.numpy(), np.float32)


def _bn_params(bn) -> tuple[np.ndarray, np.ndarray]:
    """(s, t) with BN(x) = x * s + t per channel, computed in float64 then cast."""
    c = int(bn.moving_mean.shape[0])
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones(c)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else np.zeros(c)
    mean = np.asarray(bn.moving_mean.numpy(), np.float64)
    var = np.asarray(bn.moving_variance.numpy(), np.float64)
    s = gamma / np.sqrt(var + float(bn.epsilon))
    return s, beta - mean * s


def _check_activation(layer, what: str) -> None:
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", str(act))
    if act is not None and name not in ("linear", "identity"):
        raise UserError(f"layer {layer.name}: {what} with built-in activation {name!r} is not supported by the "
                        "exporter (the zoo uses separate QActivation layers)")


def build_graph(model, fold_bn: bool = True) -> ExportGraph:
    """Translate a Keras functional model of the zoo's layer types into an ExportGraph.

    fold_bn: fold BatchNorm after conv/dense into the layer's epilogue (the compact form the
    .qbin stores). With False every BatchNorm stays a separate affine op with Keras' own float32
    constants: the ONNX and C back ends use this form, because a last-bit difference before a
    quantized activation can move a value across a rounding threshold.
    """
    inputs = _as_list(model.inputs)
    if len(inputs) != 1 or len(_as_list(model.outputs)) != 1:
        raise UserError(f"model {model.name}: the exporter needs exactly one input and one output")
    walk = _Walk(model, fold_bn, [Op("input", "input", [], _tensor_name(inputs[0]), _shape(inputs[0]))])
    for layer in model.layers:
        cls = layer.__class__.__name__
        if cls == "InputLayer":
            continue
        if cls not in _TRANSLATORS:
            raise UserError(f"layer {layer.name}: type {cls} is not supported by the exporter; supported: "
                            f"{', '.join(SUPPORTED)}")
        ins = [_tensor_name(t) for t in _as_list(layer.input)]
        op = _TRANSLATORS[cls](layer, Op(layer.name, "", ins, _tensor_name(layer.output), _shape(layer.output)), walk)
        if op is not None:
            walk.ops.append(op)
    ops = walk.ops
    out_name = _tensor_name(_as_list(model.outputs)[0])
    return ExportGraph(input_name=ops[0].output, input_shape=ops[0].shape, ops=ops, output=out_name,
                       output_shape=_shape(_as_list(model.outputs)[0]))


# --- one translator per Keras layer class: (layer, its op with kind unset, walk) -> the op, or
# None when the layer folds into the op that produces its input -----------------------------


@dataclass
class _Walk:
    """What the translators share while build_graph walks the model's layers."""

    model: object
    fold_bn: bool
    ops: list[Op]                 # the ops so far, in execution order


def _conv2d_geometry(layer) -> tuple[str, int, str]:
    if getattr(layer, "groups", 1) != 1 or layer.dilation_rate not in ((1, 1), [1, 1]):
        raise UserError(f"layer {layer.name}: grouped/dilated convolutions are not supported")
    if layer.strides[0] != layer.strides[1]:
        raise UserError(f"layer {layer.name}: unequal strides {layer.strides} are not supported")
    return "conv2d", int(layer.strides[0]), str(layer.padding)


def _dense_geometry(layer) -> tuple[str, int, str]:
    if len(_shape(layer.input)) != 1:
        raise UserError(f"layer {layer.name}: Dense on a {len(_shape(layer.input))}-D input; Flatten first")
    return "dense", 1, "valid"


def _compute(layer, op: Op, walk: _Walk, geometry) -> Op:
    """Conv2D / Dense (and their quantized QConv2D / QDense): the weights in export form."""
    from autoq.quant.kinds import layer_kind

    _check_activation(layer, layer.__class__.__name__)
    wq = getattr(layer, "kernel_quantizer", None)
    iq = getattr(layer, "input_quantizer", None)
    kind = layer_kind(wq, iq)
    kernel = np.asarray(layer.kernel.numpy(), np.float32)
    bias = np.asarray(layer.bias.numpy(), np.float32) if getattr(layer, "use_bias", False) else None
    op.kind, stride, padding = geometry(layer)
    op.layer = encode_layer(layer.name, op.kind, kind, kernel, wq,
                            act_bits=32 if iq is None else int(iq.bits), stride=stride, padding=padding,
                            bias=bias, input_form=None if iq is None else iq.input_form())
    op.input_quantizer = iq
    op.input_form = op.layer.input_form
    return op


def _batch_norm(layer, op: Op, walk: _Walk) -> Op | None:
    """An affine op, or (fold_bn) folded into the epilogue of the conv/dense that alone feeds it."""
    if not walk.fold_bn:
        s, t = _bn_params_tf(layer)
        op.kind, op.attrs = "affine", {"scale": s, "shift": t}
        return op
    s, t = _bn_params(layer)
    producer = next((o for o in walk.ops if o.output == op.inputs[0]), None)
    sole_reader = len([1 for c in walk.model.layers if c is not layer and
                       any(_tensor_name(x) == op.inputs[0] for x in _as_list(getattr(c, "input", [])))]) == 0
    if producer is not None and producer.kind in ("conv2d", "dense") and sole_reader \
            and producer.layer.scale is None:
        ql = producer.layer
        b = np.zeros(len(s)) if ql.bias is None else ql.bias.astype(np.float64)
        ql.scale = s.astype(np.float32)
        ql.bias = (b * s + t).astype(np.float32)
        producer.output = op.output        # the conv now writes the BN output directly
        producer.attrs["folded_bn"] = layer.name
        return None
    op.kind, op.attrs = "affine", {"scale": s.astype(np.float32), "shift": t.astype(np.float32)}
    return op


def _q_activation(layer, op: Op, walk: _Walk) -> Op:
    op.kind, op.attrs = "act", {"slope": float(layer.slope), "relu": bool(layer.relu)}
    if op.attrs == {"slope": 1.0, "relu": False}:
        op.kind, op.attrs = "identity", {}   # y = x: no C, not priced (the compiler drops it anyway)
    return op


def _relu(layer, op: Op, walk: _Walk) -> Op:
    """ReLU and Activation("relu" / "linear")."""
    cls = layer.__class__.__name__
    fn = getattr(layer, "activation", None)
    name = getattr(fn, "__name__", "relu") if cls == "Activation" else "relu"
    if cls == "ReLU" and (layer.max_value is not None or float(layer.negative_slope) != 0.0
                          or float(layer.threshold) != 0.0):
        raise UserError(f"layer {layer.name}: only plain ReLU is supported")
    if name not in ("relu", "linear"):
        raise UserError(f"layer {layer.name}: activation {name!r} is not supported (relu, linear)")
    op.kind, op.attrs = "act", {"slope": 1.0, "relu": name == "relu"}
    return op


def _pooling(layer, op: Op, walk: _Walk) -> Op:
    if layer.pool_size[0] != layer.pool_size[1] or layer.strides[0] != layer.strides[1]:
        raise UserError(f"layer {layer.name}: non-square pooling is not supported")
    op.kind = "maxpool" if layer.__class__.__name__ == "MaxPooling2D" else "avgpool"
    op.attrs = {"size": int(layer.pool_size[0]), "stride": int(layer.strides[0]), "padding": str(layer.padding)}
    return op


def _global_average_pooling(layer, op: Op, walk: _Walk) -> Op:
    if getattr(layer, "keepdims", False):
        raise UserError(f"layer {layer.name}: keepdims=True is not supported")
    op.kind = "gap"
    return op


def _concatenate(layer, op: Op, walk: _Walk) -> Op:
    if layer.axis not in (-1, 3):
        raise UserError(f"layer {layer.name}: concatenation along axis {layer.axis} (only channels)")
    op.kind = "concat"
    return op


def _plain(layer, op: Op, walk: _Walk, kind: str) -> Op:
    """A layer without parameters to check: Flatten, Add, Dropout (identity at inference)."""
    op.kind = kind
    return op


_CONV2D = partial(_compute, geometry=_conv2d_geometry)
_DENSE = partial(_compute, geometry=_dense_geometry)
_TRANSLATORS = {
    "QConv2D": _CONV2D, "QDense": _DENSE, "Conv2D": _CONV2D, "Dense": _DENSE, "BatchNormalization": _batch_norm,
    "QActivation": _q_activation, "ReLU": _relu, "MaxPooling2D": _pooling, "AveragePooling2D": _pooling,
    "GlobalAveragePooling2D": _global_average_pooling, "Flatten": partial(_plain, kind="flatten"),
    "Add": partial(_plain, kind="add"), "Concatenate": _concatenate, "Dropout": partial(_plain, kind="identity"),
    "Activation": _relu,
}
SUPPORTED = ("InputLayer", *_TRANSLATORS)


def pad_amounts(size_in: int, k: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(out, pad_before, pad_after) of TensorFlow's 'same'/'valid' rule along one axis."""
    if padding == "same":
        out = -(-size_in // stride)
        total = max((out - 1) * stride + k - size_in, 0)
        return out, total // 2, total - total // 2
    return (size_in - k) // stride + 1, 0, 0
