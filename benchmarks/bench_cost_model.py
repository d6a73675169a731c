"""How good is the cost model? Prints three checks (numbers measured in this run).

1. Host: random whole-model quantization configs (zoo models, a random kernel kind and bit
   width per layer). Predicted latency = autoq.cost.model.estimate with a host profile
   fitted (as `autoq calibrate` does) on the generic 55-shape grid only; measured latency = sum
   over the layers of the C kernels' time on exactly that layer's shape (autoq.kernels bench,
   opt variants, minimum over 5 interleaved passes of 20 reps, grid and layers in the same
   passes), so the model layers are held out from the calibration.
   Reports MAPE and Spearman rank correlation (goal: MAPE <= 10 %, Spearman >= 0.95).
2. Boards: the profiles price our opt kernels as one scale x counts (m4/a53: ns per modelled
   cycle, kernels/bench/results/cycles_qemu.csv, autoq/cost/cycle_profile.py; i5: ns per
   instruction); the scale is fitted on the published thesis figures against our ref kernels'
   counts. Leave one filter size out: fit the scale on the other two, predict it; error per
   board and held-out size.
3. The thesis's layers (3x16x16 -> 8, valid, 3x3/4x4/5x5) on m4 / a53 / i5: published time |
   scale x our ref kernel's count (validation) | the shipped profile's prediction for our opt
   kernel (what autoq prices), and the opt prediction of every kind (estimates).
4. The ns per cycle (m4/a53) or instruction (i5) implied by the default-optimisation table and
   by the -O3 figures.

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

from autoq.cost.bench import calibration_grid, measure_host  # noqa: E402
from autoq.cost.board_facts import host_facts  # noqa: E402
from autoq.cost.calibrate import profile_from_measurements  # noqa: E402
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
    from autoq.export.planning import plan_from_model
    from autoq.models.zoo import build_model

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


ROOT = Path(__file__).resolve().parent.parent
COUNTS = ROOT / "kernels" / "bench" / "results" / "icount_qemu.csv"
CYCLES = ROOT / "kernels" / "bench" / "results" / "cycles_qemu.csv"
BOARDS = ("m4", "a53", "i5")


def board_counts(target: str) -> tuple[dict, str]:
    """The counts a board's profile is priced from and their unit (as the profiles are built)."""
    from autoq.cost.counts import read_counts

    if target in ("m4", "a53"):
        return read_counts(CYCLES, column="cycles"), "cycle"
    return read_counts(COUNTS), "instruction"


def board_loo() -> None:
    """The board profiles price our opt kernels as a scale x counts; the scale is fitted on the
    published times against our ref kernels' counts. Leave one filter size out: fit the scale on
    two sizes, predict the third (every kind at that size)."""
    from autoq.cost.counts import count_scale

    print("\n== 2. boards: ns per cycle / instruction scale, leave one filter size out (fit on two sizes, predict "
          "the third) ==")
    for target in BOARDS:
        counts, unit = board_counts(target)
        rows = [r for r in read_measurements(ROOT / "hw_models" / "measurements" / f"{target}.csv").rows
                if r.variant == "thesis"]
        scale = count_scale(rows, counts, target)
        parts = []
        for f in (3, 4, 5):
            held = count_scale([r for r in rows if r.f != f], counts, target).ns_per_instruction
            errs = [held * counts[(target, r.kind, r.bits, "ref", r.shape)] / r.time_ns - 1 for r in rows if r.f == f]
            parts.append(f"{f}x{f}: " + "/".join(f"{e:+.1%}" for e in errs))
        print(f"  {target:4s} {scale.ns_per_instruction:9.4g} ns/{unit}, in-sample MAPE {scale.mape:.1%}, "
              f"leave-one-size-out MAPE {scale.loo_mape:.1%}   (f32/lut1/lut2) " + "; ".join(parts))


def thesis_layers() -> None:
    """Published thesis-kernel times, the profile's scale x our ref kernel's counts (validation),
    and the shipped profile's prediction for our opt kernels of every kind (what autoq prices)."""
    from autoq.cost.counts import shipped_validation

    print("\n== 3. the thesis's layers (3x16x16 -> 8 channels, valid), ms: published | predicted ref | "
          "predicted opt (priced) ==")
    extra = [("f32", 32), ("lut", 1), ("lut", 2), ("shift", 2), ("xnor", 1), ("and", 1), ("int8", 8)]
    for target in BOARDS:
        profile = load_profile(target)
        checked = shipped_validation(profile)
        print(f"  {target} ({profile.cpu})")
        for f in (3, 4, 5):
            cells = []
            if checked is not None:
                for r in checked[1]:
                    if r.f == f:
                        kind = r.kind if r.kind == "f32" else f"{r.kind}{r.bits}"
                        cells.append(f"{kind} {r.published_ms:.4g} | {r.ref_ms:.4g} | {r.opt_ms:.4g}")
            priced = []
            for kind, bits in extra:
                e = conv_entry("t", c_in=3, c_out=8, h_in=16, w_in=16, kh=f, kind=kind, weight_bits=bits,
                               codebook_len=0 if kind == "f32" else 2 ** min(bits, 8))
                name = kind if kind in ("f32", "xnor", "and", "int8") else f"{kind}{bits}"
                priced.append(f"{name} {estimate(LayerPlan([16, 16, 3], [e]), profile).latency_ms:.4g}")
            print(f"    {f}x{f}: " + "   ".join(cells))
            print("         opt, every kind: " + ", ".join(priced))


def count_scales() -> None:
    """ns per cycle / instruction of our ref kernels (the thesis algorithm, gcc -O3) implied by the
    boards' default-optimisation table (what the profiles use) and by their -O3 figures."""
    from autoq.cost.counts import count_scale

    print("\n== 4. ns per modelled cycle (m4/a53) / instruction (i5) of our ref kernels on the boards (counts vs "
          "published times) ==")
    for target in BOARDS:
        counts, unit = board_counts(target)
        mfile = read_measurements(ROOT / "hw_models" / "measurements" / f"{target}.csv")
        clock = int(mfile.meta["clock_hz"])
        for variant in ("thesis", "thesis-O3"):
            scale = count_scale([r for r in mfile.rows if r.variant == variant], counts, target)
            print(f"  {target:4s} {variant:9s}: {scale.ns_per_instruction:8.4g} ns/{unit} = "
                  f"{scale.ns_per_instruction * clock / 1e9:5.2f} clock cycles at {clock / 1e6:g} MHz "
                  f"({scale.rows} rows, MAPE {scale.mape:.1%})")


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
