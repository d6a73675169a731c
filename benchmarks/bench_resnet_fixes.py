"""Table 4.10 analogue: plain BinaryConnect on ResNet-20 versus the thesis's fixes.

Thesis (CIFAR-10, 200 epochs from scratch, ResNet-20): BC 82.68 %, shortcut float 89.60,
shortcut removed 89.03, BC-1.1 (x0.1) 89.33, BC-1.2 (x2^-3) 89.71, BC-2.1 (ReLU slope 0.1)
88.03, BC-2.2 (slope 2^-3) 88.31; DRF-W 89.76, Base 91.66. Here: ResNet-20 on the 8x8 digits
(stride-2 stages take 8x8 -> 4x4 -> 2x2), trained from scratch like the thesis (``--finetune``
starts every row from the cached float baseline instead), SGD momentum 0.9, lr 0.05, x0.1 at
50 % and 75 % of the epochs, batch 32. First and last layers float (as in the thesis).
The validation split has 179 images: one image = 0.56 points, so differences below ~2 points
are noise at a single seed.

usage: python benchmarks/bench_resnet_fixes.py [--epochs 8] [--model resnet20] [--finetune]
                                               [--only base,bc] [--seed 0] [--threads 2]
                                               [--json out.json]
Runtime: measured 350 s on the 2 shared cores (load ~5; 9 runs x 30-45 s).
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

from autoq.config import preset  # noqa: E402
from _report import pct, print_table  # noqa: E402
from autoq.data import load_dataset  # noqa: E402
from autoq.train import Recipe, finetune, train_baseline  # noqa: E402

# (row label, preset, shortcut policy, thesis ResNet-20 CIFAR-10 %)
ROWS = [
    ("Base (float)", "base", "quantized", 91.66),
    ("BC", "bc", "quantized", 82.68),
    ("BC, shortcut float", "bc", "float", 89.60),
    ("BC, shortcut removed", "bc", "removed", 89.03),
    ("BC-1.1 (w x 0.1)", "bc-1.1", "quantized", 89.33),
    ("BC-1.2 (w x 0.125)", "bc-1.2", "quantized", 89.71),
    ("BC-2.1 (slope 0.1)", "bc-2.1", "quantized", 88.03),
    ("BC-2.2 (slope 0.125)", "bc-2.2", "quantized", 88.31),
    ("DRF-W (w x E|w|)", "drf-w", "quantized", 89.76),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--model", default="resnet20", choices=["resnet20", "resnet32"])
    ap.add_argument("--finetune", action="store_true", help="start from the float baseline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--only", default=None, help="comma-separated presets to run (default all rows)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None

    data = load_dataset("digits")
    recipe = Recipe("sgd-digits", "sgd", 0.05, args.epochs, 32, (0.5, 0.75), 0.1, 0.9)
    start = time.perf_counter()
    base = None
    if args.finetune:
        base = train_baseline(args.model, data, recipe, args.seed, threads=args.threads)
        print(f"float baseline: val {100 * base.val_acc:.2f} %  "
              f"({'cache hit' if base.cached else f'trained in {base.seconds:.1f} s'})")
    results = []
    for label, name, shortcut, thesis in ROWS:
        if only is not None and name not in only:
            continue
        cfg = preset(name, args.model, shortcut=shortcut)
        res = finetune(args.model, data, cfg, recipe, args.seed, baseline=base,
                       from_scratch=not args.finetune, threads=args.threads)
        last_loss = res.history.get("loss", [None])[-1]
        results.append({"row": label, "preset": name, "shortcut": shortcut, "status": res.status,
                        "reason": res.reason, "val_acc": res.val_acc, "test_acc": res.test_acc,
                        "final_train_loss": last_loss, "compression": res.compression,
                        "seconds": round(res.seconds, 1), "thesis_cifar10": thesis})
        print(f"  {label:22s} {res.status:6s} val {pct(res.val_acc)} test {pct(res.test_acc)} "
              f"loss {last_loss if last_loss is not None else float('nan'):.3f} "
              f"{res.seconds:5.1f} s", flush=True)

    mode = "fine-tuned from the float baseline" if args.finetune else "from scratch"
    print(f"\n{args.model} / digits, {args.epochs} epochs, {mode}, seed {args.seed} "
          f"(total {time.perf_counter() - start:.0f} s)\n")
    thesis = (lambda r: r["thesis_cifar10"]) if args.model == "resnet20" else (lambda r: "see methods.md")
    print_table(["method", "val acc %", "test acc %", "final train loss", f"thesis {args.model} CIFAR-10 %"],
                [[r["row"], pct(r["val_acc"]), pct(r["test_acc"]),
                  "-" if r["final_train_loss"] is None else f"{r['final_train_loss']:.3f}", thesis(r)]
                 for r in results], args.json, results)


if __name__ == "__main__":
    main()
