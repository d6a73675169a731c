"""`autoq export`: one finished trial -> ONNX + .qbin + C + manifest, each checked against Keras.

Steps (each failure is a UserError naming what went wrong, with the numbers):
1. read the trial (config, plan, metrics, costs, weights path) from the study;
2. cost it on the target (stored costs or re-estimated from the LayerPlan) and refuse a model
   that does not fit the target's memory unless ``force``;
3. load the trained .keras model and the test split, translate the model (autoq.export.graph);
4. model.onnx: onnxruntime logits within 1e-4 of Keras on the test split;
5. model.qbin: written, read back and validated (CRCs, shapes), decoded weights equal the
   quantizers' decode;
6. model.h / model.c (+ main.c, Makefile, the kernel sources): compiled on the host, argmax
   identical to Keras on every test sample and logits within tolerance; for a microcontroller
   target (a profile with sram_bytes) also linked with arm-none-eabi-gcc and measured;
7. manifest.json: configuration, metrics, predicted costs per target, checks, file sizes and
   SHA-256 of every file; the trained model as model.keras.
"""
from __future__ import annotations

import hashlib
import json
import logging
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autoq.errors import UserError

log = logging.getLogger(__name__)

ONNX_TOLERANCE = 1e-4
C_ATOL, C_RTOL = 1e-3, 1e-4       # C vs Keras: the kernels sum in another order than TensorFlow
MAX_FLIPPED = 0.02                 # share of samples allowed a quantized-activation level flip (C and ONNX checks)


@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict
    lines: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        return self.lines


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _find_trial(study, number: int):
    import optuna

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise UserError(f"--trial: the study has no trial {number}; trials are 0..{max(trials, default=-1)}")
    t = trials[number]
    status = t.user_attrs.get("status", "ok")
    if t.state != optuna.trial.TrialState.COMPLETE or status != "ok":
        raise UserError(f"--trial {number}: trial is {t.state.name.lower()} (status {status!r}"
                        f"{', ' + t.user_attrs['fail_reason'] if t.user_attrs.get('fail_reason') else ''}); "
                        "export a finished trial from `autoq pareto`")
    for key in ("config", "plan", "metrics"):
        if not t.user_attrs.get(key):
            raise UserError(f"--trial {number}: the trial has no {key!r} user attribute (contracts.md, Study)")
    return t


def _costs(trial, targets: list[str]) -> dict[str, dict]:
    """CostReport dicts per target: stored ones first, others re-estimated from the plan."""
    from autoq.search.records import default_estimator

    stored = trial.user_attrs.get("costs") or {}
    out = {}
    for i, target in enumerate(targets):
        if target in stored:
            out[target] = {**stored[target], "source": "stored"}
        else:
            try:
                out[target] = {**default_estimator(target)(trial.user_attrs["plan"]), "source": "estimated"}
            except UserError as exc:
                if i == 0:           # the export target itself must be costed
                    raise
                out[target] = {"error": str(exc)}   # e.g. a profile without coefficients for a kind
        out[target].pop("per_layer", None)
    return out


def _fit_message(target: str, cost: dict, profile) -> str:
    parts = []
    for what, used, limit in (("flash", cost["flash_bytes"], profile.flash_limit_bytes),
                              ("peak RAM", cost["peak_ram_bytes"], profile.ram_limit_bytes)):
        if limit and used > limit:
            parts.append(f"{what} {used:,} B > {limit:,} B (over by {used - limit:,} B)")
    return f"does not fit {target}: " + ("; ".join(parts) or "the cost model says it does not fit")


def run_data_source(study) -> dict:
    """The data the run trained on: {dataset, data_path, seed}. The search stores its effective
    values in the study's ``training`` attribute (seed after --seed, resolved paths after
    --data); older runs fall back to the space's own keys."""
    space = study.user_attrs.get("space") or {}
    training = study.user_attrs.get("training") or {}
    space_training = space.get("training") if isinstance(space.get("training"), dict) else {}
    seed = training.get("seed", space_training.get("seed", 0))
    return {"dataset": training.get("dataset", space.get("dataset", "digits")),
            "data_path": training.get("data_path", space.get("data_path")), "seed": int(seed or 0)}


