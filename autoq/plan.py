"""LayerPlan: the one description of a built network used by the cost model and the exporter.

One :class:`LayerEntry` per compute layer (Conv2D, Dense) in execution order. Pooling, Add,
Flatten and activations carry no weights; BatchNorm is folded into the preceding layer's bias.
Everything here imports without TensorFlow except :func:`plan_from_model`.

Sizes (bytes), with ``n = weight_count``, ``b = weight_bits``, ``k = codebook_len``::

    weight_bytes   = n * 4                      (kind f32)
                   = ceil(n * b / 8)            (every packed kind)
    codebook_bytes = 4 * k * (c_out if per_channel else 1)   (lut: the float32 codebook)
                   = 4 * (c_out if per_channel else 1)       (shift, xnor, and, int8: one float
                                                              scale per tensor or channel; f32: 0)
    bias_bytes     = 4 * c_out                  (if the layer has a bias or a folded BatchNorm)
    in_bytes       = h_in * w_in * 8 * ceil(c_in / 64)       (xnor, and: bits packed per pixel
                                                              in 64-bit words, autoq_kernels.h)
                   = h_in * w_in * c_in * (1 for int8, 4 otherwise)
    out_bytes      = h_out * w_out * c_out * (1 for int8 (requantised int8 output), 4 otherwise)
    live_bytes     = bytes of other activations alive while the layer runs (residual branches)
    macs           = h_out * w_out * c_out * kh * kw * c_in     (dense: c_in * c_out)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from autoq.errors import UserError, where

KINDS = ("f32", "lut", "shift", "xnor", "and", "int8")
OPS = ("conv2d", "dense")
PADDINGS = ("valid", "same")

# Bytes per output value each kind writes (kernels/include/autoq_kernels.h): float for every kind except int8 (requantised int8).
OUTPUT_BYTES = {"f32": 4, "lut": 4, "shift": 4, "xnor": 4, "and": 4, "int8": 1}


@dataclass
class LayerEntry:
    """One compute layer; the field names and meaning are fixed by docs/contracts.md."""

    name: str
    op: str
    kind: str
    weight_bits: int
    act_bits: int
    c_in: int
    c_out: int
    h_in: int
    w_in: int
    h_out: int
    w_out: int
    kh: int
    kw: int
    stride: int
    padding: str
    macs: int
    weight_count: int
    codebook_len: int
    per_channel: bool
    weight_bytes: int
    codebook_bytes: int
    bias_bytes: int
    in_bytes: int
    out_bytes: int
    live_bytes: int = 0

    @property
    def outputs(self) -> int:
        """Output values computed: h_out * w_out * c_out."""
        return self.h_out * self.w_out * self.c_out

    @property
    def inputs(self) -> int:
        """Input values read: h_in * w_in * c_in."""
        return self.h_in * self.w_in * self.c_in

    @property
    def flash_bytes(self) -> int:
        """Constant data the layer stores: packed weights + codebook + bias."""
        return self.weight_bytes + self.codebook_bytes + self.bias_bytes

    @property
    def ram_bytes(self) -> int:
        """Activation bytes live while the layer runs: its input, its output, other branches."""
        return self.in_bytes + self.out_bytes + self.live_bytes


@dataclass
class LayerPlan:
    """Per-layer plan of a network; ``input_shape`` is (H, W, C) of one sample."""

    input_shape: list[int]
    layers: list[LayerEntry] = field(default_factory=list)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape), "layers": [asdict(x) for x in self.layers]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> "LayerPlan":
        """Parse and validate a plan dict; errors name ``source`` and the key path."""
        if not isinstance(data, dict):
            raise UserError(f"{where(source, None)}a LayerPlan must be a mapping, got {type(data).__name__}")
        _check_keys(data, {"input_shape", "layers"}, set(), source, "")
        shape = data["input_shape"]
        if not (isinstance(shape, list) and all(isinstance(v, int) and v > 0 for v in shape)):
            raise UserError(f"{where(source, 'input_shape')}expected a list of positive integers, got {shape!r}")
        if not isinstance(data["layers"], list):
            raise UserError(f"{where(source, 'layers')}expected a list, got {type(data['layers']).__name__}")
        layers = [_entry_from_dict(raw, source, f"layers[{i}]") for i, raw in enumerate(data["layers"])]
        return cls(input_shape=list(shape), layers=layers)


_ENTRY_FIELDS = {f.name: f for f in fields(LayerEntry)}
_OPTIONAL_ENTRY_KEYS = {"live_bytes"}


def _check_keys(data: dict, required: set[str], optional: set[str], source: str | None, path: str) -> None:
    prefix = f"{path}." if path else ""
    unknown = sorted(set(data) - required - optional)
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        raise UserError(f"{where(source, prefix + unknown[0])}unknown key; allowed keys: {allowed}")
    missing = sorted(required - set(data))
    if missing:
        raise UserError(f"{where(source, prefix + missing[0])}missing required key")


def _entry_from_dict(raw: Any, source: str | None, path: str) -> LayerEntry:
    if not isinstance(raw, dict):
        raise UserError(f"{where(source, path)}expected a mapping, got {type(raw).__name__}")
    _check_keys(raw, set(_ENTRY_FIELDS) - _OPTIONAL_ENTRY_KEYS, _OPTIONAL_ENTRY_KEYS, source, path)
    for key, value in raw.items():
        expected = _ENTRY_FIELDS[key].type
        ok = {
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        }[expected]
        if not ok:
            allowed = "a non-negative integer" if expected == "int" else f"a {expected}"
            raise UserError(f"{where(source, f'{path}.{key}')}got {value!r}; expected {allowed}")
    for key, allowed in (("op", OPS), ("kind", KINDS), ("padding", PADDINGS)):
        if raw[key] not in allowed:
            raise UserError(f"{where(source, f'{path}.{key}')}got {raw[key]!r}; allowed: {', '.join(allowed)}")
    return LayerEntry(**raw)


def packed_weight_bytes(weight_count: int, bits: int) -> int:
    """ceil(weight_count * bits / 8) (float: 4 bytes each) -- autoq.quant.packed_nbytes, the one formula."""
    from autoq.quant.quantizers import packed_nbytes  # NumPy-only module, no TensorFlow

    return packed_nbytes(weight_count, bits)


def conv_entry(name: str, *, c_in: int, c_out: int, h_in: int, w_in: int, kh: int, kw: int | None = None,
               stride: int = 1, padding: str = "valid", kind: str = "f32", weight_bits: int = 32,
               act_bits: int = 32, codebook_len: int = 0, per_channel: bool = False,
               bias: bool = True, live_bytes: int = 0) -> LayerEntry:
    """Build a conv2d entry from its shape; every derived number follows the module docstring."""
    kw = kh if kw is None else kw
    if padding == "same":
        h_out, w_out = math.ceil(h_in / stride), math.ceil(w_in / stride)
    elif padding == "valid":
        h_out, w_out = (h_in - kh) // stride + 1, (w_in - kw) // stride + 1
    else:
        raise UserError(f"padding {padding!r} not supported; allowed: {', '.join(PADDINGS)}")
    if h_out < 1 or w_out < 1:
        raise UserError(f"layer {name}: a {kh}x{kw} valid convolution does not fit a {h_in}x{w_in} input")
    return _entry(name, "conv2d", kind, weight_bits, act_bits, c_in, c_out, h_in, w_in, h_out, w_out,
                  kh, kw, stride, padding, codebook_len, per_channel, bias, live_bytes)


def dense_entry(name: str, *, n_in: int, n_out: int, kind: str = "f32", weight_bits: int = 32,
                act_bits: int = 32, codebook_len: int = 0, per_channel: bool = False,
                bias: bool = True, live_bytes: int = 0) -> LayerEntry:
    """Build a dense entry (a 1x1 'image' with n_in channels)."""
    return _entry(name, "dense", kind, weight_bits, act_bits, n_in, n_out, 1, 1, 1, 1,
                  1, 1, 1, "valid", codebook_len, per_channel, bias, live_bytes)


def _entry(name, op, kind, weight_bits, act_bits, c_in, c_out, h_in, w_in, h_out, w_out,
           kh, kw, stride, padding, codebook_len, per_channel, bias, live_bytes) -> LayerEntry:
    if kind not in KINDS:
        raise UserError(f"layer {name}: kind {kind!r} unknown; allowed: {', '.join(KINDS)}")
    weight_count = kh * kw * c_in * c_out
    if kind == "f32":
        weight_bits, codebook_len, per_channel = 32, 0, False
    weight_bytes = packed_weight_bytes(weight_count, weight_bits)
    channels = c_out if per_channel else 1
    codebook_bytes = 0 if kind == "f32" else 4 * channels * (codebook_len if kind == "lut" else 1)
    if kind in ("xnor", "and"):
        in_bytes = h_in * w_in * 8 * math.ceil(c_in / 64)
    else:
        in_bytes = h_in * w_in * c_in * (1 if kind == "int8" else 4)
    return LayerEntry(
        name=name, op=op, kind=kind, weight_bits=int(weight_bits), act_bits=int(act_bits),
        c_in=c_in, c_out=c_out, h_in=h_in, w_in=w_in, h_out=h_out, w_out=w_out, kh=kh, kw=kw,
        stride=stride, padding=padding, macs=h_out * w_out * c_out * kh * kw * c_in,
        weight_count=weight_count, codebook_len=int(codebook_len), per_channel=bool(per_channel),
        weight_bytes=weight_bytes, codebook_bytes=codebook_bytes, bias_bytes=4 * c_out if bias else 0,
        in_bytes=in_bytes, out_bytes=OUTPUT_BYTES[kind] * h_out * w_out * c_out, live_bytes=int(live_bytes))


# --- from a built Keras model (needs TensorFlow) ------------------------------------------


def plan_from_model(model) -> LayerPlan:
    """Describe a built Keras model: one entry per Conv2D/Dense layer, in execution order.

    Quantizers are read from the layers' ``kernel_quantizer`` / ``input_quantizer`` attributes
    (plain Keras layers count as float); the kind comes from
    ``autoq.quant.kinds.layer_kind``; codebook size from ``quantizer.encode`` of the actual
    kernel. ``live_bytes`` sums the float activations produced earlier and consumed later
    than this layer (residual shortcuts), found from the functional graph.
    """
    import keras  # lazy: needs TensorFlow

    from autoq.quant.kinds import layer_kind

    order = _execution_order(model)
    compute = [layer for layer in order if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    if not compute:
        raise UserError(f"model {model.name!r} has no Conv2D/Dense layers to plan")
    live = _live_bytes(model, order)
    entries = []
    for layer in compute:
        if isinstance(layer, keras.layers.DepthwiseConv2D) or getattr(layer, "groups", 1) != 1:
            raise UserError(f"layer {layer.name}: grouped/depthwise convolution is not supported by the kernels")
        weight_q = getattr(layer, "kernel_quantizer", None)
        input_q = getattr(layer, "input_quantizer", None)
        kind = layer_kind(weight_q, input_q)
        kernel = layer.kernel.numpy() if hasattr(layer.kernel, "numpy") else layer.kernel
        codebook_len, per_channel = 0, False
        if weight_q is not None and kind != "f32":
            _, codebook = weight_q.encode(kernel)
            codebook_len = int(codebook.shape[-1])
            per_channel = codebook.ndim == 2
        bits = int(weight_q.bits) if weight_q is not None else 32
        act_bits = int(input_q.bits) if input_q is not None else 32
        bias = bool(getattr(layer, "use_bias", False)) or _followed_by_batchnorm(layer)
        common = dict(kind=kind, weight_bits=bits, act_bits=act_bits, codebook_len=codebook_len,
                      per_channel=per_channel, bias=bias, live_bytes=live.get(layer.name, 0))
        in_shape = tuple(int(v) for v in layer.input.shape[1:])
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw = (int(v) for v in layer.kernel_size)
            sh, sw = (int(v) for v in layer.strides)
            if sh != sw:
                raise UserError(f"layer {layer.name}: unequal strides {layer.strides} are not supported")
            entries.append(conv_entry(layer.name, c_in=in_shape[2], c_out=int(layer.filters), h_in=in_shape[0],
                                      w_in=in_shape[1], kh=kh, kw=kw, stride=sh, padding=layer.padding, **common))
        else:
            entries.append(dense_entry(layer.name, n_in=in_shape[-1], n_out=int(layer.units), **common))
    return LayerPlan(input_shape=[int(v) for v in model.input_shape[1:]], layers=entries)


def _execution_order(model) -> list:
    """Layers in the order a functional/sequential model runs them (its topological order)."""
    return [layer for layer in model.layers if layer.__class__.__name__ != "InputLayer"]


def _consumers(layer) -> list:
    return [node.operation for node in getattr(layer, "_outbound_nodes", [])]


def _followed_by_batchnorm(layer) -> bool:
    return any(c.__class__.__name__ == "BatchNormalization" for c in _consumers(layer))


def _live_bytes(model, order) -> dict[str, int]:
    """For each layer j: float bytes of tensors produced by a layer p < j, consumed by a layer
    after j, and not read by j itself (j's own input is counted as its in_bytes)."""
    index = {layer.name: i for i, layer in enumerate(order)}
    spans = []  # (producer index, last consumer index, bytes)
    for i, layer in enumerate(order):
        users = [index[c.name] for c in _consumers(layer) if c.name in index]
        if users:
            spans.append((i, max(users), 4 * math.prod(int(v) for v in layer.output.shape[1:])))
    live = {}
    for j, layer in enumerate(order):
        reads = {p.name for p in _producers(layer)}
        live[layer.name] = sum(b for (p, last, b) in spans if p < j < last and order[p].name not in reads)
    return live


def _producers(layer) -> list:
    """Layers whose outputs ``layer`` reads."""
    result = []
    for node in getattr(layer, "_inbound_nodes", []):
        for tensor in getattr(node, "input_tensors", []):
            history = getattr(tensor, "_keras_history", None)
            if history is not None:
                result.append(history[0])
    return result
