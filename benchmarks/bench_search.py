"""Does `autoq search` earn its keep? Sample efficiency against random search, and trial cost.

1. ``lenet``: LeNet-5 / digits on m4, presets off on both sides, per seed: autoq's own
   proposals (sensitivity/ILP, then TPE) after N = 12 trials against random search after
   3N = 36. Hypervolume (HV) of each run's feasible front on (1 - val_acc, latency, flash),
   normalised over both runs together (min-max of the union, reference 1.1 per axis).
2. ``resnet``: the same on ResNet-20 with 32x32x3 data (digits upsampled 4x, 3 channels,
   written to a .npz: see resnet_data), N = 8 against 24, on a reduced space
   (benchmarks/resnet20_bench.yaml), seeds 0 and 1.
3. ``default``: the shipped default (presets on, TPE, proposals auto) at N = 16 against
   random search at 48 that starts with the same presets (the presets are not what is compared).
4. ``cost``: median trial wall time of a search against the same epochs + evaluation on an
   already-traced plain Keras float model (model.fit + model.evaluate), same process.
Every part also counts trials recorded ok at chance accuracy (must be 0) and the epochs a
"did not learn" trial ran (must be 1).

usage: python benchmarks/bench_search.py [--part all|lenet|resnet|default|cost]
                                         [--seeds 0,1,2] [--epochs 2] [--out DIR]
                                         [--resnet-seeds 0,1] [--resnet-epochs 1]
Runtime on 2 busy cores: lenet 12 min (3 seeds, load ~11), resnet 20 min (2 seeds, baselines and
sensitivity included, load ~4.5), default 7.5 min (2 seeds, load ~11), cost 0.5-2 min.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autoq.search import Budget, SearchOptions, run_search  # noqa: E402
from autoq.space import load_space  # noqa: E402

HERE = Path(__file__).resolve().parent


STEPS: dict = {}


def shared_steps(opts):
    """One KerasSteps (data, baseline, traced switch model) per space and seed: the runs of a
    comparison share the one-time trace, as the trials of one search do."""
    from autoq.search.runner import default_steps

    key = (opts.space.name, opts.space.data_path, opts.seed)
    if key not in STEPS:
        STEPS[key] = default_steps(opts)
    return STEPS[key]


def run(space, target, budget, sampler, out, seed, epochs, cache, proposals=None):
    opts = SearchOptions(space=space, budget=Budget(trials=budget), out_dir=out, targets=[target],
                         sampler=sampler, seed=seed, epochs=epochs, cache_dir=cache, proposals=proposals)
    t0 = time.perf_counter()
    res = run_search(opts, steps_factory=shared_steps)
    return res, time.perf_counter() - t0


def study_of(out: Path):
    import optuna

    return optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")


def points_of(out: Path, target: str) -> np.ndarray:
    """(1 - val_acc, latency, flash) of the run's feasible, trained trials."""
    from autoq.pareto import load_points

    points, _ = load_points(study_of(out), target)
    return np.array([[1 - p.val_acc, p.latency_ms, p.flash_bytes] for p in points if p.fits]).reshape(-1, 3)


def normalised_hvs(outs: list[Path], target: str) -> list[float]:
    """HV of each run, all normalised by the min-max of the union of their points."""
    from autoq.pareto import hypervolume, non_dominated_ranks

    pts = [points_of(o, target) for o in outs]
    union = np.vstack([p for p in pts if len(p)] or [np.zeros((1, 3))])
    lo, hi = union.min(axis=0), union.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    hvs = []
    for p in pts:
        if not len(p):
            hvs.append(0.0)
            continue
        q = (p - lo) / span
        hvs.append(hypervolume(q[non_dominated_ranks(q) == 0], [1.1, 1.1, 1.1]))
    return hvs


def print_fronts(outs: list[Path], labels: list[str], target: str) -> None:
    """Each run's own non-dominated points (which front region a run wins)."""
    from autoq.pareto import non_dominated_ranks

    for out, label in zip(outs, labels):
        p = points_of(out, target)
        if not len(p):
            print(f"    {label}: no feasible point")
            continue
        front = p[non_dominated_ranks(p) == 0]
        front = front[np.argsort(front[:, 1])]
        print(f"    {label} front ({len(front)} of {len(p)}): " + ", ".join(
            f"acc {1 - e:.3f} {lat:.2f} ms {int(fl):,} B" for e, lat, fl in front))


