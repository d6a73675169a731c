"""Search spaces: schema validation (errors name file, key, value, allowed), shipped spaces,
sampling to canonical QuantConfigs, preset round trips. No TensorFlow."""
from __future__ import annotations

import copy
import random

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from autoq.config import PRESETS, QuantConfig, preset, quantizer_label
from autoq.errors import UserError
from autoq.objectives import direction
from autoq.space import config_hash, load_space, parse_space, resolve_space_path

SHIPPED = ["lenet5", "vgg7", "resnet20", "squeezenet"]

BASE = {
    "model": "lenet5", "dataset": "digits", "input": [8, 8, 1],
    "targets": ["m4"], "objectives": ["accuracy", "latency", "flash"],
    "layers": [{"select": {"type": "conv"}, "weight": [None, "bc", {"name": "dorefa", "bits": [2, 4]}],
                "activation": [None, "sign"], "relu_slope": [1.0, 0.125]}],
}


def space(**changes):
    raw = copy.deepcopy(BASE)
    raw.update(changes)
    return parse_space(raw, "space.yaml")


def error_of(**changes) -> str:
    with pytest.raises(UserError) as exc:
        space(**changes)
    return str(exc.value)


# --- shipped spaces ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_space_loads_by_name_and_expresses_every_listed_preset(name):
    sp = load_space(name)
    assert sp.name == name and sp.presets
    shortcut = (sp.model_choices.get("shortcut") or ["quantized"])[0]
    for p in sp.presets:
        params = sp.params_for_config(preset(p, sp.model, shortcut=shortcut).to_dict())
        assert params is not None, p
        # the enqueued parameters rebuild exactly the preset's per-layer quantization
        rebuilt = QuantConfig.from_dict(sp.config_from_params(params))
        ref = preset(p, sp.model, shortcut=shortcut)
        assert all(rebuilt.for_layer(n) == ref.for_layer(n) for n in sp.layer_names), p


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_space_covers_bc_bnn_twn_dorefa_and_the_fixes(name):
    raw = yaml.safe_load(resolve_space_path(name).read_text())
    text = yaml.safe_dump(raw)
    for q in ("bc", "sign", "twn", "dorefa", "bc_scaled"):
        assert f"name: {q}" in text or f"- {q}" in text, q
    sp = load_space(name)
    slopes = {s for r in sp.rules if r.relu_slope for s in r.relu_slope}
    assert 0.125 in slopes                                           # BC-2.2 ReLU slope fix
    scales = {c.spec.get("scale") for r in sp.rules if r.weight for c in r.weight if c.spec}
    assert 0.125 in scales                                           # BC-1.2 power-of-two scale
    assert {"bc", "bnn", "twn", "drf", "bc-1.2", "bc-2.2"} <= set(sp.presets)
    if sp.model.startswith("resnet"):
        assert set(sp.model_choices["shortcut"]) == {"quantized", "float", "removed"}


def test_unknown_space_name_lists_the_shipped_ones():
    with pytest.raises(UserError, match="lenet5"):
        resolve_space_path("no_such_space")


# --- validation errors --------------------------------------------------------------------------


def test_unknown_quantizer_lists_the_registry():
    msg = error_of(layers=[{"select": {"type": "conv"}, "weight": [None, {"name": "bcc"}]}])
    assert "space.yaml" in msg and "layers[0].weight[1].name" in msg and "'bcc'" in msg
    assert "dorefa" in msg and "twn" in msg                     # known names from autoq.quant


def test_bad_quantizer_argument_names_the_choice():
    msg = error_of(layers=[{"select": {"type": "conv"}, "weight": [{"name": "dorefa", "bits": [2, 99]}]}])
    assert "layers[0].weight[0]" in msg and "99" in msg


def test_activation_quantizer_as_weight_is_refused_with_the_weight_quantizers():
    msg = error_of(layers=[{"select": {"type": "conv"}, "weight": ["sign"]}])
    assert "layers[0].weight[0].name" in msg and "weight quantizers" in msg and "bc" in msg


