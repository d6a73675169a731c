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

import fnmatch
import hashlib
import itertools
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoq.errors import UserError
from autoq.fileio import MAX_FREE_TEXT, finite_number, free_text, load_yaml, read_text
from autoq.limits import MAX_EPOCHS, MAX_INPUT_SIDE, MAX_SEED

log = logging.getLogger(__name__)

OBJECTIVE_KINDS = ("latency", "flash", "ram")
LAYER_TYPES = ("conv", "dense", "shortcut")
SHORTCUT_POLICIES = ("quantized", "float", "removed")
FIT_KINDS = ("sram", "flash")
CONSTRAINT_KEYS = ("max_latency_ms", "max_flash_kb", "max_ram_kb", "fits")
TOP_KEYS = ("name", "model", "dataset", "data_path", "input", "training", "targets", "objectives",
            "constraints", "model_choices", "layers", "presets", "description")
TRAINING_KEYS = ("recipe", "epochs", "baseline_epochs", "seed", "skip_infeasible", "screen")
RULE_KEYS = ("select", "share", "weight", "activation", "relu_slope")
FLOAT_LABEL = "float"
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
        targets = list(targets or self.targets)
        names = ["accuracy"]
        for obj in self.objectives:
            if obj == "accuracy":
                continue
            kind, _, target = obj.partition("@")
            for t in ([target] if target else targets):
                name = f"{kind}@{t}"
                if name not in names:
                    names.append(name)
        return names

    @staticmethod
    def directions(objective_names: list[str]) -> list[str]:
        return ["maximize" if n == "accuracy" else "minimize" for n in objective_names]

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

    def distributions(self) -> dict:
        import optuna

        return {name: optuna.distributions.CategoricalDistribution(values)
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
        from autoq.config import QuantConfig  # validates; stores complete quantizer configs

        return QuantConfig.from_dict(config, source=self.source).to_dict()

    def params_for_config(self, config: dict) -> dict[str, Any] | None:
        """Parameters whose config equals ``config`` (a QuantConfig dict), or None.

        Used to enqueue the thesis presets: a preset the space cannot express returns None.
        """
        effective = _effective(config, self.layer_names)
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
            wanted = {_label_key(dim, effective[n].get(dim)) for n in alive}
            if len(wanted) != 1:
                return None
            match = self._match(owner, dim, wanted.pop())
            if match is None:
                return None
            params[name] = match
        candidate = self.config_from_params(params)
        same = (_effective(candidate, self.layer_names, alive_only=True)
                == _effective(config, self.layer_names, alive_only=True)
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

    def size(self) -> int:
        """Number of distinct parameter combinations (not of distinct models)."""
        n = 1
        for values in self.param_choices().values():
            n *= len(values)
        return n


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
    from autoq.models import names

    if hasattr(names, "layer_type"):
        return names.layer_type(name)
    if names.is_shortcut(name):
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


def _effective(config: dict, layer_names: list[str], alive_only: bool = False) -> dict:
    """Per layer: the weight/activation/relu_slope the config gives (default merged)."""
    default = config.get("default") or {}
    out = {}
    dead = _dead_layers(config, layer_names)
    for name in layer_names:
        merged = {"weight": default.get("weight"), "activation": default.get("activation"),
                  "relu_slope": default.get("relu_slope", 1.0)}
        merged.update((config.get("layers") or {}).get(name, {}))
        if alive_only:
            if name in dead:
                merged = {"weight": None, "activation": None, "relu_slope": 1.0}
            merged = {k: _label_key(k, v) for k, v in merged.items()}
        out[name] = merged
    return out


def label_of(spec: dict | None) -> str:
    """Short readable label: ``float``, ``bc``, ``dorefa(bits=2)``."""
    if spec is None:
        return FLOAT_LABEL
    args = ",".join(f"{k}={spec[k]}" for k in sorted(spec) if k != "name")
    return f"{spec['name']}({args})" if args else spec["name"]


def config_hash(config: dict) -> str:
    """Stable hash of a QuantConfig dict (sorted-key JSON), the key of the trial cache."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


# --- loading and validation -----------------------------------------------------------------


class _Ctx:
    """Carries the file name so every error names file + key path + value + allowed."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, value, allowed: str) -> UserError:
        text = repr(value)
        text = text if len(text) <= 200 else text[:200] + "..."
        return UserError(f"{self.source}: {key}: got {text}; allowed: {allowed}")


def resolve_space_path(space: str | Path) -> Path:
    """A path to a YAML file, or the name of a shipped space (``lenet5`` -> lenet5.yaml)."""
    from autoq.resources import resource_dir

    path = Path(space)
    if path.is_file():
        return path
    if path.is_dir():
        raise UserError(f"search space {str(space)!r}: is a folder; allowed: a search-space .yaml file "
                        "or the name of a shipped space")
    shipped = resource_dir("search_spaces")
    for candidate in (shipped / f"{space}.yaml", shipped / str(space)):
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in shipped.glob("*.yaml"))
    raise UserError(f"search space {str(space)!r}: no such file, and not a shipped space "
                    f"(shipped: {', '.join(known)})")


def load_space(space: str | Path | dict, source: str | None = None) -> SearchSpace:
    """Load and validate a search space from a file path, a shipped name or a dict."""
    if isinstance(space, dict):
        return parse_space(space, source or "<dict>")
    path = resolve_space_path(space)
    raw = load_yaml(read_text(path, "search-space YAML file"), str(path))
    space_obj = parse_space(raw, str(path))
    if "name" not in (raw or {}):
        space_obj.name = re.sub(r"[^A-Za-z0-9._-]", "_", path.stem)[:64] or "space"
    return space_obj


def parse_space(raw, source: str = "<dict>") -> SearchSpace:
    """Validate a search-space mapping; UserError names file, key, value and what is allowed."""
    ctx = _Ctx(source)
    if not isinstance(raw, dict):
        raise ctx.fail("(top level)", raw, "a mapping with at least model and layers")
    for key in raw:
        if key not in TOP_KEYS:
            raise ctx.fail(key, raw[key], f"top-level keys {', '.join(TOP_KEYS)} (unknown key {key!r})")
    from autoq.models.names import MODEL_NAMES, quant_layer_names

    name = raw.get("name")
    if name is not None and not (isinstance(name, str) and NAME_PATTERN.match(name)):
        raise ctx.fail("name", name, "1-64 characters: letters, digits, '.', '_', '-' (it names the run "
                       "folder), starting with a letter or digit")
    if "description" in raw:
        free_text(raw["description"], ctx.source, "description", MAX_FREE_TEXT)
    model = raw.get("model")
    if not isinstance(model, str) or model not in MODEL_NAMES:
        raise ctx.fail("model", model, ", ".join(MODEL_NAMES))
    layer_names = quant_layer_names(model)
    dataset = raw.get("dataset", "digits")
    from autoq.data import DATASETS

    if not isinstance(dataset, str) or not (dataset in DATASETS or dataset.endswith(".npz")):
        raise ctx.fail("dataset", dataset, f"{', '.join(DATASETS)} or a path to a .npz file "
                       "(x_train, y_train, x_test, y_test)")
    data_path = raw.get("data_path")
    if data_path is not None and not isinstance(data_path, str):
        raise ctx.fail("data_path", data_path, "a path string or null")
    if dataset.endswith(".npz"):     # one label (the file's stem), the path kept once, in data_path
        same = data_path is not None and (Path(data_path).expanduser().resolve()
                                          == Path(dataset).expanduser().resolve())
        if data_path is not None and not same:
            raise ctx.fail("data_path", data_path, f"null or {dataset!r}: dataset already names a file")
        dataset, data_path = Path(dataset).stem, dataset
    input_shape = _parse_input(ctx, raw.get("input"))
    training = _parse_training(ctx, raw.get("training") or {})
    targets = _parse_targets(ctx, raw.get("targets", ["m4"]))
    objectives = _parse_objectives(ctx, raw.get("objectives", ["accuracy", "latency"]))
    constraints = _parse_constraints(ctx, raw.get("constraints") or {})
    model_choices = _parse_model_choices(ctx, raw.get("model_choices") or {}, layer_names)
    rules = _parse_rules(ctx, raw.get("layers"), layer_names)
    presets = _parse_presets(ctx, raw.get("presets"))
    return SearchSpace(
        name=str(raw.get("name") or model), model=model, dataset=dataset, data_path=data_path,
        input_shape=input_shape, recipe=training["recipe"], epochs=training["epochs"],
        baseline_epochs=training["baseline_epochs"],
        seed=training["seed"], skip_infeasible=training["skip_infeasible"],
        screen=training["screen"], targets=targets, objectives=objectives,
        constraints=constraints, model_choices=model_choices, rules=rules, presets=presets,
        layer_names=layer_names, source=source, raw=raw)


def _parse_input(ctx: _Ctx, value):
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_INPUT_SIDE
                       for v in value)):
        raise ctx.fail("input", value, f"[height, width, channels], integers 1..{MAX_INPUT_SIDE}")
    return tuple(value)


