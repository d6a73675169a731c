"""Predicted host latency vs the measured exported program (LeNet-5 8x8x1, ResNet-20 32x32x3).

Per configuration (untrained zoo models: latency does not depend on the weight values): the
C is exported as `autoq export` does (autoq.cost.calibrate_ops.write_program: c_emit, opt
kernels, measured scratch) and built with the export's OWN Makefile (`make host`). Measured =
per-inference time of that program over many random inputs: (min over reps of the CPU time
(user + system, os.wait4) of a run over N2 inputs - the same for N1 = N2 / 4 inputs) / (N2 - N1),
so process start-up and file opening cancel; the reps are interleaved over the configurations.
CPU time, not wall time: on the shared machine the wall time mostly measures the neighbours. Predicted =
the cost model on the host profile: kernels (LayerPlan.layers) + non-kernel ops (LayerPlan.ops,
autoq.cost.ops) + overhead, the plan derived from the same emitted C (autoq.export.planning.plan_from_emission).
Prints the table, MAPE and Spearman (goal: MAPE <= 10 %, Spearman >= 0.95); no timed asserts.
Diagnostics: the same C with timer marks per plan item (autoq.cost.calibrate_ops.time_pieces)
splits the measured time into kernels and ops, each next to its prediction.

The profile must be measured with the export's flags (kernels/flags.mk): `autoq calibrate
--target host` (kernels + ops), or --calibrate: the same measurements (kernel grid of
autoq.cost.bench, op timings of autoq.cost.calibrate_ops.CALIBRATION_MODELS) run in rounds
interleaved with the benchmark's own, so calibration and check see the same state of the shared
machine (it drifts by +-30 % over minutes). The calibration's op models are other zoo models or
input sizes, and the kernel grid has random shapes, so these configurations are held out.

usage: python benchmarks/bench_export_latency.py [--calibrate [--save-profile P]] [--profile host]
                                                 [--rounds 3] [--reps 2] [--only NAME,...] [--json out.json]
Runtime: 6-17 min with --calibrate on the 2 shared cores (exports and builds 1.5-4 min, 3 rounds 1.5-4 min each).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import print_table  # noqa: E402

LENET, RESNET = ("lenet5", (8, 8, 1)), ("resnet20", (32, 32, 3))


def _q(weight=None, activation=None, layers=None) -> dict:
    return {"default": {"weight": weight, "activation": activation}, "layers": layers or {}}


DOREFA = {f"lut{b}": {"name": "dorefa", "bits": b} for b in (2, 4, 8)}
MIX_LENET = {"conv2": {"weight": {"name": "uniform", "bits": 8}, "activation": {"name": "uniform", "bits": 8}},
             "fc1": {"weight": {"name": "bc"}, "activation": {"name": "sign"}},
             "fc2": {"weight": {"name": "dorefa", "bits": 4}}}
MIX_RESNET = {**{f"stage1_block{i}_conv{j}": {"weight": {"name": "uniform", "bits": 8},
                                              "activation": {"name": "uniform", "bits": 8}}
                 for i in (1, 2, 3) for j in (1, 2)},
              **{f"stage2_block{i}_conv{j}": {"weight": {"name": "bc"}, "activation": {"name": "sign"}}
                 for i in (1, 2, 3) for j in (1, 2)},
              **{f"stage3_block{i}_conv{j}": {"weight": {"name": "dorefa", "bits": 4}} for i in (1, 2, 3) for j in (1, 2)}}
# (label, (model, input shape), preset name or QuantConfig dict)
CONFIGS = [(f"{m[0]}-{label}", m, spec) for m in (LENET, RESNET) for label, spec in [
    ("f32", "base"), ("lut1", _q({"name": "xnor"})), *[(k, _q(v)) for k, v in DOREFA.items()],
    ("shift", "bc"), ("xnor", "bnn"), ("and", "hybrid"), ("int8", "int8"),
    ("lut1+quant2", "drf-a2"), ("mix", _q(layers=MIX_LENET if m is LENET else MIX_RESNET))]]


def build_config(model_name, shape, spec):
    from autoq.config import QuantConfig, preset
    from autoq.models.zoo import build_model

    config = preset(spec, model_name) if isinstance(spec, str) else QuantConfig.from_dict({**spec, "model": model_name})
    return build_model(model_name, shape, 10, config)


def export(label, model_name, shape, spec, work: Path, objects_from: Path | None) -> dict:
    """Export one configuration, build it with its own Makefile (the kernel objects of the
    first export are reused: same sources, same Makefile rule), derive its plan."""
    from autoq.cost.calibrate_ops import write_program
    from autoq.export.graph import build_graph
    from autoq.export.planning import plan_from_emission

    graph = build_graph(build_config(model_name, shape, spec), fold_bn=False)
    out = work / label
    em = write_program(graph, out, objects_from)
    subprocess.run(["make", "-s", "host"], cwd=out, check=True, capture_output=True)
    return {"label": label, "shape": shape, "out": out, "em": em, "plan": plan_from_emission(graph, em)}


def predict(plan, profile) -> dict:
    from autoq.cost.model import estimate, layer_latency_ns
    from autoq.cost.ops import ops_latency_ns, unpriced_ops

    kernels = sum(layer_latency_ns(e, profile) for e in plan.layers)
    ops = sum(ns for _, ns in ops_latency_ns(plan, profile))
    total = estimate(plan, profile).latency_ms * 1e6     # kernels + ops + overhead
    return {"kernels_ns": kernels, "ops_ns": ops, "total_ns": total, "unpriced": unpriced_ops(plan, profile)}


def write_inputs(rec, budget_s: float) -> None:
    """N2 inputs for about ``budget_s`` of CPU per run (from a 50-input pilot run), N1 = N2 / 4."""
    x = np.random.default_rng(0).uniform(0, 1, (20000, *rec["shape"])).astype("<f4")
    x[:50].tofile(rec["out"] / "in1.f32")
    x[:1].tofile(rec["out"] / "in2.f32")
    pilot = max(run_once(rec, "in1.f32") - run_once(rec, "in2.f32"), 1e-4) / 49
    n2 = int(np.clip(budget_s / pilot, 40, len(x)))
    x[:n2 // 4].tofile(rec["out"] / "in1.f32")
    x[:n2].tofile(rec["out"] / "in2.f32")
    rec["n"] = (n2 // 4, n2)


def run_once(rec, which: str) -> float:
    """CPU time (user + system) of one run of the program: on a shared machine the wall time
    mostly measures the other processes."""
    proc = subprocess.Popen([str(rec["out"] / "model_host"), str(rec["out"] / which), "/dev/null"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{rec['label']}: model_host exited with {os.waitstatus_to_exitcode(status)}")
    return usage.ru_utime + usage.ru_stime


def measure_round(recs, reps: int) -> None:
    """Whole-program ns per inference: (min over runs of T(N2) - min of T(N1)) / (N2 - N1)."""
    for _ in range(reps):
        for r in recs:
            best = r.setdefault("best", [np.inf, np.inf])
            for k, which in enumerate(("in1.f32", "in2.f32")):
                best[k] = min(best[k], run_once(r, which))
            n1, n2 = r["n"]
            r["measured_ns"] = (best[1] - best[0]) / (n2 - n1) * 1e9


def diagnose(rec, reps: int) -> None:
    """In-situ kernel and op time from the same C with a timer mark per plan item."""
    from autoq.cost.calibrate_ops import time_pieces

    x = np.fromfile(rec["out"] / "in1.f32", "<f4").reshape(-1, *rec["shape"])[:200]
    pieces, _ = time_pieces(rec["out"], rec["plan"], rec["em"].source, x, reps)
    rec["insitu_kernels_ns"] = sum(p.ns for p in pieces if p.what == "kernel")
    rec["insitu_ops_ns"] = sum(p.ns for p in pieces if p.what == "op")


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


class Calibration:
    """`autoq calibrate --target host` (kernel grid + ops of the calibration models), split in
    rounds that run between the benchmark's own rounds, so both see the same machine state."""

    def __init__(self, work: Path, objects_from: Path):
        from autoq.cost.bench import calibration_grid
        from autoq.cost.calibrate_ops import CALIBRATION_MODELS, prepare_model

        self.grid = calibration_grid()
        self.programs = [prepare_model(n, s, p, work, objects_from=objects_from) for n, s, p in CALIBRATION_MODELS]
        self.grid_passes, self.op_runs = [], []

    def round(self) -> None:
        from autoq.cost.bench import measure_host
        from autoq.cost.calibrate_ops import time_program

        self.grid_passes.append(measure_host(self.grid, reps=20, rounds=1))
        self.op_runs.append([time_program(p, 2) for p in self.programs])

    def profile(self):
        from autoq.cost.bench import combine_min
        from autoq.cost.calibrate import host_profile
        from autoq.cost.calibrate_ops import CALIBRATION_MODELS, fastest, fit_ops, op_points, ops_source

        rows = [combine_min(group) for group in zip(*self.grid_passes)]
        n = len(self.grid_passes)
        profile = host_profile(rows, f"autoq.kernels bench (opt kernels), {len(self.grid)} grid shapes, min over {n} "
                                     f"passes interleaved with bench_export_latency")
        points = [pt for k, p in enumerate(self.programs)
                  for pt in op_points(p.plan, fastest([r[k] for r in self.op_runs]))]
        profile.ops = fit_ops(points, ops_source(CALIBRATION_MODELS, 2, n))
        return profile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="host", help="profile id or .yaml (default hw_models/host.yaml)")
    ap.add_argument("--calibrate", action="store_true",
                    help="calibrate the host (kernels + ops) in rounds interleaved with the measurements")
    ap.add_argument("--save-profile", default=None, help="with --calibrate: write the profile here")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2, help="runs per program per round")
    ap.add_argument("--budget-ms", type=float, default=100.0, help="CPU time of one N2 run")
    ap.add_argument("--only", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from autoq.cost.profile import dump_profile, load_profile
    from autoq.kernel_flags import host_cflags, kernel_flags

    print(f"export flags: {' '.join(host_cflags(kernel_flags()))}")
    configs = [c for c in CONFIGS if not args.only or c[0] in args.only.split(",")]
    recs = []
    with tempfile.TemporaryDirectory(prefix="autoq-bench-export-") as tmp:
        t0 = time.time()
        for label, (model_name, shape), spec in configs:
            recs.append(export(label, model_name, shape, spec, Path(tmp), recs[0]["out"] if recs else None))
            write_inputs(recs[-1], args.budget_ms / 1e3)
            print(f"  exported and built {label} ({len(recs[-1]['plan'].layers)} layers, {len(recs[-1]['plan'].ops)} "
                  f"ops, N2 = {recs[-1]['n'][1]}) [{time.time() - t0:.0f} s]", flush=True)
        cal = Calibration(Path(tmp) / "calibration", recs[0]["out"]) if args.calibrate else None
        for k in range(args.rounds):
            if cal:
                cal.round()
            measure_round(recs, args.reps)
            print(f"  round {k + 1}/{args.rounds} done [{time.time() - t0:.0f} s]", flush=True)
        for rec in recs:
            diagnose(rec, 2)
        if cal:
            profile = cal.profile()
            if args.save_profile:
                dump_profile(profile, args.save_profile)
        else:
            profile = load_profile(args.profile)
            if not profile.ops:
                sys.exit(f"profile {args.profile!r} has no `ops` section: run `autoq calibrate --target host` "
                         "(or pass --calibrate)")
        for rec in recs:
            rec.update(predict(rec["plan"], profile))
    print(f"profile {profile.id} ({profile.cpu}){' calibrated in this run' if cal else ''}: kernel fit MAPE "
          + ", ".join(f"{k} {v.mape:.1%}" for k, v in profile.kernels.items()) + "; op fit MAPE "
          + ", ".join(f"{k} {v.mape:.1%}" for k, v in profile.ops.items()))
    report(recs, args.json)


def report(recs, json_path) -> None:
    rows, records = [], []
    for r in recs:
        kinds = ",".join(sorted({e.kind for e in r["plan"].layers}))
        err = r["total_ns"] / r["measured_ns"] - 1
        rows.append([r["label"], kinds, f"{r['total_ns'] / 1e3:.1f}", f"{r['measured_ns'] / 1e3:.1f}", f"{err:+.1%}",
                     f"{r['kernels_ns'] / 1e3:.1f} / {r['insitu_kernels_ns'] / 1e3:.1f}",
                     f"{r['ops_ns'] / 1e3:.1f} / {r['insitu_ops_ns'] / 1e3:.1f}"])
        records.append({k: (str(v) if isinstance(v, Path) else v) for k, v in r.items()
                        if k not in ("em", "plan", "out", "best")})
    print_table(["config", "kernel kinds", "predicted us", "measured us", "error",
                 "kernels pred / in situ us", "ops pred / in situ us"], rows, json_path, records)
    p = np.array([r["total_ns"] for r in recs])
    m = np.array([r["measured_ns"] for r in recs])
    k = np.array([r["kernels_ns"] for r in recs])
    print(f"{len(recs)} configurations: MAPE {np.mean(np.abs(p - m) / m):.1%}, max error {np.max(np.abs(p - m) / m):.1%}, "
          f"Spearman {spearman(p, m):.3f} (goal: MAPE <= 10 %, Spearman >= 0.95); kernels only (ops not priced): "
          f"MAPE {np.mean(np.abs(k - m) / m):.1%}")
    unpriced = sorted({u for r in recs for u in r["unpriced"]})
    if unpriced:
        print(f"op kinds without coefficients in the profile (priced 0): {', '.join(unpriced)}")


if __name__ == "__main__":
    main()