@pytest.mark.parametrize("changes, key", [
    ({"model": "lenet7"}, "model"),
    ({"input": [8, 8]}, "input"),
    ({"targets": ["m5"]}, "targets"),
    ({"objectives": ["latency"]}, "objectives"),
    ({"objectives": ["accuracy", "speed"]}, "objectives[1]"),
    ({"constraints": {"max_latency_ms": -1}}, "constraints.max_latency_ms"),
    ({"constraints": {"fits": ["dram"]}}, "constraints.fits"),
    ({"constraints": {"max_size": 3}}, "constraints.max_size"),
    ({"model_choices": {"shortcut": ["float"]}}, "model_choices.shortcut"),      # lenet5: no shortcuts
    ({"model_choices": {"first_last_float": ["yes"]}}, "model_choices.first_last_float"),
    ({"training": {"epochs": 0}}, "training.epochs"),
    ({"training": {"recipe": "rmsprop"}}, "training.recipe"),
    ({"training": {"epochs": 2, "screen": {"epochs": 2}}}, "training.screen.epochs"),
    ({"layers": [{"select": {"name": "nope*"}, "weight": ["bc"]}]}, "layers[0].select"),
    ({"layers": [{"select": {"type": "lstm"}, "weight": ["bc"]}]}, "layers[0].select.type"),
    ({"layers": [{"select": {"type": "conv"}}]}, "layers[0]"),
    ({"layers": [{"select": {"type": "conv"}, "relu_slope": [0]}]}, "layers[0].relu_slope"),
    ({"layers": [{"select": {"type": "conv"}, "weight": ["bc"], "bits": 2}]}, "layers[0].bits"),
    ({"presets": ["bcx"]}, "presets[0]"),
    ({"colour": "red"}, "colour"),
])
def test_validation_errors_name_file_key_and_value(changes, key):
    msg = error_of(**changes)
    assert msg.startswith("space.yaml: ") and f": {key}: got " in msg and "allowed" in msg


def test_yaml_syntax_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [lenet5\n")
    with pytest.raises(UserError, match="bad.yaml: not valid YAML"):
        load_space(bad)


def test_file_name_is_the_default_run_name(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump(BASE))
    assert load_space(f).name == "mine"


# --- parameters and canonical configs ----------------------------------------------------------------


def test_parameters_are_named_per_layer_and_expand_list_arguments():
    sp = space()
    pc = sp.param_choices()
    assert sorted(pc) == ["conv1.activation", "conv1.relu_slope", "conv1.weight",
                          "conv2.activation", "conv2.relu_slope", "conv2.weight"]
    assert pc["conv1.weight"] == ["float", "bc", "dorefa(bits=2)", "dorefa(bits=4)"]
    assert [len(pc[f"conv1.{dim}"]) for dim in ("weight", "activation", "relu_slope")] == [4, 2, 2]


def test_share_makes_one_parameter_per_rule_and_later_rule_wins_per_key():
    sp = space(model_choices={"first_last_float": False},
               layers=[{"select": "all", "share": True, "weight": ["bc", "twn"]},
                       {"select": {"name": "fc3"}, "weight": [None, {"name": "uniform", "bits": 8}]},
                       {"select": {"name": "conv*"}, "relu_slope": [1.0, 0.125]}])
    pc = sp.param_choices()
    assert set(pc) == {"rule0.weight", "fc3.weight", "conv1.relu_slope", "conv2.relu_slope"}
    cfg = sp.config_from_params({"rule0.weight": "twn", "fc3.weight": "float",
                                 "conv1.relu_slope": 0.125, "conv2.relu_slope": 1.0})
    # first_last_float false: every layer is alive
    assert cfg["layers"]["conv1"]["weight"]["name"] == "twn"
    assert cfg["layers"]["conv1"]["relu_slope"] == 0.125
    assert "fc3" not in cfg["layers"]                             # float = default: dropped
    assert cfg["layers"]["fc2"]["weight"]["name"] == "twn"


def test_first_last_float_drops_dead_overrides_so_equal_models_hash_equal():
    sp = space(model_choices={"first_last_float": [True, False]},
               layers=[{"select": "all", "weight": [None, "bc"]}])
    base = {f"{n}.weight": "bc" for n in sp.layer_names}
    a = sp.config_from_params({**base, "first_last_float": True})
    b = sp.config_from_params({**base, "first_last_float": True, "conv1.weight": "float", "fc3.weight": "float"})
    c = sp.config_from_params({**base, "first_last_float": False})
    assert a == b and config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)
    assert set(a["layers"]) == {"conv2", "fc1", "fc2"}


