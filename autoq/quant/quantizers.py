"""The quantizer library: one small object per method, one registry.

Each quantizer gives
- ``q(x)``: the TensorFlow forward pass with its straight-through gradient (tf.custom_gradient),
- ``q.encode(w) -> (indices, codebook)`` and ``q.decode(indices, codebook)``: the integer form
  used by the cost model, the packer, the C kernels and ONNX, with ``decode(*encode(w)) == q(w)``
  exactly (statistics such as mean|w| are reduced in float64 on both sides so the float32
  results agree bit for bit),
- ``bits``, ``kind`` (f32, lut, shift, xnor, and, int8), ``signed``, ``role`` and a complete
  ``get_config``.

Index convention: indices are uint8 and address ``codebook[i]`` (per output channel:
``codebook[c, i]``, c = last axis of ``w``); levels are sorted ascending, so for binary
quantizers index 0 is the negative value and index 1 the positive one (bit 1 = +1).

Formulas are the thesis's (methods.md section 1, equations 3-x); TensorFlow is imported only
when a forward pass runs.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar

import numpy as np

from autoq.kinds import KINDS  # the one list of kernel kinds
_REGISTRY: dict[str, type["Quantizer"]] = {}


def register(cls: type["Quantizer"]) -> type["Quantizer"]:
    """Class decorator: register a quantizer under its ``name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"quantizer {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def names(role: str | None = None) -> list[str]:
    """Registered quantizer names, optionally only those usable for ``role``."""
    return sorted(n for n, c in _REGISTRY.items() if role is None or c.role in (role, "both"))


def get(identifier: Any = None, **params: Any) -> "Quantizer | None":
    """Resolve ``None``, a name, a config dict or a Quantizer to a quantizer object.

    ``None`` (and the names "none"/"float") mean no quantization and return ``None``.
    Raises ValueError listing the known names or the allowed parameters.
    """
    if identifier is None:
        if params:
            raise ValueError(f"parameters {sorted(params)} given without a quantizer name")
        return None
    if isinstance(identifier, Quantizer):
        if params:
            raise ValueError("cannot pass parameters together with a quantizer object")
        return identifier
    if isinstance(identifier, dict):
        config = dict(identifier)
        if "name" not in config:
            raise ValueError(f"quantizer config {identifier!r} has no 'name'; known names: {names()}")
        name = config.pop("name")
        config.update(params)
        return get(name, **config)
    if not isinstance(identifier, str):
        raise ValueError(f"cannot interpret {identifier!r} as a quantizer; use a name from {names()}")
    if identifier in ("none", "float"):
        return get(None, **params)
    if identifier not in _REGISTRY:
        raise ValueError(f"unknown quantizer {identifier!r}; known: {', '.join(names())}")
    cls = _REGISTRY[identifier]
    allowed = cls.parameters()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"quantizer {identifier!r} has no parameter(s) {unknown}; allowed: {sorted(allowed) or 'none'}")
    return cls(**params)


def for_role(identifier: Any, role: str) -> "Quantizer | None":
    """Resolve ``identifier`` (see :func:`get`) for use on weights or activations.

    Quantizers that serve both roles are fixed to ``role``; a quantizer that does not apply
    to ``role`` is a ValueError listing the ones that do.
    """
    if role not in ("weight", "activation"):
        raise ValueError(f"role must be 'weight' or 'activation', got {role!r}")
    q = get(identifier)
    if q is None:
        return None
    if q.role not in (role, "both"):
        raise ValueError(f"quantizer {q.name!r} does not apply to {role}s; allowed: {', '.join(names(role))}")
    return q.for_role(role) if hasattr(q, "for_role") else q


def packed_nbytes(count: int, bits: int) -> int:
    """Bytes to store ``count`` values of ``bits`` bits packed densely (float: 4 bytes each)."""
    return 4 * int(count) if bits >= 32 else (int(count) * int(bits) + 7) // 8


