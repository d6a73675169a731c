"""Table 4.1 analogue: every preset on LeNet-5 / digits — accuracy and compression.

The thesis (Table 4.1, LeNet-5 / MNIST, trained from scratch 30 epochs): Base 99.54, BC 99.50,
BNN 99.00, DRF-W 99.43, DRF 99.18, TWN 99.51 — weight-only methods lose almost nothing,
weight+activation methods lose a little. Here: LeNet-5 on scikit-learn's 8x8 digits, the float
baseline trained once (cached), every preset fine-tuned from it with the same recipe (the
thesis's Adam 1e-3 -> 1e-4 exponential decay, batch 32 instead of 128 because digits has only
1,259 training images). All layers quantized by default, as in the thesis's LeNet-5 table
(``--first-last-float`` keeps conv1/fc3 float). Compression = float32 bytes / packed bytes of
all conv/dense weights + biases (biases and codebooks stay float32).

usage: python benchmarks/bench_presets.py [--epochs 15] [--seed 0] [--threads 2]
                                         [--from-scratch] [--first-last-float] [--json out.json]
Runtime: measured 260-320 s on the 2 shared cores (load ~5; 15 presets x 12-30 s + baseline).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autoq.config import PRESETS, preset  # noqa: E402
from _report import pct, print_table  # noqa: E402
from autoq.data import load_dataset  # noqa: E402
from autoq.train import RECIPES, finetune, train_baseline  # noqa: E402

THESIS = {"base": 99.54, "bc": 99.50, "bnn": 99.00, "drf-w": 99.43, "drf": 99.18, "twn": 99.51}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--from-scratch", action="store_true")
    ap.add_argument("--first-last-float", action="store_true")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args()

    data = load_dataset("digits")
    recipe = RECIPES["adam"].with_epochs(args.epochs)
    from dataclasses import replace

    recipe = replace(recipe, name="adam-digits", batch_size=32)
    start = time.perf_counter()
    base = None
    if not args.from_scratch:
        base = train_baseline("lenet5", data, recipe, args.seed, threads=args.threads)
        print(f"float baseline: val {100 * base.val_acc:.2f} %  test {100 * base.test_acc:.2f} %  "
              f"({'cache hit' if base.cached else f'trained in {base.seconds:.1f} s'})")
    rows = []
    for name in args.presets.split(","):
        cfg = preset(name, "lenet5", first_last_float=args.first_last_float)
        res = finetune("lenet5", data, cfg, recipe, args.seed, baseline=base,
                       from_scratch=args.from_scratch, threads=args.threads)
        rows.append({"preset": name, "status": res.status, "reason": res.reason,
                     "val_acc": res.val_acc, "test_acc": res.test_acc,
                     "packed_bytes": res.packed_weight_bytes, "float_bytes": res.float_weight_bytes,
                     "compression": res.compression, "seconds": round(res.seconds, 1),
                     "thesis_mnist": THESIS.get(name)})
        r = rows[-1]
        print(f"  {name:9s} {res.status:6s} val {pct(r['val_acc'])} test {pct(r['test_acc'])} "
              f"{r['compression'] or 0:6.2f}x  {r['seconds']:5.1f} s", flush=True)

    mode = "from scratch" if args.from_scratch else "fine-tuned from the float baseline"
    print(f"\nLeNet-5 / digits, {args.epochs} epochs, {mode}, seed {args.seed}, "
          f"{'first/last float' if args.first_last_float else 'all layers quantized'} "
          f"(total {time.perf_counter() - start:.0f} s)\n")
    print_table(["preset", "val acc %", "test acc %", "packed bytes", "compression", "thesis LeNet-5/MNIST %"],
                [[r["preset"], pct(r["val_acc"]), pct(r["test_acc"]), f"{r['packed_bytes']:,}",
                  f"{r['compression']:.2f}x", r["thesis_mnist"] or "-"] for r in rows], args.json, rows)


if __name__ == "__main__":
    main()
