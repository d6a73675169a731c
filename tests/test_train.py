"""Training: baseline cache, QAT fine-tune keeps codebooks, failures reported, recipes."""
import numpy as np
import pytest

from autoq.config import preset
from autoq.data import load_synthetic
from autoq.errors import UserError
from autoq.train import RECIPES, Recipe, finetune, get_recipe, train_baseline

FAST = Recipe("fast", "adam", 1e-2, epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def data():
    return load_synthetic(seed=0)


@pytest.fixture(scope="module")
def baseline(data, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    first = train_baseline("tiny", data, FAST, seed=0, cache_dir=cache)
    return first, cache


def test_baseline_is_trained_once_then_read_from_cache(baseline, data):
    first, cache = baseline
    assert first.status == "ok" and not first.cached and first.val_acc is not None
    again = train_baseline("tiny", data, FAST, seed=0, cache_dir=cache)
    assert again.cached and again.key == first.key and again.model_path == first.model_path
    assert again.val_acc == first.val_acc
    other = train_baseline("tiny", data, FAST.with_epochs(1), seed=0, cache_dir=cache)
    assert not other.cached and other.key != first.key


def test_finetune_changes_weights_and_keeps_codebooks(baseline, data, tmp_path):
    import keras

    first, cache = baseline
    base = keras.models.load_model(first.model_path, compile=False)
    res = finetune("tiny", data, preset("twn", "tiny"), FAST, seed=0, baseline=first,
                   out_dir=tmp_path)
    assert res.status == "ok", res.reason
    assert res.baseline_key == first.key and (tmp_path / "model.keras").is_file()
    conv2 = res.model.get_layer("conv2")
    w = conv2.kernel.numpy()
    assert not np.allclose(w, base.get_layer("conv2").kernel.numpy())
    q = conv2.kernel_quantizer
    wq = np.asarray(q(w))  # the forward pass
    idx, codebook = q.encode(w)
    assert set(np.unique(wq)) <= set(codebook.ravel().tolist()) and len(codebook) <= 3
    assert res.compression > 1 and res.packed_weight_bytes < res.float_weight_bytes


def test_binary_connect_clips_shadow_weights(baseline, data):
    first, _ = baseline
    res = finetune("tiny", data, preset("bc", "tiny"), FAST.with_epochs(1), baseline=first)
    w = res.model.get_layer("conv3").kernel.numpy()
    assert res.status == "ok" and np.abs(w).max() <= 1.0
    assert set(np.unique(np.asarray(res.model.get_layer("conv3").kernel_quantizer(w)))) <= {-1.0, 1.0}


def test_nan_loss_is_a_reported_failure_not_a_crash(data):
    bad = load_synthetic(seed=0)
    bad.x_train = bad.x_train.copy()
    bad.x_train[3, 0, 0, 0] = np.nan
    res = finetune("tiny", bad, preset("bc", "tiny"), FAST, from_scratch=True)
    assert res.status == "failed" and "nan" in res.reason.lower()
    assert res.model_path is None


def test_diverging_loss_is_reported(data):
    wild = Recipe("wild", "sgd", 1e9, epochs=1, batch_size=16, momentum=0.9)
    res = finetune("tiny", data, None, wild, from_scratch=True)
    assert res.status == "failed" and ("diverged" in res.reason or "nan" in res.reason.lower())


def test_same_seed_same_result(data):
    a = finetune("tiny", data, preset("bc", "tiny"), FAST.with_epochs(1), seed=3, from_scratch=True)
    b = finetune("tiny", data, preset("bc", "tiny"), FAST.with_epochs(1), seed=3, from_scratch=True)
    np.testing.assert_array_equal(a.model.get_layer("conv2").kernel.numpy(),
                                  b.model.get_layer("conv2").kernel.numpy())
    assert a.history["loss"] == b.history["loss"]


def test_recipes_and_schedule():
    sgd = RECIPES["sgd"].with_epochs(10)
    assert [round(sgd.lr_at(e), 6) for e in (0, 3, 4, 6, 8, 9)] == [0.1, 0.1, 0.01, 0.001, 0.0001, 0.0001]
    assert get_recipe(None, "lenet5").optimizer == "adam"
    assert get_recipe(None, "resnet20").optimizer == "sgd"
    with pytest.raises(UserError, match="unknown recipe"):
        get_recipe("rmsprop", "tiny")
    with pytest.raises(UserError, match="epochs"):
        RECIPES["adam"].with_epochs(0)


def test_cli_train_json_and_errors(tmp_path):
    import json

    from typer.testing import CliRunner

    from autoq.cli import app

    runner = CliRunner()
    args = ["train", "--model", "tiny", "--dataset", "synthetic", "--preset", "bc", "--epochs", "1",
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "--json"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    res = json.loads(out.output[out.output.index("{"):])
    assert res["status"] == "ok" and 0 <= res["val_acc"] <= 1 and res["compression"] > 1
    assert (tmp_path / "run" / "config.json").is_file()
    both = runner.invoke(app, ["train", "--model", "tiny", "--preset", "bc", "--config", "x.json"])
    assert both.exit_code != 0 and "exactly one" in str(both.exception)


def test_exponential_decay_recipe_reaches_final_lr():
    adam = RECIPES["adam"].with_epochs(5)
    assert adam.lr_at(0) == pytest.approx(1e-3) and adam.lr_at(4) == pytest.approx(1e-4)
    assert adam.lr_at(2) == pytest.approx(10 ** -3.5)
    assert Recipe.from_dict(adam.to_dict()) == adam
