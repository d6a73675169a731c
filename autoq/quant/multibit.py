"""Multi-bit quantizers: DoReFa k-bit, uniform (calibrated fixed range) and LSQ (learned
step size) (methods.md section 1)."""
from __future__ import annotations

import math

import numpy as np

from autoq.quant.base import (Quantizer, _check_bits, _check_positive, _np_stat, _straight_through, _tf_stat, register)
from autoq.quant.binary import XnorWeight  # DoReFa at 1 bit is XNOR's sign * mean|w|
from autoq.quant.forms import InputForm, WeightForm


# ---------------------------------------------------------------------------------------
# k-bit
# ---------------------------------------------------------------------------------------


@register
class DoReFa(Quantizer):
    """DoReFa-Net (Zhou 2016) k-bit quantizer; quantize_k(x) = round((2^k - 1) x) / (2^k - 1) (3-7).

    Weights, k >= 2 (eq. 3-8): w_q = 2 quantize_k(tanh(w) / (2 max|tanh(w)|) + 1/2) - 1;
    k = 1: w_q = sign(w) * E(|w|) (the DoReFa binary weight). Activations: quantize_k(clip(x, 0, 1));
    k = 1 gives {0, 1}. Backward: straight-through (activations: zero outside [0, 1]).
    One object serves both roles; ``mode`` says which formula applies.
    """

    name = "dorefa"
    role = "both"
    summary = "DoReFa k-bit: weights via tanh normalisation, activations quantize_k(clip(x,0,1))"

    def __init__(self, bits: int = 2, mode: str = "auto"):
        self.bits = _check_bits(self.name, bits, 1, 8)
        if mode not in ("auto", "weight", "activation"):
            raise ValueError(f"quantizer 'dorefa': mode must be 'auto', 'weight' or 'activation', got {mode!r}")
        self.mode = mode

    def for_role(self, role: str) -> "DoReFa":
        """The same quantizer fixed to ``role`` (layers call this; 'auto' cannot encode)."""
        return self if self.mode == role else DoReFa(self.bits, role)

    @property
    def signed(self) -> bool:
        return self.mode == "weight"

    @property
    def deploy_role(self) -> str:
        return self._mode()

    def _mode(self) -> str:
        if self.mode == "auto":
            raise ValueError("dorefa quantizer used without a role: call .for_role('weight'|'activation')")
        return self.mode

    def _n(self) -> int:
        return 2 ** self.bits - 1

    def _step(self) -> np.float32:
        return np.float32(1.0 / self._n())

    def weight_form(self) -> WeightForm:
        if self.bits == 1:
            return XnorWeight().weight_form()
        n = self._n()                 # w_q = (2 i - n) / n: odd integers times 1/n
        return WeightForm("integer", self.bits, tuple(range(-n, n + 1, 2)), scale=float(self._step()))

    def input_form(self) -> InputForm:
        return InputForm("grid", self.bits, float(self._step()), 0, self._n(), "definition")

    def _indices_and_scale(self, w):
        if self.bits == 1:
            return XnorWeight()._indices_and_scale(w)
        t = np.tanh(w.astype(np.float64))
        t = (t / (2.0 * np.abs(t).max(initial=0.0) + 1e-30) + 0.5).astype(np.float32)
        return np.round(t * np.float32(self._n())), np.array([self._step()])

    def _tf_forward(self, tf, x, training):
        x = tf.convert_to_tensor(x, tf.float32)
        n, step = float(self._n()), float(self._step())
        if self._mode() == "activation":   # quantize_k(clip(x, 0, 1)) as the grid clip(round(x / step), 0, n) * step
            inside = lambda v: tf.cast((v >= 0.0) & (v <= 1.0), tf.float32)  # noqa: E731
            return _straight_through(tf, x, lambda v: tf.clip_by_value(tf.round(v / step), 0.0, n) * step, inside)
        if self.bits == 1:
            return XnorWeight()._tf_forward(tf, x, training)

        def forward(v):
            t = tf.tanh(tf.cast(v, tf.float64))
            t = tf.cast(t / (2.0 * tf.reduce_max(tf.abs(t)) + 1e-30) + 0.5, tf.float32)
            return (2.0 * tf.round(t * n) - n) * step     # eq. 3-8: 2 quantize_k(t) - 1

        return _straight_through(tf, x, forward)