def audit(out: Path, chance: float) -> dict:
    """Trials ok at chance (must be none) and epochs run by the 'did not learn' ones."""
    ok_at_chance, dead, dead_after_1 = 0, 0, 0
    for t in study_of(out).get_trials():
        a = t.user_attrs
        m = a.get("metrics") or {}
        if a.get("status") == "ok" and m.get("val_acc") is not None and m["val_acc"] <= chance + 0.05:
            ok_at_chance += 1
        if a.get("status") == "failed" and "did not learn" in (a.get("fail_reason") or ""):
            dead += 1
            dead_after_1 += m.get("epochs_run") == 1
    return {"ok_at_chance": ok_at_chance, "did_not_learn": dead, "stopped_after_epoch_1": dead_after_1}


def compare(label, space, target, n, k, seeds, epochs, work, cache, presets_on=False,
            show_points=True) -> list[dict]:
    rows = []
    if not presets_on:
        space.presets = []
    for seed in seeds:
        ours = work / f"{label}-autoq-s{seed}"
        rand = work / f"{label}-random-s{seed}"
        r1, s1 = run(space, target, n, "tpe", ours, seed, epochs, cache)
        r2, s2 = run(space, target, k * n, "random", rand, seed, epochs, cache, proposals=0)
        hv_ours, hv_rand = normalised_hvs([ours, rand], target)
        chance = 0.1
        rows.append({"part": label, "seed": seed, "n": n, "hv_autoq": hv_ours, f"hv_random_{k}n": hv_rand,
                     "ratio": hv_ours / max(hv_rand, 1e-12), "proposals": r1.proposals_enqueued,
                     "presets": len(r1.presets_enqueued), "seconds_autoq": s1, "seconds_random": s2,
                     "audit_autoq": audit(ours, chance), "audit_random": audit(rand, chance),
                     "not_ok_autoq": r1.not_ok, "not_ok_random": r2.not_ok})
        print(f"  {label} seed {seed}: HV autoq@{n} {hv_ours:.4f} vs random@{k * n} {hv_rand:.4f} "
              f"-> ratio {rows[-1]['ratio']:.3f} ({'>=' if hv_ours >= hv_rand else '<'}); "
              f"{r1.proposals_enqueued} ILP proposals, {len(r1.presets_enqueued)} presets; "
              f"{s1:.0f} s vs {s2:.0f} s; audit {rows[-1]['audit_autoq']} / {rows[-1]['audit_random']}",
              flush=True)
        if show_points:
            print_fronts([ours, rand], [f"autoq@{n}", f"random@{k * n}"], target)
    return rows


def resnet_data(work: Path) -> Path:
    """32x32x3 data the machine has and a ResNet-20 learns in a few CPU epochs: scikit-learn's
    digits (autoq.data.load_digits, same split), each 8x8 pixel repeated into a 4x4 block and
    over 3 channels. 1438 train images (autoq keeps 10 % of them for validation), 359 test.
    (The earlier 320-image synthetic set gave 3 SGD steps per epoch: the baseline stayed at chance.)"""
    from autoq.data import load_digits

    d = load_digits(0)

    def up(x):
        return np.repeat(np.repeat(np.repeat(x, 4, axis=1), 4, axis=2), 3, axis=3)

    path = work / "digits32.npz"
    np.savez(path, x_train=up(np.concatenate([d.x_train, d.x_val])), y_train=np.concatenate([d.y_train, d.y_val]),
             x_test=up(d.x_test), y_test=d.y_test)
    return path


