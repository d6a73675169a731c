"""`autoq export` of a real search run: the export checks use the run's own test split.

A one-trial search (tiny model, digits, 1 epoch) with ``--seed 3``: the run stores its
effective seed and data source, and the test accuracy the export measures equals the one
`autoq pareto` shows (with seed 0 the "test" split would contain training samples).
"""
from __future__ import annotations

import optuna
import pytest


def test_seed_3_export_reports_the_test_accuracy_pareto_shows(tmp_path):
    from autoq import pareto
    from autoq.export.exporter import export_trial, run_data_source
    from autoq.search import Budget, SearchOptions, run_search
    from autoq.space import parse_space

    space = parse_space({"model": "tiny", "dataset": "digits", "input": [8, 8, 1],
                         "training": {"epochs": 2, "baseline_epochs": 20, "seed": 0},   # 1 epoch: "did not learn"
                         "targets": ["m4"], "objectives": ["accuracy", "flash"],
                         "layers": [{"select": {"type": "conv"}, "weight": [{"name": "twn"}],
                                     "activation": [{"name": "uniform", "bits": 8}]}],
                         "presets": []}, "test-space")
    out = tmp_path / "run"
    run_search(SearchOptions(space=space, budget=Budget(trials=1), out_dir=out, seed=3, epochs=2))
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{out / 'study.db'}")
    assert run_data_source(study) == {"dataset": "digits", "data_path": None, "seed": 3}
    point = next(p for p in pareto.pareto_front(out, target="m4").points if p.number == 0)
    result = export_trial(str(out), 0, "m4", tmp_path / "dist", emit_c=False)
    assert result.manifest["checks"]["keras_test_acc"] == pytest.approx(point.test_acc, abs=1e-12)
    assert result.manifest["checks"]["onnx"]["argmax_differ"] == 0