@register
class Uniform(Quantizer):
    """Symmetric uniform k-bit quantizer (Jacob 2018 scale quantization, methods.md table):
    x_q = clip(round(x / step), -(2^(b-1) - 1), 2^(b-1) - 1) * step, step = alpha / (2^(b-1) - 1).

    Weights: alpha = max|w| per tensor (or per output channel) unless given. Activations: alpha
    is given, or calibrated during QAT: a moving average of the batches' max|x|
    (a_t = momentum * a_(t-1) + (1 - momentum) * max|x_t|, the first batch sets it) kept in a
    non-trainable variable of the layer, updated only in training and frozen for evaluation and
    export, so no output depends on its batch (before any training alpha = 1). b = 8 is the int8
    kind. Backward: straight-through inside [-alpha, alpha], zero outside.
    """

    name = "uniform"
    role = "both"
    summary = "symmetric uniform k-bit (int8 at 8 bits): weights max|w|, activations a calibrated range, or fixed alpha"

    def __init__(self, bits: int = 8, per_channel: bool = False, alpha: float | None = None,
                 momentum: float = 0.9, mode: str = "auto"):
        self.bits = _check_bits(self.name, bits, 2, 8)
        self.per_channel = bool(per_channel)
        self.alpha = None if alpha is None else _check_positive(self.name, "alpha", alpha)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
            raise ValueError(f"quantizer 'uniform': momentum must be a number in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        if mode not in ("auto", "weight", "activation"):
            raise ValueError(f"quantizer 'uniform': mode must be 'auto', 'weight' or 'activation', got {mode!r}")
        if mode == "activation" and self.per_channel:
            raise ValueError("quantizer 'uniform': per_channel applies to weights only (one fixed input range)")
        self.mode = mode
        self.max_abs = None      # activations: the calibrated range, a layer variable once built

    def get_config(self):
        return {"name": self.name, "bits": self.bits, "per_channel": self.per_channel, "alpha": self.alpha,
                "momentum": self.momentum, "mode": self.mode}

    def for_role(self, role: str) -> "Uniform":
        return self if self.mode == role else Uniform(self.bits, self.per_channel, self.alpha, self.momentum, role)

    @property
    def deploy_role(self) -> str:
        if self.mode == "auto":
            raise ValueError("uniform quantizer used without a role: call .for_role('weight'|'activation')")
        return self.mode

    def _qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def weight_form(self) -> WeightForm:
        fixed = None if self.alpha is None else float(self._step_of(self.alpha))
        return WeightForm("integer", self.bits, tuple(range(-self._qmax(), self._qmax() + 1)), scale=fixed,
                          per_channel=self.per_channel and self.alpha is None)

    def input_form(self) -> InputForm:
        source = "fixed" if self.alpha is not None else "calibrated"
        return InputForm("grid", self.bits, float(self._step_of(self._input_alpha())), -self._qmax(), self._qmax(),
                         source)

    def _input_alpha(self) -> float:
        if self.alpha is not None:
            return self.alpha
        return 0.0 if self.max_abs is None else float(np.asarray(self.max_abs.numpy(), np.float32))

    def _step_of(self, alpha) -> np.ndarray:
        """alpha / qmax in float64, cast to float32 (alpha <= 0: uncalibrated, 1)."""
        alpha = np.asarray(alpha, np.float64)
        return (np.where(alpha > 0, alpha, 1.0) / self._qmax()).astype(np.float32)

    def _indices_and_scale(self, w):
        if self.alpha is not None:
            step = self._step_of(np.full((1,) * w.ndim, self.alpha))
        else:
            step = self._step_of(_np_stat(np.abs(w), self.per_channel, np.max))
        q = np.clip(np.round(w / step), -self._qmax(), self._qmax())
        return q + self._qmax(), step

    def build(self, layer, shape, init_values=None) -> None:
        if self.deploy_role == "activation" and self.alpha is None:
            import keras

            self.max_abs = layer.add_weight(name=f"uniform_max_abs_{len(layer.weights)}", shape=(),
                                            initializer=keras.initializers.Zeros(), trainable=False)

    def _alpha_tf(self, tf, x, training):
        """The range alpha (float64): fixed, per-tensor of the weights, or the calibrated one."""
        if self.alpha is not None:
            return tf.constant(self.alpha, tf.float64)
        if self.deploy_role == "weight":
            return tf.cast(_tf_stat(tf, tf.abs(x), self.per_channel, tf.reduce_max), tf.float64)
        if self.max_abs is None:          # not on a layer: nothing calibrated, the default range
            return tf.constant(0.0, tf.float64)
        if training:
            seen = tf.stop_gradient(tf.reduce_max(tf.abs(x)))
            prev = tf.convert_to_tensor(self.max_abs)
            new = tf.where(prev > 0, self.momentum * prev + (1.0 - self.momentum) * seen, seen)
            self.max_abs.assign(new)
            return tf.cast(new, tf.float64)
        return tf.cast(tf.convert_to_tensor(self.max_abs), tf.float64)

    def _tf_forward(self, tf, x, training):
        x = tf.convert_to_tensor(x, tf.float32)
        qmax = float(self._qmax())
        alpha = self._alpha_tf(tf, x, training)
        step = tf.stop_gradient(tf.cast(tf.where(alpha > 0, alpha, tf.ones_like(alpha)) / qmax, tf.float32))
        inside = lambda v: tf.cast(tf.abs(v) <= step * qmax, tf.float32)  # noqa: E731
        return _straight_through(
            tf, x, lambda v: tf.clip_by_value(tf.round(v / step), -qmax, qmax) * step, inside)


@register
class LearnedStepSize(Quantizer):
    """Learned Step Size Quantization (Esser 2019): v_bar = round(clip(v / s, -Q_N, Q_P)),
    v_hat = v_bar * s, with the step s a trainable variable of the layer.

    Signed (weights): Q_N = 2^(b-1), Q_P = 2^(b-1) - 1; unsigned (activations): Q_N = 0,
    Q_P = 2^b - 1. Gradients: dv = dy inside the range, 0 outside; ds = g * sum(dy * (round(v/s) - v/s))
    inside, -Q_N / Q_P outside, g = 1 / sqrt(N Q_P). Step initialised to 2 E|v| / sqrt(Q_P).
    """

    name = "lsq"
    role = "both"
    summary = "LSQ: k-bit with a learned step size (signed for weights, unsigned for activations)"

    def __init__(self, bits: int = 4, signed: bool = True, init_step: float = 0.05):
        self.bits = _check_bits(self.name, bits, 2, 8)
        self._signed = bool(signed)
        self.init_step = _check_positive(self.name, "init_step", init_step)
        self.step = None  # a layer variable once built

    def get_config(self):
        return {"name": self.name, "bits": self.bits, "signed": self._signed, "init_step": self.init_step}

    def for_role(self, role: str) -> "LearnedStepSize":
        return LearnedStepSize(self.bits, role == "weight", self.init_step)

    @property
    def signed(self) -> bool:
        return self._signed

    @property
    def deploy_role(self) -> str:
        return "weight" if self._signed else "activation"

    def weight_form(self) -> WeightForm:
        qn, qp = self._range()
        return WeightForm("integer", self.bits, tuple(range(-qn, qp + 1)))   # scale learned

    def input_form(self) -> InputForm:
        qn, qp = self._range()
        return InputForm("grid", self.bits, float(self._step_value()), -qn, qp, "learned")

    def _range(self) -> tuple[int, int]:
        if self._signed:
            return 2 ** (self.bits - 1), 2 ** (self.bits - 1) - 1
        return 0, 2 ** self.bits - 1

    def build(self, layer, shape, init_values=None) -> None:
        import keras

        init = self.init_step if init_values is None else self._initial_step(init_values)
        self.step = layer.add_weight(
            name=f"lsq_step_{len(layer.weights)}", shape=(), initializer=keras.initializers.Constant(init),
            trainable=True)

    def _initial_step(self, values) -> float:
        mean_abs = float(np.mean(np.abs(np.asarray(values, dtype=np.float64))))
        return 2.0 * mean_abs / math.sqrt(self._range()[1]) if mean_abs > 0 else self.init_step

    def init_from(self, values) -> None:
        if self.step is not None:
            self.step.assign(self._initial_step(values))

    def _step_value(self) -> np.float32:
        if self.step is None:
            return np.float32(self.init_step)
        return np.float32(abs(float(np.asarray(self.step.numpy() if hasattr(self.step, "numpy") else self.step))))

    def _indices_and_scale(self, w):
        qn, qp = self._range()
        s = self._step_value()
        q = np.round(np.clip(w / s, np.float32(-qn), np.float32(qp)))
        return q + qn, np.array([s])

    def _tf_forward(self, tf, x, training):
        x = tf.convert_to_tensor(x, tf.float32)
        qn, qp = (float(v) for v in self._range())
        s = tf.abs(tf.convert_to_tensor(self.step if self.step is not None else self.init_step, tf.float32))
        grad_scale = 1.0 / math.sqrt(max(qp, 1.0))

        @tf.custom_gradient
        def _op(v, step):
            r = v / step
            y = tf.round(tf.clip_by_value(r, -qn, qp)) * step

            def grad(dy):
                below, above = r < -qn, r > qp
                inside = tf.cast(~(below | above), tf.float32)
                ds_elem = tf.where(below, -qn, tf.where(above, qp, tf.round(r) - r))
                # the batch dimension of activations is unknown while tracing: count at run time
                g = grad_scale * tf.math.rsqrt(tf.cast(tf.maximum(tf.size(v), 1), tf.float32))
                return dy * inside, tf.reduce_sum(dy * ds_elem) * g

            return y, grad

        return _op(x, s)
