"""LayerPlan: the one description of the deployed network, priced by the cost model.

:func:`autoq.export.planning.plan_from_model` derives it from the very C source ``autoq export``
ships (the export graph of :mod:`autoq.export.graph` rendered by :mod:`autoq.export.c_emit`),
so its byte counts are those of the emitted arrays and buffers, not a model of them:

- one :class:`LayerEntry` per compute layer (Conv2D, Dense), in execution order, with the
  kernel kind the C runs it on (a layer whose codebook lacks its kind's form runs as lut) and
  the bytes of its ``const`` arrays (``weight_bytes``: the packed weights, word padding
  included; ``codebook_bytes``: codebook / shifts / int8 weight scales; ``bias_bytes``: the
  per-channel epilogue scale and bias);
- one :class:`OpEntry` per non-kernel operation the C performs (ReLU/QActivation, an unfolded
  BatchNorm, pooling, residual add, concatenation, copies, and the input quantize / int8
  quantize / bit packing in front of a kernel), with the values it reads and writes;
- ``arena_bytes``: the static activation RAM of the emitted C (arena planned from tensor
  lifetimes + quantized-input buffer + packed bits + int8 scales); the kernels' scratch and
  the stack depend on the target and are added by the cost model (:mod:`autoq.cost.model`).

Closed-form helpers :func:`conv_entry` / :func:`dense_entry` build entries from shapes alone
(benchmarks, calibration, tests), with the storage rules of :mod:`autoq.kinds`::

    weight_bytes, codebook_bytes = autoq.kinds.weight_storage(kind, ...)
    bias_bytes     = 4 * c_out * (bias + scale)    (autoq.kinds.epilogue_bytes)
    in_bytes       = 4 * h_in * w_in * c_in        (float activations in the arena)
    out_bytes      = 4 * h_out * w_out * c_out     (every kind writes float)
    macs           = h_out * w_out * c_out * kh * kw * c_in     (dense: c_in * c_out)

Everything here imports without TensorFlow, and nothing from :mod:`autoq.export` (the plan is
the data model the export fills in, below it in the data flow).
"""
from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from autoq.errors import UserError, where
from autoq.kinds import KINDS, epilogue_bytes, weight_storage

OPS = ("conv2d", "dense")
PADDINGS = ("valid", "same")
# Non-kernel operations of the exported C (OpEntry.op).
OP_KINDS = ("act", "affine", "maxpool", "avgpool", "gap", "add", "concat", "copy", "quantize",
            "quantize_int8", "pack_bits")
OUTPUT_BYTES = {kind: 4 for kind in KINDS}   # every kernel writes float32 outputs


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
        """Constant data the layer stores: packed weights + codebook/shifts/scales + epilogue."""
        return self.weight_bytes + self.codebook_bytes + self.bias_bytes

    @property
    def ram_bytes(self) -> int:
        """Activation bytes live while the layer runs: its input, its output, other branches."""
        return self.in_bytes + self.out_bytes + self.live_bytes


@dataclass
class OpEntry:
    """One non-kernel operation of the exported C, in execution order."""

    name: str             # Keras layer name; input quantize/pack: "<compute layer>:quantize" / ":pack"
    op: str               # one of OP_KINDS
    in_elements: int      # values read (sum over inputs)
    out_elements: int     # values written
    window: int = 1       # pooling: taps per output (size * size); 1 otherwise
    const_bytes: int = 0  # constant arrays the op reads (an unfolded BatchNorm: scale + shift)


