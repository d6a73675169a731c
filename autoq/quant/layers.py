"""Quantized Keras layers: QConv2D, QDense and QActivation (scaled ReLU).

QConv2D / QDense quantize their kernel with ``kernel_quantizer`` and, optionally, their input
with ``input_quantizer`` (larq's convention: the activation quantizer of a layer is the one on
its input). Both accept None, a registry name, a config dict or a Quantizer. With
``quant_penalty`` > 0 a layer adds the learned-quantization deviation term
lambda * ||W - q(W)||^2 to the model's losses (q(W) held constant, so the term pulls W
towards its quantized value).

This module imports TensorFlow/Keras: only code that builds models imports it.
"""
from __future__ import annotations

import math

import numpy as np

from autoq.quant import quantizers as Q
from autoq.quant.kinds import layer_kind
from autoq.tf_env import import_tf

tf = import_tf()
import keras  # noqa: E402  (after the quiet TF import)


@keras.saving.register_keras_serializable(package="autoq")
class ClipWeights(keras.constraints.Constraint):
    """Clip shadow weights to [-limit, limit] after every update (BinaryConnect)."""

    def __init__(self, limit: float = 1.0):
        self.limit = float(limit)

    def __call__(self, w):
        return keras.ops.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}


def quantization_penalty(w, quantizer: Q.Quantizer):
    """lambda-free deviation term sum ||W - q(W)||^2 with q(W) held constant."""
    w = tf.convert_to_tensor(w)
    return tf.reduce_sum(tf.square(w - tf.stop_gradient(quantizer(w))))


