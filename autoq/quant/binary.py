"""Binary and ternary quantizers: BinaryConnect (deterministic, stochastic, power-of-two
scaled), XNOR weights, sign activations, TWN and TTQ (methods.md section 1)."""
from __future__ import annotations

import math

import numpy as np

from autoq.quant.base import (Quantizer, _check_positive, _np_stat, _reduce_axes, _straight_through, _tf_stat, register)
from autoq.quant.forms import InputForm, WeightForm


# ---------------------------------------------------------------------------------------
# Binary
# ---------------------------------------------------------------------------------------


class _SignBase(Quantizer):
    """sign(x) with sign(0) = +1, values scale * {-1, +1}."""

    bits = 1
    fixed_scale: float | None = 1.0      # None: the scale is computed from the weights

    def weight_form(self) -> WeightForm:
        return WeightForm("binary", 1, (-1, 1), scale=self.fixed_scale, per_channel=self.per_channel)

    def input_form(self) -> InputForm:
        return InputForm("sign", 1)

    def _scale_np(self, w: np.ndarray) -> np.ndarray:
        return np.full((1,) * w.ndim, self.fixed_scale, dtype=np.float32)

    def _scale_tf(self, tf, x):
        return tf.constant(self.fixed_scale, tf.float32)

    def _indices_and_scale(self, w):
        return (w >= 0).astype(np.uint8), self._scale_np(w)

    def _sign_tf(self, tf, x):
        return tf.where(x >= 0, tf.ones_like(x), -tf.ones_like(x))

    def _tf_forward(self, tf, x, training):
        x = tf.convert_to_tensor(x, tf.float32)
        scale = tf.stop_gradient(self._scale_tf(tf, x))
        return _straight_through(tf, x, lambda v: self._sign_tf(tf, v) * scale, self._gate(tf))

    def _gate(self, tf):
        return None


@register
class BinaryConnect(_SignBase):
    """BinaryConnect (Courbariaux 2015), eq. 3-1: w_q = +1 if w >= 0 else -1.

    Backward: straight-through (dw = dy); shadow weights are clipped to [-1, 1] after updates.
    """

    name = "bc"
    role = "weight"
    summary = "BinaryConnect: sign(w) in {-1,+1}, STE, weights clipped to [-1,1]"
    clip_weights = True

    def __init__(self):
        pass


@register
class BinaryConnectStochastic(BinaryConnect):
    """Stochastic BinaryConnect, eqs. 3-2/3-3: during training w_q = +1 with probability
    hard_sigmoid(w / H) = clip((w / H + 1) / 2, 0, 1), else -1; at inference the deterministic
    sign (so the deployed weights are binary). Backward: straight-through.

    H is the weights' natural range: given, or (default) the Glorot bound
    sqrt(6 / (fan_in + fan_out)) of the kernel's shape, as Courbariaux's code normalises by a
    Glorot factor. With H = 1 and freshly initialised (small) weights p is ~0.5 everywhere and
    the sampled weights are pure noise; the layer cannot learn in a few epochs.
    """

    name = "bc_stoch"
    summary = "stochastic BinaryConnect: +1 with p=hard_sigmoid(w/H) in training, sign at inference"

    def __init__(self, seed: int | None = None, h: float | None = None):
        self.seed = seed
        self.h = None if h is None else _check_positive(self.name, "h", h)

    def range_for(self, shape) -> float:
        """H for a kernel of this shape (Keras layout: receptive field x c_in x c_out)."""
        if self.h is not None:
            return self.h
        shape = [int(d) for d in shape]
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in = receptive * (shape[-2] if len(shape) > 1 else 1)
        fan_out = receptive * shape[-1]
        return math.sqrt(6.0 / max(fan_in + fan_out, 1))

    def _tf_forward(self, tf, x, training):
        if not training:
            return super()._tf_forward(tf, x, training)
        x = tf.convert_to_tensor(x, tf.float32)
        h = self.range_for(x.shape)

        def sample(v):
            p = tf.clip_by_value((v / h + 1.0) / 2.0, 0.0, 1.0)
            u = tf.random.uniform(tf.shape(v), seed=self.seed)
            return tf.where(u < p, tf.ones_like(v), -tf.ones_like(v))

        return _straight_through(tf, x, sample)