def test_resnet_shortcut_policy_kills_shortcut_overrides():
    sp = load_space("resnet20")
    params = {k: v[1] if len(v) > 1 else v[0] for k, v in sp.param_choices().items()}
    q = sp.config_from_params({**params, "shortcut": "quantized", "first_last_float": False})
    f = sp.config_from_params({**params, "shortcut": "float", "first_last_float": False})
    assert "stage2_block1_shortcut" in q["layers"] and "stage2_block1_shortcut" not in f["layers"]
    assert f["shortcut"] == "float"


def test_objective_names_per_target():
    sp = space(objectives=["accuracy", "latency", "flash@m4"])
    assert sp.objective_names(["m4", "a53"]) == ["accuracy", "latency@m4", "latency@a53", "flash@m4"]
    assert [direction(n) for n in sp.objective_names()] == ["maximize", "minimize", "minimize"]


def test_quantizer_labels_of_the_space_and_of_the_front():
    assert quantizer_label(None) == quantizer_label(None, compact=True) == "float"
    assert quantizer_label({"name": "bc"}, compact=True) == "bc"
    assert quantizer_label({"name": "bc_scaled", "scale": 0.125}, compact=True) == "bc_scaled(scale=0.125)"
    spec = {"name": "uniform", "per_channel": True, "bits": 8}
    assert quantizer_label(spec, compact=True) == "uniform(bits=8,per_channel=True)"   # Optuna values
    assert quantizer_label(spec) == "uniform(per_channel=True, bits=8)"                 # the front's tables


def test_a_preset_without_first_last_float_maps_to_its_own_model():
    # the image input takes no activation quantizer from the default (QuantConfig.for_layer):
    # the space's parameters for the preset must keep conv1's input float too
    sp = space(model_choices={"first_last_float": False},
               layers=[{"select": "all", "weight": [None, "bc"], "activation": [None, "sign"]}])
    cfg = preset("bnn", "lenet5", first_last_float=False).to_dict()
    params = sp.params_for_config(cfg)
    assert params["conv1.activation"] == "float" and params["conv2.activation"] == "sign"
    got, want = QuantConfig.from_dict(sp.config_from_params(params)), QuantConfig.from_dict(cfg)
    assert [got.for_layer(n) for n in sp.layer_names] == [want.for_layer(n) for n in sp.layer_names]


def test_preset_outside_the_space_is_not_expressible():
    sp = space()  # no twn in BASE
    assert sp.params_for_config(preset("twn", "lenet5").to_dict()) is None
    assert sp.params_for_config(preset("bc-stoch", "lenet5").to_dict()) is None
    assert sp.params_for_config(preset("bnn", "lenet5").to_dict()) is None  # fc1, fc2: no rule, stay float


LENET = load_space("lenet5")
LENET_PARAMS = LENET.param_choices()


@settings(max_examples=40, deadline=None)
@given(st.fixed_dictionaries({k: st.sampled_from(v) for k, v in LENET_PARAMS.items()}))
def test_sampled_configs_are_valid_and_invert_through_params_for_config(params):
    cfg = LENET.config_from_params(params)
    qc = QuantConfig.from_dict(cfg)                          # valid
    back = LENET.params_for_config(cfg)
    assert back is not None
    assert LENET.config_from_params(back) == cfg             # same canonical config
    assert qc.to_dict() == cfg


def test_every_preset_of_the_thesis_except_stochastic_bc_is_in_the_lenet5_space():
    missing = [p for p in PRESETS if LENET.params_for_config(preset(p, "lenet5").to_dict()) is None]
    assert missing == ["bc-stoch"]


def test_random_params_give_stable_hashes():
    rng = random.Random(0)
    params = {k: rng.choice(v) for k, v in LENET_PARAMS.items()}
    assert config_hash(LENET.config_from_params(params)) == config_hash(LENET.config_from_params(dict(params)))
