"""Loading and validating search-space YAML (the schema is in :mod:`autoq.space.model`):
every error names the file, the key path, the value and what is allowed."""
from __future__ import annotations

import fnmatch
import itertools
import logging
import math
import re
from pathlib import Path

from autoq.config import FLOAT_LABEL, PRESETS, SHORTCUT_POLICIES, quantizer_label
from autoq.errors import UserError
from autoq.fileio import MAX_FREE_TEXT, finite_number, free_text, load_yaml, read_text
from autoq.limits import MAX_EPOCHS, MAX_INPUT_SIDE, MAX_SEED
from autoq.objectives import CONSTRAINT_KEYS, FIT_KINDS, split_objective
from autoq.objectives import COST_KINDS as OBJECTIVE_KINDS
from autoq.space.model import (DIMS, LAYER_TYPES, MAX_CHOICES, NAME_PATTERN, RULE_KEYS, TOP_KEYS, TRAINING_KEYS,
                               Choice, Rule, Screen, SearchSpace, _layer_type, _values)

log = logging.getLogger(__name__)

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
    from autoq.train import RECIPES

    if not isinstance(recipe, str) or recipe not in RECIPES:
        raise ctx.fail("training.recipe", recipe, ", ".join(sorted(RECIPES)))
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
        kind, target = split_objective(obj)
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
            choice = Choice(quantizer_label(spec, compact=True), spec)
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
    if not isinstance(value, list) or any(not isinstance(p, str) for p in value):
        raise ctx.fail("presets", value, "a list of preset names")
    for i, p in enumerate(value):
        if p not in PRESETS:
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