@register
class ScaledBinary(_SignBase):
    """Binary weights times a constant (thesis BC-1.x fix): w_q = scale * sign(w).

    A power-of-two scale (default 2^-3 = 0.125, BC-1.2) is a shift in hardware. STE backward.
    """

    name = "bc_scaled"
    role = "weight"
    summary = "BC with a constant scale (BC-1.x fix; 2^-k is a shift): scale*sign(w)"
    clip_weights = True

    def __init__(self, scale: float = 0.125):
        self.scale = _check_positive(self.name, "scale", scale)

    @property
    def fixed_scale(self) -> float:
        return float(np.float32(self.scale))


@register
class XnorWeight(_SignBase):
    """XNOR-Net / DoReFa binary weights, eq. 3-6: w_q = sign(w) * E(|w|).

    E(|w|) per layer, or per output channel (XNOR-Net) with ``per_channel``. STE backward
    (the scale is treated as a constant)."""

    name = "xnor"
    role = "weight"
    summary = "binary weights times mean|w| (per layer or per output channel)"
    fixed_scale = None

    def __init__(self, per_channel: bool = False):
        self.per_channel = bool(per_channel)

    def _scale_np(self, w):
        return _np_stat(np.abs(w), self.per_channel, np.mean)

    def _scale_tf(self, tf, x):
        return _tf_stat(tf, tf.abs(x), self.per_channel, tf.reduce_mean)


@register
class SignActivation(_SignBase):
    """BNN activation (Hubara/Courbariaux 2016), eq. 3-4: sign(x) in {-1, +1}, sign(0) = +1.

    Backward: hard-tanh straight-through, dx = dy * 1_{|x| <= 1} (eq. 3-5)."""

    name = "sign"
    role = "activation"
    summary = "BNN sign activation {-1,+1}; gradient passed only where |x|<=1"

    def __init__(self):
        pass

    def _gate(self, tf):
        return lambda v: tf.cast(tf.abs(v) <= 1.0, tf.float32)


# ---------------------------------------------------------------------------------------
# Ternary
# ---------------------------------------------------------------------------------------


@register
class Ternary(Quantizer):
    """Ternary Weight Networks (Li 2016), eqs. 3-10..3-13: D = 0.7 * E(|w|);
    w_q = a * (+1 if w > D, 0 if |w| <= D, -1 if w < -D), a = mean of |w_i| over |w_i| > D.
    STE backward. Two bits per weight; codebook [-a, 0, +a]."""

    name = "twn"
    role = "weight"
    summary = "Ternary Weight Networks: {-a,0,+a}, threshold 0.7*mean|w|"
    bits = 2

    def __init__(self, threshold: float = 0.7, per_channel: bool = False):
        self.threshold = _check_positive(self.name, "threshold", threshold)
        self.per_channel = bool(per_channel)

    def weight_form(self) -> WeightForm:
        return WeightForm("ternary", 2, (-1, 0, 1), per_channel=self.per_channel)

    def _np_parts(self, w):
        a64 = np.abs(w.astype(np.float64))
        axes = _reduce_axes(w.ndim, self.per_channel)
        delta = self.threshold * a64.mean(axis=axes, keepdims=True)
        above = a64 > delta
        count = np.maximum(above.sum(axis=axes, keepdims=True), 1)
        alpha = ((a64 * above).sum(axis=axes, keepdims=True) / count).astype(np.float32)
        return delta, alpha

    def _indices_and_scale(self, w):
        delta, alpha = self._np_parts(w)
        w64 = w.astype(np.float64)
        return np.where(w64 > delta, 2, np.where(w64 < -delta, 0, 1)), alpha

    def _tf_forward(self, tf, x, training):
        x = tf.convert_to_tensor(x, tf.float32)
        axes = list(_reduce_axes(len(x.shape), self.per_channel))

        def forward(v):
            a64 = tf.abs(tf.cast(v, tf.float64))
            delta = self.threshold * tf.reduce_mean(a64, axis=axes, keepdims=True)
            above = tf.cast(a64 > delta, tf.float64)
            count = tf.maximum(tf.reduce_sum(above, axis=axes, keepdims=True), 1.0)
            alpha = tf.cast(tf.reduce_sum(a64 * above, axis=axes, keepdims=True) / count, tf.float32)
            v64 = tf.cast(v, tf.float64)
            one = tf.ones_like(v)
            t = tf.where(v64 > delta, one, tf.where(v64 < -delta, -one, tf.zeros_like(v)))
            return t * alpha

        return _straight_through(tf, x, forward)