def _load_data(study, data_path: str | None):
    from autoq.data import load_dataset

    source = run_data_source(study)
    name, path = source["dataset"], data_path or source["data_path"]
    if path is None and str(name).endswith(".npz"):
        name, path = Path(name).stem, name
    return load_dataset(name, data_path=path, seed=source["seed"])


def _load_model(path: str):
    from autoq.tf_env import import_tf

    import_tf()
    import keras

    import autoq.quant.layers  # noqa: F401 -- registers QConv2D/QDense/QActivation for loading

    if not Path(path).is_file():
        raise UserError(f"weights_path: the trained model {path!r} does not exist (was the run folder moved?)")
    return keras.saving.load_model(path, compile=False)


def keras_logits(model, x: np.ndarray, per_sample: bool = False) -> np.ndarray:
    """Keras logits in batches of 256 (``per_sample``: one sample at a time; the activation
    ranges are fixed at inference, so both give the same numbers)."""
    from autoq.tf_env import import_tf

    tf = import_tf()
    if not len(x):
        return np.zeros((0,) + tuple(model.output_shape[1:]), np.float32)
    run = tf.function(lambda v: model(v, training=False), reduce_retracing=True)   # traced once per shape
    step = 1 if per_sample else 256
    return np.concatenate([run(tf.constant(x[i:i + step])).numpy() for i in range(0, len(x), step)])