def _check_bits(name: str, bits: Any, low: int, high: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not low <= bits <= high:
        raise ValueError(f"quantizer {name!r}: bits must be an integer in [{low}, {high}], got {bits!r}")
    return int(bits)


def _check_positive(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"quantizer {name!r}: {key} must be a positive number, got {value!r}")
    return float(value)


def _is_power_of_two(x: float) -> bool:
    mantissa, _ = math.frexp(x)
    return x > 0 and mantissa == 0.5


def _reduce_axes(ndim: int, per_channel: bool) -> tuple[int, ...]:
    """Axes reduced for a statistic: all, or all but the last (output channel) axis."""
    return tuple(range(ndim - 1)) if per_channel and ndim > 1 else tuple(range(ndim))


def _np_stat(values: np.ndarray, per_channel: bool, fn) -> np.ndarray:
    """A float64 reduction, cast to float32, keeping dims for broadcasting."""
    axes = _reduce_axes(values.ndim, per_channel)
    return fn(values.astype(np.float64), axis=axes, keepdims=True).astype(np.float32)


def _tf_stat(tf, values, per_channel: bool, fn):
    axes = list(_reduce_axes(len(values.shape), per_channel))
    return tf.cast(fn(tf.cast(values, tf.float64), axis=axes, keepdims=True), tf.float32)


def _straight_through(tf, x, forward, gate=None):
    """Apply ``forward`` with the straight-through gradient dy (times ``gate(x)`` if given)."""

    @tf.custom_gradient
    def _op(v):
        def grad(dy):
            return dy if gate is None else dy * gate(v)

        return forward(v), grad

    return _op(tf.convert_to_tensor(x, dtype=tf.float32))


class Quantizer:
    """Base class. Subclasses set ``name``, ``role``, ``summary`` and implement
    ``_indices_and_codebook`` (NumPy) and ``_tf_forward`` (TensorFlow)."""

    name: ClassVar[str]
    role: ClassVar[str]  # "weight" | "activation" | "both"
    summary: ClassVar[str]
    clip_weights: ClassVar[bool] = False  # BinaryConnect: clip shadow weights to [-1, 1]

    @classmethod
    def parameters(cls) -> dict[str, Any]:
        """Constructor parameters with their defaults."""
        sig = inspect.signature(cls.__init__)
        return {k: p.default for k, p in sig.parameters.items() if k != "self"}

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **{k: getattr(self, k) for k in self.parameters()}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{self.name}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantizer) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.get_config().items())))

    # --- properties every consumer reads -------------------------------------------------
    bits: int = 32
    per_channel: bool = False

    @property
    def kind(self) -> str:
        return "lut"

    @property
    def signed(self) -> bool:
        return True

    # --- NumPy side ----------------------------------------------------------------------
    def encode(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer form of ``w``: (uint8 indices of w's shape, float32 codebook)."""
        w = np.asarray(w, dtype=np.float32)
        idx, codebook = self._indices_and_codebook(w)
        return idx.astype(np.uint8), np.ascontiguousarray(codebook, dtype=np.float32)

    def decode(self, indices: np.ndarray, codebook: np.ndarray) -> np.ndarray:
        """Values of ``indices`` in ``codebook`` (per-layer ``(L,)`` or per-channel ``(C, L)``)."""
        indices = np.asarray(indices).astype(np.intp)
        codebook = np.asarray(codebook, dtype=np.float32)
        if codebook.ndim == 1:
            return codebook[indices]
        channel = np.arange(codebook.shape[0]).reshape((1,) * (indices.ndim - 1) + (-1,))
        return codebook[np.broadcast_to(channel, indices.shape), indices]

    def levels(self) -> int:
        """Number of codebook entries."""
        return 2 ** self.bits

    def _indices_and_codebook(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    # --- TensorFlow side -----------------------------------------------------------------
    def build(self, layer, shape, init_values=None) -> None:
        """Create trainable state on ``layer`` (only learned quantizers need it)."""

    def init_from(self, values) -> None:
        """Re-initialise learned state from ``values`` (e.g. after loading baseline weights)."""

    def __call__(self, x, training: bool | None = None):
        from autoq.tf_env import import_tf

        return self._tf_forward(import_tf(), x, training)

    def _tf_forward(self, tf, x, training):
        raise NotImplementedError


def _per_channel_codebook(per_channel_values: np.ndarray, levels: np.ndarray, per_channel: bool) -> np.ndarray:
    """Codebook ``levels * scale``: (L,) for one scale, (C, L) per output channel."""
    scale = per_channel_values.reshape(-1, 1).astype(np.float32)
    book = (levels.astype(np.float32)[None, :] * scale).astype(np.float32)
    return book if per_channel else book[0]


# ---------------------------------------------------------------------------------------
# Binary
# ---------------------------------------------------------------------------------------


class _SignBase(Quantizer):
    """sign(x) with sign(0) = +1, values scale * {-1, +1}."""

    bits = 1

    def _scale_np(self, w: np.ndarray) -> np.ndarray:
        return np.ones((1,) * w.ndim, dtype=np.float32)

    def _scale_tf(self, tf, x):
        return tf.constant(1.0, tf.float32)

    def _indices_and_codebook(self, w):
        scale = self._scale_np(w)
        idx = (w >= 0).astype(np.uint8)
        return idx, _per_channel_codebook(scale, np.array([-1.0, 1.0]), self.per_channel)

    def _sign_tf(self, tf, x):
        return tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x))

    def _tf_forward(self, tf, x, training):
        x = tf.convert_to_tensor(x, tf.float32)
        scale = tf.stop_gradient(self._scale_tf(tf, x))
        return _straight_through(tf, x, lambda v: self._sign_tf(tf, v) * scale, self._gate(tf))

    def _gate(self, tf):
        return None


@register
class BinaryConnect(_SignBase):
    """BinaryConnect (Courbariaux 2015), eq. 3-1: w_q = +1 if w >= 0 else -1.

    Backward: straight-through (dw = dy); shadow weights are clipped to [-1, 1] after updates.
    """

    name = "bc"
    role = "weight"
    summary = "BinaryConnect: sign(w) in {-1,+1}, STE, weights clipped to [-1,1]"
    clip_weights = True

    def __init__(self):
        pass

    @property
    def kind(self) -> str:
        return "shift"  # add/subtract with float activations; xnor/and with binary inputs


@register
class BinaryConnectStochastic(BinaryConnect):
    """Stochastic BinaryConnect, eqs. 3-2/3-3: during training w_q = +1 with probability
    hard_sigmoid(w / H) = clip((w / H + 1) / 2, 0, 1), else -1; at inference the deterministic
    sign (so the deployed weights are binary). Backward: straight-through.

    H is the weights' natural range: given, or (default) the Glorot bound
    sqrt(6 / (fan_in + fan_out)) of the kernel's shape, as Courbariaux's code normalises by a
    Glorot factor. With H = 1 and freshly initialised (small) weights p is ~0.5 everywhere and
    the sampled weights are pure noise; the layer cannot learn in a few epochs.
    """

    name = "bc_stoch"
    summary = "stochastic BinaryConnect: +1 with p=hard_sigmoid(w/H) in training, sign at inference"

    def __init__(self, seed: int | None = None, h: float | None = None):
        self.seed = seed
        self.h = None if h is None else _check_positive(self.name, "h", h)

    def range_for(self, shape) -> float:
        """H for a kernel of this shape (Keras layout: receptive field x c_in x c_out)."""
        if self.h is not None:
            return self.h
        shape = [int(d) for d in shape]
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in = receptive * (shape[-2] if len(shape) > 1 else 1)
        fan_out = receptive * shape[-1]
        return math.sqrt(6.0 / max(fan_in + fan_out, 1))

    def _tf_forward(self, tf, x, training):
        if not training:
            return super()._tf_forward(tf, x, training)
        x = tf.convert_to_tensor(x, tf.float32)
        h = self.range_for(x.shape)

        def sample(v):
            p = tf.clip_by_value((v / h + 1.0) / 2.0, 0.0, 1.0)
            u = tf.random.uniform(tf.shape(v), seed=self.seed)
            return tf.where(u < p, tf.ones_like(v), -tf.ones_like(v))

        return _straight_through(tf, x, sample)


@register
class ScaledBinary(_SignBase):
    """Binary weights times a constant (thesis BC-1.x fix): w_q = scale * sign(w).

    A power-of-two scale (default 2^-3 = 0.125, BC-1.2) is a shift in hardware. STE backward.
    """

    name = "bc_scaled"
    role = "weight"
    summary = "BC with a constant scale (BC-1.x fix; 2^-k is a shift): scale*sign(w)"
    clip_weights = True

    def __init__(self, scale: float = 0.125):
        self.scale = _check_positive(self.name, "scale", scale)

    def _scale_np(self, w):
        return np.full((1,) * w.ndim, self.scale, dtype=np.float32)

    def _scale_tf(self, tf, x):
        return tf.constant(self.scale, tf.float32)

    @property
    def kind(self) -> str:
        return "shift" if _is_power_of_two(self.scale) else "lut"


@register
class XnorWeight(_SignBase):
    """XNOR-Net / DoReFa binary weights, eq. 3-6: w_q = sign(w) * E(|w|).

    E(|w|) per layer, or per output channel (XNOR-Net) with ``per_channel``. STE backward
    (the scale is treated as a constant)."""

    name = "xnor"
    role = "weight"
    summary = "binary weights times mean|w| (per layer or per output channel)"

    def __init__(self, per_channel: bool = False):
        self.per_channel = bool(per_channel)

    def _scale_np(self, w):
        return _np_stat(np.abs(w), self.per_channel, np.mean)

    def _scale_tf(self, tf, x):
        return _tf_stat(tf, tf.abs(x), self.per_channel, tf.reduce_mean)


@register
class SignActivation(_SignBase):
    """BNN activation (Hubara/Courbariaux 2016), eq. 3-4: sign(x) in {-1, +1}, sign(0) = +1.

    Backward: hard-tanh straight-through, dx = dy * 1_{|x| <= 1} (eq. 3-5)."""

    name = "sign"
    role = "activation"
    summary = "BNN sign activation {-1,+1}; gradient passed only where |x|<=1"

    def __init__(self):
        pass

    @property
    def kind(self) -> str:
        return "xnor"

    def _gate(self, tf):
        return lambda v: tf.cast(tf.abs(v) <= 1.0, tf.float32)


# ---------------------------------------------------------------------------------------
# Ternary
# ---------------------------------------------------------------------------------------


@register
class Ternary(Quantizer):
    """Ternary Weight Networks (Li 2016), eqs. 3-10..3-13: D = 0.7 * E(|w|);
    w_q = a * (+1 if w > D, 0 if |w| <= D, -1 if w < -D), a = mean of |w_i| over |w_i| > D.
    STE backward. Two bits per weight; codebook [-a, 0, +a]."""

    name = "twn"
    role = "weight"
    summary = "Ternary Weight Networks: {-a,0,+a}, threshold 0.7*mean|w|"
    bits = 2

    def __init__(self, threshold: float = 0.7, per_channel: bool = False):
        self.threshold = _check_positive(self.name, "threshold", threshold)
        self.per_channel = bool(per_channel)

    def levels(self) -> int:
        return 3

    def _np_parts(self, w):
        a64 = np.abs(w.astype(np.float64))
        axes = _reduce_axes(w.ndim, self.per_channel)
        delta = self.threshold * a64.mean(axis=axes, keepdims=True)
        above = a64 > delta
        count = np.maximum(above.sum(axis=axes, keepdims=True), 1)
        alpha = ((a64 * above).sum(axis=axes, keepdims=True) / count).astype(np.float32)
        return delta, alpha

    def _indices_and_codebook(self, w):
        delta, alpha = self._np_parts(w)
        w64 = w.astype(np.float64)
        idx = np.where(w64 > delta, 2, np.where(w64 < -delta, 0, 1))
        return idx, _per_channel_codebook(alpha, np.array([-1.0, 0.0, 1.0]), self.per_channel)

    def _tf_forward(self, tf, x, training):
        x = tf.convert_to_tensor(x, tf.float32)
        axes = list(_reduce_axes(len(x.shape), self.per_channel))

        def forward(v):
            a64 = tf.abs(tf.cast(v, tf.float64))
            delta = self.threshold * tf.reduce_mean(a64, axis=axes, keepdims=True)
            above = tf.cast(a64 > delta, tf.float64)
            count = tf.maximum(tf.reduce_sum(above, axis=axes, keepdims=True), 1.0)
            alpha = tf.cast(tf.reduce_sum(a64 * above, axis=axes, keepdims=True) / count, tf.float32)
            v64 = tf.cast(v, tf.float64)
            one = tf.ones_like(v)
            t = tf.where(v64 > delta, one, tf.where(v64 < -delta, -one, tf.zeros_like(v)))
            return t * alpha

        return _straight_through(tf, x, forward)


@register
class TrainedTernary(Quantizer):
    """Trained Ternary Quantization (Zhu 2017): TWN's threshold D = t * E(|w|) with learned
    asymmetric scales: w_q = +a_p if w > D, 0 if |w| <= D, -a_n if w < -D.

    Backward (the paper's): dw = a_p dy above D, dy inside, a_n dy below -D;
    da_p = sum of dy over w > D, da_n = -sum of dy over w < -D. a_p and a_n are variables of the
    layer, initialised to the TWN scale of the initial weights. Codebook [-a_n, 0, +a_p].
    """

    name = "ttq"
    role = "weight"
    summary = "Trained Ternary Quantization: {-a_n,0,+a_p} with learned scales"
    bits = 2

    def __init__(self, threshold: float = 0.7):
        self.threshold = _check_positive(self.name, "threshold", threshold)
        self.pos = self.neg = None  # layer variables once built

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}

    def levels(self) -> int:
        return 3

    def _twn_scale(self, values) -> float:
        _, alpha = Ternary(self.threshold)._np_parts(np.asarray(values, dtype=np.float32))
        return float(alpha.reshape(-1)[0]) or 1.0

    def build(self, layer, shape, init_values=None) -> None:
        import keras

        init = 1.0 if init_values is None else self._twn_scale(init_values)
        const = keras.initializers.Constant(init)
        self.pos = layer.add_weight(name="ttq_pos", shape=(), initializer=const, trainable=True)
        self.neg = layer.add_weight(name="ttq_neg", shape=(), initializer=const, trainable=True)

    def init_from(self, values) -> None:
        if self.pos is not None:
            init = self._twn_scale(values)
            self.pos.assign(init)
            self.neg.assign(init)

    def _scales(self) -> tuple[np.float32, np.float32]:
        if self.pos is None:
            return np.float32(1.0), np.float32(1.0)
        return np.float32(np.asarray(self.pos.numpy())), np.float32(np.asarray(self.neg.numpy()))

    def _indices_and_codebook(self, w):
        a64 = np.abs(w.astype(np.float64))
        delta = self.threshold * a64.mean()
        w64 = w.astype(np.float64)
        idx = np.where(w64 > delta, 2, np.where(w64 < -delta, 0, 1))
        a_p, a_n = self._scales()
        return idx, np.array([-a_n, 0.0, a_p], dtype=np.float32)

    def _tf_forward(self, tf, x, training):
        x = tf.convert_to_tensor(x, tf.float32)
        a_p = tf.convert_to_tensor(self.pos if self.pos is not None else 1.0, tf.float32)
        a_n = tf.convert_to_tensor(self.neg if self.neg is not None else 1.0, tf.float32)

        @tf.custom_gradient
        def _op(v, ap, an):
            v64 = tf.cast(v, tf.float64)
            delta = self.threshold * tf.reduce_mean(tf.abs(v64))
            pos, neg = v64 > delta, v64 < -delta
            zero = tf.zeros_like(v)
            y = tf.where(pos, ap + zero, tf.where(neg, -an + zero, zero))

            def grad(dy):
                dv = tf.where(pos, ap * dy, tf.where(neg, an * dy, dy))
                return dv, tf.reduce_sum(tf.where(pos, dy, zero)), -tf.reduce_sum(tf.where(neg, dy, zero))

            return y, grad

        return _op(x, a_p, a_n)


