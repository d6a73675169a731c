"""Bad-input suite: every case runs the real `autoq` command line in-process (autoq.cli.main)
and must end with exit code 2, ONE stderr line `error: ...` naming the file / key / what is
allowed, no traceback, and nothing written or changed (the case folder, the shipped
hw_models/ and search_spaces/ are hashed before and after).

Input kinds: search-space YAML, hardware-profile YAML, measurement CSV, QuantConfig JSON,
LayerPlan JSON, .npz data, CIFAR-10 batches, CLI arguments and study files. The .qbin format
has its own validator tests (test_qbin.py). No case imports TensorFlow: each fails before
training would start (the positive controls at the end prove the base inputs are valid, so each
failure is caused by the one mutation). Families and counts: `pytest --collect-only -q`.
"""
from __future__ import annotations

import copy
import hashlib
import json
import pickle
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml

import autoq.cost.calibrate as calibrate_mod
import autoq.cost.profile as profile_mod
from autoq import cli
from autoq.resources import resource_dir

ROOT = Path(__file__).resolve().parent.parent
DIR = object()  # a files-dict value: create a folder instead of a file


@dataclass
class Case:
    id: str
    argv: list[str]                        # "{d}" = the case folder
    files: dict[str, Any]                  # relative path -> str | bytes | DIR | callable(path)
    expect: tuple[str, ...]                # substrings of the error line
    env: dict[str, str] = field(default_factory=dict)   # "{d}" expanded
    own_profiles: bool = False             # profiles_dir() -> {d}/hw (a copy of hw_models)


# --- base inputs --------------------------------------------------------------------------

SPACE = {"name": "tiny", "model": "lenet5", "dataset": "digits", "input": [8, 8, 1],
         "training": {"recipe": "adam", "epochs": 2, "baseline_epochs": 1, "seed": 0},
         "targets": ["m4"], "objectives": ["accuracy", "latency"],
         "constraints": {"max_latency_ms": 50, "fits": True},
         "layers": [{"select": {"type": "conv"}, "weight": [None, "bc"], "relu_slope": [1.0, 0.125]}]}
PROFILE = yaml.safe_load((ROOT / "hw_models" / "m4.yaml").read_text())
PROFILE["id"] = "board"
PLAN = {"input_shape": [8, 8, 1], "layers": [
    {"name": "conv1", "op": "conv2d", "kind": "f32", "weight_bits": 32, "act_bits": 32, "c_in": 1, "c_out": 4,
     "h_in": 8, "w_in": 8, "h_out": 8, "w_out": 8, "kh": 3, "kw": 3, "stride": 1, "padding": "same",
     "macs": 2304, "weight_count": 36, "codebook_len": 0, "per_channel": False, "weight_bytes": 144,
     "codebook_bytes": 0, "bias_bytes": 16, "in_bytes": 256, "out_bytes": 1024}]}
CONFIG = {"model": "lenet5", "shortcut": "quantized", "first_last_float": True,
          "default": {"weight": {"name": "bc"}, "activation": None, "relu_slope": 1.0}, "layers": {}}
CSV = (ROOT / "hw_models" / "measurements" / "m4.csv").read_text()

SEARCH = ["search", "--space", "{d}/space.yaml", "--budget", "1", "--out", "{d}/run", "--no-progress"]
COST_PROFILE = ["cost", "--target", "{d}/board.yaml", "--plan", "{d}/plan.json"]
COST_CONFIG = ["cost", "--target", "m4", "--config", "{d}/config.json"]
COST_PLAN = ["cost", "--target", "m4", "--plan", "{d}/plan.json"]
CALIBRATE = ["calibrate", "--from-csv", "{d}/board.csv", "--target", "brd", "--out", "{d}/brd.yaml"]
TRAIN_NPZ = ["train", "--model", "tiny", "--dataset", "mine", "--data", "{d}/data.npz", "--preset", "base",
             "--epochs", "1", "--out", "{d}/out"]


def _deep(d: dict, path: str, value) -> dict:
    """A deep copy of d with d[path] = value (path 'a.b.0.c'; value DELETE removes the key)."""
    out = copy.deepcopy(d)
    node = out
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for k in keys[:-1]:
        node = node[k]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


DELETE = object()


def _yaml(d) -> str:
    return yaml.safe_dump(d, sort_keys=False)


def space(id_, expect, path=None, value=None, text=None, **kw) -> Case:
    body = text if text is not None else _yaml(_deep(SPACE, path, value))
    return Case(f"space-{id_}", SEARCH, {"space.yaml": body}, ("space.yaml", *expect), **kw)


def profile(id_, expect, path=None, value=None, text=None) -> Case:
    body = text if text is not None else _yaml(_deep(PROFILE, path, value))
    return Case(f"profile-{id_}", COST_PROFILE, {"board.yaml": body, "plan.json": json.dumps(PLAN)},
                ("board.yaml", *expect))


def config(id_, expect, path=None, value=None, text=None) -> Case:
    body = text if text is not None else json.dumps(_deep(CONFIG, path, value))
    return Case(f"config-{id_}", COST_CONFIG, {"config.json": body}, ("config.json", *expect))


def plan(id_, expect, text) -> Case:
    return Case(f"plan-{id_}", COST_PLAN, {"plan.json": text}, ("plan.json", *expect))


def csv_case(id_, expect, text=None, replace=None, argv=CALIBRATE, own_profiles=False) -> Case:
    body = text if text is not None else CSV
    for old, new in (replace or {}).items():
        assert old in body, old
        body = body.replace(old, new, 1)
    return Case(f"csv-{id_}", argv, {"board.csv": body}, ("board.csv", *expect), own_profiles=own_profiles)


def _npz(**arrays) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        base = {"x_train": np.random.default_rng(0).random((20, 8, 8), dtype=np.float32),
                "y_train": np.arange(20) % 4, "x_test": np.random.default_rng(1).random((8, 8, 8), dtype=np.float32),
                "y_test": np.arange(8) % 4}
        base.update(arrays)
        for k in [k for k, v in base.items() if v is None]:
            del base[k]
        np.savez(path, **base)
    return build