def keras_layer_inputs(model, graph, x: np.ndarray) -> dict:
    """Keras' float input of every layer that quantizes its input, for samples ``x``."""
    import keras

    names = [op.name for op in graph.compute if op.input_form is not None]
    if not names:
        return {}
    probe = keras.Model(model.inputs, [model.get_layer(n).input for n in names])
    outs = probe(x, training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return {n: np.asarray(o) for n, o in zip(names, outs)}


def _check_qbin(path: Path, graph) -> dict:
    from autoq.export import qbin

    qf = qbin.read_qbin(path)
    for op, layer in zip(graph.compute, qf.layers):
        if not np.array_equal(layer.decoded(), op.layer.decoded()):
            raise UserError(f"{path}: layer {layer.name}: weights read back differ from the written ones")
        f, g = layer.input_form, op.layer.input_form
        if (f is None) != (g is None) or f is not None and (f.op, np.float32(f.step), f.qmin, f.qmax) != \
                (g.op, np.float32(g.step), g.qmin, g.qmax):
            raise UserError(f"{path}: layer {layer.name}: input form read back {f} differs from the written {g}")
    return {"layers": len(qf.layers), "bytes": qf.size, "crc_ok": True}


def _allowed_flips(graph, samples: int) -> int:
    """Samples that may differ by one quantized-activation level (none without such activations)."""
    quantized = any(op.input_quantizer is not None for op in graph.compute)
    return int(MAX_FLIPPED * samples) if quantized else 0


def _check_c(out: Path, graph, x: np.ndarray, reference: np.ndarray, work: Path, keras_inputs=None) -> dict:
    from autoq.export import c_emit
    from autoq.export.levels import LEVEL_CHECK_SAMPLES, c_layer_inputs, compare_levels, describe, explained

    t0 = time.perf_counter()
    exe = c_emit.build_host(out, work / "host")
    got = c_emit.run_host(exe, x, int(np.prod(graph.output_shape)), work / "host")
    diff = np.abs(got - reference)
    mismatches = int(np.sum(np.argmax(got, 1) != np.argmax(reference, 1)))
    excess = (diff / (C_ATOL + C_RTOL * np.abs(reference))).max(axis=1, initial=0.0)
    outside = int(np.sum(excess > 1))
    # The kernels add in another order than TensorFlow. Without quantized activations that only
    # moves the last bits; in front of a quantized activation a last-bit change can move one value
    # to the next level (a rounding tie), which shifts that sample's logits by ~one level. Such
    # samples are allowed (and counted) up to MAX_FLIPPED of the split, or all of them when the
    # level check (autoq.export.levels) finds only single-level flips where C and Keras part (deep
    # networks: the flips cascade); argmax must always agree.
    allowed, levels = _allowed_flips(graph, len(x)), None
    if allowed and outside > allowed and not mismatches and keras_inputs is not None:
        worst = np.argsort(-excess)[:LEVEL_CHECK_SAMPLES]
        levels = compare_levels(graph, c_layer_inputs(out, graph, x[worst], work), keras_inputs(x[worst]), len(worst))
        if explained(levels):
            allowed = outside
    if mismatches or outside > allowed:
        raise UserError(f"C export check failed on the host: {mismatches} of {len(x)} argmax differ from Keras; "
                        f"{outside} samples have logits outside {C_ATOL:g} + {C_RTOL:g}*|logit| (allowed {allowed}); "
                        f"max |logit diff| {float(diff.max()):.3g}" + (f"; {describe(levels)}" if levels else ""))
    return {"samples": int(len(x)), "argmax_mismatches": mismatches, "max_abs_diff": float(diff.max(initial=0.0)),
            "samples_outside_tolerance": outside, "allowed_outside": allowed, "level_check": levels,
            "median_max_abs_diff": float(np.median(diff.max(axis=1))) if len(x) else 0.0,
            "tolerance": {"atol": C_ATOL, "rtol": C_RTOL}, "build_and_run_seconds": time.perf_counter() - t0}


def export_trial(run: str, trial_number: int, target: str, out: str | Path, force: bool = False,
                 data_path: str | None = None, emit_c: bool = True, max_samples: int | None = None,
                 c_variant: str = "opt", storage: str | None = None, study_name: str | None = None,
                 artifacts: str | None = None) -> ExportResult:
    """Export trial ``trial_number`` of ``run`` for ``target`` into ``out`` (see the module doc).

    c_variant: "opt" (optimised kernels, static scratch sized by the kernels) or "ref".
    storage, study_name: a shared study instead of ``run`` (autoq.search.records.open_run).
    artifacts: the artifact folder the search uploaded the models to (default: the one
    recorded on the trial); runs older than the artifact store use ``weights_path``.
    """
    if c_variant not in ("opt", "ref"):
        raise UserError(f"--c-kernels: got {c_variant!r}; allowed: opt, ref")
    from autoq.cost.profile import list_profiles, load_profile
    from autoq.search.records import open_run
    from autoq.search.artifacts import model_file

    study, study_path = open_run(run, storage, study_name)
    trial = _find_trial(study, trial_number)
    profile = load_profile(target)
    targets = list(dict.fromkeys([target, *(study.user_attrs.get("targets") or []), *list_profiles()]))
    costs = _costs(trial, targets)
    cost = costs[target]
    if not cost["fits"] and not force:
        raise UserError(f"trial {trial_number} {_fit_message(target, cost, profile)}; pass --force to export anyway")
    lines = [f"trial {trial_number} on {target}: predicted {cost['latency_ms']:.3f} ms, flash {cost['flash_bytes']:,} B, "
             f"peak RAM {cost['peak_ram_bytes']:,} B, fits: {cost['fits']}"]

    out = _output_folder(out, force)
    attrs = trial.user_attrs
    model_path = model_file(attrs, out, artifacts)
    ex, dataset = _start(out, model_path, study, data_path, max_samples, lines)
    _write_onnx(ex)
    _write_qbin(ex, {"model": attrs["config"].get("model"), "input_shape": list(ex.graph.input_shape),
                     "num_classes": int(np.prod(ex.graph.output_shape)), "trial": trial_number, "target": target,
                     "dataset": dataset})
    if emit_c:
        _write_c(ex, profile, f"trial {trial_number}, target {target}", c_variant, force)
    if Path(model_path) != out / "model.keras":
        shutil.copy2(model_path, out / "model.keras")
    ex.written.append(out / "model.keras")
    manifest = _write_manifest(ex, {"study": str(study_path), "study_name": study.study_name, "trial": trial_number,
                                    "target": target, "config": attrs["config"], "plan": attrs["plan"],
                                    "metrics": attrs["metrics"], "predicted": costs})
    return ExportResult(out, manifest, ex.lines)


@dataclass
class _Export:
    """One export under way: the trained model, its two graphs, the test samples and Keras'
    logits for them; what the steps checked (the manifest's ``checks``), reported and wrote."""

    out: Path
    model: object
    graph: object                 # BatchNorm as Keras computes it: ONNX and C
    folded: object                # BatchNorm folded into the epilogues: .qbin
    x: np.ndarray
    reference: np.ndarray
    checks: dict
    lines: list[str]
    written: list[Path] = field(default_factory=list)

    def keras_inputs(self, xs: np.ndarray) -> dict:
        return keras_layer_inputs(self.model, self.graph, xs)


def _output_folder(out: str | Path, force: bool) -> Path:
    out = Path(out).resolve()       # the C builds run in other working directories
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UserError(f"--out: {str(out)!r} is not an empty folder; choose a new one or pass --force to "
                        "write into it (files the export does not write are left alone and not listed)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _start(out: Path, model_path: str, study, data_path: str | None, max_samples: int | None,
           lines: list[str]) -> tuple[_Export, str]:
    """The export of the model at ``model_path`` on the run's test split (and the dataset's name)."""
    from autoq.export.graph import build_graph

    model = _load_model(model_path)
    data = _load_data(study, data_path)
    x = data.x_test if max_samples is None else data.x_test[:max_samples]
    x = np.ascontiguousarray(x, np.float32)
    graph = build_graph(model, fold_bn=False)      # ONNX and C: Keras' own BatchNorm arithmetic
    folded = build_graph(model, fold_bn=True)      # .qbin: BatchNorm folded into each layer's epilogue
    reference = keras_logits(model, x)
    checks: dict = {"keras_test_acc": float(np.mean(np.argmax(reference, 1) == data.y_test[:len(x)]))}
    return _Export(out, model, graph, folded, x, reference, checks, lines), data.name


def _write_onnx(ex: _Export) -> None:
    from autoq.export import onnx as xonnx

    x = ex.x
    check = ex.checks["onnx"] = xonnx.export_onnx(ex.graph, x, ex.reference, ex.out / "model.onnx", ONNX_TOLERANCE,
                                                  allowed_flips=_allowed_flips(ex.graph, len(x)),
                                                  keras_inputs=ex.keras_inputs)
    ex.written.append(ex.out / "model.onnx")
    ex.lines.append(f"model.onnx: onnxruntime vs Keras on {len(x)} test samples: argmax identical, max |diff| "
                    f"{check['max_abs_diff']:.2e} ({check['samples_beyond_tolerance']} samples beyond "
                    f"{ONNX_TOLERANCE:g}: quantized-activation level flips; weights "
                    f"{', '.join(sorted(set(check['weights'].values())))})")


def _write_qbin(ex: _Export, meta: dict) -> None:
    from autoq.export import qbin

    path = ex.out / "model.qbin"
    ex.written.append(qbin.write_qbin(path, [op.layer for op in ex.folded.compute], meta))
    check = ex.checks["qbin"] = _check_qbin(path, ex.folded)
    ex.lines.append(f"model.qbin: {check['layers']} layers, {check['bytes']:,} bytes, read back and CRCs ok")


def _write_c(ex: _Export, profile, comment: str, c_variant: str, force: bool) -> None:
    """model.h / model.c / main.c, the kernels and a Makefile; built and run on the host against
    Keras, and for a microcontroller target (sram_bytes) linked and measured."""
    from autoq.cost.deploy import emit_for_target
    from autoq.cost.model import estimate
    from autoq.export import c_emit
    from autoq.resources import resource_dir

    out, x, checks = ex.out, ex.x, ex.checks
    ex.written += c_emit.copy_kernels(resource_dir("kernels"), out)
    ex.written.append(c_emit.write_makefile(out))
    with tempfile.TemporaryDirectory(prefix="autoq-export-") as tmp:
        # the plan of this export: the target build's scratch, and what the cost model prices
        plan, em = emit_for_target(ex.graph, profile.deploy.arch, comment=comment, variant=c_variant)
        (out / "model.h").write_text(em.header)
        (out / "model.c").write_text(em.source)
        (out / "main.c").write_text(em.main)
        ex.written += [out / "model.h", out / "model.c", out / "main.c"]
        checks["c_host"] = _check_c(out, ex.graph, x, ex.reference, Path(tmp), keras_inputs=ex.keras_inputs)
        checks["c_layers"] = [{"layer": cl.op.name, "kernel": cl.kind, "weight_bytes": cl.weight_bytes,
                               **({"note": cl.note} if cl.note else {})} for cl in em.layers]
        checks["c_static_ram_bytes"] = em.ram_bytes
        checks["c_kernels"] = {"variant": c_variant, "scratch_bytes": em.scratch_bytes}
        ch = checks["c_host"]
        ex.lines.append(f"model.c: host build vs Keras on {len(x)} test samples: argmax identical, median max "
                        f"|diff| {ch['median_max_abs_diff']:.2e}, max {ch['max_abs_diff']:.2e} ("
                        f"{ch['samples_outside_tolerance']} samples beyond {C_ATOL:g}: quantized-activation level "
                        f"flips); {c_variant} kernels, static RAM {em.ram_bytes:,} B (scratch {em.scratch_bytes:,} "
                        f"B), weights {em.weight_bytes:,} B")
        if "sram_bytes" in profile.memory:
            checks["c_m4"] = _check_m4(out, Path(tmp), profile, force, ex.lines, estimate(plan, profile))


def _write_manifest(ex: _Export, about: dict) -> dict:
    """manifest.json: ``about`` the trial (study, config, plan, metrics, predicted costs), the
    checks, the environment, and the size and SHA-256 of every file written."""
    out = ex.out
    manifest = {"autoq_export": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **about,
                "checks": ex.checks,
                "environment": {"python": platform.python_version(), "machine": platform.machine(), **_versions()}}
    manifest["files"] = {str(p.relative_to(out)): {"bytes": p.stat().st_size, "sha256": sha256(p)}
                         for p in sorted(set(ex.written))}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=_json_default))
    sizes = {k: v["bytes"] for k, v in manifest["files"].items() if "/" not in k}
    ex.lines.append("files: " + ", ".join(f"{k} {v:,} B" for k, v in sizes.items()) + f" -> {out}/manifest.json")
    return manifest