def _positive_int(ctx, key, value, maximum: int = MAX_EPOCHS):
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise ctx.fail(key, value, f"an integer 1..{maximum}")
    return value


def _parse_training(ctx: _Ctx, value) -> dict:
    if not isinstance(value, dict):
        raise ctx.fail("training", value, f"a mapping with keys {', '.join(TRAINING_KEYS)}")
    for key in value:
        if key not in TRAINING_KEYS:
            raise ctx.fail(f"training.{key}", value[key], f"keys {', '.join(TRAINING_KEYS)}")
    recipe = value.get("recipe", "adam")
    try:
        from autoq.train import RECIPES
    except ImportError:  # training part not installed yet: checked when the search starts
        RECIPES = None
    if not isinstance(recipe, str) or (RECIPES is not None and recipe not in RECIPES):
        raise ctx.fail("training.recipe", recipe, ", ".join(sorted(RECIPES or [])) or "a recipe name")
    screen = value.get("screen")
    if screen is not None:
        if not isinstance(screen, dict) or set(screen) - {"epochs", "margin"}:
            raise ctx.fail("training.screen", screen, "{epochs: int >= 1, margin: float >= 0}")
        margin = screen.get("margin", 0.02)
        if not finite_number(margin) or not 0 <= margin <= 1:
            raise ctx.fail("training.screen.margin", margin, "a number 0..1 (accuracy)")
        screen = Screen(_positive_int(ctx, "training.screen.epochs", screen.get("epochs", 1)),
                        float(margin))
    skip = value.get("skip_infeasible", True)
    if not isinstance(skip, bool):
        raise ctx.fail("training.skip_infeasible", skip, "true or false")
    seed = value.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ctx.fail("training.seed", seed, f"an integer 0..{MAX_SEED}")
    epochs = _positive_int(ctx, "training.epochs", value.get("epochs", 3))
    if screen is not None and screen.epochs >= epochs:
        raise ctx.fail("training.screen.epochs", screen.epochs,
                       f"fewer than training.epochs ({epochs})")
    baseline_epochs = _positive_int(ctx, "training.baseline_epochs", value.get("baseline_epochs", 10))
    return {"recipe": recipe, "epochs": epochs, "baseline_epochs": baseline_epochs, "seed": seed,
            "skip_infeasible": skip, "screen": screen}


