"""Deployment forms: quantizers declare them, exporters render only them.

- every registered quantizer declares a form for each role it serves, consistent with encode;
- a quantizer registered at run time (forms that exist, no other edit) exports to ONNX and C
  (host build) and both equal Keras;
- activation ranges are fixed at inference: the calibrated `uniform` range survives .keras
  save/load, and Keras, ONNX and C give one sample the same logits alone or in a batch.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from layer_helpers import assert_matches_keras, build_c, tiny_model

from autoq import quant
from autoq.quant import quantizers as Q
from autoq.quant.forms import EncodedWeights, InputForm, WeightForm


def _roles(name):
    cls = Q._REGISTRY[name]
    return ("weight", "activation") if cls.role == "both" else (cls.role,)


@pytest.mark.parametrize("name", quant.names())
def test_every_quantizer_declares_its_forms_consistently_with_encode(name):
    w = np.random.default_rng(1).normal(0, 0.3, (3, 3, 4, 5)).astype(np.float32)
    for role in _roles(name):
        q = quant.for_role(name, role)
        idx, book = q.encode(w)
        assert np.array_equal(q.decode(idx, book), np.asarray(q(w), np.float32)), (name, role)
        if role == "activation":
            form = q.input_form()
            assert isinstance(form, InputForm)
            assert np.array_equal(form.apply(w), q.decode(idx, book))
            continue
        enc = q.encode_weights(w)
        assert isinstance(enc, EncodedWeights) and isinstance(enc.form, WeightForm)
        assert np.array_equal(enc.indices, idx) and np.array_equal(enc.codebook, book)
        if enc.scale is not None:      # integer forms: value = scale[c] * level, exactly in float32
            scale = enc.scale if enc.scale.size > 1 else enc.scale[:1]
            assert np.array_equal(enc.integers().astype(np.float32) * scale, q.decode(idx, book))


# --- a quantizer registered at run time -----------------------------------------------------


class _Pow2Ternary(Q.Quantizer):
    """Test-only: {-1, 0, +1} * 0.25 with threshold 0.05 (a power-of-two ternary form: shift)."""

    name, role, summary, bits = "test_pow2_ternary", "weight", "test", 2

    def __init__(self):
        pass

    def weight_form(self):
        return WeightForm("ternary", 2, (-1, 0, 1), scale=0.25)

    def _indices_and_scale(self, w):
        return np.where(w > 0.05, 2, np.where(w < -0.05, 0, 1)), np.array([0.25])

    def _tf_forward(self, tf, x, training):
        t = tf.where(x > 0.05, tf.ones_like(x), tf.where(x < -0.05, -tf.ones_like(x), tf.zeros_like(x)))
        return Q._straight_through(tf, x, lambda v: t * 0.25)


class _Clip3(Q.Quantizer):
    """Test-only: a symmetric 3-bit input grid with a fixed step 0.25, levels -3..3."""

    name, role, summary, bits = "test_clip3", "activation", "test", 3

    def __init__(self):
        pass

    def input_form(self):
        return InputForm("grid", 3, 0.25, -3, 3, "fixed")

    def _tf_forward(self, tf, x, training):
        return Q._straight_through(tf, x, lambda v: tf.clip_by_value(tf.round(v / 0.25), -3.0, 3.0) * 0.25)


@pytest.fixture
def registered():
    for cls in (_Pow2Ternary, _Clip3):
        Q.register(cls)
    yield
    for cls in (_Pow2Ternary, _Clip3):
        Q._REGISTRY.pop(cls.name)


def test_runtime_registered_quantizer_exports_to_onnx_and_c(registered, tmp_path):
    from autoq.export.exporter import keras_logits
    from autoq.export.graph import build_graph
    from autoq.export.onnx import export_onnx

    assert shutil.which("gcc"), "gcc is needed for the C export"
    model = tiny_model({"c2": {"kernel_quantizer": "test_pow2_ternary", "input_quantizer": "test_clip3"},
                          "fc": {"kernel_quantizer": "test_pow2_ternary"}})
    x = np.random.default_rng(2).uniform(0, 1, (30, 8, 8, 1)).astype(np.float32)
    ref = keras_logits(model, x)
    graph = build_graph(model, fold_bn=False)
    kinds = {op.name: op.layer.kind for op in graph.compute}
    assert kinds == {"c1": "f32", "c2": "shift", "fc": "shift"}
    info = export_onnx(graph, x, ref, tmp_path / "m.onnx")
    assert info["max_abs_diff"] <= 1e-4 and info["weights"]["c2"] == "int4"
    em, run = build_c(graph, tmp_path)
    assert {cl.op.name: cl.kind for cl in em.layers} == kinds and not any(cl.note for cl in em.layers)
    assert_matches_keras(run(x), ref)


# --- static activation ranges -----------------------------------------------------------------


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A tiny model with a calibrated uniform 8-bit input (int8 kernel) and a 4-bit one, fitted
    for a few steps on digits, saved and loaded back."""
    from autoq.data import load_digits
    from autoq.tf_env import import_tf

    import_tf()
    import keras

    import autoq.quant.layers  # noqa: F401

    data = load_digits(0)
    model = tiny_model({"c2": {"kernel_quantizer": {"name": "uniform", "bits": 8},
                                 "input_quantizer": {"name": "uniform", "bits": 8}},
                          "fc": {"kernel_quantizer": {"name": "dorefa", "bits": 2},
                                 "input_quantizer": {"name": "uniform", "bits": 4}}})
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train[:256], data.y_train[:256], epochs=1, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("calibrated") / "m.keras"
    model.save(path)
    return model, keras.saving.load_model(path, compile=False), data.x_test[:64]


