"""Model zoo: names, published parameter counts, every preset builds, ReLU/shortcut rules."""
import numpy as np
import pytest

from autoq.config import PRESETS, QuantConfig, preset
from autoq.errors import UserError
from autoq.models import MODELS, PUBLISHED_PARAMS, REFERENCE_INPUT, build_model, layer_names, model_stats
from autoq.models.names import quant_layer_names


def _compute(model):
    return [layer for layer in model.layers if hasattr(layer, "kernel_quantizer")]


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_published_parameter_counts(name):
    model = build_model(name, REFERENCE_INPUT.get(name, (32, 32, 3)), 10)
    assert model_stats(model)["params"] == PUBLISHED_PARAMS[name]
    assert [layer.name for layer in _compute(model)] == quant_layer_names(name)


def _paddings(model):
    return [layer.padding for layer in _compute(model) if hasattr(layer, "padding")]


def test_lenet5_is_lecuns_at_32x32_and_28x28_and_compact_on_digits():
    at32 = build_model("lenet5", (32, 32, 1), 10)
    at28 = build_model("lenet5", (28, 28, 1), 10)
    assert model_stats(at32)["params"] == model_stats(at28)["params"] == 61_706
    assert _paddings(at32) == ["valid", "valid"] and _paddings(at28) == ["same", "valid"]
    assert at28.get_layer("fc1").kernel.shape == (400, 120)      # 5x5x16 before fc1, as LeCun's
    # the documented variant for inputs too small for a valid conv2: unchanged digits default
    digits = build_model("lenet5", (8, 8, 1), 10)
    assert _paddings(digits) == ["same", "same"]
    assert digits.get_layer("fc1").kernel.shape == (64, 120)
    assert model_stats(digits)["params"] == 156 + 2416 + 64 * 120 + 120 + 84 * 121 + 850


def test_bypass_variant_has_same_params_and_adds():
    plain = build_model("squeezenet", (32, 32, 3), 10)
    bypass = build_model("squeezenet_bypass", (32, 32, 3), 10)
    assert model_stats(bypass)["params"] == model_stats(plain)["params"]
    adds = [layer.name for layer in bypass.layers if layer.name.endswith("_bypass")]
    assert adds == ["fire3_bypass", "fire5_bypass", "fire7_bypass", "fire9_bypass"]


def _check_builds(name, preset_name):
    """Build only (8x8x1, 10 classes): layer names stable, first/last float, quantizer set."""
    cfg = preset(preset_name, name)
    model = build_model(name, (8, 8, 1), 10, cfg)
    layers = _compute(model)
    assert [layer.name for layer in layers] == quant_layer_names(name)
    assert layers[0].kernel_quantizer is None and layers[-1].kernel_quantizer is None
    if cfg.default.weight is not None:
        assert layers[1].kernel_quantizer.name == cfg.default.weight["name"]
    if cfg.default.activation is not None:
        assert layers[1].input_quantizer.name == cfg.default.activation["name"]
    return model


SMALL_MODELS = ("tiny", "lenet5", "resnet20")


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_every_preset_builds_small_models(name):
    x = np.zeros((2, 8, 8, 1), np.float32)
    for p in PRESETS:
        model = _check_builds(name, p)
        if p in ("bc", "bnn"):
            assert tuple(model(x).shape) == (2, 10)


@pytest.mark.parametrize("name", sorted(set(MODELS) - set(SMALL_MODELS)))
def test_representative_presets_build_large_models(name):
    # sign inputs (ReLU dropped), {0,1} inputs, k-bit inputs, int8: the branches of the builder
    for p in ("bnn", "hybrid", "drf-a2", "int8"):
        _check_builds(name, p)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_preset_builds_every_model(name):
    for p in PRESETS:
        _check_builds(name, p)


def test_signed_input_drops_the_relu_before_it_only():
    bnn = build_model("tiny", (8, 8, 1), 3, preset("bnn", "tiny"))
    acts = {layer.name: layer for layer in bnn.layers if type(layer).__name__ == "QActivation"}
    # conv2 and conv3 read sign(x): the activations feeding them are linear; fc is float
    assert not acts["conv1_act"].relu and not acts["conv2_act"].relu
    assert acts["conv3_act"].relu
    int8 = build_model("tiny", (8, 8, 1), 3, preset("int8", "tiny"))
    assert all(layer.relu for layer in int8.layers if type(layer).__name__ == "QActivation")


def test_relu_slope_and_clip_constraint_reach_the_layers():
    model = build_model("tiny", (8, 8, 1), 3, preset("bc-2.2", "tiny"))
    by_name = {layer.name: layer for layer in model.layers}
    assert by_name["conv2_act"].slope == 0.125 and by_name["conv1_act"].slope == 1.0
    assert by_name["conv2"].kernel_constraint is not None
    assert by_name["conv1"].kernel_constraint is None


@pytest.mark.parametrize("policy", ["quantized", "float", "removed"])
def test_resnet_shortcut_policies(policy):
    cfg = preset("bc", "resnet20", shortcut=policy)
    model = build_model("resnet20", (8, 8, 1), 10, cfg)
    shortcuts = [layer for layer in _compute(model) if layer.name.endswith("_shortcut")]
    if policy == "removed":
        assert shortcuts == []
        assert [layer.name for layer in _compute(model)] == layer_names("resnet20", config=cfg)
    else:
        assert [s.name for s in shortcuts] == ["stage2_block1_shortcut", "stage3_block1_shortcut"]
        assert all((s.kernel_quantizer is None) == (policy == "float") for s in shortcuts)


def test_per_layer_override_reaches_layer():
    cfg = QuantConfig.from_dict({"model": "lenet5",
                                 "layers": {"fc1": {"weight": {"name": "dorefa", "bits": 3},
                                                    "activation": {"name": "uniform", "bits": 4}}}})
    model = build_model("lenet5", (8, 8, 1), 10, cfg)
    fc1 = model.get_layer("fc1")
    assert fc1.kernel_quantizer.bits == 3 and fc1.input_quantizer.bits == 4
    assert model.get_layer("fc2").kernel_quantizer is None


def test_bad_model_and_shape_errors():
    with pytest.raises(UserError, match="unknown model 'alexnet'"):
        build_model("alexnet", (8, 8, 1), 10)
    with pytest.raises(UserError, match="input_shape"):
        build_model("tiny", (8, 8), 10)


def test_macs_of_lenet5_on_digits():
    # conv1 8x8x(5*5*1*6) + conv2 4x4x(5*5*6*16) + fc 64*120 + 120*84 + 84*10
    stats = model_stats(build_model("lenet5", (8, 8, 1), 10))
    assert stats["macs"] == 8 * 8 * 150 + 4 * 4 * 2400 + 64 * 120 + 120 * 84 + 84 * 10
    assert stats["layers"] == 5


def test_cli_models_json():
    import json

    from typer.testing import CliRunner

    from autoq.cli import app

    out = CliRunner().invoke(app, ["models", "--json", "--input-shape", "8,8,1"])
    assert out.exit_code == 0, out.output
    rows = {r["name"]: r for r in json.loads(out.output)["models"]}
    assert set(rows) == set(MODELS)
    assert rows["lenet5"]["macs"] == 8 * 8 * 150 + 4 * 4 * 2400 + 64 * 120 + 120 * 84 + 84 * 10
    assert rows["resnet20"]["layers"] == 22
