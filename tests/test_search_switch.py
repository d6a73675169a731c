"""Cheap trials: the switch model trains configs without new graphs, and ships the same model."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autoq.config import QuantConfig, preset
from autoq.data import load_synthetic
from autoq.train import Recipe, accuracy, train_baseline

FAST = Recipe("fast", "adam", 1e-2, 30, 64)
CANDIDATES = {n: {"weight": ["bc", "twn", {"name": "lsq", "bits": 4}], "activation": ["sign"]}
              for n in ("conv2", "conv3")}  # the presets' layers (first and last stay float)


@pytest.fixture(scope="module")
def data():
    return load_synthetic(0)


@pytest.fixture(scope="module")
def trainer(data, tmp_path_factory):
    from autoq.search.switch import FastTrainer

    base = train_baseline("tiny", data, FAST, seed=0, cache_dir=tmp_path_factory.mktemp("cache"))
    assert base.status == "ok" and base.val_acc > 0.6
    return FastTrainer("tiny", data, base.model_path, FAST, CANDIDATES)


def test_trials_reuse_one_graph_and_ship_the_measured_model(trainer, data, tmp_path):
    import keras

    configs = [preset("twn", "tiny"), preset("bc", "tiny"),
               QuantConfig.from_dict({"model": "tiny", "layers": {"conv2": {"weight": {"name": "lsq", "bits": 4}}}})]
    results = [trainer.train(c, 2, 0, tmp_path / str(i)) for i, c in enumerate(configs)]
    assert len(trainer._models) == 1                       # one switch model for all three
    for cfg, r in zip(configs, results):
        assert r.status == "ok", r.reason
        shipped = keras.models.load_model(r.model_path, compile=False)
        assert accuracy(shipped, data.x_val, data.y_val) == pytest.approx(r.val_acc)
        assert accuracy(shipped, data.x_test, data.y_test) == pytest.approx(r.test_acc)
        for layer in shipped.layers:                        # the config's own quantizers were shipped
            if layer.name in ("conv2",):
                assert layer.kernel_quantizer.get_config() == QuantConfig.from_dict(cfg.to_dict()).for_layer(
                    "conv2").weight
    again = trainer.train(configs[0], 2, 0, tmp_path / "again")  # no state leaks between trials
    assert again.val_acc == pytest.approx(results[0].val_acc) and again.history == results[0].history


def test_a_config_outside_the_candidates_rebuilds_once(trainer, tmp_path):
    cfg = QuantConfig.from_dict({"model": "tiny", "layers": {"conv2": {"weight": {"name": "dorefa", "bits": 2}}}})
    r = trainer.train(cfg, 1, 0, tmp_path)
    assert r.status == "ok" and {"name": "dorefa", "bits": 2, "mode": "weight"} in \
        [s for s in trainer.candidates["conv2"]["weight"] if isinstance(s, dict)]


def test_a_trial_that_does_not_learn_stops_after_one_epoch_and_fails(trainer, data, tmp_path):
    from autoq.search.switch import FastTrainer

    shuffled = replace(data, y_train=np.random.default_rng(1).permutation(data.y_train))
    dead = FastTrainer("tiny", shuffled, trainer.baseline_path, Recipe("wild", "sgd", 50.0, 5, 64),
                       CANDIDATES)
    r = dead.train(preset("bnn", "tiny"), 5, 0, tmp_path)
    assert r.status == "failed" and r.reason.startswith("did not learn") and r.epochs_run <= 1
    assert not (tmp_path / "model.keras").exists()


def test_chance_is_the_majority_share():
    from autoq.search.switch import chance_accuracy

    assert chance_accuracy(np.array([0, 0, 0, 1]), 4) == 0.75
    assert chance_accuracy(np.array([0, 1, 2, 3]), 4) == 0.25
