"""Export conformance: every kernel kind (autoq.kinds.KINDS) through ONNX and through the emitted C.

For each kind a tiny model whose conv and dense both run on that kind (the quantizer pair is
found in the registry through ``layer_kind``, the project's one mapping), untrained with random
BatchNorm statistics; ONNX (onnxruntime, default session options) and the host build of the C
(ref and opt kernels) must match Keras within the exporter's tolerances, and the C must run the
layers on the kind itself, not on a fallback. A new kind fails here until a quantizer maps to it
and both exporters render it.
"""
from __future__ import annotations

import numpy as np
import pytest
from layer_helpers import assert_matches_keras, build_c, compiled_kernels, randomise_batchnorm
from quantizer_cases import registry_cases

from autoq import quant
from autoq.kinds import KINDS

SAMPLES = 24
INPUT_SHAPE = (6, 6, 3)


def quantizer_pair(kind: str) -> tuple[dict | None, dict | None]:
    """The first (weight, input) quantizer configs, in the order of tests/quantizer_cases.py,
    that ``layer_kind`` maps to ``kind``."""
    weights = [None] + [c for c, _ in registry_cases("weight")]
    inputs = [None] + [c for c, _ in registry_cases("activation")]
    for w in weights:
        for a in inputs:
            wq = quant.for_role(w, "weight") if w else None
            aq = quant.for_role(a, "activation") if a else None
            if quant.layer_kind(wq, aq) == kind:
                return w, a
    raise AssertionError(f"no registered quantizer pair runs on kernel kind {kind!r} (autoq.quant.kinds.layer_kind)")


def _model(kind: str):
    from autoq.tf_env import import_tf

    import_tf()
    import keras

    from autoq.quant.layers import QActivation, QConv2D, QDense

    w, a = quantizer_pair(kind)
    keras.utils.set_random_seed(5)
    inp = keras.Input(INPUT_SHAPE, name="input")
    h = QConv2D(8, 3, padding="same", kernel_quantizer=w, input_quantizer=a, name="conv")(inp)
    h = keras.layers.BatchNormalization(name="conv_bn")(h)
    h = QActivation(name="conv_act")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    model = keras.Model(inp, QDense(10, kernel_quantizer=w, input_quantizer=a, name="fc")(h))
    randomise_batchnorm(model)
    return model


@pytest.fixture(scope="module", params=KINDS)
def case(request):
    """(kind, model, export graph, inputs, Keras logits) of one kernel kind."""
    from autoq.export.exporter import keras_logits
    from autoq.export.graph import build_graph

    kind = request.param
    model = _model(kind)
    x = np.random.default_rng(6).uniform(-1, 1, (SAMPLES, *INPUT_SHAPE)).astype(np.float32)
    graph = build_graph(model, fold_bn=False)      # as `autoq export` builds ONNX and C: Keras' BatchNorm arithmetic
    return kind, model, graph, x, keras_logits(model, x)


def test_both_layers_are_planned_on_the_kind(case):
    kind, _, graph, _, _ = case
    assert {op.name: op.layer.kind for op in graph.compute} == {"conv": kind, "fc": kind}


def test_onnx_matches_keras(case, tmp_path):
    from autoq.export.exporter import ONNX_TOLERANCE
    from autoq.export.onnx import export_onnx

    _, _, graph, x, ref = case
    info = export_onnx(graph, x, ref, tmp_path / "m.onnx", ONNX_TOLERANCE)   # raises beyond the tolerance
    assert info["argmax_differ"] == 0 and info["samples_beyond_tolerance"] == 0, info
    assert info["batch1_vs_batch_max_abs_diff"] <= 1e-5


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    return compiled_kernels(tmp_path_factory.mktemp("kernels"))


@pytest.mark.parametrize("variant", ["ref", "opt"])
def test_c_matches_keras(case, kernels, tmp_path, variant):
    from autoq.export.exporter import C_ATOL, C_RTOL

    kind, _, graph, x, ref = case
    em, run = build_c(graph, tmp_path, variant, kernels=kernels)
    assert {cl.op.name: (cl.kind, cl.note) for cl in em.layers} == {"conv": (kind, ""), "fc": (kind, "")}
    assert f"aq_conv_{kind}_{variant}(" in em.source
    assert_matches_keras(run(x), ref, atol=C_ATOL, rtol=C_RTOL)