class _QuantizedMixin:
    """Shared wiring of kernel/input quantizers for QConv2D and QDense (listed first in their
    bases, so build/call/get_config here wrap Keras' own; subclasses give ``_linear``)."""

    def _init_quantizers(self, kernel_quantizer, input_quantizer, quant_penalty, kwargs):
        self.kernel_quantizer = Q.for_role(kernel_quantizer, "weight")
        self.input_quantizer = Q.for_role(input_quantizer, "activation")
        if isinstance(quant_penalty, bool) or not isinstance(quant_penalty, (int, float)) or quant_penalty < 0:
            raise ValueError(f"quant_penalty must be a number >= 0, got {quant_penalty!r}")
        self.quant_penalty = float(quant_penalty)
        if self.kernel_quantizer is not None and self.kernel_quantizer.clip_weights:
            kwargs.setdefault("kernel_constraint", ClipWeights(1.0))
        return kwargs

    def build(self, input_shape):
        super().build(input_shape)
        self._build_quantizers(input_shape)

    def call(self, inputs, training=None):
        inputs, kernel = self._quantized_inputs_and_kernel(inputs, training)
        outputs = self._linear(inputs, kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs

    def get_config(self):
        return {**super().get_config(), **self._quant_config()}

    def _build_quantizers(self, input_shape):
        if self.kernel_quantizer is not None:
            self.kernel_quantizer.build(self, tuple(self.kernel.shape), init_values=self.kernel.numpy())
        if self.input_quantizer is not None:
            self.input_quantizer.build(self, tuple(input_shape))

    def _quantized_inputs_and_kernel(self, inputs, training):
        if self.input_quantizer is not None:
            inputs = self.input_quantizer(inputs, training=training)
        kernel = tf.convert_to_tensor(self.kernel)
        if self.kernel_quantizer is not None:
            if self.quant_penalty > 0 and training:
                self.add_loss(self.quant_penalty * quantization_penalty(kernel, self.kernel_quantizer))
            kernel = self.kernel_quantizer(kernel, training=training)
        return inputs, kernel

    # Keras' Conv/Dense save only kernel and bias; learned quantizers add variables of their own.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def _quant_config(self):
        return {
            "kernel_quantizer": None if self.kernel_quantizer is None else self.kernel_quantizer.get_config(),
            "input_quantizer": None if self.input_quantizer is None else self.input_quantizer.get_config(),
            "quant_penalty": self.quant_penalty,
        }

    @property
    def kind(self) -> str:
        """Kernel kind that runs this layer (autoq.quant.kinds.layer_kind)."""
        return layer_kind(self.kernel_quantizer, self.input_quantizer)

    def quantized_kernel(self) -> np.ndarray:
        """The kernel as deployed: decode(encode(W)), or W itself when float."""
        w = np.asarray(self.kernel.numpy(), dtype=np.float32)
        if self.kernel_quantizer is None:
            return w
        return self.kernel_quantizer.decode(*self.kernel_quantizer.encode(w))


@keras.saving.register_keras_serializable(package="autoq")
class QConv2D(_QuantizedMixin, keras.layers.Conv2D):
    """Conv2D whose kernel (and optionally input) is quantized in every forward pass."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", use_bias=True,
                 kernel_quantizer=None, input_quantizer=None, quant_penalty=0.0, **kwargs):
        if padding not in ("valid", "same"):
            raise ValueError(f"QConv2D padding must be 'valid' or 'same', got {padding!r}")
        kwargs = self._init_quantizers(kernel_quantizer, input_quantizer, quant_penalty, kwargs)
        super().__init__(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias, **kwargs)

    def _linear(self, inputs, kernel):
        return self.convolution_op(inputs, kernel)


@keras.saving.register_keras_serializable(package="autoq")
class QDense(_QuantizedMixin, keras.layers.Dense):
    """Dense layer whose kernel (and optionally input) is quantized in every forward pass."""

    def __init__(self, units, use_bias=True, kernel_quantizer=None, input_quantizer=None,
                 quant_penalty=0.0, **kwargs):
        kwargs = self._init_quantizers(kernel_quantizer, input_quantizer, quant_penalty, kwargs)
        super().__init__(units, use_bias=use_bias, **kwargs)

    def _linear(self, inputs, kernel):
        return tf.matmul(inputs, kernel)


@keras.saving.register_keras_serializable(package="autoq")
class QActivation(keras.layers.Layer):
    """Scaled ReLU: y = slope * relu(x) (``relu=False``: y = slope * x).

    A slope below 1 (the thesis's BC-2.x fix; a power of two such as 2^-3 is a shift) keeps
    activations small where binary weights would otherwise blow them up.
    """

    def __init__(self, slope: float = 1.0, relu: bool = True, **kwargs):
        super().__init__(**kwargs)
        if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not slope > 0 \
                or not math.isfinite(slope):
            raise ValueError(f"QActivation slope must be a positive number, got {slope!r}")
        self.slope = float(slope)
        self.relu = bool(relu)

    def call(self, inputs):
        x = tf.nn.relu(inputs) if self.relu else inputs
        return x * self.slope if self.slope != 1.0 else x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "slope": self.slope, "relu": self.relu}


QUANTIZED_LAYERS = (QConv2D, QDense)


def summary(model) -> list[dict]:
    """Per quantizable layer: quantizers, bits, kind, parameters and packed weight bytes.

    Bits come from the quantizer objects (32 for float); packed bytes are the weight indices
    packed densely plus the codebook (float32) and the bias (float32).
    """
    rows = []
    for layer in model.layers:
        if not isinstance(layer, QUANTIZED_LAYERS):
            continue
        wq, iq = layer.kernel_quantizer, layer.input_quantizer
        n_weights = int(np.prod(layer.kernel.shape))
        n_bias = int(np.prod(layer.bias.shape)) if layer.use_bias else 0
        bits = 32 if wq is None else wq.bits
        codebook = 0
        if wq is not None:
            codebook = wq.encode(layer.kernel.numpy())[1].size
        rows.append({
            "name": layer.name,
            "type": type(layer).__name__,
            "weight_quantizer": None if wq is None else wq.get_config(),
            "input_quantizer": None if iq is None else iq.get_config(),
            "weight_bits": bits,
            "input_bits": 32 if iq is None else iq.bits,
            "kind": layer.kind,
            "params": n_weights + n_bias,
            "packed_weight_bytes": Q.packed_nbytes(n_weights, bits) + 4 * codebook + 4 * n_bias,
            "float_bytes": 4 * (n_weights + n_bias),
        })
    return rows
