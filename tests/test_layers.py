"""Quantized layers: .keras round trip, training on digits per weight quantizer, summary, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from autoq.tf_env import import_tf

tf = import_tf()
import keras  # noqa: E402
from quantizer_cases import case_id, registry_cases  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import autoq.quant as Q  # noqa: E402
from autoq.quant.layers import QActivation, QConv2D, QDense, summary  # noqa: E402

# float and every registered weight quantizer with its default parameters (tests/quantizer_cases.py)
WEIGHT_QUANTIZERS = [None] + [c for c, _ in registry_cases("weight", variants={})]


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def small_model(weight_q, input_q=None, slope=1.0, relu=True):
    inputs = keras.Input((8, 8, 1))
    h = QConv2D(16, 3, padding="same", use_bias=False, kernel_quantizer=weight_q, name="conv1")(inputs)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = QActivation(slope=slope, relu=relu, name="act1")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    outputs = QDense(10, kernel_quantizer=weight_q, input_quantizer=input_q, name="fc")(h)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("weight_q", WEIGHT_QUANTIZERS, ids=case_id)
def test_digits_training_beats_chance_by_far(digits, weight_q):
    keras.utils.set_random_seed(0)
    (xt, yt), (xv, yv) = digits
    model = small_model(weight_q)
    # Stochastic BC learns from the sign statistics of noisy samples: it wants a larger step
    # (Courbariaux scales the learning rate up by 1/H as well).
    stochastic = isinstance(weight_q, dict) and weight_q["name"] == "bc_stoch"
    lr, epochs = (1e-2 if stochastic else 3e-3), 4
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(xt, yt, epochs=epochs, batch_size=32, verbose=0)
    acc = model.evaluate(xv, yv, verbose=0)[1]
    print(f"digits accuracy {case_id(weight_q)}: {acc:.4f}")
    floor = 0.6
    assert acc > floor, f"{case_id(weight_q)} reached only {acc:.3f} (chance 0.1)"
    if weight_q is not None:  # the deployed (decoded) kernel gives the same predictions
        conv = model.get_layer("conv1")
        q = conv.kernel_quantizer
        np.testing.assert_array_equal(conv.quantized_kernel(), q(conv.kernel.numpy(), training=False).numpy())


def test_bc_weights_are_clipped_after_updates(digits):
    (xt, yt), _ = digits
    model = small_model("bc")
    model.compile(optimizer=keras.optimizers.SGD(5.0), loss=keras.losses.SparseCategoricalCrossentropy(True))
    model.fit(xt[:256], yt[:256], epochs=1, batch_size=32, verbose=0)
    assert np.abs(model.get_layer("conv1").kernel.numpy()).max() <= 1.0


@pytest.mark.parametrize("weight_q,input_q,relu", [
    ("bc", "sign", False),
    ({"name": "dorefa", "bits": 2}, {"name": "dorefa", "bits": 2}, True),
    ({"name": "lsq", "bits": 3}, {"name": "lsq", "bits": 4}, True),
    ("twn", {"name": "uniform", "bits": 8, "alpha": 4.0}, True),
    ("ttq", None, True),
], ids=["bnn", "dorefa", "lsq", "twn-int8act", "ttq"])
def test_keras_round_trip_gives_identical_outputs(tmp_path, weight_q, input_q, relu):
    keras.utils.set_random_seed(1)
    model = small_model(weight_q, input_q, slope=0.125, relu=relu)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    x = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32)
    model.fit(x, np.arange(32) % 10, epochs=1, verbose=0)  # move weights (and LSQ steps) off init
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    fc = loaded.get_layer("fc")
    assert fc.kernel_quantizer.get_config() == model.get_layer("fc").kernel_quantizer.get_config()
    assert loaded.get_layer("act1").slope == 0.125


def test_summary_reads_bits_and_kind_from_quantizers():
    model = small_model("bc", input_q="sign", relu=False)
    rows = {r["name"]: r for r in summary(model)}
    assert rows["conv1"]["kind"] == "shift" and rows["conv1"]["weight_bits"] == 1
    assert rows["fc"]["kind"] == "xnor" and rows["fc"]["input_bits"] == 1
    # 16*9 binary weights -> 18 bytes + a 2-entry float codebook, no bias
    assert rows["conv1"]["packed_weight_bytes"] == 18 + 8
    assert rows["fc"]["params"] == 16 * 16 * 10 + 10
    assert rows["fc"]["packed_weight_bytes"] == 320 + 8 + 40


def test_quantization_penalty_is_added_in_training():
    layer = QDense(4, kernel_quantizer="bc", quant_penalty=0.5)
    x = tf.ones((2, 3))
    layer(x, training=True)
    w = layer.kernel.numpy()
    expected = 0.5 * np.sum((w - np.where(w >= 0, 1.0, -1.0)) ** 2)
    np.testing.assert_allclose(float(sum(layer.losses)), expected, rtol=1e-5)


@pytest.mark.parametrize("factory,message", [
    (lambda: QConv2D(4, 3, kernel_quantizer="nope"), "unknown quantizer 'nope'"),
    (lambda: QConv2D(4, 3, input_quantizer="twn"), "does not apply to activations"),
    (lambda: QConv2D(4, 3, padding="full"), "padding must be 'valid' or 'same', got 'full'"),
    (lambda: QDense(4, kernel_quantizer={"name": "dorefa", "bits": 0}), r"bits must be an integer in \[1, 8\]"),
    (lambda: QActivation(slope=0), "slope must be a positive number, got 0"),
    (lambda: QDense(4, quant_penalty=-1), "quant_penalty must be a number >= 0"),
])
def test_bad_layer_arguments(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_kind_property_uses_the_one_mapping():
    layer = QDense(4, kernel_quantizer="xnor", input_quantizer={"name": "dorefa", "bits": 1})
    assert layer.kind == Q.layer_kind(layer.kernel_quantizer, layer.input_quantizer) == "and"