def npz(id_, expect, files=None, **arrays) -> Case:
    return Case(f"npz-{id_}", TRAIN_NPZ, files or {"data.npz": _npz(**arrays)}, ("data.npz", *expect))


def _truncated_npz(path: Path) -> None:
    _npz()(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _pickle_npz(path: Path) -> None:
    np.savez(path, x_train=np.array([{"a": 1}] * 4, dtype=object), y_train=np.arange(4), x_test=np.zeros((2, 8, 8)),
             y_test=np.arange(2))


class _RunsCode:
    """A pickle payload: unpickling it would run a shell command (touch MARKER)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _cifar(batch: Callable[[Path, str], bytes]) -> Callable[[Path], None]:
    """A Keras-cache CIFAR-10 folder (datasets/cifar-10-batches-py) whose batches come from ``batch``."""
    def build(root: Path) -> None:
        folder = root / "datasets" / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (folder / name).write_bytes(batch(root, name))
    return build


def _good_batch(root: Path, name: str) -> bytes:
    data = np.random.default_rng(0).integers(0, 256, (10, 3072), dtype=np.uint8)
    return pickle.dumps({b"data": data, b"labels": list(range(10))}, protocol=2)


def _evil_batch(root: Path, name: str) -> bytes:
    if name != "data_batch_1":
        return _good_batch(root, name)
    return pickle.dumps({b"data": _RunsCode(str(root / "PWNED")), b"labels": [0]}, protocol=2)


def cifar(id_, expect, batch) -> Case:
    return Case(f"cifar-{id_}", ["train", "--model", "tiny", "--dataset", "cifar10", "--preset", "base",
                                 "--epochs", "1", "--out", "{d}/out"],
                {"keras": _cifar(batch)}, expect, env={"KERAS_HOME": "{d}/keras"})


def _study(path: Path) -> None:
    import optuna

    study = optuna.create_study(study_name="s", storage=f"sqlite:///{path}", directions=["maximize", "minimize"])
    study.set_user_attr("targets", ["m4"])
    study.set_user_attr("objectives", ["accuracy", "latency"])
    attrs = {"config": CONFIG, "plan": PLAN, "metrics": {"val_acc": 0.5, "test_acc": 0.5, "train_seconds": 1.0},
             "costs": {"m4": {"latency_ms": 1.0, "flash_bytes": 100, "peak_ram_bytes": 10, "fits": True,
                              "per_layer": []}}, "status": "ok"}
    study.add_trial(optuna.trial.create_trial(values=[0.5, 1.0], user_attrs=attrs))


def _other_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("create table notes (x text)")
    con.commit()
    con.close()


def _half_study(path: Path) -> None:
    _study(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _sqlite_header_garbage(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 40)


def study(id_, expect, builder, argv=None) -> Case:
    files = {"run/study.db": builder} if builder is not DIR else {"run/study.db": DIR}
    return Case(f"study-{id_}", argv or ["pareto", "{d}/run"], files, expect)


def cli_case(id_, argv, expect, files=None) -> Case:
    return Case(f"cli-{id_}", argv, files or {}, expect)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
NOT_UTF8 = b"name: caf\xe9\nmodel: lenet5\n"
DEEP_YAML = "model: lenet5\nlayers: " + "[" * 60 + "]" * 60 + "\n"
DEEP_JSON = "[" * 100_000 + "]" * 100_000
BIG_INT = "9" * 5000
NAN, INF = float("nan"), float("inf")


def _ansi(s: str) -> str:
    return f"\x1b[31m{s}\x1b[0m"


# --- the cases ----------------------------------------------------------------------------

SPACE_CASES = [
    space("not-utf8", ["UTF-8"], text=NOT_UTF8),
    space("alias-bomb", ["aliases", "at most"], text=_yaml(SPACE) + BOMB),
    space("recursive-alias", ["nested deeper"], text=_yaml(SPACE) + "x: &r [*r]\n"),
    space("deep-nesting", ["nested deeper", "at most 32"], text=DEEP_YAML),
    space("too-big", ["bytes", "at most"], text=_yaml(SPACE) + "#" + "x" * (5 << 20) + "\n"),
    space("syntax", ["not valid YAML", "line"], text="model: lenet5\nlayers: [\n"),
    space("top-list", ["top level", "mapping"], text="- model\n- lenet5\n"),
    space("top-scalar", ["top level"], text="lenet5\n"),
    space("empty", ["top level"], text=""),
    space("big-int", ["not valid YAML", "digits"], text=f"model: lenet5\nseed: {BIG_INT}\n"),
    space("unknown-key", ["colour", "top-level keys"], "colour", "red"),
    space("description-long", ["description", "at most"], "description", "x" * 5000),
    space("description-list", ["description", "a string"], "description", ["a", "b"]),
    space("description-ansi", ["description", "control character"], "description", _ansi("hi")),
    space("name-markup", ["name", "letters, digits"], "name", "[/x]"),
    space("name-long", ["name", "1-64"], "name", "n" * 65),
    space("name-int", ["name", "1-64"], "name", 5),
    space("name-slash", ["name", "1-64"], "name", "../evil"),
    space("model-unknown", ["model", "lenet5"], "model", "alexnet"),
    space("model-list", ["model", "lenet5"], "model", ["lenet5"]),
    space("dataset-unknown", ["dataset", "digits"], "dataset", "imagenet"),
    space("dataset-int", ["dataset", "digits"], "dataset", 3),
    space("data-path-int", ["data_path", "path string"], "data_path", 3),
    space("input-zero", ["input", "integers 1..4096"], "input", [0, 8, 1]),
    space("input-two", ["input", "height, width, channels"], "input", [8, 8]),
    space("input-huge", ["input", "1..4096"], "input", [100000, 8, 1]),
    space("input-str", ["input", "integers"], "input", ["8", "8", "1"]),
    space("training-list", ["training", "mapping"], "training", [1, 2]),
    space("training-unknown", ["training.lr", "keys"], "training.lr", 0.1),
    space("recipe-unknown", ["training.recipe", "adam"], "training.recipe", "rmsprop"),
    space("epochs-zero", ["training.epochs", "1..100000"], "training.epochs", 0),
    space("epochs-negative", ["training.epochs", "1..100000"], "training.epochs", -3),
    space("epochs-huge", ["training.epochs", "1..100000"], "training.epochs", 10**9),
    space("epochs-str", ["training.epochs", "integer"], "training.epochs", "3"),
    space("epochs-float", ["training.epochs", "integer"], "training.epochs", 2.5),
    space("seed-negative", ["training.seed", "0..4294967295"], "training.seed", -1),
    space("seed-huge", ["training.seed", "0..4294967295"], "training.seed", 2**40),
    space("baseline-epochs-zero", ["training.baseline_epochs", "1..100000"], "training.baseline_epochs", 0),
    space("skip-str", ["training.skip_infeasible", "true or false"], "training.skip_infeasible", "yes"),
    space("screen-margin-nan", ["training.screen.margin", "0..1"], "training.screen", {"epochs": 1, "margin": NAN}),
    space("screen-margin-negative", ["training.screen.margin", "0..1"], "training.screen",
          {"epochs": 1, "margin": -0.1}),
    space("screen-epochs", ["training.screen.epochs", "fewer than"], "training.screen", {"epochs": 5}),
    space("screen-unknown", ["training.screen", "epochs"], "training.screen", {"rounds": 2}),
    space("target-unknown", ["targets", "m4"], "targets", ["z80"]),
    space("targets-empty", ["targets", "non-empty"], "targets", []),
    space("targets-int", ["targets", "profile ids"], "targets", [5]),
    space("objectives-no-accuracy", ["objectives", "accuracy"], "objectives", ["latency", "flash"]),
    space("objectives-unknown", ["objectives[1]", "latency"], "objectives", ["accuracy", "energy"]),
    space("objectives-only-accuracy", ["objectives", "at least one cost"], "objectives", ["accuracy"]),
    space("objectives-target-unknown", ["objectives[1]", "unknown target"], "objectives",
          ["accuracy", "latency@z80"]),
    space("latency-nan", ["constraints.max_latency_ms", "finite number > 0"], "constraints.max_latency_ms", NAN),
    space("latency-inf", ["constraints.max_latency_ms", "finite number > 0"], "constraints.max_latency_ms", INF),
    space("latency-negative", ["constraints.max_latency_ms", "> 0"], "constraints.max_latency_ms", -5),
    space("latency-zero", ["constraints.max_latency_ms", "> 0"], "constraints.max_latency_ms", 0),
    space("flash-str", ["constraints.max_flash_kb", "finite number"], "constraints.max_flash_kb", "big"),
    space("ram-bool", ["constraints.max_ram_kb", "finite number"], "constraints.max_ram_kb", True),
    space("fits-unknown", ["constraints.fits", "sram, flash"], "constraints.fits", ["dram"]),
    space("constraints-unknown", ["constraints.max_power", "keys"], "constraints.max_power", 3),
    space("shortcut-lenet", ["model_choices.shortcut", "shortcuts"], "model_choices", {"shortcut": ["float"]}),
    space("shortcut-unknown", ["model_choices.shortcut", "quantized"], "model_choices", {"shortcut": ["gone"]}),
    space("first-last-str", ["model_choices.first_last_float", "true, false"], "model_choices",
          {"first_last_float": "yes"}),
    space("model-choices-unknown", ["model_choices.width", "keys"], "model_choices", {"width": [1, 2]}),
    space("layers-missing", ["layers", "non-empty list"], "layers", DELETE),
    space("layers-empty", ["layers", "non-empty list"], "layers", []),
    space("rule-no-select", ["layers[0]", "select"], "layers.0.select", DELETE),
    space("select-type", ["layers[0].select.type", "conv, dense, shortcut"], "layers.0.select", {"type": "lstm"}),
    space("select-nomatch", ["layers[0].select", "at least one layer"], "layers.0.select", {"name": "nope*"}),
    space("select-two-keys", ["layers[0].select", "type:"], "layers.0.select", {"type": "conv", "name": "x"}),
    space("rule-unknown", ["layers[0].colour", "keys"], "layers.0.colour", "red"),
    space("share-str", ["layers[0].share", "true or false"], "layers.0.share", "no"),
    space("slope-nan", ["layers[0].relu_slope", "finite numbers > 0"], "layers.0.relu_slope", [1.0, NAN]),
    space("slope-inf", ["layers[0].relu_slope", "finite numbers > 0"], "layers.0.relu_slope", INF),
    space("slope-zero", ["layers[0].relu_slope", "> 0"], "layers.0.relu_slope", [0]),
    space("slope-negative", ["layers[0].relu_slope", "> 0"], "layers.0.relu_slope", [-1.0]),
    space("slope-too-many", ["layers[0].relu_slope", "at most 1000"], "layers.0.relu_slope",
          [1.0 + i / 1e4 for i in range(1001)]),
    space("weight-unknown", ["layers[0].weight[0].name", "registered quantizers"], "layers.0.weight", ["bcx"]),
    space("weight-role", ["layers[0].weight[0].name", "weight quantizers"], "layers.0.weight", ["sign"]),
    space("activation-role", ["layers[0].activation[0].name", "activation quantizers"], "layers.0.activation",
          ["twn"]),
    space("weight-bits", ["layers[0].weight[0]", "arguments"], "layers.0.weight", [{"name": "dorefa", "bits": 99}]),
    space("weight-scale-nan", ["layers[0].weight[0].scale", "finite"], "layers.0.weight",
          [{"name": "bc_scaled", "scale": NAN}]),
    space("weight-empty-list", ["layers[0].weight[0].bits", "non-empty"], "layers.0.weight",
          [{"name": "dorefa", "bits": []}]),
    space("weight-explosion", ["layers[0].weight[0].bits", "at most 1000"], "layers.0.weight",
          [{"name": "dorefa", "bits": list(range(1, 1100))}]),
    space("weight-no-name", ["layers[0].weight[0]", "quantizer name"], "layers.0.weight", [{"bits": 2}]),
    space("rule-nothing", ["layers[0]", "at least one of"], "layers.0", {"select": {"all": True}}),
    space("presets-unknown", ["presets[0]", "base"], "presets", ["turbo"]),
    space("presets-str", ["presets", "list of preset names"], "presets", "base"),
    Case("space-is-folder", SEARCH, {"space.yaml": DIR}, ("space.yaml", "is a folder")),
    Case("space-missing", ["search", "--space", "{d}/nope.yaml", "--budget", "1", "--out", "{d}/run"], {},
         ("nope.yaml", "no such file", "shipped")),
]

PROFILE_CASES = [
    profile("clock-negative", ["clock_hz", "> 0"], "clock_hz", -1),
    profile("clock-zero", ["clock_hz", "> 0"], "clock_hz", 0),
    profile("clock-inf", ["clock_hz", "integer"], "clock_hz", INF),
    profile("clock-float", ["clock_hz", "integer"], "clock_hz", 1.5),
    profile("clock-str", ["clock_hz", "integer"], "clock_hz", "fast"),
    profile("clock-huge", ["clock_hz", "<= 1e+11"], "clock_hz", 10**13),
    profile("word-bits-zero", ["word_bits", "8, 16, 32, 64"], "word_bits", 0),
    profile("word-bits-12", ["word_bits", "8, 16, 32, 64"], "word_bits", 12),
    profile("word-bits-str", ["word_bits", "8, 16, 32, 64"], "word_bits", "32"),
    profile("word-bits-bool", ["word_bits", "8, 16, 32, 64"], "word_bits", True),
    profile("overhead-negative", ["overhead_ns", ">= 0"], "overhead_ns", -5),
    profile("overhead-nan", ["overhead_ns", "finite"], "overhead_ns", NAN),
    profile("overhead-inf", ["overhead_ns", "finite"], "overhead_ns", INF),
    profile("overhead-str", ["overhead_ns", "finite number"], "overhead_ns", "abc"),
    profile("sram-negative", ["memory.sram_bytes", "> 0"], "memory.sram_bytes", -5),
    profile("sram-inf", ["memory.sram_bytes", "integer"], "memory.sram_bytes", INF),
    profile("sram-huge", ["memory.sram_bytes", "<="], "memory.sram_bytes", 2**60),
    profile("memory-missing-key", ["memory", "expected exactly"], "memory.flash_bytes", DELETE),
    profile("memory-mixed", ["memory", "expected exactly"], "memory", {"sram_bytes": 1, "storage_bytes": 2}),
    profile("memory-list", ["memory", "mapping"], "memory", [1, 2]),
    profile("coef-nan", ["kernels.f32.coefficients", "finite"], "kernels.f32.coefficients", {"ns_per_mac": NAN}),
    profile("coef-inf", ["kernels.f32.coefficients", "finite"], "kernels.f32.coefficients", {"ns_per_mac": INF}),
    profile("coef-negative", ["kernels.f32.coefficients.ns_per_mac", ">= 0"], "kernels.f32.coefficients",
            {"ns_per_mac": -1.0}),
    profile("coef-str", ["kernels.f32.coefficients.ns_per_mac", "number"], "kernels.f32.coefficients",
            {"ns_per_mac": "1"}),
    profile("coef-unknown", ["kernels.f32.coefficients.ns_per_joule", "allowed"], "kernels.f32.coefficients",
            {"ns_per_joule": 1.0}),
    profile("coef-empty", ["kernels.f32.coefficients", "at least one"], "kernels.f32.coefficients", {}),
    profile("provenance", ["kernels.f32.provenance", "measured-board"], "kernels.f32.provenance", "guessed"),
    profile("provenance-list", ["kernels.f32.provenance", "measured-board"], "kernels.f32.provenance", ["x"]),
    profile("kind-unknown", ["kernels.fp16", "allowed"], "kernels.fp16", {"coefficients": {}}),
    profile("block-zero", ["kernels.f32.c_out_block", "> 0"], "kernels.f32.c_out_block", 0),
    profile("block-huge", ["kernels.f32.c_out_block", "<= 4096"], "kernels.f32.c_out_block", 10**6),
    profile("points-negative", ["kernels.f32.fit.points", ">= 0"], "kernels.f32.fit.points", -1),
    profile("mape-nan", ["kernels.f32.fit.mape", "finite"], "kernels.f32.fit.mape", NAN),
    profile("fit-missing", ["kernels.f32.fit", "missing"], "kernels.f32.fit", DELETE),
    profile("source-int", ["kernels.f32.source", "string"], "kernels.f32.source", 5),
    profile("board-ansi", ["board", "control character"], "board", _ansi("board")),
    profile("board-long", ["board", "at most 200"], "board", "b" * 300),
    profile("cpu-int", ["cpu", "a string"], "cpu", 4),
    profile("id-path", ["id", "letters"], "id", "../x"),
    profile("unknown-key", ["colour", "allowed"], "colour", "red"),
    profile("kernels-missing", ["kernels", "missing"], "kernels", DELETE),
    profile("notes-control", ["notes", "control character"], "notes", "a\x07b"),
    profile("alias-bomb", ["aliases", "at most"], text=_yaml(PROFILE) + BOMB),
    profile("not-utf8", ["UTF-8"], text="id: board\nboard: caf\xe9\n".encode("latin-1")),
    profile("syntax", ["not valid YAML"], text="id: [board\n"),
    profile("big-int", ["digits"], text=_yaml(_deep(PROFILE, "clock_hz", 1)).replace("clock_hz: 1", f"clock_hz: {BIG_INT}")),
    Case("profile-folder", COST_PROFILE, {"board.yaml": DIR, "plan.json": json.dumps(PLAN)},
         ("board.yaml", "is a folder")),
    Case("profile-missing", COST_PROFILE, {"plan.json": json.dumps(PLAN)}, ("board.yaml", "does not exist")),
    Case("profile-unknown-id", ["cost", "--target", "z80", "--plan", "{d}/plan.json"],
         {"plan.json": json.dumps(PLAN)}, ("z80", "known targets", "m4")),
]

CONFIG_CASES = [
    config("slope-nan", ["not valid JSON", "NaN"], text=json.dumps(CONFIG).replace('"relu_slope": 1.0', '"relu_slope": NaN')),
    config("slope-infinity", ["not valid JSON", "Infinity"],
           text=json.dumps(CONFIG).replace('"relu_slope": 1.0', '"relu_slope": Infinity')),
    config("slope-1e999", ["default.relu_slope", "finite number > 0"],
           text=json.dumps(CONFIG).replace('"relu_slope": 1.0', '"relu_slope": 1e999')),
    config("slope-negative", ["default.relu_slope", "finite number > 0"], "default.relu_slope", -1),
    config("slope-str", ["default.relu_slope", "finite number > 0"], "default.relu_slope", "1"),
    config("scale-1e999", ["default.weight.scale", "finite"],
           text=json.dumps(_deep(CONFIG, "default.weight", {"name": "bc_scaled", "scale": 0.5})).replace("0.5", "1e999")),
    config("unknown-key", ["colour", "allowed"], "colour", "red"),
    config("model-unknown", ["model", "known"], "model", "alexnet"),
    config("model-list", ["model", "known"], "model", ["lenet5"]),
    config("shortcut", ["shortcut", "allowed"], "shortcut", "gone"),
    config("first-last-str", ["first_last_float", "true or false"], "first_last_float", "yes"),
    config("weight-unknown", ["default.weight"], "default.weight", {"name": "bcx"}),
    config("weight-role", ["default.weight"], "default.weight", {"name": "sign"}),
    config("weight-bits", ["default.weight"], "default.weight", {"name": "dorefa", "bits": 99}),
    config("weight-int", ["default.weight", "quantizer name"], "default.weight", 5),
    config("layer-unknown", ["layers.conv9", "unknown layer"], "layers", {"conv9": {"weight": None}}),
    config("layers-list", ["layers", "mapping"], "layers", [1]),
    config("layer-key", ["layers.conv2.colour", "allowed"], "layers", {"conv2": {"colour": 1}}),
    config("deep-recursion", ["nested"], text=DEEP_JSON),
    config("deep-40", ["nested deeper", "at most 32"], text="[" * 40 + "]" * 40),
    config("big-int", ["not valid JSON", "digits"], text='{"model": "lenet5", "x": ' + BIG_INT + "}"),
    config("not-utf8", ["UTF-8"], text=b'{"model": "caf\xe9"}'),
    config("top-list", ["JSON object"], text="[]"),
    config("syntax", ["not valid JSON"], text='{"model": '),
    Case("config-folder", COST_CONFIG, {"config.json": DIR}, ("config.json", "is a folder")),
    Case("config-missing", COST_CONFIG, {}, ("config.json", "not found")),
]

PLAN_CASES = [
    plan("nan", ["not valid JSON", "NaN"], json.dumps(PLAN).replace('"macs": 2304', '"macs": NaN')),
    plan("deep", ["nested"], DEEP_JSON),
    plan("not-utf8", ["UTF-8"], b'{"input_shape": "\xff"}'),
    plan("syntax", ["not valid JSON"], "{"),
    plan("top-list", ["mapping"], "[1, 2]"),
    plan("shape", ["input_shape", "positive integers"], json.dumps({**PLAN, "input_shape": [0, 8, 1]})),
    Case("plan-folder", COST_PLAN, {"plan.json": DIR}, ("plan.json", "is a folder")),
]

CSV_CASES = [
    csv_case("clock-negative", ["clock_hz", "> 0"], replace={"# clock_hz: 80000000": "# clock_hz: -1"}),
    csv_case("clock-inf", ["clock_hz", "integer"], replace={"# clock_hz: 80000000": "# clock_hz: inf"}),
    csv_case("clock-nan", ["clock_hz", "integer"], replace={"# clock_hz: 80000000": "# clock_hz: nan"}),
    csv_case("clock-abc", ["clock_hz", "integer"], replace={"# clock_hz: 80000000": "# clock_hz: abc"}),
    csv_case("clock-huge", ["clock_hz", "<= 1e+11"], replace={"# clock_hz: 80000000": "# clock_hz: 1e30"}),
    csv_case("clock-fraction", ["clock_hz", "integer"], replace={"# clock_hz: 80000000": "# clock_hz: 1.5"}),
    csv_case("word-bits-zero", ["word_bits", "8, 16, 32, 64"], replace={"# word_bits: 32": "# word_bits: 0"}),
    csv_case("word-bits-12", ["word_bits", "8, 16, 32, 64"], replace={"# word_bits: 32": "# word_bits: 12"}),
    csv_case("overhead-abc", ["overhead_ns", "finite number"], replace={"# word_bits: 32": "# word_bits: 32\n# overhead_ns: abc"}),
    csv_case("overhead-negative", ["overhead_ns", ">= 0"], replace={"# word_bits: 32": "# word_bits: 32\n# overhead_ns: -1"}),
    csv_case("overhead-inf", ["overhead_ns", "finite"], replace={"# word_bits: 32": "# word_bits: 32\n# overhead_ns: inf"}),
    csv_case("sram-negative", ["sram_bytes", "> 0"], replace={"# sram_bytes: 32768": "# sram_bytes: -5"}),
    csv_case("board-ansi", ["board", "control character"],
             replace={"# board: TI Tiva C TM4C123G": "# board: " + _ansi("TI")}),
    csv_case("cpu-long", ["cpu", "at most 200"], replace={"# cpu: ARM Cortex-M4F": "# cpu: " + "c" * 300}),
    csv_case("clock-negative-no-out", ["clock_hz", "> 0"], replace={"# clock_hz: 80000000": "# clock_hz: -1"},
             argv=["calibrate", "--from-csv", "{d}/board.csv", "--target", "brd"], own_profiles=True),
    csv_case("overhead-abc-no-out", ["overhead_ns"], replace={"# word_bits: 32": "# word_bits: 32\n# overhead_ns: abc"},
             argv=["calibrate", "--from-csv", "{d}/board.csv", "--target", "m4"], own_profiles=True),
    csv_case("header-only", ["no measurement rows"], text="kind,bits,variant,c_in,c_out,h,w,f,stride,pad,macs,ns_median,ns_min\n"),
    csv_case("empty", ["no header line"], text=""),
    csv_case("missing-column", ["missing column", "ns_median"], text="kind,bits\nf32,32\n"),
    csv_case("not-utf8", ["UTF-8"], text=CSV.encode() + b"# caf\xe9\n"),
    csv_case("too-big", ["bytes", "at most"], text=CSV + ("#" + "x" * 1000 + "\n") * (33 << 10)),
]
_ROW = "f32,32,thesis,3,8,16,16,3,1,valid,"  # first data row prefix of m4.csv
_CSV_ROW = next(line for line in CSV.splitlines() if line.startswith(_ROW))


def _row_case(id_, expect, new_row):
    return csv_case(id_, expect, replace={_CSV_ROW: new_row})


_cells = _CSV_ROW.split(",")


def _cell(name, value):
    cols = "kind,bits,variant,c_in,c_out,h,w,f,stride,pad,macs,ns_median,ns_min".split(",")
    cells = list(_cells)
    cells[cols.index(name)] = value
    return ",".join(cells)


CSV_CASES += [
    _row_case("ns-nan", ["column ns_median", "finite number > 0"], _cell("ns_median", "nan")),
    _row_case("ns-inf", ["column ns_median", "finite number > 0"], _cell("ns_median", "inf")),
    _row_case("ns-negative", ["column ns_median", "> 0"], _cell("ns_median", "-1")),
    _row_case("ns-abc", ["column ns_median", "number of nanoseconds"], _cell("ns_median", "abc")),
    _row_case("ns-min-negative", ["column ns_min", "> 0"], _cell("ns_min", "-4")),
    _row_case("c-in-zero", ["column c_in", "1.."], _cell("c_in", "0")),
    _row_case("c-in-abc", ["column c_in", "integer"], _cell("c_in", "abc")),
    _row_case("c-in-huge", ["column c_in", "1.."], _cell("c_in", str(10**7))),
    _row_case("c-in-bigint", ["column c_in", "integer"], _cell("c_in", BIG_INT)),
    _row_case("bits-zero", ["column bits", "1..32"], _cell("bits", "0")),
    _row_case("macs-mismatch", ["column macs", "the shape gives"], _cell("macs", "5")),
    _row_case("pad", ["pad", "valid, same"], _cell("pad", "diagonal")),
    _row_case("kind", ["column kind", "f32"], _cell("kind", "fp16")),
    _row_case("no-output", ["does not fit"], _cell("h", "2")),
    _row_case("extra-column", ["columns", "header"], _CSV_ROW + ",99"),
    _row_case("variant-ansi", ["column variant", "printable"], _cell("variant", "\x1b[2J")),
    csv_case("variant-missing", ["no rows of variant", "thesis"],
             argv=CALIBRATE + ["--variant", "turbo"]),
    Case("csv-folder", CALIBRATE, {"board.csv": DIR}, ("board.csv", "is a folder")),
    Case("csv-missing", CALIBRATE, {}, ("board.csv", "does not exist")),
    Case("csv-out-folder", CALIBRATE[:-1] + ["{d}/outdir"], {"board.csv": CSV, "outdir": DIR},
         ("--out", "is a folder")),
]

_X = np.random.default_rng(0).random((20, 8, 8), dtype=np.float32)
NPZ_CASES = [
    npz("empty-x-train", ["images of shape", "at least one image"], x_train=np.zeros((0, 8, 8), np.float32),
        y_train=np.zeros(0, np.int64)),
    npz("empty-x-test", ["images of shape", "at least one"], x_test=np.zeros((0, 8, 8), np.float32),
        y_test=np.zeros(0, np.int64)),
    npz("string-labels", ["labels of dtype", "integer class ids"], y_train=np.array(["a", "b"] * 10)),
    npz("label-2-40", ["labels in", "0..65535"], y_train=np.array([2**40] + [1] * 19)),
    npz("label-2-40-test", ["labels in", "0..65535"], y_test=np.array([2**40] * 8)),
    npz("label-negative", ["labels in", "0..65535"], y_train=np.array([-1] + [1] * 19)),
    npz("label-fraction", ["non-integer", "integer class ids"], y_train=np.full(20, 1.5)),
    npz("label-nan", ["non-integer"], y_train=np.full(20, np.nan)),
    npz("label-bool", ["labels of dtype", "integer class ids"], y_train=np.ones(20, bool)),
    npz("label-2d", ["labels of shape", "one integer class"], y_train=np.ones((20, 3), np.int64)),
    npz("pixels-nan", ["NaN or infinite", "finite pixels"], x_train=np.where(_X > 0.5, np.nan, _X)),
    npz("pixels-inf", ["NaN or infinite", "finite"], x_train=np.where(_X > 0.5, np.inf, _X)),
    npz("pixels-300", ["integer pixels", "0..255"], x_train=np.full((20, 8, 8), 300, np.int32)),
    npz("pixels-complex", ["dtype complex", "integers 0..255 or floats"], x_train=_X.astype(np.complex64)),
    npz("pixels-str", ["dtype <U", "floats"], x_train=np.full((20, 8, 8), "a")),
    npz("x-2d", ["images must have shape"], x_train=np.zeros((20, 64), np.float32)),
    npz("length-mismatch", ["lengths differ"], y_train=np.arange(19) % 4),
    npz("shape-mismatch", ["differ in shape"], x_test=np.zeros((8, 9, 9), np.float32)),
    npz("missing-key", ["missing array", "y_test"], y_test=None),
    npz("one-image", ["training image", "at least 2"], x_train=np.zeros((1, 8, 8), np.float32),
        y_train=np.zeros(1, np.int64)),
    npz("object-array", ["not a readable .npz", "pickle"], files={"data.npz": _pickle_npz}),
    npz("truncated-zip", ["not a readable .npz"], files={"data.npz": _truncated_npz}),
    npz("text-file", ["not a readable .npz"], files={"data.npz": "x_train,y_train\n1,2\n"}),
    npz("folder", ["is a folder"], files={"data.npz": DIR}),
    Case("npz-missing", TRAIN_NPZ, {}, ("data.npz", "not found")),
    Case("npz-search-string-labels", ["search", "--space", "lenet5", "--budget", "1", "--data", "{d}/data.npz",
                                      "--out", "{d}/run", "--no-progress"],
         {"data.npz": _npz(y_train=np.array(["a", "b"] * 10))}, ("data.npz", "labels of dtype", "0..65535")),
    Case("npz-search-label-2-40", ["search", "--space", "{d}/space.yaml", "--budget", "1", "--out", "{d}/run",
                                   "--no-progress"],
         {"data.npz": _npz(y_train=np.array([2**40] + [1] * 19)),
          "space.yaml": _yaml({**SPACE, "dataset": "data.npz"})}, ("data.npz", "labels in", "0..65535")),
]

CIFAR_CASES = [
    cifar("code-execution", ["data_batch_1", "refused global posix.system"], _evil_batch),
    cifar("truncated", ["data_batch_1", "not a CIFAR-10 python batch"],
          lambda root, name: _good_batch(root, name)[:100]),
    cifar("wrong-keys", ["data_batch_1", "key data"], lambda root, name: pickle.dumps({b"pixels": 1}, protocol=2)),
    cifar("label-range", ["data_batch_1", "key labels", "0..9"],
          lambda root, name: pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}, protocol=2)),
    cifar("object-array", ["data_batch_1", "refused"],
          lambda root, name: pickle.dumps({b"data": np.array([1, "a"], dtype=object), b"labels": [0]}, protocol=2)),
    cifar("eval", ["data_batch_1", "refused global builtins.eval"],
          lambda root, name: b"cbuiltins\neval\n(V1+1\ntR."),
    Case("cifar-binary-size", ["train", "--model", "tiny", "--dataset", "cifar10", "--preset", "base", "--epochs", "1"],
         {"keras/datasets/cifar-10-batches-bin/" + n: b"\x00" * 100
          for n in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]},
         ("data_batch_1.bin", "records of 3073 bytes"), env={"KERAS_HOME": "{d}/keras"}),
    Case("cifar-missing", ["train", "--model", "tiny", "--dataset", "cifar10", "--preset", "base", "--epochs", "1"],
         {}, ("cifar10", "never downloads"), env={"KERAS_HOME": "{d}/keras"}),
]

CLI_CASES = [
    cli_case("threads-negative", ["train", "--model", "tiny", "--preset", "base", "--threads", "-1"],
             ("--threads", "1..1024")),
    cli_case("threads-zero", ["train", "--model", "tiny", "--preset", "base", "--threads", "0"], ("--threads", "1..")),
    cli_case("train-epochs-zero", ["train", "--model", "tiny", "--preset", "base", "--epochs", "0"],
             ("--epochs", "1..100000")),
    cli_case("train-seed-negative", ["train", "--model", "tiny", "--preset", "base", "--seed", "-1"],
             ("--seed", "0..")),
    cli_case("train-preset-unknown", ["train", "--model", "tiny", "--preset", "turbo"], ("turbo", "known")),
    cli_case("train-preset-and-config", ["train", "--model", "tiny", "--preset", "base", "--config", "x.json"],
             ("exactly one",)),
    cli_case("train-shortcut", ["train", "--model", "tiny", "--preset", "base", "--shortcut", "gone"],
             ("--shortcut", "allowed")),
    cli_case("train-dataset-unknown", ["train", "--model", "tiny", "--preset", "base", "--dataset", "imagenet"],
             ("imagenet", "known")),
    cli_case("models-classes-zero", ["models", "--classes", "0"], ("--classes", "1..65536")),
    cli_case("models-classes-negative", ["models", "--classes", "-5"], ("--classes", "1..65536")),
    cli_case("models-classes-huge", ["models", "--classes", str(2**40)], ("--classes", "1..65536")),
    cli_case("models-shape-zero", ["models", "--input-shape", "0,8,1"], ("--input-shape", "1..4096")),
    cli_case("models-shape-text", ["models", "--input-shape", "abc"], ("--input-shape", "H,W,C")),
    cli_case("models-shape-huge", ["models", "--input-shape", "99999,1,1"], ("--input-shape", "1..4096")),
    cli_case("cost-classes-zero", ["cost", "--target", "m4", "--preset", "bc", "--model", "lenet5",
                                   "--num-classes", "0"], ("--num-classes", "1..65536")),
    cli_case("cost-nothing", ["cost", "--target", "m4"], ("exactly one",)),
    cli_case("cost-preset-unknown", ["cost", "--target", "m4", "--preset", "turbo", "--model", "lenet5"],
             ("turbo", "known")),
    cli_case("search-budget-zero", ["search", "--space", "lenet5", "--budget", "0"], ("--budget", "allowed")),
    cli_case("search-budget-negative", ["search", "--space", "lenet5", "--budget", "-5"], ("--budget", "allowed")),
    cli_case("search-budget-text", ["search", "--space", "lenet5", "--budget", "soon"], ("--budget", "allowed")),
    cli_case("search-workers-zero", ["search", "--space", "lenet5", "--budget", "1", "--workers", "0"],
             ("--workers", "1..1024")),
    cli_case("search-seed-negative", ["search", "--space", "lenet5", "--budget", "1", "--seed", "-1"],
             ("--seed", "0..")),
    cli_case("search-epochs-zero", ["search", "--space", "lenet5", "--budget", "1", "--epochs", "0"],
             ("--epochs", "1..")),
    cli_case("search-sampler", ["search", "--space", "lenet5", "--budget", "1", "--sampler", "cmaes"],
             ("--sampler", "nsga2")),
    cli_case("search-backend", ["search", "--space", "lenet5", "--budget", "1", "--backend", "slurm",
                                "--out", "{d}/run"], ("--backend", "local")),
    cli_case("search-target", ["search", "--space", "lenet5", "--budget", "1", "--target", "z80"], ("z80", "m4")),
    cli_case("search-data-missing", ["search", "--space", "lenet5", "--budget", "1", "--data", "{d}/x.npz"],
             ("--data", "no such file")),
    cli_case("search-resume-empty", ["search", "--space", "lenet5", "--budget", "1", "--out", "{d}/run",
                                     "--resume"], ("--resume", "no search to resume"), files={"run": DIR}),
    cli_case("search-resume-force", ["search", "--space", "lenet5", "--budget", "1", "--out", "{d}/run",
                                     "--resume", "--force"], ("--resume and --force",)),
    cli_case("search-space-shipped-typo", ["search", "--space", "lenet6", "--budget", "1"], ("lenet6", "shipped")),
    cli_case("bench-reps-zero", ["bench-kernels", "--reps", "0"], ("--reps", "1..")),
    cli_case("bench-variant-unknown", ["bench-kernels", "--variants", "turbo", "--kinds", "f32"],
             ("--variants", "turbo", "opt")),
    cli_case("bench-shape", ["bench-kernels", "--shape", "1,2"], ("--shape", "c_in,c_out")),
    cli_case("bench-kind", ["bench-kernels", "--kinds", "fp16"], ("--kinds", "f32")),
    cli_case("export-trial-negative", ["export", "{d}/run", "--trial", "-1", "--target", "m4", "--out", "{d}/o"],
             ("--trial", "0..")),
    cli_case("calibrate-target-needs-csv", ["calibrate", "--target", "m4"], ("--from-csv",)),
]

STUDY_CASES = [
    study("zero-bytes", ["study.db", "empty file"], b""),
    study("random-bytes", ["study.db", "not an SQLite database"], bytes(range(256)) * 20),
    study("text", ["study.db", "not an SQLite database"], "this is not a database\n"),
    study("header-garbage", ["study.db", "not a readable autoq study"], _sqlite_header_garbage),
    study("other-sqlite", ["study.db", "not a readable autoq study"], _other_sqlite),
    study("truncated", ["study.db", "not a readable autoq study"], _half_study),
    study("folder", ["study.db", "is a folder"], DIR),
    study("html-missing-folder", ["--html", "does not exist"], _study,
          argv=["pareto", "{d}/run", "--html", "{d}/nope/report.html"]),
    study("csv-missing-folder", ["--csv", "does not exist"], _study,
          argv=["pareto", "{d}/run", "--csv", "{d}/nope/front.csv"]),
    study("html-is-folder", ["--html", "is a folder"], _study, argv=["pareto", "{d}/run", "--html", "{d}/run"]),
    study("target-unknown", ["z80", "known targets"], _study, argv=["pareto", "{d}/run", "--target", "z80"]),
    study("export-zero-bytes", ["study.db", "empty file"], b"",
          argv=["export", "{d}/run", "--trial", "0", "--target", "m4", "--out", "{d}/o"]),
    study("export-random", ["study.db", "not an SQLite database"], bytes(range(256)) * 20,
          argv=["export", "{d}/run", "--trial", "0", "--target", "m4", "--out", "{d}/o"]),
    Case("study-missing-run", ["pareto", "{d}/nowhere"], {}, ("nowhere", "no study found")),
]

CASES = SPACE_CASES + PROFILE_CASES + CONFIG_CASES + PLAN_CASES + CSV_CASES + NPZ_CASES + CIFAR_CASES + \
    CLI_CASES + STUDY_CASES


# --- the runner ---------------------------------------------------------------------------


def _materialise(root: Path, files: dict[str, Any]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is DIR:
            path.mkdir()
        elif callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def tree_hash(*roots: Path) -> dict[str, str]:
    """Every file and folder under ``roots``: relative path -> content hash ('dir' for folders)."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if "__pycache__" in p.parts:
                continue
            out[f"{root.name}/{p.relative_to(root)}"] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else code), out, err


