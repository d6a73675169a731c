"""Per-layer quantization configuration: plain data with a JSON round trip and validation.

A :class:`QuantConfig` says, for every conv/dense layer of a zoo model, which quantizer its
weights use, which quantizer its *input* activation uses (larq's convention: the
``activation`` of layer L quantizes the tensor L reads) and the slope of the ReLU that
follows L (the thesis's BC-2.x fix); plus per-model options:

- ``shortcut``: ``quantized`` (residual 1x1 projections quantized like any layer), ``float``
  (kept float) or ``removed`` (deleted; identity shortcuts stay) — thesis 4.3.3.2.
- ``first_last_float``: the first and last compute layers stay entirely float (weights,
  input, slope 1) whatever the default or overrides say. Without it, the first layer's
  *input* (the image) still takes no activation quantizer from ``default`` — only from an
  explicit entry in ``layers``.

JSON form::

    {"model": "resnet20", "shortcut": "float", "first_last_float": true,
     "default": {"weight": {"name": "bc_scaled", "scale": 0.125}, "activation": null,
                 "relu_slope": 1.0},
     "layers": {"stage2_block1_conv1": {"weight": {"name": "twn"},
                                        "activation": {"name": "dorefa", "bits": 2}}}}

A layer entry may give any subset of weight / activation / relu_slope; missing keys come from
``default``. Quantizers are stored as their ``get_config()`` dicts (``{"name": ..., params}``)
so the config stays plain data; :meth:`LayerQuant.weight_quantizer` builds the object.
This module imports without TensorFlow.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoq.errors import UserError, where
from autoq.fileio import atomic_write_text, check_depth, load_json, read_text
from autoq.models.names import MODEL_NAMES, first_last, is_shortcut, quant_layer_names

SHORTCUT_POLICIES = ("quantized", "float", "removed")
LAYER_KEYS = ("weight", "activation", "relu_slope")
TOP_KEYS = ("model", "shortcut", "first_last_float", "default", "layers")


def _normalise_quantizer(spec: Any, role: str, key: str, source: str | None) -> dict | None:
    """Turn None / a name / a dict / a Quantizer into a validated config dict (or None).

    Validation builds the quantizer through the registry (NumPy side, no TF), so unknown
    names and bad parameters fail here with the key path, not later during training.
    """
    if spec is None:
        return None
    from autoq import quant  # registry; imports without TensorFlow

    if hasattr(spec, "get_config"):
        spec = spec.get_config()
    if not isinstance(spec, (str, dict)):
        raise UserError(f"{where(source, key)}expected null, a quantizer name or a "
                        f"{{'name': ...}} mapping, got {spec!r}")
    if isinstance(spec, dict) and "name" not in spec:
        raise UserError(f"{where(source, key)}quantizer mapping needs a 'name', got {spec!r}")
    if isinstance(spec, dict):
        for param, value in spec.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{where(source, f'{key}.{param}')}got {value!r}; allowed: a finite number")
    try:
        q = quant.for_role(spec, role)  # also rejects a quantizer of the other role
    except UserError as exc:
        raise UserError(f"{where(source, key)}{exc}") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"{where(source, key)}invalid quantizer {spec!r}: {exc}") from None
    return q.get_config()


def _check_slope(value: Any, key: str, source: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise UserError(f"{where(source, key)}got {value!r}; allowed: relu_slope, a finite number > 0")
    return float(value)


@dataclass(frozen=True)
class LayerQuant:
    """Quantization of one layer: weight quantizer, input-activation quantizer, ReLU slope."""

    weight: dict | None = None
    activation: dict | None = None
    relu_slope: float = 1.0

    def weight_quantizer(self):
        """The weight Quantizer object (None = float)."""
        from autoq import quant

        return quant.for_role(self.weight, "weight")

    def activation_quantizer(self):
        """The input-activation Quantizer object (None = float)."""
        from autoq import quant

        return quant.for_role(self.activation, "activation")

    @property
    def is_float(self) -> bool:
        return self.weight is None and self.activation is None and self.relu_slope == 1.0

    def to_dict(self) -> dict:
        return {"weight": self.weight, "activation": self.activation, "relu_slope": self.relu_slope}

    @classmethod
    def from_dict(cls, d: Any, key: str = "default", source: str | None = None,
                  partial: bool = False) -> "LayerQuant | dict":
        """Validate a layer entry. ``partial`` returns only the keys given (an override)."""
        if not isinstance(d, dict):
            raise UserError(f"{where(source, key)}expected a mapping with keys {list(LAYER_KEYS)}, "
                            f"got {d!r}")
        unknown = sorted(set(d) - set(LAYER_KEYS))
        if unknown:
            raise UserError(f"{where(source, f'{key}.{unknown[0]}')}unknown key; allowed: "
                            f"{list(LAYER_KEYS)}")
        out: dict = {}
        if "weight" in d:
            out["weight"] = _normalise_quantizer(d["weight"], "weight", f"{key}.weight", source)
        if "activation" in d:
            out["activation"] = _normalise_quantizer(d["activation"], "activation",
                                                     f"{key}.activation", source)
        if "relu_slope" in d:
            out["relu_slope"] = _check_slope(d["relu_slope"], f"{key}.relu_slope", source)
        return out if partial else cls(**out)


FLOAT = LayerQuant()


@dataclass
class QuantConfig:
    """Whole-model quantization: a default LayerQuant, per-layer overrides, model options."""

    model: str | None = None
    shortcut: str = "quantized"
    first_last_float: bool = True
    default: LayerQuant = field(default_factory=LayerQuant)
    layers: dict[str, dict] = field(default_factory=dict)  # partial overrides, validated

    def __post_init__(self) -> None:
        self.validate()

    # --- resolution -------------------------------------------------------------------
    def for_layer(self, name: str) -> LayerQuant:
        """Quantization of layer ``name``: default merged with its override.

        First/last layers are fully float when ``first_last_float``; weighted shortcuts are
        float when ``shortcut == "float"`` (whatever the overrides say, so that the model
        options mean what they say).
        """
        if self.first_last_float and self.model in MODEL_NAMES and name in first_last(self.model):
            return FLOAT
        if is_shortcut(name) and self.shortcut == "float":
            return FLOAT
        merged = self.default.to_dict()
        if self.model in MODEL_NAMES and name == first_last(self.model)[0]:
            # the network input (image pixels) is never quantized by the default: sign() of
            # pixels in [0, 1] is constant +1 (BNN keeps the first layer's input real too);
            # an explicit per-layer entry can still quantize it
            merged["activation"] = None
        merged.update(self.layers.get(name, {}))
        return LayerQuant(**merged)

    # --- validation and (de)serialisation ---------------------------------------------
    def validate(self, source: str | None = None) -> "QuantConfig":
        """Check every field; raise UserError naming the field, the value and what is allowed."""
        if self.model is not None and self.model not in MODEL_NAMES:
            raise UserError(f"{where(source, 'model')}unknown model {self.model!r}; known: "
                            f"{list(MODEL_NAMES)}")
        if self.shortcut not in SHORTCUT_POLICIES:
            raise UserError(f"{where(source, 'shortcut')}got {self.shortcut!r}; allowed: "
                            f"{list(SHORTCUT_POLICIES)}")
        if not isinstance(self.first_last_float, bool):
            raise UserError(f"{where(source, 'first_last_float')}must be true or false, got "
                            f"{self.first_last_float!r}")
        default = self.default.to_dict() if isinstance(self.default, LayerQuant) else self.default
        self.default = LayerQuant.from_dict(default, "default", source)
        if not isinstance(self.layers, dict):
            raise UserError(f"{where(source, 'layers')}expected a mapping layer name -> entry, "
                            f"got {self.layers!r}")
        known = quant_layer_names(self.model) if self.model in MODEL_NAMES else None
        clean = {}
        for name, entry in self.layers.items():
            if known is not None and name not in known:
                raise UserError(f"{where(source, f'layers.{name}')}unknown layer {name!r} for "
                                f"model {self.model!r}; layers: {known}")
            clean[name] = LayerQuant.from_dict(entry, f"layers.{name}", source, partial=True)
        self.layers = clean
        return self

    def to_dict(self) -> dict:
        return {"model": self.model, "shortcut": self.shortcut,
                "first_last_float": self.first_last_float, "default": self.default.to_dict(),
                "layers": {k: dict(v) for k, v in self.layers.items()}}

    @classmethod
    def from_dict(cls, d: Any, source: str | None = None) -> "QuantConfig":
        if not isinstance(d, dict):
            raise UserError(f"{where(source, None)}a QuantConfig must be a JSON object, got "
                            f"{type(d).__name__}")
        check_depth(d, source or "<config>")
        unknown = sorted(set(d) - set(TOP_KEYS))
        if unknown:
            raise UserError(f"{where(source, unknown[0])}unknown key; allowed: {list(TOP_KEYS)}")
        obj = cls.__new__(cls)
        obj.model = d.get("model")
        obj.shortcut = d.get("shortcut", "quantized")
        obj.first_last_float = d.get("first_last_float", True)
        obj.default = LayerQuant.from_dict(d.get("default", {}), "default", source)
        obj.layers = d.get("layers") or {}
        return obj.validate(source)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str, source: str | None = None) -> "QuantConfig":
        return cls.from_dict(load_json(text, source or "<json>"), source)

    @classmethod
    def load(cls, path: str | Path) -> "QuantConfig":
        return cls.from_json(read_text(path, "QuantConfig JSON file"), str(path))

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_json() + "\n")

    def with_model(self, model: str) -> "QuantConfig":
        """A copy bound to ``model`` (validates override names against it)."""
        d = self.to_dict()
        d["model"] = model
        return QuantConfig.from_dict(d)


# --- labels: how a config reads in the front, the CSV and the search space's parameters ---

FLOAT_LABEL = "float"


def quantizer_label(spec: dict | None, compact: bool = False) -> str:
    """The one label of a quantizer config: ``float`` (None), ``bc``, ``dorefa(bits=2, mode=weight)``.

    ``compact``: arguments sorted by name, no spaces (``uniform(bits=8,per_channel=True)``): the
    search space's Optuna parameter values, stored in studies, the same whatever the YAML's key
    order. Otherwise the config's own order, as the front's tables and CSV show it.
    """
    if spec is None:
        return FLOAT_LABEL
    items = sorted(spec.items()) if compact else spec.items()
    args = ("," if compact else ", ").join(f"{k}={v}" for k, v in items if k != "name")
    return f"{spec['name']}({args})" if args else str(spec["name"])


def layer_rows(config: dict, plan: dict) -> list[dict]:
    """Per compute layer of a LayerPlan dict: name, op, kind, bits, MACs and the quantizer labels
    its resolved config gives it (``? (reason)`` for a config that no longer resolves)."""
    entries = plan.get("layers", [])
    labels = _labels_by_layer(config, [e["name"] for e in entries])
    return [{"name": e.get("name"), "op": e.get("op"), "kind": e.get("kind"), "weight_bits": e.get("weight_bits"),
             "act_bits": e.get("act_bits"), "weight": labels[e["name"]][0], "activation": labels[e["name"]][1],
             "macs": e.get("macs")} for e in entries]


def _labels_by_layer(config: dict, names: list[str]) -> dict[str, tuple[str, str]]:
    """(weight, activation) label per layer; ``? (reason)`` where the config does not resolve."""
    try:
        qc = QuantConfig.from_dict(config)
    except Exception as exc:  # noqa: BLE001 -- a stale config must not hide the whole front
        return {n: (f"? ({exc})",) * 2 for n in names}
    out = {}
    for n in names:
        try:
            lq = qc.for_layer(n)
            out[n] = (quantizer_label(lq.weight), quantizer_label(lq.activation))
        except Exception as exc:  # noqa: BLE001 -- as above
            out[n] = (f"? ({exc})",) * 2
    return out


def relu_slope_label(config: dict, plan: dict) -> str:
    """The ReLU slope after every hidden compute layer: one value, or 'mixed a/b' when they differ."""
    names = [e["name"] for e in plan.get("layers", [])][:-1]      # the last layer gives logits, no ReLU
    try:
        qc = QuantConfig.from_dict(config)
        slopes = [float(qc.for_layer(n).relu_slope) for n in names]
    except Exception:  # noqa: BLE001 -- a stale config must not hide the whole front
        slopes = [float((config.get("default") or {}).get("relu_slope", 1.0))]
    distinct = sorted(set(slopes), reverse=True) or [1.0]
    text = "/".join(f"{v:g}" for v in distinct)
    return text if len(distinct) == 1 else f"mixed {text}"


def shortcut_label(config: dict) -> str:
    """The shortcut policy of a model with projection shortcuts, else ``-``."""
    try:
        has_shortcuts = any(is_shortcut(n) for n in quant_layer_names(config.get("model", "")))
    except Exception:  # noqa: BLE001 -- unknown model name in an old study
        has_shortcuts = False
    return str(config.get("shortcut", "-")) if has_shortcuts else "-"


# --- presets: the thesis's methods (methods.md sections 1-2) ----------------------------

def _p(weight=None, activation=None, relu_slope=1.0) -> dict:
    return {"default": {"weight": weight, "activation": activation, "relu_slope": relu_slope}}


PRESETS: dict[str, dict] = {
    "base": _p(),
    "bc": _p({"name": "bc"}),
    "bc-stoch": _p({"name": "bc_stoch"}),
    "bnn": _p({"name": "bc"}, {"name": "sign"}),
    "drf-w": _p({"name": "dorefa", "bits": 1}),
    "drf": _p({"name": "dorefa", "bits": 1}, {"name": "dorefa", "bits": 1}),
    "drf-a2": _p({"name": "dorefa", "bits": 1}, {"name": "dorefa", "bits": 2}),
    "drf-a4": _p({"name": "dorefa", "bits": 1}, {"name": "dorefa", "bits": 4}),
    "twn": _p({"name": "twn"}),
    "bc-1.1": _p({"name": "bc_scaled", "scale": 0.1}),
    "bc-1.2": _p({"name": "bc_scaled", "scale": 0.125}),
    "bc-2.1": _p({"name": "bc"}, relu_slope=0.1),
    "bc-2.2": _p({"name": "bc"}, relu_slope=0.125),
    "hybrid": _p({"name": "bc"}, {"name": "dorefa", "bits": 1}),
    "int8": _p({"name": "uniform", "bits": 8}, {"name": "uniform", "bits": 8}),
}

PRESET_DOC = {
    "base": "float baseline",
    "bc": "BinaryConnect: weights {-1,+1}, float activations",
    "bc-stoch": "stochastic BinaryConnect",
    "bnn": "BNN: weights {-1,+1}, inputs sign(x) in {-1,+1} (XNOR kernel)",
    "drf-w": "DoReFa binary weights sign(w)*E|w|, float activations",
    "drf": "DoReFa: binary weights, 1-bit activations {0,1}",
    "drf-a2": "DoReFa: binary weights, 2-bit activations",
    "drf-a4": "DoReFa: binary weights, 4-bit activations",
    "twn": "ternary weights {-a,0,+a}",
    "bc-1.1": "BC fix 1.1: binary weights x 0.1",
    "bc-1.2": "BC fix 1.2: binary weights x 0.125 (a shift)",
    "bc-2.1": "BC fix 2.1: ReLU slope 0.1",
    "bc-2.2": "BC fix 2.2: ReLU slope 0.125",
    "hybrid": "BNN weights {-1,+1} with DoReFa {0,1} activations (AND kernel)",
    "int8": "uniform 8-bit weights and activations",
}


def preset(name: str, model: str | None = None, shortcut: str = "quantized",
           first_last_float: bool = True) -> QuantConfig:
    """The QuantConfig of a named method (``PRESETS``) for ``model``."""
    if name not in PRESETS:
        raise UserError(f"preset: unknown preset {name!r}; known: {list(PRESETS)}")
    d = dict(PRESETS[name], model=model, shortcut=shortcut, first_last_float=first_last_float)
    return QuantConfig.from_dict(d, source=f"preset {name}")