# ---------------------------------------------------------------------------------------
# k-bit
# ---------------------------------------------------------------------------------------


@register
class DoReFa(Quantizer):
    """DoReFa-Net (Zhou 2016) k-bit quantizer; quantize_k(x) = round((2^k - 1) x) / (2^k - 1) (3-7).

    Weights, k >= 2 (eq. 3-8): w_q = 2 quantize_k(tanh(w) / (2 max|tanh(w)|) + 1/2) - 1;
    k = 1: w_q = sign(w) * E(|w|) (the DoReFa binary weight). Activations: quantize_k(clip(x, 0, 1));
    k = 1 gives {0, 1}. Backward: straight-through (activations: zero outside [0, 1]).
    One object serves both roles; ``mode`` says which formula applies.
    """

    name = "dorefa"
    role = "both"
    summary = "DoReFa k-bit: weights via tanh normalisation, activations quantize_k(clip(x,0,1))"

    def __init__(self, bits: int = 2, mode: str = "auto"):
        self.bits = _check_bits(self.name, bits, 1, 8)
        if mode not in ("auto", "weight", "activation"):
            raise ValueError(f"quantizer 'dorefa': mode must be 'auto', 'weight' or 'activation', got {mode!r}")
        self.mode = mode

    def for_role(self, role: str) -> "DoReFa":
        """The same quantizer fixed to ``role`` (layers call this; 'auto' cannot encode)."""
        return self if self.mode == role else DoReFa(self.bits, role)

    def levels(self) -> int:
        return 2 ** self.bits

    @property
    def signed(self) -> bool:
        return self.mode == "weight"

    @property
    def kind(self) -> str:
        if self.mode == "activation" and self.bits == 1:
            return "and"
        return "lut"

    def _mode(self) -> str:
        if self.mode == "auto":
            raise ValueError("dorefa quantizer used without a role: call .for_role('weight'|'activation')")
        return self.mode

    def _n(self) -> np.float32:
        return np.float32(2 ** self.bits - 1)

    def _indices_and_codebook(self, w):
        n = self._n()
        if self._mode() == "activation":
            idx = np.round(np.clip(w, np.float32(0), np.float32(1)) * n)
            return idx, np.arange(self.levels(), dtype=np.float32) / n
        if self.bits == 1:
            return XnorWeight()._indices_and_codebook(w)
        t = np.tanh(w.astype(np.float64))
        t = (t / (2.0 * np.abs(t).max(initial=0.0) + 1e-30) + 0.5).astype(np.float32)
        idx = np.round(t * n)
        return idx, np.float32(2) * np.arange(self.levels(), dtype=np.float32) / n - np.float32(1)

    def _tf_forward(self, tf, x, training):
        x = tf.convert_to_tensor(x, tf.float32)
        n = float(self._n())
        if self._mode() == "activation":
            inside = lambda v: tf.cast((v >= 0.0) & (v <= 1.0), tf.float32)  # noqa: E731
            return _straight_through(tf, x, lambda v: tf.round(tf.clip_by_value(v, 0.0, 1.0) * n) / n, inside)
        if self.bits == 1:
            return XnorWeight()._tf_forward(tf, x, training)

        def forward(v):
            t = tf.tanh(tf.cast(v, tf.float64))
            t = tf.cast(t / (2.0 * tf.reduce_max(tf.abs(t)) + 1e-30) + 0.5, tf.float32)
            return 2.0 * tf.round(t * n) / n - 1.0

        return _straight_through(tf, x, forward)


