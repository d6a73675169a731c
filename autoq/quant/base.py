"""The quantizer base class, the registry and the helpers the quantizer families share.

``autoq.quant.quantizers`` is the public face (it imports every family so they register);
see its docstring for what a quantizer gives.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar

import numpy as np

from autoq.quant.forms import EncodedWeights, InputForm, WeightForm

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
    their deployment form (``weight_form`` + ``_indices_and_scale`` / ``_indices_and_table``,
    or ``input_form``) and ``_tf_forward`` (TensorFlow); encode/decode follow from the form."""

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
        """The kernel kind this quantizer implies on its own (from its deployment form)."""
        return (self.input_form() if self.deploy_role == "activation" else self.weight_form()).kind

    @property
    def signed(self) -> bool:
        return True

    @property
    def deploy_role(self) -> str:
        """"weight" or "activation": which deployment form applies (quantizers serving both
        roles are fixed to one by :func:`for_role`)."""
        return self.role

    # --- deployment forms (autoq.quant.forms): what the exporters render -----------------
    def weight_form(self) -> WeightForm:
        """What the weights become (binary, ternary, integer grid or table)."""
        raise NotImplementedError(f"quantizer {self.name!r} declares no weight form")

    def input_form(self) -> InputForm:
        """The input operation at inference with its fixed range (sign or k-bit grid)."""
        raise NotImplementedError(f"quantizer {self.name!r} declares no input form")

    def encode_weights(self, w: np.ndarray) -> EncodedWeights:
        """``w`` in its weight form: indices, codebook and (integer forms) the scales."""
        form = self.weight_form()
        w = np.asarray(w, dtype=np.float32)
        if form.form == "table":
            idx, book = self._indices_and_table(w)
            return EncodedWeights(form, idx.astype(np.uint8), np.ascontiguousarray(book, dtype=np.float32))
        idx, scale = self._indices_and_scale(w)
        scale = np.ascontiguousarray(np.asarray(scale, np.float32).reshape(-1))
        book = _per_channel_codebook(scale, np.asarray(form.levels), form.per_channel)
        return EncodedWeights(form, idx.astype(np.uint8), book, scale)

    def _indices_and_scale(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer weight forms: (indices, scale per tensor or per output channel)."""
        raise NotImplementedError

    def _indices_and_table(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Table weight forms: (indices, codebook)."""
        raise NotImplementedError

    # --- NumPy side ----------------------------------------------------------------------
    def encode(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer form of ``w``: (uint8 indices of w's shape, float32 codebook)."""
        w = np.asarray(w, dtype=np.float32)
        if self.deploy_role == "activation":
            form = self.input_form()
            return form.indices(w).astype(np.uint8), form.values(np.arange(len(form.levels)))
        enc = self.encode_weights(w)
        return enc.indices, enc.codebook

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
        if self.deploy_role == "activation":
            return len(self.input_form().levels)
        return self.weight_form().count

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