def known_targets() -> list[str]:
    from autoq.cost.profile import list_profiles

    return list_profiles()


def check_targets(targets: list[str], key: str = "--target", source: str | None = None) -> list[str]:
    """Each target must be a profile id in hw_models/ or a path to a profile YAML."""
    known = known_targets()
    for t in targets:
        if t not in known and not Path(t).is_file():
            prefix = f"{source}: " if source else ""
            raise UserError(f"{prefix}{key}: got unknown target {t!r}; allowed: {', '.join(known) or '(none)'}"
                            " or a path to a profile .yaml")
    return targets


def _parse_targets(ctx: _Ctx, value) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise ctx.fail("targets", value, "a non-empty list of hardware profile ids, e.g. [m4]")
    return check_targets(value, "targets", ctx.source)


def _parse_objectives(ctx: _Ctx, value) -> list[str]:
    allowed = "accuracy, latency, flash, ram (each optionally @<target>, e.g. latency@a53)"
    if not isinstance(value, list) or not value:
        raise ctx.fail("objectives", value, allowed)
    for i, obj in enumerate(value):
        kind, _, target = str(obj).partition("@")
        if obj == "accuracy":
            continue
        if not isinstance(obj, str) or kind not in OBJECTIVE_KINDS:
            raise ctx.fail(f"objectives[{i}]", obj, allowed)
        if target:
            check_targets([target], f"objectives[{i}]", ctx.source)
    if "accuracy" not in value:
        raise ctx.fail("objectives", value, "a list that contains accuracy (" + allowed + ")")
    if len(value) < 2:
        raise ctx.fail("objectives", value, "accuracy and at least one cost (latency, flash, ram)")
    return list(value)


