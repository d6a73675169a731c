"""Zoo models through the exporter (slow: run with `pytest -m slow`): ResNet-20 with BNN layers
(xnor kernels, residual adds, float 1x1 shortcuts) and SqueezeNet with bypass and TWN weights
(channel concat, identity bypasses), untrained, 16x16x3 inputs; ONNX and C against Keras."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from layer_helpers import assert_matches_keras, build_c, write_c


@pytest.mark.slow
@pytest.mark.parametrize("model_name,preset_name", [("resnet20", "bnn"), ("squeezenet_bypass", "twn")])
def test_zoo_model_exports(model_name, preset_name, tmp_path):
    from autoq.config import preset
    from autoq.export.exporter import keras_logits
    from autoq.export.graph import build_graph
    from autoq.export.onnx import export_onnx
    from autoq.models.zoo import build_model

    import keras

    keras.utils.set_random_seed(0)
    model = build_model(model_name, (16, 16, 3), 10, preset(preset_name, model_name))
    x = np.random.default_rng(0).uniform(0, 1, (20, 16, 16, 3)).astype(np.float32)
    graph = build_graph(model, fold_bn=False)
    ref = keras_logits(model, x, per_sample=False)
    assert export_onnx(graph, x, ref, tmp_path / "m.onnx")["max_abs_diff"] <= 1e-4
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    _, run = build_c(graph, tmp_path, "opt")
    assert_matches_keras(run(x), ref)


MIXED = {"model": "resnet20", "default": {"weight": {"name": "twn"}, "activation": None}, "layers": {
    "stage1_block1_conv1": {"weight": {"name": "uniform", "bits": 8}, "activation": {"name": "uniform", "bits": 8}},
    "stage2_block1_conv1": {"weight": {"name": "bc"}, "activation": {"name": "sign"}},
    "stage2_block1_conv2": {"weight": {"name": "dorefa", "bits": 1}, "activation": {"name": "dorefa", "bits": 1}},
    "stage3_block1_conv1": {"weight": {"name": "dorefa", "bits": 4}, "activation": {"name": "dorefa", "bits": 2}}}}


@pytest.mark.slow
@pytest.mark.parametrize("config_name", ["int8", "bc", "mixed"])
def test_resnet20_32x32_passes_the_exporters_checks(config_name, tmp_path):
    # the exporter's own ONNX and C checks (default-options onnxruntime, batch-free, level check
    # where quantized activations flip) on ResNet-20 at CIFAR size; the trained versions:
    # benchmarks/bench_export_checks.py --only resnet20
    from autoq.config import QuantConfig, preset
    from autoq.export.exporter import ONNX_TOLERANCE, _allowed_flips, _check_c, keras_layer_inputs, keras_logits
    from autoq.export.graph import build_graph
    from autoq.export.onnx import export_onnx
    from autoq.models.zoo import build_model

    import keras

    keras.utils.set_random_seed(0)
    config = QuantConfig.from_dict(MIXED) if config_name == "mixed" else preset(config_name, "resnet20")
    model = build_model("resnet20", (32, 32, 3), 10, config)
    x = np.random.default_rng(0).uniform(0, 1, (64, 32, 32, 3)).astype(np.float32)
    graph = build_graph(model, fold_bn=False)
    ref = keras_logits(model, x)
    inputs = lambda xs: keras_layer_inputs(model, graph, xs)  # noqa: E731
    info = export_onnx(graph, x, ref, tmp_path / "m.onnx", ONNX_TOLERANCE, allowed_flips=_allowed_flips(graph, len(x)),
                       keras_inputs=inputs)
    assert info["batch1_vs_batch_max_abs_diff"] <= 1e-5 and info["argmax_differ"] == 0
    out = tmp_path / "c"
    write_c(graph, out, "opt")
    work = tmp_path / "work"
    work.mkdir()
    assert _check_c(out, graph, x, ref, work, keras_inputs=inputs)["argmax_mismatches"] == 0
