"""Search spaces: the YAML schema, a loader with precise errors, and sampling to QuantConfig.

A search space says *what may vary* (per-layer quantizers, bits, binary scale, ReLU slope,
model-level shortcut policy and first/last-layer precision) and *what is measured* (accuracy
and board costs on one or more targets, under constraints). It imports without TensorFlow.

Schema (every key except ``model`` and ``layers`` is optional)::

    name: lenet5                 # run label; default: the file name without .yaml
    model: lenet5                # a zoo model (autoq.models.names.MODEL_NAMES)
    dataset: digits              # digits (embedded) | mnist | fashion_mnist | cifar10 | synthetic
                                 # | a .npz file (x_train, y_train, x_test, y_test)
    data_path: null              # a .npz that replaces the named data set's source
    input: [8, 8, 1]             # H, W, C; checked against the dataset when the search starts
    training:
      recipe: adam               # a key of autoq.train.RECIPES
      epochs: 3                  # QAT fine-tuning epochs per trial (--epochs overrides)
      baseline_epochs: 10        # the float baseline (trained once, cached, warm start)
      seed: 0
      skip_infeasible: true      # cost first; a config that breaks a constraint is not trained
      screen: {epochs: 1, margin: 0.02}   # optional short-epoch screen with promotion
    targets: [m4]                # hardware profiles (hw_models/<id>.yaml); --target overrides
    objectives: [accuracy, latency, flash]  # accuracy (maximised) + costs (minimised):
                                 # latency | flash | ram, for every target, or "latency@a53"
    constraints:                 # checked on every target
      max_latency_ms: 50
      max_flash_kb: 256
      max_ram_kb: 32
      fits: [sram, flash]        # or true (= both): the board's RAM / flash must hold it
    model_choices:
      shortcut: [quantized, float, removed]   # models with 1x1 projection shortcuts only
      first_last_float: [true, false]         # a list = searched; a scalar = fixed;
                                              # default true (as QuantConfig, the presets)
    layers:                      # rules in order; per layer and per key (weight, activation,
                                 # relu_slope) the last rule that sets the key wins
      - select: {type: conv}     # type: conv | dense | shortcut (list allowed), or
                                 # name: "fire*_squeeze" (glob, list allowed), or all: true
        share: false             # true: one choice for all selected layers (smaller space)
        weight: [null, bc, {name: bc_scaled, scale: [0.125, 0.25]}, twn,
                 {name: dorefa, bits: [2, 4]}]
        activation: [null, sign, {name: dorefa, bits: [1, 2]}]
        relu_slope: [1.0, 0.125]
    presets: [base, bc, bnn]     # thesis presets evaluated first; default: every preset the
                                 # space can express (the others are skipped with a log line)

A quantizer choice is ``null`` (float), a registry name, or a mapping ``{name: ..., param:
value}``; a list-valued parameter expands into one choice per value (cartesian product).
Every choice is checked against the quantizer registry (``autoq.quant``) and its role
(weight / activation). Layers no rule selects stay float with ReLU slope 1.

Sampling: each varying choice is one Optuna categorical parameter, named
``<layer>.weight`` / ``<layer>.activation`` / ``<layer>.relu_slope`` (``rule<i>.*`` when
``share: true``), ``shortcut`` and ``first_last_float``; values are short labels such as
``"dorefa(bits=2)"`` or ``"float"``. :meth:`SearchSpace.config_from_params` turns a parameter
dict into a canonical QuantConfig dict (overrides that cannot change the model are dropped,
so equal models hash equally: :func:`config_hash`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from autoq.config import FLOAT, QuantConfig
from autoq.models.names import is_shortcut
from autoq.objectives import expand_objectives

log = logging.getLogger(__name__)

LAYER_TYPES = ("conv", "dense", "shortcut")
TOP_KEYS = ("name", "model", "dataset", "data_path", "input", "training", "targets", "objectives",
            "constraints", "model_choices", "layers", "presets", "description")
TRAINING_KEYS = ("recipe", "epochs", "baseline_epochs", "seed", "skip_infeasible", "screen")
RULE_KEYS = ("select", "share", "weight", "activation", "relu_slope")
DIMS = ("weight", "activation", "relu_slope")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")  # a run label and folder name
MAX_CHOICES = 1000          # values of one list-valued key (and expanded quantizer choices)


# --- data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """One concrete quantizer option: its label (the Optuna value) and its config dict."""

    label: str
    spec: dict | None  # None = float; else {"name": ..., params} as written (expanded)


@dataclass
class Rule:
    """A layer rule after validation: the layers it owns and its choice lists."""

    index: int
    layers: list[str]                # every layer the rule selects
    share: bool
    weight: list[Choice] | None
    activation: list[Choice] | None
    relu_slope: list[float] | None
    owned: dict[str, list[str]] = field(default_factory=dict)  # dim -> layers no later rule takes

    def owners(self, dim: str) -> list[str]:
        """Parameter owners of one dimension: the rule itself when shared, else its layers."""
        layers = self.owned.get(dim, [])
        if not layers:
            return []
        return [f"rule{self.index}"] if self.share else layers


@dataclass
class Screen:
    """Short-epoch screen: train ``epochs`` first, promote to full epochs if promising."""

    epochs: int
    margin: float = 0.02


@dataclass
class SearchSpace:
    """A validated search space (see the module docstring for the YAML schema)."""

    name: str
    model: str
    dataset: str
    data_path: str | None
    input_shape: tuple[int, int, int] | None
    recipe: str
    epochs: int
    baseline_epochs: int
    seed: int
    skip_infeasible: bool
    screen: Screen | None
    targets: list[str]
    objectives: list[str]                    # as written, e.g. ["accuracy", "latency"]
    constraints: dict[str, Any]
    model_choices: dict[str, list]
    rules: list[Rule]
    presets: list[str] | None
    layer_names: list[str]
    source: str = "<dict>"
    raw: dict = field(default_factory=dict)

    # -- objectives ----------------------------------------------------------------------

    def objective_names(self, targets: list[str] | None = None) -> list[str]:
        """Objective names in study order: ``accuracy`` then ``<kind>@<target>`` costs."""
        return expand_objectives(self.objectives, list(targets or self.targets))

    # -- parameters ----------------------------------------------------------------------

    def param_choices(self) -> dict[str, list]:
        """Every varying parameter and its categorical values, in a fixed order."""
        params: dict[str, list] = {}
        for key in ("shortcut", "first_last_float"):
            values = self.model_choices.get(key)
            if values is not None and len(values) > 1:
                params[key] = list(values)
        for rule in self.rules:
            for dim in DIMS:
                values = _values(rule, dim)
                if values is not None and len(values) > 1:
                    for owner in rule.owners(dim):
                        params[f"{owner}.{dim}"] = values
        return params

    def suggest(self, trial) -> dict[str, Any]:
        """Ask an Optuna trial (or Ray's captor) for every parameter; return the params."""
        return {name: trial.suggest_categorical(name, values)
                for name, values in self.param_choices().items()}

    def config_from_params(self, params: dict[str, Any]) -> dict:
        """The canonical QuantConfig dict for ``params`` (a full or fixed parameter dict)."""
        shortcut = _pick(params, "shortcut", self.model_choices.get("shortcut"))
        flf = _pick(params, "first_last_float", self.model_choices.get("first_last_float"))
        layers: dict[str, dict] = {}
        for rule in self.rules:
            for dim in DIMS:
                for name in rule.owned.get(dim, []):
                    owner = f"rule{rule.index}" if rule.share else name
                    value = params.get(f"{owner}.{dim}")
                    if dim == "relu_slope":
                        value = float(_pick(params, f"{owner}.relu_slope", rule.relu_slope))
                    else:
                        value = _choice(getattr(rule, dim), value)
                    layers.setdefault(name, {})[dim] = value
        dead = _dead_layers({"first_last_float": bool(flf), "shortcut": shortcut or "quantized"},
                            self.layer_names)
        canonical = {}
        for name in self.layer_names:  # model order, defaults dropped: equal models, equal JSON
            entry = {k: v for k, v in layers.get(name, {}).items()
                     if not (v is None or (k == "relu_slope" and v == 1.0))}
            if entry and name not in dead:
                canonical[name] = entry
        config = {"model": self.model, "first_last_float": bool(flf),
                  "default": {"weight": None, "activation": None, "relu_slope": 1.0},
                  "layers": canonical}
        if shortcut is not None:
            config["shortcut"] = shortcut
        return QuantConfig.from_dict(config, source=self.source).to_dict()

    def params_for_config(self, config: dict) -> dict[str, Any] | None:
        """Parameters whose config equals ``config`` (a QuantConfig dict), or None.

        Used to enqueue the thesis presets: a preset the space cannot express returns None.
        """
        resolved = _resolved(config, self.layer_names)
        dead = _dead_layers(config, self.layer_names)
        params: dict[str, Any] = {}
        for name, values in self.param_choices().items():
            owner, _, dim = name.rpartition(".")
            if not owner:  # model level
                value = config.get(name, values[0])
                if value not in values:
                    return None
                params[name] = value
                continue
            alive = [n for n in self._owner_layers(owner, dim) if n not in dead]
            if not alive:  # the value cannot change the model
                params[name] = values[0]
                continue
            wanted = {resolved[n][dim] for n in alive}
            if len(wanted) != 1:
                return None
            match = self._match(owner, dim, wanted.pop())
            if match is None:
                return None
            params[name] = match
        candidate = self.config_from_params(params)
        same = (_resolved(candidate, self.layer_names) == resolved
                and candidate.get("shortcut", "quantized") == config.get("shortcut", "quantized"))
        return params if same else None

    def _rule_for(self, owner: str, dim: str) -> Rule:
        for rule in self.rules:
            if owner in rule.owners(dim):
                return rule
        raise KeyError(f"{owner}.{dim}")

    def _owner_layers(self, owner: str, dim: str) -> list[str]:
        rule = self._rule_for(owner, dim)
        return rule.owned[dim] if rule.share else [owner]

    def _match(self, owner: str, dim: str, key) -> Any:
        rule = self._rule_for(owner, dim)
        if dim == "relu_slope":
            return key if key in rule.relu_slope else None
        for choice in getattr(rule, dim):
            if _label_key(dim, choice.spec) == key:
                return choice.label
        return None


# --- helpers --------------------------------------------------------------------------------


def _values(rule: Rule, dim: str) -> list | None:
    if dim == "relu_slope":
        return None if rule.relu_slope is None else list(rule.relu_slope)
    choices = getattr(rule, dim)
    return None if choices is None else [c.label for c in choices]


def _pick(params: dict, key: str, values):
    if key in params:
        return params[key]
    if values is None:
        return None
    return values[0] if isinstance(values, list) else values


def _choice(choices: list[Choice], label) -> dict | None:
    if label is None:
        return choices[0].spec
    for c in choices:
        if c.label == label:
            return c.spec
    raise KeyError(f"parameter value {label!r} is not a choice (known: {[c.label for c in choices]})")


def _layer_type(name: str) -> str:
    """conv | dense | shortcut, from the zoo's naming scheme (autoq/models/names.py)."""
    if is_shortcut(name):
        return "shortcut"
    return "dense" if name.startswith("fc") else "conv"


def _full_quantizer_config(spec, role: str) -> dict | None:
    """The registry's complete config of a quantizer spec fixed to ``role`` (None = float),
    exactly as QuantConfig stores it."""
    if spec is None:
        return None
    from autoq import quant

    return quant.for_role(spec, role).get_config()


def _label_key(dim: str, spec):
    """A hashable key comparing two choices by their complete quantizer config."""
    if dim == "relu_slope":
        return float(1.0 if spec is None else spec)
    full = _full_quantizer_config(spec, dim)
    return None if full is None else json.dumps(full, sort_keys=True, default=str)


def _dead_layers(config: dict, layer_names: list[str]) -> set[str]:
    """Layers whose overrides cannot matter: first/last when first_last_float, weighted
    shortcuts when kept float or removed."""
    dead = set()
    if config.get("first_last_float", True):
        dead |= {layer_names[0], layer_names[-1]}
    if config.get("shortcut", "quantized") in ("float", "removed"):
        dead |= {n for n in layer_names if _layer_type(n) == "shortcut"}
    return dead


def _resolved(config: dict, layer_names: list[str]) -> dict[str, dict]:
    """Per layer and dimension: the label key of what the model gets (QuantConfig.for_layer;
    a removed shortcut counts as float)."""
    qc = QuantConfig.from_dict(config)
    dead = _dead_layers(config, layer_names)
    return {name: {dim: _label_key(dim, getattr(FLOAT if name in dead else qc.for_layer(name), dim))
                   for dim in DIMS}
            for name in layer_names}


def config_hash(config: dict) -> str:
    """Stable hash of a QuantConfig dict (sorted-key JSON), the key of the trial cache."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]