@register
class TrainedTernary(Quantizer):
    """Trained Ternary Quantization (Zhu 2017): TWN's threshold D = t * E(|w|) with learned
    asymmetric scales: w_q = +a_p if w > D, 0 if |w| <= D, -a_n if w < -D.

    Backward (the paper's): dw = a_p dy above D, dy inside, a_n dy below -D;
    da_p = sum of dy over w > D, da_n = -sum of dy over w < -D. a_p and a_n are variables of the
    layer, initialised to the TWN scale of the initial weights. Codebook [-a_n, 0, +a_p].
    """

    name = "ttq"
    role = "weight"
    summary = "Trained Ternary Quantization: {-a_n,0,+a_p} with learned scales"
    bits = 2

    def __init__(self, threshold: float = 0.7):
        self.threshold = _check_positive(self.name, "threshold", threshold)
        self.pos = self.neg = None  # layer variables once built

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}

    def weight_form(self) -> WeightForm:
        return WeightForm("table", 2, size=3)    # {-a_n, 0, +a_p}: asymmetric, learned

    def _twn_scale(self, values) -> float:
        _, alpha = Ternary(self.threshold)._np_parts(np.asarray(values, dtype=np.float32))
        return float(alpha.reshape(-1)[0]) or 1.0

    def build(self, layer, shape, init_values=None) -> None:
        import keras

        init = 1.0 if init_values is None else self._twn_scale(init_values)
        const = keras.initializers.Constant(init)
        self.pos = layer.add_weight(name="ttq_pos", shape=(), initializer=const, trainable=True)
        self.neg = layer.add_weight(name="ttq_neg", shape=(), initializer=const, trainable=True)

    def init_from(self, values) -> None:
        if self.pos is not None:
            init = self._twn_scale(values)
            self.pos.assign(init)
            self.neg.assign(init)

    def _scales(self) -> tuple[np.float32, np.float32]:
        if self.pos is None:
            return np.float32(1.0), np.float32(1.0)
        return np.float32(np.asarray(self.pos.numpy())), np.float32(np.asarray(self.neg.numpy()))

    def _indices_and_table(self, w):
        a64 = np.abs(w.astype(np.float64))
        delta = self.threshold * a64.mean()
        w64 = w.astype(np.float64)
        idx = np.where(w64 > delta, 2, np.where(w64 < -delta, 0, 1))
        a_p, a_n = self._scales()
        return idx, np.array([-a_n, 0.0, a_p], dtype=np.float32)

    def _tf_forward(self, tf, x, training):
        x = tf.convert_to_tensor(x, tf.float32)
        a_p = tf.convert_to_tensor(self.pos if self.pos is not None else 1.0, tf.float32)
        a_n = tf.convert_to_tensor(self.neg if self.neg is not None else 1.0, tf.float32)

        @tf.custom_gradient
        def _op(v, ap, an):
            v64 = tf.cast(v, tf.float64)
            delta = self.threshold * tf.reduce_mean(tf.abs(v64))
            pos, neg = v64 > delta, v64 < -delta
            zero = tf.zeros_like(v)
            y = tf.where(pos, ap + zero, tf.where(neg, -an + zero, zero))

            def grad(dy):
                dv = tf.where(pos, ap * dy, tf.where(neg, an * dy, dy))
                return dv, tf.reduce_sum(tf.where(pos, dy, zero)), -tf.reduce_sum(tf.where(neg, dy, zero))

            return y, grad

        return _op(x, a_p, a_n)
