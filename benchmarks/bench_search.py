"""How well and how fast does `autoq search` work? Prints three measurements (this run's).

1. Sample efficiency: hypervolume (HV) of the front after N trials with NSGA-II and with TPE,
   against the random sampler after N and after 2N trials; same space, seed and epochs;
   presets off (they would be the same first trials for every sampler). All runs share one
   normalisation so their HVs compare: point = (1 - val_acc, latency / L0, flash / F0) with
   L0, F0 the float model's cost on the target, reference (1, 1.1, 1.1) (autoq.pareto).
2. Ray Tune with 2 workers vs 1 worker: trials per hour for the same budget (wall clock of
   the whole `run_search`, Ray start included) -- on this 2-core machine.
3. Per-trial time, mean over the NSGA-II run's trained trials: build (model + LayerPlan),
   cost (all targets), train (QAT fine-tune), store (SQLite writes).

usage: python benchmarks/bench_search.py [--space lenet5] [--target m4] [--n 12] [--epochs 2]
                                         [--ray-budget 6] [--skip-ray | --only-ray] [--seed 0]
Runtime with the defaults: ~10-15 minutes on 2 busy cores (about 60 LeNet-5 trials).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autoq.search import Budget, SearchOptions, run_search  # noqa: E402
from autoq.space import load_space  # noqa: E402


def run(space, target, budget, sampler, out, seed, epochs, cache, backend="local", workers=1):
    opts = SearchOptions(space=space, budget=Budget(trials=budget), out_dir=out, targets=[target],
                         sampler=sampler, seed=seed, epochs=epochs, cache_dir=cache,
                         backend=backend, workers=workers)
    t0 = time.perf_counter()
    res = run_search(opts)
    return res, time.perf_counter() - t0


def study_of(out: Path):
    import optuna

    return optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")


def normalised_hv(out: Path, target: str, l0: float, f0: float) -> tuple[float, int]:
    """HV with the shared normalisation; only feasible, trained trials count."""
    from autoq.pareto import hypervolume, load_points, non_dominated_ranks

    points, _ = load_points(study_of(out), target)
    pts = np.array([[1 - p.val_acc, p.latency_ms / l0, p.flash_bytes / f0] for p in points if p.fits])
    if not len(pts):
        return 0.0, 0
    front = pts[non_dominated_ranks(pts) == 0]
    return hypervolume(front, [1.0, 1.1, 1.1]), len(front)


def float_cost(space, target: str) -> tuple[float, float]:
    from autoq.search.runner import default_steps

    steps = default_steps(SearchOptions(space=space, budget=Budget(trials=1), out_dir=Path("x")).resolved())
    from autoq.config import preset

    c = steps.cost(steps.plan(preset("base", space.model).to_dict()), target)
    return float(c["latency_ms"]), float(c["flash_bytes"])


def timing_table(out: Path) -> dict:
    rows = [t.user_attrs.get("timings") or {} for t in study_of(out).get_trials()
            if t.user_attrs.get("fidelity") in ("full", "screen") and "cached_from" not in t.user_attrs]
    return {k: float(np.mean([r.get(k, 0.0) for r in rows])) for k in ("build", "cost", "train", "store")} | {
        "trials": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="lenet5")
    ap.add_argument("--target", default="m4")
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--ray-budget", type=int, default=6)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--only-ray", action="store_true", help="only measurement 2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    work = Path(a.out or tempfile.mkdtemp(prefix="autoq-bench-search-"))
    cache = work / "cache"
    space = load_space(a.space)
    space.presets = []            # compare the samplers alone
    print(f"space {space.name} ({space.model} on {space.dataset}), target {a.target}, N = {a.n}, "
          f"epochs {a.epochs}, seed {a.seed}, work folder {work}")

    runs = {}
    plan = (("nsga2@N", "nsga2", a.n), ("tpe@N", "tpe", a.n), ("random@N", "random", a.n),
            ("random@2N", "random", 2 * a.n))
    for label, sampler, budget in ([] if a.only_ray else plan):
        out = work / label.replace("@", "-")
        res, secs = run(space, a.target, budget, sampler, out, a.seed, a.epochs, cache)
        runs[label] = (out, res, secs)
        print(f"  ran {label:10s} {res.done:3d} trials in {secs:6.1f} s", flush=True)
    if not a.only_ray:
        sample_efficiency(runs, space, a.target)
    if not a.skip_ray:
        ray_speed(space, a, work, cache)
    if not a.only_ray:
        per_trial_time(runs["nsga2@N"][0])


def sample_efficiency(runs, space, target) -> None:
    l0, f0 = float_cost(space, target)
    print(f"\n1. hypervolume (normalised by the float model: {l0:.3f} ms, {f0:,.0f} B on {target})")
    print(f"   {'run':10s} {'trials':>6s} {'trained ok':>10s} {'front':>5s} {'HV':>8s}")
    hvs = {}
    for label, (out, res, _) in runs.items():
        hv, nfront = normalised_hv(out, target, l0, f0)
        hvs[label] = hv
        ok = sum(t.user_attrs.get("status") == "ok" for t in study_of(out).get_trials())
        print(f"   {label:10s} {res.done:6d} {ok:10d} {nfront:5d} {hv:8.4f}")
    for label in ("nsga2@N", "tpe@N"):
        print(f"   {label} / random@N = {hvs[label] / max(hvs['random@N'], 1e-12):.3f}   "
              f"{label} / random@2N = {hvs[label] / max(hvs['random@2N'], 1e-12):.3f}")


def ray_speed(space, a, work, cache) -> None:
    from autoq.search.runner import default_steps

    # the float baseline is trained once and cached: train it before either timing starts
    default_steps(SearchOptions(space=space, budget=Budget(trials=1), out_dir=work / "warm", seed=a.seed,
                                cache_dir=cache).resolved()).prepare()
    print(f"\n2. Ray Tune, {a.ray_budget} trials (NSGA-II), wall clock incl. Ray start (baseline cached):")
    rates = {}
    for workers in (1, 2):
        out = work / f"ray-{workers}"
        res, secs = run(space, a.target, a.ray_budget, "nsga2", out, a.seed, a.epochs, cache,
                        backend="ray", workers=workers)
        rates[workers] = res.done / secs * 3600
        print(f"   workers {workers}: {res.done} trials in {secs:6.1f} s = {rates[workers]:6.0f} trials/hour",
              flush=True)
    print(f"   2 workers / 1 worker = {rates[2] / rates[1]:.2f}x")


def per_trial_time(out) -> None:
    t = timing_table(out)
    total = sum(t[k] for k in ("build", "cost", "train", "store"))
    print(f"\n3. per-trial time, mean over {t['trials']} trained trials of nsga2@N (seconds):")
    for k in ("build", "cost", "train", "store"):
        print(f"   {k:6s} {t[k]:7.3f}  ({100 * t[k] / total:4.1f} %)")


if __name__ == "__main__":
    main()
