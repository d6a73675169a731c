"""How good is the cost model? Prints three checks (numbers measured in this run).

1. Host: random whole-model quantization configs (zoo models, a random kernel kind and bit
   width per layer). Predicted latency = autoq.cost.model.estimate with a host profile
   fitted (as `autoq calibrate` does) on the generic 55-shape grid only; measured latency = sum
   over the layers of the C kernels' time on exactly that layer's shape (autoq.kernels bench,
   opt variants, minimum over 5 interleaved passes of 20 reps, grid and layers in the same
   passes), so the model layers are held out from the calibration.
   Reports MAPE and Spearman rank correlation (goal: MAPE <= 10 %, Spearman >= 0.95).
2. Boards (published thesis figures): leave one filter size out, fit on the other two, predict
   it; error per board, kind and held-out size.
3. The thesis's layers (3x16x16 -> 8, valid, 3x3/4x4/5x5) on m4 / a53 / i5: the shipped
   profiles' predictions next to the published times, and the derived kinds (estimates).

usage: python benchmarks/bench_cost_model.py [--configs 30] [--profile host.yaml] [--seed 0]
Runtime: about a minute (TensorFlow builds the 5 float models once; the measuring ~30 s).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autoq.cost.calibrate import calibration_grid, host_facts, measure_host, profile_from_measurements  # noqa: E402
from autoq.cost.fit import fit_coefficients, predict  # noqa: E402
from autoq.cost.measurements import MeasurementFile, read_measurements, write_measurements  # noqa: E402
from autoq.cost.model import estimate  # noqa: E402
from autoq.cost.profile import load_profile  # noqa: E402
from autoq.plan import LayerPlan, conv_entry, dense_entry  # noqa: E402

MODELS = [("lenet5", (28, 28, 1)), ("resnet20", (32, 32, 3)), ("squeezenet", (32, 32, 3)),
          ("vgg7", (8, 8, 3)), ("tiny", (16, 16, 3))]
# (kind, weight bits) a layer may get; lut at every packed width the kernels support
MENU = [("f32", 32), ("lut", 1), ("lut", 2), ("lut", 4), ("lut", 8), ("shift", 2), ("xnor", 1), ("and", 1),
        ("int8", 8)]


def float_plans() -> dict[str, LayerPlan]:
    from autoq.models.zoo import build_model
    from autoq.plan import plan_from_model

    return {name: plan_from_model(build_model(name, shape, 10, None)) for name, shape in MODELS}


def requantize(plan: LayerPlan, rng: np.random.Generator) -> LayerPlan:
    """Same geometry, a random (kind, bits) per layer."""
    layers = []
    for e in plan.layers:
        kind, bits = MENU[rng.integers(len(MENU))]
        common = dict(kind=kind, weight_bits=bits, codebook_len=0 if kind == "f32" else 2 ** min(bits, 8))
        if e.op == "dense":
            layers.append(dense_entry(e.name, n_in=e.c_in, n_out=e.c_out, **common))
        else:
            layers.append(conv_entry(e.name, c_in=e.c_in, c_out=e.c_out, h_in=e.h_in, w_in=e.w_in, kh=e.kh,
                                     stride=e.stride, padding=e.padding, **common))
    return LayerPlan(plan.input_shape, layers)


def shape_of(e) -> tuple:
    return (e.c_in, e.c_out, e.h_in, e.w_in, e.kh, e.stride, e.padding)


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def host_check(n_configs: int, seed: int, profile_path: str | None, rounds: int,
               save_csv: str | None = None) -> None:
    print("== 1. host: predicted vs measured whole-model latency ==")
    plans = float_plans()
    rng = np.random.default_rng(seed)
    names = [MODELS[i % len(MODELS)][0] for i in range(n_configs)]
    configs = [(name, requantize(plans[name], rng)) for name in names]
    layer_shapes = sorted({shape_of(e) for _, p in configs for e in p.layers}, key=str)
    grid = calibration_grid()
    t1 = time.time()
    # grid and model layers are measured in the same passes (interleaved, min over the passes), so
    # the calibration and the check see the same machine state: a busy shared machine drifts by
    # +-15 % between minutes
    rows = measure_host(grid + [s for s in layer_shapes if s not in grid], reps=20, rounds=rounds)
    print(f"measured {len(grid)} grid shapes + {len(layer_shapes)} distinct model-layer shapes x all kinds "
          f"({rounds} passes) in {time.time() - t1:.0f} s")
    if profile_path:
        profile = load_profile(profile_path)
    else:
        grid_rows = [r for r in rows if r.shape in set(grid)]
        facts = host_facts()
        meta = {"board": facts["board"], "cpu": facts["cpu"], "clock_hz": str(facts["clock_hz"]), "word_bits": "64",
                "ram_bytes": str(facts["memory"]["ram_bytes"]), "storage_bytes": str(facts["memory"]["storage_bytes"]),
                "source": "bench_cost_model grid"}
        profile = profile_from_measurements(MeasurementFile(grid_rows, meta, []), "host", source="grid",
                                            variant="opt", provenance="measured-host")
        print("host profile fitted on the grid rows only (the model layers are held out)")
    for kind, k in profile.kernels.items():
        print(f"  fit {kind:5s}: {k.points} points, c_out block {k.c_out_block}, MAPE {k.mape:.1%}, "
              f"leave-one-shape-out {k.loo_mape:.1%}")
    table = {(r.kind, r.bits, r.shape): r.time_ns for r in rows}
    if save_csv:
        write_measurements(save_csv, rows, ["bench_cost_model: grid + model-layer shapes, opt kernels"])
    predicted, measured = [], []
    print(f"  {'model':10s} {'kinds':36s} {'predicted ms':>12s} {'measured ms':>12s} {'error':>7s}")
    for name, plan in configs:
        pred = estimate(plan, profile).latency_ms
        meas = sum(table[(e.kind, e.weight_bits, shape_of(e))] for e in plan.layers) / 1e6
        predicted.append(pred)
        measured.append(meas)
        kinds = ",".join(sorted({e.kind for e in plan.layers}))
        print(f"  {name:10s} {kinds:36s} {pred:12.4f} {meas:12.4f} {pred / meas - 1:+7.1%}")
    p, m = np.array(predicted), np.array(measured)
    print(f"host whole-model: {len(configs)} configs, MAPE {np.mean(np.abs(p - m) / m):.1%}, "
          f"max error {np.max(np.abs(p - m) / m):.1%}, Spearman {spearman(p, m):.3f} "
          f"(goal MAPE <= 10 %, Spearman >= 0.95)")


def board_loo() -> None:
    print("\n== 2. boards: leave one filter size out (fit on two sizes, predict the third) ==")
    for target in ("m4", "a53", "i5"):
        mfile = read_measurements(Path(__file__).resolve().parent.parent / "hw_models" / "measurements" / f"{target}.csv")
        rows = [r for r in mfile.rows if r.variant == "thesis"]
        word_bits = int(mfile.meta["word_bits"])
        errors = []
        parts = []
        for kind in ("f32", "lut"):
            kind_rows = [r for r in rows if r.kind == kind]
            for f in (3, 4, 5):
                train = [r for r in kind_rows if r.f != f]
                test = [r for r in kind_rows if r.f == f]
                coeffs = fit_coefficients(train, ("ns_per_mac", "ns_per_output"), word_bits)
                err = predict(test, coeffs, word_bits) / np.array([r.time_ns for r in test]) - 1
                errors.extend(np.abs(err))
                parts.append(f"{kind} {f}x{f}: " + "/".join(f"{e:+.1%}" for e in err))
        print(f"  {target:4s} mean |error| {np.mean(errors):.1%}   " + "; ".join(parts))


PUBLISHED = {"m4": (179.054, 232.56, 237.264, 263.888, 352.611, 356.667, 345.365, 467.619, 471.075),
             "a53": (5.01, 6.65, 6.89, 7.54, 9.95, 9.99, 9.47, 13.41, 13.22),
             "i5": (0.416, 0.676, 0.640, 0.552, 0.922, 0.978, 0.711, 1.238, 1.216)}


def thesis_layers() -> None:
    print("\n== 3. the thesis's layers (3x16x16 -> 8 channels, valid) on the shipped profiles, ms ==")
    cases = [("f32", 32), ("lut", 1), ("lut", 2)]
    extra = [("shift", 2), ("xnor", 1), ("and", 1), ("int8", 8)]
    for target, published in PUBLISHED.items():
        profile = load_profile(target)
        print(f"  {target} ({profile.cpu})")
        for i, f in enumerate((3, 4, 5)):
            cells = []
            for j, (kind, bits) in enumerate(cases):
                e = conv_entry("t", c_in=3, c_out=8, h_in=16, w_in=16, kh=f, kind=kind, weight_bits=bits,
                               codebook_len=0 if kind == "f32" else 2 ** bits)
                pred = estimate(LayerPlan([16, 16, 3], [e]), profile).latency_ms
                cells.append(f"{kind}{bits if kind != 'f32' else ''} {pred:8.3f} (pub {published[3 * i + j]:8.3f})")
            derived = []
            for kind, bits in extra:
                if kind not in profile.kernels:
                    continue
                e = conv_entry("t", c_in=3, c_out=8, h_in=16, w_in=16, kh=f, kind=kind, weight_bits=bits,
                               codebook_len=2 ** min(bits, 8))
                derived.append(f"{kind} {estimate(LayerPlan([16, 16, 3], [e]), profile).latency_ms:.3f}")
            print(f"    {f}x{f}: " + " | ".join(cells) + "   estimates: " + ", ".join(derived))


def count_scales() -> None:
    """ns per instruction of our ref kernels (the thesis algorithm, gcc -O3, QEMU counts) implied by
    the boards' default-optimisation table and by their -O3 figures."""
    from autoq.cost.calibrate import read_counts

    path = Path(__file__).resolve().parent.parent / "kernels" / "bench" / "results" / "icount_qemu.csv"
    if not path.is_file():
        print(f"\n(no instruction counts at {path})")
        return
    counts = read_counts(path)
    print("\n== 4. ns per instruction of our ref kernels on the boards (QEMU counts vs published times) ==")
    for target in ("m4", "a53"):
        mfile = read_measurements(path.parent.parent.parent.parent / "hw_models" / "measurements" / f"{target}.csv")
        clock = int(mfile.meta["clock_hz"])
        for variant in ("thesis", "thesis-O3"):
            pairs = [(counts[(target, r.kind, r.bits, "ref", r.shape)], r.time_ns) for r in mfile.rows
                     if r.variant == variant and (target, r.kind, r.bits, "ref", r.shape) in counts]
            ratio = np.array([i / y for i, y in pairs])
            scale = ratio.sum() / (ratio ** 2).sum()
            err = np.mean(np.abs(scale * ratio - 1))
            print(f"  {target:4s} {variant:9s}: {scale:8.3f} ns/instruction = {scale * clock / 1e9:5.2f} cycles at "
                  f"{clock / 1e6:g} MHz ({len(pairs)} rows, MAPE {err:.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", help="use this host profile instead of calibrating now")
    parser.add_argument("--rounds", type=int, default=5, help="measurement passes (min over them)")
    parser.add_argument("--skip-host", action="store_true")
    parser.add_argument("--save-csv", help="write every host measurement of this run to this CSV")
    args = parser.parse_args()
    t0 = time.time()
    if not args.skip_host:
        host_check(args.configs, args.seed, args.profile, args.rounds, args.save_csv)
    board_loo()
    thesis_layers()
    count_scales()
    print(f"\ntotal {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