@dataclass
class LayerPlan:
    """Deployment plan of a network; ``input_shape`` is (H, W, C) of one sample.

    ``arena_bytes`` = 0 marks a plan built from shapes alone (no emitted C): the cost model
    then bounds RAM by the largest layer's input + output + live bytes.
    """

    input_shape: list[int]
    layers: list[LayerEntry] = field(default_factory=list)
    ops: list[OpEntry] = field(default_factory=list)
    arena_bytes: int = 0

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def const_bytes(self) -> int:
        """Every constant array of the emitted C: the layers' and the ops' (BatchNorm)."""
        return sum(x.flash_bytes for x in self.layers) + sum(op.const_bytes for op in self.ops)

    def to_dict(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape), "layers": [asdict(x) for x in self.layers],
                "ops": [asdict(x) for x in self.ops], "arena_bytes": int(self.arena_bytes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> "LayerPlan":
        """Parse and validate a plan dict; errors name ``source`` and the key path."""
        if not isinstance(data, dict):
            raise UserError(f"{where(source, None)}a LayerPlan must be a mapping, got {type(data).__name__}")
        _check_keys(data, {"input_shape", "layers"}, {"ops", "arena_bytes"}, source, "")
        shape = data["input_shape"]
        if not (isinstance(shape, list) and all(isinstance(v, int) and v > 0 for v in shape)):
            raise UserError(f"{where(source, 'input_shape')}expected a list of positive integers, got {shape!r}")
        for key in ("layers", "ops"):
            if not isinstance(data.get(key, []), list):
                raise UserError(f"{where(source, key)}expected a list, got {type(data[key]).__name__}")
        arena = data.get("arena_bytes", 0)
        if not _non_negative_int(arena):
            raise UserError(f"{where(source, 'arena_bytes')}got {arena!r}; expected a non-negative integer")
        layers = [_from_dict(LayerEntry, raw, source, f"layers[{i}]") for i, raw in enumerate(data["layers"])]
        ops = [_from_dict(OpEntry, raw, source, f"ops[{i}]") for i, raw in enumerate(data.get("ops", []))]
        return cls(input_shape=list(shape), layers=layers, ops=ops, arena_bytes=arena)


def _non_negative_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_keys(data: dict, required: set[str], optional: set[str], source: str | None, path: str) -> None:
    prefix = f"{path}." if path else ""
    unknown = sorted(set(data) - required - optional)
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        raise UserError(f"{where(source, prefix + str(unknown[0]))}unknown key; allowed keys: {allowed}")
    missing = sorted(required - set(data))
    if missing:
        raise UserError(f"{where(source, prefix + missing[0])}missing required key")


_CHOICES = {"op": OPS, "kind": KINDS, "padding": PADDINGS}
_POSITIVE = ("c_in", "c_out", "h_in", "w_in", "h_out", "w_out", "kh", "kw", "stride")


def _from_dict(cls, raw: Any, source: str | None, path: str):
    """A LayerEntry / OpEntry from its dict, every field type- and range-checked."""
    if not isinstance(raw, dict):
        raise UserError(f"{where(source, path)}expected a mapping, got {type(raw).__name__}")
    spec = {f.name: f for f in fields(cls)}
    required = {n for n, f in spec.items() if f.default is MISSING and f.default_factory is MISSING}
    _check_keys(raw, required, set(spec) - required, source, path)
    for key, value in raw.items():
        expected = spec[key].type
        ok = {"str": isinstance(value, str), "bool": isinstance(value, bool),
              "int": _non_negative_int(value)}[expected]
        if not ok:
            allowed = "a non-negative integer" if expected == "int" else f"a {expected}"
            raise UserError(f"{where(source, f'{path}.{key}')}got {value!r}; expected {allowed}")
    if cls is LayerEntry:
        for key in _POSITIVE:
            if raw[key] < 1:
                raise UserError(f"{where(source, f'{path}.{key}')}got {raw[key]!r}; expected an integer >= 1")
    choices = dict(_CHOICES, op=OP_KINDS) if cls is OpEntry else _CHOICES
    for key, allowed in choices.items():
        if key in raw and raw[key] not in allowed:
            raise UserError(f"{where(source, f'{path}.{key}')}got {raw[key]!r}; allowed: {', '.join(allowed)}")
    return cls(**raw)


def conv_entry(name: str, *, c_in: int, c_out: int, h_in: int, w_in: int, kh: int, kw: int | None = None,
               stride: int = 1, padding: str = "valid", kind: str = "f32", weight_bits: int = 32,
               act_bits: int = 32, codebook_len: int = 0, per_channel: bool = False,
               bias: bool = True, scale: bool = False, live_bytes: int = 0) -> LayerEntry:
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
                  kh, kw, stride, padding, codebook_len, per_channel, bias, scale, live_bytes)


def dense_entry(name: str, *, n_in: int, n_out: int, kind: str = "f32", weight_bits: int = 32,
                act_bits: int = 32, codebook_len: int = 0, per_channel: bool = False,
                bias: bool = True, scale: bool = False, live_bytes: int = 0) -> LayerEntry:
    """Build a dense entry (a 1x1 'image' with n_in channels)."""
    return _entry(name, "dense", kind, weight_bits, act_bits, n_in, n_out, 1, 1, 1, 1,
                  1, 1, 1, "valid", codebook_len, per_channel, bias, scale, live_bytes)


def _entry(name, op, kind, weight_bits, act_bits, c_in, c_out, h_in, w_in, h_out, w_out,
           kh, kw, stride, padding, codebook_len, per_channel, bias, scale, live_bytes) -> LayerEntry:
    if kind not in KINDS:
        raise UserError(f"layer {name}: kind {kind!r} unknown; allowed: {', '.join(KINDS)}")
    if kind == "f32":
        weight_bits, codebook_len, per_channel = 32, 0, False
    weight_bytes, param_bytes = weight_storage(kind, c_out=c_out, kh=kh, kw=kw, c_in=c_in, bits=weight_bits,
                                               codebook_len=codebook_len, per_channel=per_channel)
    return LayerEntry(
        name=name, op=op, kind=kind, weight_bits=int(weight_bits), act_bits=int(act_bits),
        c_in=c_in, c_out=c_out, h_in=h_in, w_in=w_in, h_out=h_out, w_out=w_out, kh=kh, kw=kw,
        stride=stride, padding=padding, macs=h_out * w_out * c_out * kh * kw * c_in,
        weight_count=kh * kw * c_in * c_out, codebook_len=int(codebook_len), per_channel=bool(per_channel),
        weight_bytes=weight_bytes, codebook_bytes=param_bytes,
        bias_bytes=epilogue_bytes(kind, c_out, bias, scale), in_bytes=4 * h_in * w_in * c_in,
        out_bytes=OUTPUT_BYTES[kind] * h_out * w_out * c_out, live_bytes=int(live_bytes))