def _parse_constraints(ctx: _Ctx, value) -> dict:
    if not isinstance(value, dict):
        raise ctx.fail("constraints", value, f"a mapping with keys {', '.join(CONSTRAINT_KEYS)}")
    out = {}
    for key, v in value.items():
        if key not in CONSTRAINT_KEYS:
            raise ctx.fail(f"constraints.{key}", v, f"keys {', '.join(CONSTRAINT_KEYS)}")
        if key == "fits":
            if v is True:
                v = list(FIT_KINDS)
            if v is False or v is None:
                v = []
            if not isinstance(v, list) or any(f not in FIT_KINDS for f in v):
                raise ctx.fail("constraints.fits", v, "true, false or a list of sram, flash")
            out[key] = list(v)
        else:
            if not finite_number(v) or v <= 0:
                raise ctx.fail(f"constraints.{key}", v, "a finite number > 0")
            out[key] = float(v)
    return out


def _parse_model_choices(ctx: _Ctx, value, layer_names: list[str]) -> dict:
    if not isinstance(value, dict):
        raise ctx.fail("model_choices", value, "a mapping with keys shortcut, first_last_float")
    out: dict[str, list] = {}
    for key, v in value.items():
        values = v if isinstance(v, list) else [v]
        if key == "shortcut":
            if not values or any(s not in SHORTCUT_POLICIES for s in values):
                raise ctx.fail("model_choices.shortcut", v, ", ".join(SHORTCUT_POLICIES))
            if not any(_layer_type(n) == "shortcut" for n in layer_names) and values != ["quantized"]:
                raise ctx.fail("model_choices.shortcut", v,
                               "only for models with 1x1 projection shortcuts (resnet20, resnet32)")
        elif key == "first_last_float":
            if not values or any(not isinstance(b, bool) for b in values):
                raise ctx.fail("model_choices.first_last_float", v, "true, false or [true, false]")
        else:
            raise ctx.fail(f"model_choices.{key}", v, "keys shortcut, first_last_float")
        out[key] = list(dict.fromkeys(values))
    out.setdefault("first_last_float", [True])  # as QuantConfig and the presets
    return out


