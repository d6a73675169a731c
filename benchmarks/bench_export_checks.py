"""`autoq export` of trained trials: the exporter's own checks, measured and tabulated.

For each configuration a model is trained (autoq.train.finetune, from scratch, 1 epoch by
default), stored as a trial of a hand-made study (the contracts.md user_attrs) and exported
with :func:`autoq.export.exporter.export_trial` (ONNX checked with onnxruntime's DEFAULT
session options, .qbin, C built and run on the host). Printed per trial: the ONNX file size
and weight storage, ONNX vs Keras max |diff| and argmax disagreements on the whole test split,
samples beyond 1e-4 x max(1, max |logit|) (quantized-activation level flips) and, when more than
2 % are, the level check at each sample's first parting layer (autoq.export.levels), one sample
alone vs in a batch, the same for the C, and Keras' test accuracy in the export vs the
training's own (what `autoq pareto` shows).

Data: LeNet-5 on the 8x8 digits; ResNet-20 on a seeded synthetic 32x32x3, 10-class set
(``autoq.data.load_synthetic``; no CIFAR-10 download needed) written as a .npz and used
like ``--data``.

usage: python benchmarks/bench_export_checks.py [--only lenet5|resnet20] [--epochs 1] [--json out.json]
Runtime: a few minutes on 2 shared cores (ResNet-20 rows dominate).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from _report import print_table  # noqa: E402

W = {"bc": {"name": "bc"}, "twn": {"name": "twn"}, "xnor": {"name": "xnor"},
     "d1": {"name": "dorefa", "bits": 1}, "d2": {"name": "dorefa", "bits": 2}, "d4": {"name": "dorefa", "bits": 4},
     "u8": {"name": "uniform", "bits": 8}, "lsq4": {"name": "lsq", "bits": 4}}
A = {"sign": {"name": "sign"}, "a1": {"name": "dorefa", "bits": 1}, "a2": {"name": "dorefa", "bits": 2},
     "u8": {"name": "uniform", "bits": 8}, "u4": {"name": "uniform", "bits": 4}}


def _cfg(model, weight=None, act=None, layers=None, first_last_float=True):
    return {"model": model, "first_last_float": first_last_float,
            "default": {"weight": W.get(weight), "activation": A.get(act), "relu_slope": 1.0},
            "layers": layers or {}}


LENET = [
    ("lenet5 float", _cfg("lenet5")),
    ("lenet5 bc (1-bit, shift)", _cfg("lenet5", "bc", first_last_float=False)),
    ("lenet5 twn (2-bit)", _cfg("lenet5", "twn", first_last_float=False)),
    ("lenet5 dorefa-2 w (2-bit)", _cfg("lenet5", "d2", first_last_float=False)),
    ("lenet5 bnn (xnor)", _cfg("lenet5", "bc", "sign")),
    ("lenet5 drf (and)", _cfg("lenet5", "d1", "a1")),
    ("lenet5 int8", _cfg("lenet5", "u8", "u8")),
    ("lenet5 dorefa 2/2", _cfg("lenet5", "d2", "a2")),
    ("lenet5 lsq4 w, u4 act", _cfg("lenet5", "lsq4", "u4")),
]
RESNET = [
    ("resnet20 int8", _cfg("resnet20", "u8", "u8")),
    ("resnet20 bc", _cfg("resnet20", "bc")),
    ("resnet20 mixed", _cfg("resnet20", "twn", None, layers={
        "stage1_block1_conv1": {"weight": W["u8"], "activation": A["u8"]},
        "stage2_block1_conv1": {"weight": W["bc"], "activation": A["sign"]},
        "stage2_block1_conv2": {"weight": W["d1"], "activation": A["a1"]},
        "stage3_block1_conv1": {"weight": W["d4"], "activation": A["a2"]}})),
]


def _synthetic_npz(path: Path) -> Path:
    from autoq.data import load_synthetic

    d = load_synthetic(0, input_shape=(32, 32, 3), num_classes=10, n_train=512, n_val=64, n_test=200, noise=0.3)
    np.savez(path, x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    return path


def _trial(model_name, data, data_arg, config, epochs, seed, out_dir):
    from autoq.config import QuantConfig
    from autoq.cost.model import estimate
    from autoq.cost.profile import load_profile
    from autoq.errors import UserError
    from autoq.export.planning import plan_from_model
    from autoq.train import finetune

    qc = QuantConfig.from_dict(config)
    res = finetune(model_name, data, qc, None, seed, from_scratch=True, out_dir=str(out_dir), epochs=epochs)
    if res.status != "ok":
        raise RuntimeError(f"training failed: {res.reason}")
    plan = plan_from_model(res.model)
    try:
        c = estimate(plan, load_profile("i5"))
        cost = {"latency_ms": c.latency_ms, "flash_bytes": c.flash_bytes, "peak_ram_bytes": c.peak_ram_bytes,
                "fits": c.fits}
    except UserError:
        cost = {"latency_ms": 1.0, "flash_bytes": 1, "peak_ram_bytes": 1, "fits": True}
    return {"config": qc.to_dict(), "plan": plan.to_dict(), "costs": {"i5": cost},
            "metrics": {"val_acc": res.val_acc, "test_acc": res.test_acc, "train_seconds": res.seconds},
            "weights_path": str(Path(res.model_path).resolve()), "status": "ok"}


def _study(run: Path, dataset: str, data_path, seed: int, trials: list[dict]) -> Path:
    import optuna

    run.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name="bench-export", storage=f"sqlite:///{run / 'study.db'}",
                                directions=["maximize", "minimize"])
    study.set_user_attr("space", {"dataset": dataset, "data_path": data_path})
    study.set_user_attr("targets", ["i5"])
    study.set_user_attr("training", {"epochs": 1, "seed": seed, "dataset": dataset, "data_path": data_path})
    for t in trials:
        study.add_trial(optuna.trial.create_trial(values=[t["metrics"]["val_acc"], t["costs"]["i5"]["latency_ms"]],
                                                  user_attrs=t))
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["lenet5", "resnet20"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    from autoq.data import load_dataset
    from autoq.errors import UserError
    from autoq.export.exporter import export_trial

    rows, records = [], []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        tmp = Path(tmp)
        groups = []
        if args.only in (None, "lenet5"):
            groups.append(("lenet5", LENET, "digits", None))
        if args.only in (None, "resnet20"):
            groups.append(("resnet20", RESNET, "synthetic32", str(_synthetic_npz(tmp / "synthetic32.npz"))))
        for model_name, configs, dataset, data_path in groups:
            data = load_dataset(dataset, data_path=data_path, seed=args.seed)
            trials = [_trial(model_name, data, data_path, cfg, args.epochs, args.seed, tmp / f"t{i}")
                      for i, (_, cfg) in enumerate(configs)]
            run = _study(tmp / f"run-{model_name}", dataset, data_path, args.seed, trials)
            for i, (label, _) in enumerate(configs):
                try:
                    res = export_trial(str(run), i, "i5", tmp / f"out-{model_name}-{i}", force=True)
                except UserError as exc:            # a failed check: reported, the others still run
                    records.append({"trial": label, "error": str(exc)})
                    rows.append([label, "FAILED: " + str(exc)[:160]] + [""] * 11)
                    continue
                ch = res.manifest["checks"]
                o = ch["onnx"]
                rec = {"trial": label, "onnx_bytes": res.manifest["files"]["model.onnx"]["bytes"],
                       "weights": sorted(set(o["weights"].values())), "onnx_max_diff": o["max_abs_diff"],
                       "onnx_max_rel_diff": o["max_rel_diff"], "onnx_argmax_differ": o["argmax_differ"],
                       "onnx_beyond_tolerance": o["samples_beyond_tolerance"],
                       "batch1_vs_batch": o["batch1_vs_batch_max_abs_diff"], "samples": o["samples"],
                       "onnx_level_check": o["level_check"], "c_level_check": ch["c_host"]["level_check"],
                       "c_max_diff": ch["c_host"]["max_abs_diff"], "c_argmax_differ": ch["c_host"]["argmax_mismatches"],
                       "c_outside": ch["c_host"]["samples_outside_tolerance"],
                       "keras_test_acc_export": ch["keras_test_acc"], "test_acc_training": trials[i]["metrics"]["test_acc"]}
                records.append(rec)
                rows.append([label, f"{rec['onnx_bytes']:,}", "/".join(rec["weights"]),
                             f"{rec['onnx_max_diff']:.1e} ({rec['onnx_max_rel_diff']:.1e})",
                             f"{rec['onnx_argmax_differ']}/{rec['samples']}", rec["onnx_beyond_tolerance"],
                             _levels(rec["onnx_level_check"]), f"{rec['batch1_vs_batch']:.1e}",
                             f"{rec['c_max_diff']:.1e}", rec["c_argmax_differ"], rec["c_outside"],
                             _levels(rec["c_level_check"]),
                             f"{rec['keras_test_acc_export']:.4f} / {rec['test_acc_training']:.4f}"])
    print_table(["trial", "ONNX B", "weights", "ONNX max|diff| (rel. max|logit|)", "argmax differ",
                 "beyond 1e-4 rel.", "ONNX level check", "batch1 vs N", "C max|diff|", "C argmax differ",
                 "C beyond tol.", "C level check", "test acc export / training"], rows, args.json, records)


def _levels(check) -> str:
    """Level check at each sample's first parting layer: values off / values, max step ('-': not needed)."""
    if not check:
        return "-"
    return f"{check['first_differ']}/{check['first_values']}, step {check['first_max_level_step']}"


if __name__ == "__main__":
    main()