@register
class Uniform(Quantizer):
    """Symmetric uniform k-bit quantizer (Jacob 2018 scale quantization, methods.md table):
    x_q = clip(round(x / step), -(2^(b-1) - 1), 2^(b-1) - 1) * step, step = alpha / (2^(b-1) - 1).

    alpha = max|x| per tensor (or per output channel for weights) unless given. b = 8 is the
    int8 kind. Backward: straight-through inside [-alpha, alpha], zero outside.
    """

    name = "uniform"
    role = "both"
    summary = "symmetric uniform k-bit (int8 at 8 bits), scale max|x| or fixed alpha"

    def __init__(self, bits: int = 8, per_channel: bool = False, alpha: float | None = None):
        self.bits = _check_bits(self.name, bits, 2, 8)
        self.per_channel = bool(per_channel)
        self.alpha = None if alpha is None else _check_positive(self.name, "alpha", alpha)

    @property
    def kind(self) -> str:
        return "int8" if self.bits == 8 else "lut"

    def _qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def levels(self) -> int:
        return 2 * self._qmax() + 1

    def _step_np(self, w):
        if self.alpha is not None:
            alpha = np.full((1,) * w.ndim, self.alpha, dtype=np.float64)
        else:
            alpha = _np_stat(np.abs(w), self.per_channel, np.max).astype(np.float64)
        return (np.where(alpha > 0, alpha, 1.0) / self._qmax()).astype(np.float32)

    def _indices_and_codebook(self, w):
        step = self._step_np(w)
        q = np.clip(np.round(w / step), -self._qmax(), self._qmax())
        levels = np.arange(-self._qmax(), self._qmax() + 1)
        return q + self._qmax(), _per_channel_codebook(step, levels, self.per_channel and self.alpha is None)

    def _tf_forward(self, tf, x, training):
        x = tf.convert_to_tensor(x, tf.float32)
        qmax = float(self._qmax())
        if self.alpha is not None:
            step = tf.constant(np.float32(self.alpha / qmax))
        else:
            alpha = tf.cast(_tf_stat(tf, tf.abs(x), self.per_channel, tf.reduce_max), tf.float64)
            step = tf.cast(tf.where(alpha > 0, alpha, tf.ones_like(alpha)) / qmax, tf.float32)
        step = tf.stop_gradient(step)
        inside = lambda v: tf.cast(tf.abs(v) <= step * qmax, tf.float32)  # noqa: E731
        return _straight_through(
            tf, x, lambda v: tf.clip_by_value(tf.round(v / step), -qmax, qmax) * step, inside)