def test_calibrated_range_is_learned_in_training_frozen_after_and_survives_save(calibrated):
    model, loaded, x = calibrated
    for name in ("c2", "fc"):
        q = model.get_layer(name).input_quantizer
        assert q.input_form().range_source == "calibrated"
        value = float(q.max_abs.numpy())
        assert value > 0, "the range was not calibrated in training"
        assert float(loaded.get_layer(name).input_quantizer.max_abs.numpy()) == value
        model(x, training=False)
        assert float(q.max_abs.numpy()) == value, "evaluation moved the calibrated range"
    assert np.array_equal(model(x, training=False).numpy(), loaded(x, training=False).numpy())


def test_one_sample_alone_or_in_a_batch_gives_the_same_logits(calibrated, tmp_path):
    from autoq.export.exporter import keras_logits
    from autoq.export.graph import build_graph
    from autoq.export.onnx import build_onnx, run_onnx

    _, model, x = calibrated
    alone, batch = keras_logits(model, x, per_sample=True), keras_logits(model, x)
    assert np.max(np.abs(alone - batch)) <= 1e-5
    # the first sample with an extreme companion: a batch-dependent range would change it
    loud = np.concatenate([x[:1], 50 * x[1:2]])
    assert np.max(np.abs(keras_logits(model, loud)[0] - alone[0])) <= 1e-5
    graph = build_graph(model, fold_bn=False)
    data = build_onnx(graph)[0].SerializeToString()
    onnx_alone, onnx_batch = run_onnx(data, x, per_sample=True), run_onnx(data, x)
    assert np.max(np.abs(onnx_alone - onnx_batch)) <= 1e-5
    assert np.max(np.abs(run_onnx(data, loud)[0] - onnx_alone[0])) <= 1e-5
    assert np.array_equal(onnx_batch.argmax(1), batch.argmax(1))
    em, run = build_c(graph, tmp_path)
    assert {cl.op.name: cl.kind for cl in em.layers}["c2"] == "int8"
    c_batch = run(x)
    assert np.array_equal(run(x[:1]), c_batch[:1]) and np.array_equal(run(loud)[:1], c_batch[:1])
    assert np.array_equal(c_batch.argmax(1), batch.argmax(1))