def _select(ctx: _Ctx, key: str, select, layer_names: list[str]) -> list[str]:
    if select == "all" or select == {"all": True}:
        return list(layer_names)
    if not isinstance(select, dict) or len(select) != 1 or next(iter(select)) not in ("type", "name"):
        raise ctx.fail(key, select, "{type: conv|dense|shortcut}, {name: glob} or {all: true}")
    how, pattern = next(iter(select.items()))
    patterns = pattern if isinstance(pattern, list) else [pattern]
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise ctx.fail(f"{key}.{how}", pattern, "a string or a list of strings")
    if how == "type":
        for p in patterns:
            if p not in LAYER_TYPES:
                raise ctx.fail(f"{key}.type", p, ", ".join(LAYER_TYPES))
        # a shortcut is a conv too: type conv selects it, type shortcut selects only it
        chosen = [n for n in layer_names
                  if _layer_type(n) in patterns or ("conv" in patterns and _layer_type(n) == "shortcut")]
    else:
        chosen = [n for n in layer_names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if not chosen:
        raise ctx.fail(key, select, f"a selection matching at least one layer of {', '.join(layer_names)}")
    return chosen


def _expand_spec(ctx: _Ctx, key: str, item) -> list[dict | None]:
    if item is None or item == FLOAT_LABEL:
        return [None]
    if isinstance(item, str):
        return [{"name": item}]
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ctx.fail(key, item, "null (float), a quantizer name, or {name: ..., param: value}")
    fixed = {k: v for k, v in item.items() if not isinstance(v, list)}
    varying = {k: v for k, v in item.items() if isinstance(v, list)}
    combinations = 1
    for k, v in item.items():
        for value in (v if isinstance(v, list) else [v]):
            if isinstance(value, float) and not math.isfinite(value):
                raise ctx.fail(f"{key}.{k}", v, "finite numbers")
        if isinstance(v, list):
            if not v:
                raise ctx.fail(f"{key}.{k}", v, "a non-empty list of values")
            combinations *= len(v)
            if combinations > MAX_CHOICES:
                raise ctx.fail(f"{key}.{k}", v, f"lists whose combinations number at most {MAX_CHOICES}")
    out = []
    for combo in itertools.product(*varying.values()):
        out.append({**fixed, **dict(zip(varying, combo))})
    return out


def _check_quantizer(ctx: _Ctx, key: str, spec: dict, role: str) -> None:
    from autoq import quant

    known = list(quant.names())
    if spec["name"] not in known:
        raise ctx.fail(f"{key}.name", spec["name"], "registered quantizers: " + ", ".join(known))
    try:
        q = quant.get(dict(spec))
    except Exception as exc:  # noqa: BLE001 - the registry's message says which argument is wrong
        raise ctx.fail(key, spec, f"arguments the quantizer accepts ({exc})") from None
    if q.role not in (role, "both"):
        raise ctx.fail(f"{key}.name", spec["name"], f"{role} quantizers: " + ", ".join(quant.names(role)))


def _parse_choices(ctx: _Ctx, key: str, value, role: str) -> list[Choice] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    if not items or len(items) > MAX_CHOICES:
        raise ctx.fail(key, value, f"a non-empty list of at most {MAX_CHOICES} quantizer choices")
    choices: list[Choice] = []
    for i, item in enumerate(items):
        for spec in _expand_spec(ctx, f"{key}[{i}]", item):
            if spec is not None:
                _check_quantizer(ctx, f"{key}[{i}]", spec, role)
            choice = Choice(label_of(spec), spec)
            if choice.label not in {c.label for c in choices}:
                choices.append(choice)
    return choices


def _parse_rules(ctx: _Ctx, value, layer_names: list[str]) -> list[Rule]:
    if not isinstance(value, list) or not value:
        raise ctx.fail("layers", value, "a non-empty list of rules {select, weight, activation, relu_slope}")
    rules = []
    for i, rule in enumerate(value):
        key = f"layers[{i}]"
        if not isinstance(rule, dict) or "select" not in rule:
            raise ctx.fail(key, rule, "a mapping with select and weight/activation/relu_slope")
        for k in rule:
            if k not in RULE_KEYS:
                raise ctx.fail(f"{key}.{k}", rule[k], f"keys {', '.join(RULE_KEYS)}")
        share = rule.get("share", False)
        if not isinstance(share, bool):
            raise ctx.fail(f"{key}.share", share, "true or false")
        slopes = rule.get("relu_slope")
        if slopes is not None:
            slopes = slopes if isinstance(slopes, list) else [slopes]
            if not slopes or len(slopes) > MAX_CHOICES or any(not finite_number(s) or s <= 0 for s in slopes):
                raise ctx.fail(f"{key}.relu_slope", rule["relu_slope"],
                               f"finite numbers > 0, e.g. [1.0, 0.125] (at most {MAX_CHOICES})")
            slopes = list(dict.fromkeys(float(s) for s in slopes))
        weight = _parse_choices(ctx, f"{key}.weight", rule.get("weight"), "weight")
        activation = _parse_choices(ctx, f"{key}.activation", rule.get("activation"), "activation")
        if weight is None and activation is None and slopes is None:
            raise ctx.fail(key, rule, "at least one of weight, activation, relu_slope")
        rules.append(Rule(i, _select(ctx, f"{key}.select", rule["select"], layer_names), share,
                          weight, activation, slopes))
    # per dimension, a later rule that sets it wins for the layers it selects
    for i, rule in enumerate(rules):
        for dim in DIMS:
            if _values(rule, dim) is None:
                continue
            later = {n for r in rules[i + 1:] if _values(r, dim) is not None for n in r.layers}
            rule.owned[dim] = [n for n in rule.layers if n not in later]
    return rules


def _parse_presets(ctx: _Ctx, value):
    if value is None:
        return None
    try:
        from autoq.config import PRESETS
    except ImportError:
        PRESETS = None
    if not isinstance(value, list) or any(not isinstance(p, str) for p in value):
        raise ctx.fail("presets", value, "a list of preset names")
    for i, p in enumerate(value):
        if PRESETS is not None and p not in PRESETS:
            raise ctx.fail(f"presets[{i}]", p, ", ".join(PRESETS))
    return list(value)


def shipped_input_shape(model: str) -> tuple[int, int, int]:
    """The ``input`` of the first shipped search space for ``model`` (lenet5: digits' 8x8x1), else
    the model's reference input (autoq.models.REFERENCE_INPUT): the default of `autoq cost`."""
    import yaml

    from autoq.models.zoo import REFERENCE_INPUT
    from autoq.resources import resource_dir

    for path in sorted(resource_dir("search_spaces").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        if isinstance(raw, dict) and raw.get("model") == model and raw.get("input"):
            return tuple(int(v) for v in raw["input"])  # type: ignore[return-value]
    return REFERENCE_INPUT.get(model, (32, 32, 3))