@register
class LearnedStepSize(Quantizer):
    """Learned Step Size Quantization (Esser 2019): v_bar = round(clip(v / s, -Q_N, Q_P)),
    v_hat = v_bar * s, with the step s a trainable variable of the layer.

    Signed (weights): Q_N = 2^(b-1), Q_P = 2^(b-1) - 1; unsigned (activations): Q_N = 0,
    Q_P = 2^b - 1. Gradients: dv = dy inside the range, 0 outside; ds = g * sum(dy * (round(v/s) - v/s))
    inside, -Q_N / Q_P outside, g = 1 / sqrt(N Q_P). Step initialised to 2 E|v| / sqrt(Q_P).
    """

    name = "lsq"
    role = "both"
    summary = "LSQ: k-bit with a learned step size (signed for weights, unsigned for activations)"

    def __init__(self, bits: int = 4, signed: bool = True, init_step: float = 0.05):
        self.bits = _check_bits(self.name, bits, 2, 8)
        self._signed = bool(signed)
        self.init_step = _check_positive(self.name, "init_step", init_step)
        self.step = None  # a layer variable once built

    def get_config(self):
        return {"name": self.name, "bits": self.bits, "signed": self._signed, "init_step": self.init_step}

    def for_role(self, role: str) -> "LearnedStepSize":
        return LearnedStepSize(self.bits, role == "weight", self.init_step)

    @property
    def signed(self) -> bool:
        return self._signed

    @property
    def kind(self) -> str:
        return "int8" if self.bits == 8 and self._signed else "lut"

    def _range(self) -> tuple[int, int]:
        if self._signed:
            return 2 ** (self.bits - 1), 2 ** (self.bits - 1) - 1
        return 0, 2 ** self.bits - 1

    def levels(self) -> int:
        qn, qp = self._range()
        return qn + qp + 1

    def build(self, layer, shape, init_values=None) -> None:
        import keras

        init = self.init_step if init_values is None else self._initial_step(init_values)
        self.step = layer.add_weight(
            name=f"lsq_step_{len(layer.weights)}", shape=(), initializer=keras.initializers.Constant(init),
            trainable=True)

    def _initial_step(self, values) -> float:
        mean_abs = float(np.mean(np.abs(np.asarray(values, dtype=np.float64))))
        return 2.0 * mean_abs / math.sqrt(self._range()[1]) if mean_abs > 0 else self.init_step

    def init_from(self, values) -> None:
        if self.step is not None:
            self.step.assign(self._initial_step(values))

    def _step_value(self) -> np.float32:
        if self.step is None:
            return np.float32(self.init_step)
        return np.float32(abs(float(np.asarray(self.step.numpy() if hasattr(self.step, "numpy") else self.step))))

    def _indices_and_codebook(self, w):
        qn, qp = self._range()
        s = self._step_value()
        q = np.round(np.clip(w / s, np.float32(-qn), np.float32(qp)))
        return q + qn, np.arange(-qn, qp + 1, dtype=np.float32) * s

    def _tf_forward(self, tf, x, training):
        x = tf.convert_to_tensor(x, tf.float32)
        qn, qp = (float(v) for v in self._range())
        s = tf.abs(tf.convert_to_tensor(self.step if self.step is not None else self.init_step, tf.float32))
        grad_scale = 1.0 / math.sqrt(max(qp, 1.0))

        @tf.custom_gradient
        def _op(v, step):
            r = v / step
            y = tf.round(tf.clip_by_value(r, -qn, qp)) * step

            def grad(dy):
                below, above = r < -qn, r > qp
                inside = tf.cast(~(below | above), tf.float32)
                ds_elem = tf.where(below, -qn, tf.where(above, qp, tf.round(r) - r))
                # the batch dimension of activations is unknown while tracing: count at run time
                g = grad_scale * tf.math.rsqrt(tf.cast(tf.maximum(tf.size(v), 1), tf.float32))
                return dy * inside, tf.reduce_sum(dy * ds_elem) * g

            return y, grad

        return _op(x, s)


def describe_all() -> list[dict[str, Any]]:
    """One record per registered quantizer (the `autoq quantizers --json` contract)."""
    rows = []
    for name in names():
        cls = _REGISTRY[name]
        q = cls()
        roles = ("weight", "activation") if cls.role == "both" else (cls.role,)
        kinds = {role: for_role(q, role).kind for role in roles}
        rows.append({
            "name": name,
            "role": cls.role,
            "applies_to": ["weight", "activation"] if cls.role == "both" else [cls.role],
            "parameters": {k: v for k, v in cls.parameters().items()},
            "bits": q.bits,
            "kind": kinds.get("weight", kinds.get("activation")),
            "kind_by_role": kinds,
            "summary": cls.summary,
        })
    return rows
