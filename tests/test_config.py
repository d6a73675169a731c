"""QuantConfig: JSON round trip, presets, resolution rules, validation errors naming the field."""
import json
import sys

import pytest

from autoq.config import PRESETS, LayerQuant, QuantConfig, layer_rows, preset, shortcut_label
from autoq.errors import UserError
from autoq.models.names import MODEL_NAMES, quant_layer_names


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_json(name):
    cfg = preset(name, "resnet20")
    again = QuantConfig.from_json(cfg.to_json())
    assert again.to_dict() == cfg.to_dict()
    assert json.loads(again.to_json()) == cfg.to_dict()


def test_config_module_imports_without_tensorflow():
    import subprocess

    code = ("import sys, autoq.config as c; c.preset('bnn', 'resnet20').to_json(); "
            "assert 'tensorflow' not in sys.modules, 'TF imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_override_merges_with_default_and_first_last_stay_float():
    cfg = QuantConfig.from_dict({
        "model": "lenet5",
        "default": {"weight": {"name": "bc"}, "activation": None, "relu_slope": 0.5},
        "layers": {"conv2": {"activation": {"name": "dorefa", "bits": 2}},
                   "conv1": {"weight": {"name": "twn"}}},
    })
    lq = cfg.for_layer("conv2")
    assert lq.weight["name"] == "bc" and lq.activation["bits"] == 2 and lq.relu_slope == 0.5
    assert cfg.for_layer("fc1").activation is None
    assert cfg.for_layer("conv1") == LayerQuant() and cfg.for_layer("fc3") == LayerQuant()
    cfg.first_last_float = False
    assert cfg.for_layer("conv1").weight["name"] == "twn"


def test_shortcut_float_policy_forces_float_shortcuts():
    cfg = preset("bc", "resnet20", shortcut="float")
    assert cfg.for_layer("stage2_block1_shortcut").is_float
    assert cfg.for_layer("stage2_block1_conv1").weight["name"] == "bc"
    assert preset("bc", "resnet20").for_layer("stage2_block1_shortcut").weight["name"] == "bc"


def test_presets_match_the_methods():
    assert preset("bc-1.2").default.weight == {"name": "bc_scaled", "scale": 0.125}
    assert preset("bc-2.2").default.relu_slope == 0.125
    assert preset("bnn").default.activation["name"] == "sign"
    hybrid = preset("hybrid").default
    assert hybrid.weight["name"] == "bc" and hybrid.activation["bits"] == 1
    assert preset("base").default.is_float


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_overrides_accept_every_zoo_layer_name(model):
    layers = {n: {"weight": {"name": "twn"}} for n in quant_layer_names(model)}
    cfg = QuantConfig.from_dict({"model": model, "layers": layers})
    assert set(cfg.layers) == set(quant_layer_names(model))


@pytest.mark.parametrize("bad, field, value", [
    ({"model": "lenet5", "layers": {"conv9": {}}}, "layers.conv9", "conv9"),
    ({"default": {"weight": {"name": "dorefa", "bits": 12}}}, "default.weight", "12"),
    ({"layers": {"conv2": {"activation": {"name": "uniform", "bits": 0}}}},
     "layers.conv2.activation", "0"),
    ({"default": {"weight": {"name": "nosuch"}}}, "default.weight", "nosuch"),
    ({"default": {"weight": {"name": "sign"}}}, "default.weight", "sign"),
    ({"default": {"relu_slope": -1}}, "default.relu_slope", "-1"),
    ({"default": {"slope": 1}}, "default.slope", "slope"),
    ({"shortcut": "skip"}, "shortcut", "skip"),
    ({"model": "resnet99"}, "model", "resnet99"),
    ({"first_last_float": "yes"}, "first_last_float", "yes"),
    ({"layer": {}}, "layer", "layer"),
])
def test_invalid_config_errors_name_field_and_value(bad, field, value):
    with pytest.raises(UserError) as err:
        QuantConfig.from_dict(bad, source="cfg.json")
    msg = str(err.value)
    assert msg.startswith(f"cfg.json: {field}"), msg
    assert value in msg


def test_load_reports_missing_file_and_bad_json(tmp_path):
    with pytest.raises(UserError, match="not found"):
        QuantConfig.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(UserError, match="bad.json: not valid JSON"):
        QuantConfig.load(bad)
    good = tmp_path / "good.json"
    preset("twn", "vgg7").save(good)
    assert QuantConfig.load(good).to_dict() == preset("twn", "vgg7").to_dict()


def test_unknown_preset():
    with pytest.raises(UserError, match="known:"):
        preset("bcc")


def test_direct_construction_is_validated_too():
    with pytest.raises(UserError, match="default.weight"):
        QuantConfig(model="tiny", default=LayerQuant(weight={"name": "bogus"}))
    cfg = QuantConfig(model="tiny", default=LayerQuant(weight={"name": "dorefa", "bits": 2}))
    assert cfg.default.weight == {"name": "dorefa", "bits": 2, "mode": "weight"}


def test_network_input_is_not_quantized_by_the_default():
    cfg = preset("bnn", "lenet5", first_last_float=False)
    assert cfg.for_layer("conv1").weight["name"] == "bc" and cfg.for_layer("conv1").activation is None
    assert cfg.for_layer("conv2").activation["name"] == "sign"
    cfg = QuantConfig.from_dict({"model": "lenet5", "first_last_float": False,
                                 "layers": {"conv1": {"activation": {"name": "dorefa", "bits": 1}}}})
    assert cfg.for_layer("conv1").activation["bits"] == 1


def test_layer_rows_label_what_each_layer_resolves_to():
    cfg = preset("bnn", "lenet5").to_dict()
    plan = {"layers": [{"name": n, "op": "conv2d", "kind": "xnor"} for n in ("conv1", "conv2", "fc3")]}
    rows = {r["name"]: (r["weight"], r["activation"]) for r in layer_rows(cfg, plan)}
    assert rows == {"conv1": ("float", "float"), "conv2": ("bc", "sign"), "fc3": ("float", "float")}
    stale = {**cfg, "layers": {"conv9": {"weight": None}}}
    assert all(r["weight"].startswith("? (") and "conv9" in r["weight"] for r in layer_rows(stale, plan))
    assert shortcut_label(cfg) == "-" and shortcut_label(preset("bc", "resnet20", shortcut="float").to_dict()) == "float"