def trial_cost(work: Path, cache: Path, epochs: int) -> dict:
    """Median trial wall time (presets + sampler, LeNet-5/digits) vs a traced Keras float model."""
    space = load_space("lenet5")
    out = work / "cost"
    run(space, "m4", 10, "tpe", out, 0, epochs, cache, proposals=0)
    walls = [(t.datetime_complete - t.datetime_start).total_seconds() for t in study_of(out).get_trials()
             if t.user_attrs.get("status") in ("ok", "failed") and "cached_from" not in t.user_attrs]
    ref = reference_seconds(space, epochs)
    med = statistics.median(walls)
    print(f"\n4. per-trial cost: median trial wall {med:.3f} s over {len(walls)} trained trials "
          f"(first, with the one-time trace: {walls[0]:.2f} s); traced Keras float model, {epochs} epochs "
          f"+ evaluation: {ref:.3f} s -> ratio {med / ref:.2f}x (target <= 1.5x)")
    return {"median_trial_s": med, "reference_s": ref, "ratio": med / ref, "trials": len(walls)}


def reference_seconds(space, epochs: int) -> float:
    import keras
    import tensorflow as tf

    from autoq.data import load_dataset
    from autoq.models.zoo import build_model

    d = load_dataset(space.dataset, seed=0)
    m = build_model(space.model, d.input_shape, d.num_classes, None)
    m.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    train = tf.data.Dataset.from_tensor_slices((d.x_train, d.y_train)).shuffle(len(d.x_train)).batch(128)
    val = tf.data.Dataset.from_tensor_slices((d.x_val, d.y_val)).batch(512)
    test = tf.data.Dataset.from_tensor_slices((d.x_test, d.y_test)).batch(512)
    m.fit(train, epochs=1, validation_data=val, verbose=0)  # trace
    m.evaluate(test, verbose=0)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        m.fit(train, epochs=epochs, validation_data=val, verbose=0)
        m.evaluate(test, verbose=0)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="all", choices=("all", "lenet", "resnet", "default", "cost"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--resnet-seeds", default="0,1")
    ap.add_argument("--resnet-epochs", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--json", default=None, help="write the results here")
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    work = Path(a.out or tempfile.mkdtemp(prefix="autoq-bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    seeds = [int(s) for s in a.seeds.split(",")]
    print(f"work folder {work}, epochs {a.epochs}, seeds {seeds}", flush=True)
    results: dict = {}
    if a.part in ("all", "lenet"):
        print("\n1. LeNet-5 / digits on m4, presets off: autoq@12 vs random@36", flush=True)
        results["lenet"] = compare("lenet", load_space("lenet5"), "m4", 12, 3, seeds, a.epochs, work, cache)
    if a.part in ("all", "resnet"):
        print("\n2. ResNet-20 / digits upsampled to 32x32x3 on a53, presets off: autoq@8 vs random@24", flush=True)
        space = load_space(HERE / "resnet20_bench.yaml")
        space.data_path = str(resnet_data(work))
        results["resnet"] = compare("resnet", space, "a53", 8, 3, [int(x) for x in a.resnet_seeds.split(",")],
                                    a.resnet_epochs, work, cache)
    if a.part in ("all", "default"):
        print("\n3. shipped default (presets on) LeNet-5 / digits on m4: autoq@16 vs random@48", flush=True)
        results["default"] = compare("default", load_space("lenet5"), "m4", 16, 3, seeds, a.epochs, work,
                                     cache, presets_on=True)
    if a.part in ("all", "cost"):
        results["cost"] = trial_cost(work, cache, a.epochs)
    summary(results)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2, default=str))


def summary(results: dict) -> None:
    print("\nsummary (HV normalised over both runs of a comparison):")
    print("| part | seed | autoq N | HV autoq | HV random 3N | ratio | ok at chance (autoq/random) |")
    print("|---|---|---|---|---|---|---|")
    for part in ("lenet", "resnet", "default"):
        for r in results.get(part, []):
            hv_r = r[[k for k in r if k.startswith("hv_random")][0]]
            print(f"| {part} | {r['seed']} | {r['n']} | {r['hv_autoq']:.4f} | {hv_r:.4f} | {r['ratio']:.3f} | "
                  f"{r['audit_autoq']['ok_at_chance']}/{r['audit_random']['ok_at_chance']} |")
    if "cost" in results:
        c = results["cost"]
        print(f"per-trial cost ratio {c['ratio']:.2f}x (median {c['median_trial_s']:.3f} s vs "
              f"{c['reference_s']:.3f} s)")


if __name__ == "__main__":
    main()
