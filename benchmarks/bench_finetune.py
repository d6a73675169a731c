"""Fine-tune from the float baseline versus training from scratch, at equal and 1/4 epochs.

The thesis trains every quantized model from scratch (200 epochs for the CIFAR models);
autoq's searches warm-start each trial from one cached float baseline. This measures what
that buys on LeNet-5 / digits: for several presets, validation accuracy after E epochs and
after E/4 epochs, starting from the baseline or from random weights (same recipe, seed and
data; the baseline's own training time is reported separately, it is paid once per search).

usage: python benchmarks/bench_finetune.py [--epochs 16] [--presets bc,bnn,twn,drf,int8]
                                          [--model lenet5] [--seed 0] [--threads 2]
Runtime: measured 410 s on the 2 shared cores (load ~5; 5 presets x 4 runs); use --presets to shorten.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autoq.config import preset  # noqa: E402
from _report import pct, print_table  # noqa: E402
from autoq.data import load_dataset  # noqa: E402
from autoq.train import finetune, get_recipe, train_baseline  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--presets", default="bc,bnn,twn,drf,int8")
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    data = load_dataset("digits")
    full = replace(get_recipe(None, args.model, args.epochs), batch_size=32)
    if full.optimizer == "sgd":
        full = replace(full, lr=0.05)
    quarter = full.with_epochs(max(1, args.epochs // 4))
    start = time.perf_counter()
    base = train_baseline(args.model, data, full, args.seed, threads=args.threads)
    print(f"float baseline ({args.epochs} epochs): val {100 * base.val_acc:.2f} %  "
          f"({'cache hit, originally' if base.cached else 'trained in'} {base.seconds:.1f} s)")
    rows = []
    for name in args.presets.split(","):
        cfg = preset(name, args.model)
        row = {"preset": name}
        for label, recipe, scratch in (("ft_full", full, False), ("scratch_full", full, True),
                                       ("ft_quarter", quarter, False),
                                       ("scratch_quarter", quarter, True)):
            res = finetune(args.model, data, cfg, recipe, args.seed, baseline=base,
                           from_scratch=scratch, threads=args.threads)
            row[label] = res.val_acc
            row[label + "_s"] = round(res.seconds, 1)
        rows.append(row)
        print(f"  {name:7s} " + "  ".join(f"{k} {pct(row[k])} ({row[k + '_s']:.0f}s)" for k in
                                         ("ft_full", "scratch_full", "ft_quarter", "scratch_quarter")),
              flush=True)

    q = quarter.epochs
    print(f"\n{args.model} / digits, validation accuracy %, seed {args.seed}, first/last float "
          f"(total {time.perf_counter() - start:.0f} s; baseline {base.seconds:.0f} s once)\n")
    print_table(["preset", f"fine-tune {args.epochs} ep", f"scratch {args.epochs} ep", f"fine-tune {q} ep",
                 f"scratch {q} ep"],
                [[r["preset"], pct(r["ft_full"]), pct(r["scratch_full"]), pct(r["ft_quarter"]),
                  pct(r["scratch_quarter"])] for r in rows], args.json, rows)


if __name__ == "__main__":
    main()
