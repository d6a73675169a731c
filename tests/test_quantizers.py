"""Every registered quantizer: forward values vs the formulas, STE gradients, encode/decode,
config round trip, properties (codebook membership, level count, idempotence), bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from quantizer_cases import case_id, registry_cases, roles, with_extras

import autoq.quant as Q
from autoq.tf_env import import_tf

tf = import_tf()

# (quantizer config, role): every registered quantizer in every role and parameter combination
# (tests/quantizer_cases.py), and two parameter sets the generated ones do not reach.
CASES = with_extras(registry_cases(), [
    ({"name": "bc_scaled", "scale": 0.1}, "weight"),                  # not a power of two: the lut kind
    ({"name": "uniform", "bits": 8, "alpha": 4.0}, "activation"),     # a fixed range
])
IDS = [case_id(c, role) for c, role in CASES]


def test_every_registered_quantizer_is_covered_in_every_role():
    assert {(c["name"], role) for c, role in CASES} == {(n, r) for n in Q.names() for r in roles(n)}


def make(config, role):
    return Q.for_role(config, role)


def forward(q, x, training=False):
    return q(tf.constant(x, tf.float32), training=training).numpy()


def sample(shape=(3, 3, 4, 5), seed=0, spread=0.5):
    return np.random.default_rng(seed).normal(0, spread, size=shape).astype(np.float32)


# --- forward values against the formulas in methods.md --------------------------------------

W = np.array([[-1.5, -0.3, 0.0], [0.05, 0.4, 2.0]], np.float32)  # Dense layout (in=2, out=3)


def test_bc_is_strict_sign_with_zero_positive():
    np.testing.assert_array_equal(forward(make("bc", "weight"), W), [[-1, -1, 1], [1, 1, 1]])


def test_bc_scaled_multiplies_sign_by_scale():
    np.testing.assert_array_equal(forward(make({"name": "bc_scaled", "scale": 0.125}, "weight"), W),
                                  0.125 * np.array([[-1, -1, 1], [1, 1, 1]], np.float32))


def test_xnor_scale_is_mean_abs_per_layer_and_per_channel():
    a = np.float32(np.abs(W.astype(np.float64)).mean())
    np.testing.assert_allclose(forward(make("xnor", "weight"), W), np.where(W >= 0, a, -a), rtol=0, atol=0)
    per = np.abs(W.astype(np.float64)).mean(axis=0).astype(np.float32)
    np.testing.assert_array_equal(forward(make({"name": "xnor", "per_channel": True}, "weight"), W),
                                  np.where(W >= 0, per, -per))


def test_twn_threshold_and_scale():
    w = np.array([1.0, -0.9, 0.1, -0.05, 0.5, 0.0], np.float32)
    delta = 0.7 * np.abs(w).mean()  # 0.298
    above = np.abs(w) > delta
    alpha = np.abs(w)[above].mean()  # mean of 1.0, 0.9, 0.5
    expected = np.where(w > delta, alpha, np.where(w < -delta, -alpha, 0.0))
    np.testing.assert_allclose(forward(make("twn", "weight"), w), expected, rtol=1e-6)


def test_dorefa_weight_formula_eq_3_8():
    w = sample((20,), seed=3)
    k = 2
    n = 2 ** k - 1
    t = np.tanh(w) / (2 * np.abs(np.tanh(w)).max()) + 0.5
    expected = 2 * np.round(n * t) / n - 1
    np.testing.assert_allclose(forward(make({"name": "dorefa", "bits": k}, "weight"), w), expected, atol=1e-6)


def test_dorefa_activation_clips_and_rounds():
    x = np.array([-1.0, 0.1, 0.2, 0.5, 0.8, 1.7], np.float32)
    np.testing.assert_allclose(forward(make({"name": "dorefa", "bits": 2}, "activation"), x),
                               np.round(np.clip(x, 0, 1) * 3) / 3, atol=1e-7)
    np.testing.assert_array_equal(forward(make({"name": "dorefa", "bits": 1}, "activation"), x),
                                  [0, 0, 0, 0, 1, 1])  # round-half-even at 0.5


def test_uniform_int8_scale_quantization():
    x = np.array([-2.0, -0.01, 0.0, 0.3, 1.0], np.float32)
    step = 2.0 / 127
    np.testing.assert_allclose(forward(make("uniform", "weight"), x),
                               np.clip(np.round(x / step), -127, 127) * step, rtol=1e-6)


def test_sign_activation_values():
    x = np.array([-3.0, -0.5, 0.0, 0.2, 4.0], np.float32)
    np.testing.assert_array_equal(forward(make("sign", "activation"), x), [-1, -1, 1, 1, 1])


def test_lsq_forward_uses_step():
    q = make({"name": "lsq", "bits": 2, "init_step": 0.5}, "weight")  # Q_N=2, Q_P=1
    x = np.array([-3.0, -0.6, 0.1, 0.3, 2.0], np.float32)
    np.testing.assert_allclose(forward(q, x), np.round(np.clip(x / 0.5, -2, 1)) * 0.5)


def test_stochastic_bc_samples_in_training_and_is_deterministic_at_inference():
    q = make({"name": "bc_stoch", "seed": 0, "h": 1.0}, "weight")
    w = np.full((4000,), 0.5, np.float32)  # p(+1) = hard_sigmoid(0.5 / 1) = 0.75
    sampled = forward(q, w, training=True)
    assert set(np.unique(sampled)) <= {-1.0, 1.0}
    assert 0.7 < (sampled > 0).mean() < 0.8
    np.testing.assert_array_equal(forward(q, w, training=False), np.ones_like(w))


# --- gradients: straight-through definitions ------------------------------------------------


def grad_of(q, x):
    v = tf.Variable(tf.constant(x, tf.float32))
    with tf.GradientTape() as tape:
        y = q(tf.convert_to_tensor(v), training=True)
        loss = tf.reduce_sum(y * tf.constant(np.arange(1, x.size + 1, dtype=np.float32).reshape(x.shape)))
    return tape.gradient(loss, v).numpy()


@pytest.mark.parametrize("config,role", CASES, ids=IDS)
def test_gradient_matches_ste_definition(config, role):
    q = make(config, role)
    x = np.array([-2.5, -1.0, -0.4, 0.0, 0.3, 0.9, 1.0, 1.6], np.float32)
    upstream = np.arange(1, x.size + 1, dtype=np.float32)
    g = grad_of(q, x)
    if q.name == "sign":
        expected = upstream * (np.abs(x) <= 1)  # hard-tanh gate, eq. 3-5
    elif q.name == "dorefa" and role == "activation":
        expected = upstream * ((x >= 0) & (x <= 1))
    elif q.name == "uniform":       # range: fixed alpha, else max|w| (weights) or 1 (uncalibrated input)
        alpha = q.alpha if q.alpha is not None else (np.abs(x).max() if role == "weight" else 1.0)
        expected = upstream * (np.abs(x) <= alpha)
    elif q.name == "ttq":  # a_p = a_n = 1 unbuilt: scaled gradient equals dy everywhere
        expected = upstream
    elif q.name == "lsq":
        qn, qp = q._range()
        r = x / q.init_step
        expected = upstream * ((r >= -qn) & (r <= qp))
    else:
        expected = upstream  # plain STE
    np.testing.assert_allclose(g, expected, rtol=1e-6)


def test_ttq_learned_scales_and_gradients():
    from autoq.quant.layers import QDense

    layer = QDense(3, kernel_quantizer="ttq", use_bias=False)
    layer.build((None, 2))
    layer.kernel.assign(W)
    q = layer.kernel_quantizer
    q.pos.assign(0.5)
    q.neg.assign(2.0)
    delta = 0.7 * np.abs(W).mean()
    expected = np.where(W > delta, 0.5, np.where(W < -delta, -2.0, 0.0))
    with tf.GradientTape() as tape:
        y = q(tf.convert_to_tensor(layer.kernel))
        loss = tf.reduce_sum(y)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)
    g_pos, g_neg, g_w = tape.gradient(loss, [q.pos, q.neg, layer.kernel])
    assert float(g_pos) == (W > delta).sum() and float(g_neg) == -(W < -delta).sum()
    np.testing.assert_allclose(g_w, np.where(W > delta, 0.5, np.where(W < -delta, 2.0, 1.0)))
    np.testing.assert_array_equal(q.decode(*q.encode(layer.kernel.numpy())), y.numpy())


def test_stochastic_bc_default_range_is_the_glorot_bound():
    q = make("bc_stoch", "weight")
    assert q.range_for((3, 3, 4, 8)) == pytest.approx(math.sqrt(6.0 / (36 + 72)))
    assert q.range_for((64, 10)) == pytest.approx(math.sqrt(6.0 / 74))


def test_lsq_input_quantizer_trains_with_an_unknown_batch_size():
    from autoq.quant.layers import QDense

    layer = QDense(2, input_quantizer={"name": "lsq", "bits": 2})
    layer.build((None, 3))
    step = layer.input_quantizer.step

    @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32)])
    def step_grad(x):
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(layer(x, training=True))
        return tape.gradient(y, step)

    assert np.isfinite(step_grad(tf.ones((4, 3))).numpy())


def test_lsq_step_gradient_formula():
    q = make({"name": "lsq", "bits": 2, "init_step": 0.5}, "weight")
    s = tf.Variable(0.5)
    q.step = s
    x = tf.constant([-3.0, -0.6, 0.1, 0.3, 2.0])
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(q(x))
    r = x.numpy() / 0.5
    elem = np.where(r < -2, -2, np.where(r > 1, 1, np.round(r) - r))
    expected = elem.sum() / math.sqrt(1) / math.sqrt(5)
    np.testing.assert_allclose(tape.gradient(y, s).numpy(), expected, rtol=1e-5)


# --- encode/decode is the forward pass --------------------------------------------------------


@pytest.mark.parametrize("config,role", CASES, ids=IDS)
@pytest.mark.parametrize("shape", [(3, 3, 4, 5), (7, 3), (1, 1, 1, 2)])
def test_decode_encode_equals_forward(config, role, shape):
    q = make(config, role)
    w = sample(shape, seed=len(shape))
    if role == "activation":
        w = w + 0.5
    idx, codebook = q.encode(w)
    assert idx.dtype == np.uint8 and idx.shape == w.shape and codebook.dtype == np.float32
    np.testing.assert_array_equal(q.decode(idx, codebook), forward(q, w))


@pytest.mark.parametrize("config,role", CASES, ids=IDS)
def test_config_round_trip(config, role):
    q = make(config, role)
    again = Q.for_role(q.get_config(), role)
    assert again.get_config() == q.get_config()
    assert type(again) is type(q)
    w = sample((4, 6), seed=5)
    np.testing.assert_array_equal(forward(again, w), forward(q, w))


# --- properties -------------------------------------------------------------------------------

arrays = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6),
                    elements=st.floats(-3, 3, width=32, allow_subnormal=False))


@pytest.mark.parametrize("config,role", CASES, ids=IDS)
@settings(max_examples=25, deadline=None)
@given(w=arrays)
def test_outputs_lie_in_codebook_with_at_most_2_pow_bits_levels(config, role, w):
    q = make(config, role)
    idx, codebook = q.encode(w)
    assert codebook.shape[-1] == q.levels() <= 2 ** q.bits
    assert int(idx.max(initial=0)) < q.levels()
    values = q.decode(idx, codebook)
    book = codebook.reshape(-1, codebook.shape[-1]) if codebook.ndim == 2 else codebook[None]
    for c in range(book.shape[0]):
        col = values[..., c] if codebook.ndim == 2 else values
        assert np.isin(col, book[c]).all()
    assert len(np.unique(values)) <= 2 ** q.bits * (book.shape[0])


IDEMPOTENT = [(c, r) for c, r in CASES
              if c["name"] in ("bc", "bc_scaled", "sign", "twn", "ttq") or (c["name"] == "dorefa" and r == "activation")
              or (c["name"] == "uniform" and "alpha" in c) or c["name"] == "lsq"]


@pytest.mark.parametrize("config,role", IDEMPOTENT, ids=[f"{c['name']}-{r}" for c, r in IDEMPOTENT])
@settings(max_examples=25, deadline=None)
@given(w=arrays)
def test_idempotent_where_the_method_is(config, role, w):
    q = make(config, role)
    once = q.decode(*q.encode(w))
    np.testing.assert_allclose(q.decode(*q.encode(once)), once, rtol=1e-6, atol=1e-7)


# --- kinds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight,act,kind", [
    (None, None, "f32"),
    (None, "sign", "f32"),
    ("bc", None, "shift"),
    ({"name": "bc_scaled", "scale": 0.125}, None, "shift"),
    ({"name": "bc_scaled", "scale": 0.1}, None, "lut"),
    ("bc", "sign", "xnor"),
    ("xnor", "sign", "xnor"),
    ("bc", {"name": "dorefa", "bits": 1}, "and"),
    ("twn", None, "lut"),
    ({"name": "dorefa", "bits": 4}, None, "lut"),
    ("uniform", "uniform", "int8"),
    ("uniform", None, "lut"),
    ("twn", "sign", "lut"),
])
def test_layer_kind(weight, act, kind):
    assert Q.layer_kind(Q.for_role(weight, "weight"), Q.for_role(act, "activation")) == kind


# --- bad input --------------------------------------------------------------------------------


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown quantizer 'ternary'.*twn"):
        Q.get("ternary")


@pytest.mark.parametrize("config,message", [
    ({"name": "dorefa", "bits": 0}, r"bits must be an integer in \[1, 8\], got 0"),
    ({"name": "uniform", "bits": 9}, r"bits must be an integer in \[2, 8\], got 9"),
    ({"name": "bc_scaled", "scale": -0.5}, "scale must be a positive number, got -0.5"),
    ({"name": "bc_scaled", "scale": 0}, "scale must be a positive number"),
    ({"name": "twn", "bitz": 2}, r"no parameter\(s\) \['bitz'\]; allowed: \['per_channel', 'threshold'\]"),
    ({"bits": 2}, "has no 'name'"),
])
def test_invalid_parameters_raise_with_allowed_values(config, message):
    with pytest.raises(ValueError, match=message):
        Q.get(config)


def test_role_mismatch_lists_allowed():
    with pytest.raises(ValueError, match="does not apply to activations; allowed: dorefa, lsq, sign, uniform"):
        Q.for_role("twn", "activation")


def test_packed_nbytes():
    assert Q.packed_nbytes(150, 1) == 19
    assert Q.packed_nbytes(150, 2) == 38
    assert Q.packed_nbytes(150, 32) == 600


def test_quantizers_import_without_tensorflow():
    import subprocess
    import sys

    code = "import sys, autoq.quant, autoq.cli; assert 'tensorflow' not in sys.modules, 'tf imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