def _check_m4(out: Path, work: Path, profile, force: bool, lines: list[str], predicted) -> dict:
    from autoq.export import c_emit

    sizes = c_emit.build_m4(out, work / "m4")
    flash_limit, ram_limit = profile.flash_limit_bytes, profile.ram_limit_bytes
    stack = sizes["stack_bytes_estimate"] or 0
    ram_used = sizes["sram_bytes"] + stack          # static data + bss + estimated stack
    result = {"flash_bytes": sizes["flash_bytes"], "sram_bytes": sizes["sram_bytes"], "stack_bytes_estimate": stack,
              "sram_with_stack_bytes": ram_used, "sections": sizes["sections"], "flash_limit": flash_limit,
              "sram_limit": ram_limit, "fits": sizes["flash_bytes"] <= flash_limit and ram_used <= ram_limit,
              "predicted_flash_bytes": predicted.flash_bytes, "predicted_ram_bytes": predicted.peak_ram_bytes}
    over = [f"{what} over by {used - limit:,} B" for what, used, limit in
            (("flash", sizes["flash_bytes"], flash_limit), ("SRAM", ram_used, ram_limit)) if used > limit]
    lines.append(f"{profile.id} build (arm-none-eabi-gcc, --gc-sections): flash {sizes['flash_bytes']:,} / "
                 f"{flash_limit:,} B, SRAM {ram_used:,} / {ram_limit:,} B (static {sizes['sram_bytes']:,} + stack "
                 f"estimate {stack:,}): " + ("fits" if result["fits"] else "DOES NOT FIT, " + "; ".join(over))
                 + f"; the plan predicted flash {predicted.flash_bytes:,} B ({_pct(predicted.flash_bytes, sizes['flash_bytes'])}),"
                 f" SRAM {predicted.peak_ram_bytes:,} B ({_pct(predicted.peak_ram_bytes, ram_used)})")
    if not result["fits"] and not force:
        raise UserError(f"the {profile.id} build does not fit: {'; '.join(over)} (flash {sizes['flash_bytes']:,} B, "
                        f"SRAM {ram_used:,} B incl. stack); pass --force to keep the export anyway")
    return result


def _pct(predicted: int, measured: int) -> str:
    return f"{100.0 * (predicted - measured) / measured:+.1f} %" if measured else "n/a"


def _versions() -> dict:
    out = {}
    for mod in ("numpy", "onnx", "onnxruntime", "keras", "tensorflow"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 -- versions are informative only
            pass
    return out


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