@pytest.fixture()
def case_dir(tmp_path, monkeypatch):
    d = tmp_path / "case"
    d.mkdir()
    monkeypatch.chdir(d)                       # relative outputs (runs/...) would land here
    monkeypatch.setenv("AUTOQ_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no-keras"))
    return d


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_clean_error_and_changes_nothing(case: Case, case_dir: Path, capsys, monkeypatch):
    _materialise(case_dir, case.files)
    if case.own_profiles:
        hw = case_dir / "hw"
        hw.mkdir()
        for p in resource_dir("hw_models").glob("*.yaml"):
            (hw / p.name).write_bytes(p.read_bytes())
        monkeypatch.setattr(profile_mod, "profiles_dir", lambda: hw)
        monkeypatch.setattr(calibrate_mod, "profiles_dir", lambda: hw)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value.replace("{d}", str(case_dir)))
    shipped = (resource_dir("hw_models"), resource_dir("search_spaces"))
    before = tree_hash(case_dir, *shipped)
    code, out, err = run_cli([a.replace("{d}", str(case_dir)) for a in case.argv], capsys)
    after = tree_hash(case_dir, *shipped)
    assert "Traceback" not in out + err, err
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for part in case.expect:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    assert after == before, f"changed: {sorted(set(after.items()) ^ set(before.items()))}"
    assert not (case_dir / "keras" / "PWNED").exists(), "the crafted pickle ran code"


# --- positive controls: the base inputs are valid, so each case fails by its one mutation ---


def test_base_space_loads(tmp_path):
    from autoq.space import load_space

    path = tmp_path / "space.yaml"
    path.write_text(_yaml(SPACE))
    assert load_space(path).name == "tiny"


def test_base_profile_plan_and_config_cost(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "board.yaml").write_text(_yaml(PROFILE))
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))
    assert run_cli(["cost", "--target", "board.yaml", "--plan", "plan.json"], capsys)[0] == 0
    from autoq.config import QuantConfig

    QuantConfig.from_json(json.dumps(CONFIG))


def test_base_csv_calibrates(tmp_path, capsys):
    (tmp_path / "board.csv").write_text(CSV)
    code, out, err = run_cli(["calibrate", "--from-csv", str(tmp_path / "board.csv"), "--target", "brd",
                              "--out", str(tmp_path / "brd.yaml")], capsys)
    assert code == 0, err
    assert profile_mod.load_profile(tmp_path / "brd.yaml").clock_hz == 80_000_000


def test_base_npz_and_cifar_load(tmp_path, monkeypatch):
    from autoq.data import load_cifar10, load_npz

    _npz()(tmp_path / "data.npz")
    assert load_npz(tmp_path / "data.npz").num_classes == 4
    _cifar(_good_batch)(tmp_path / "keras")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    ds = load_cifar10()
    assert ds.input_shape == (32, 32, 3) and len(ds.y_train) + len(ds.y_val) == 50


def test_base_study_reads(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    _study(tmp_path / "run" / "study.db")
    before = tree_hash(tmp_path)
    code, out, err = run_cli(["pareto", str(tmp_path / "run"), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["n_trials"] == 1
    assert tree_hash(tmp_path) == before   # a read-only command wrote nothing


def test_suite_size():
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)
