"""The model zoo: LeNet-5, VGG-7, ResNet-20/32, SqueezeNet (+ simple bypass) and a tiny net.

Every conv/dense layer is a QConv2D / QDense whose kernel and input quantizers come from the
QuantConfig (None = float), so the LayerPlan and the exporter read the quantization from the
layers themselves. Layer names follow autoq/models/names.py (dot-free, stable); the layers
around them are named ``<layer>_bn``, ``<layer>_act``, ``pool<i>``, ``<block>_add``.

Structure: conv/dense -> BatchNorm -> QActivation(slope) for every layer but the last (which
gives logits). The ReLU is dropped (``relu=False``) when the layer that consumes the tensor
has a *signed* input quantizer (BNN: sign(relu(x)) would always be +1). Kernels whose
quantizer asks for it (``clip_weights``) get a [-1, 1] constraint (BinaryConnect).

Parameter counts (conv/dense weights + biases, BatchNorm excluded) for 32x32x3 inputs (LeNet-5:
32x32x1) and 10 classes equal the published ones: LeNet-5 61,706; VGG-7 12,976,266; ResNet-20 271,690; ResNet-32 465,674;
SqueezeNet 727,626 (methods.md section 3).

Other input shapes: the architectures are unchanged; every conv and pooling layer uses
``padding="same"``, so any H, W >= 8 works (digits' 8x8x1 included): pooling halves the map
(rounding up) down to 1x1 and the flatten size of VGG-7 / LeNet-5 follows the input
(e.g. VGG-7 on 8x8: fc1 has 512 inputs instead of 8,192). ResNets and SqueezeNet end in global
average pooling and do not depend on the input size. LeNet-5 is LeCun's (61,706 parameters at
32x32x1, and at 28x28x1 with conv1 ``same``), with a compact all-``same`` variant for inputs too
small for it (digits' 8x8): see :func:`lenet5_padding`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from autoq.errors import UserError
from autoq.models.names import MODEL_NAMES, RESNET_BLOCKS, quant_layer_names

if TYPE_CHECKING:  # autoq.config imports autoq.models.names: avoid an import cycle
    from autoq.config import QuantConfig

PUBLISHED_PARAMS = {"lenet5": 61_706, "vgg7": 12_976_266, "resnet20": 271_690, "resnet32": 465_674,
                    "squeezenet": 727_626}
# The input at which PUBLISHED_PARAMS hold (LeCun's 32x32 grey images; CIFAR-10 for the rest).
REFERENCE_INPUT = {"lenet5": (32, 32, 1)}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    summary: str
    recipe: str  # default training recipe (autoq.train.RECIPES)
    builder: Callable


class _Builder:
    """Holds the resolved per-layer quantization while one model is being built."""

    def __init__(self, model: str, config: QuantConfig | None):
        from autoq.tf_env import import_tf

        import_tf()  # quiet TF environment before keras loads TF
        import keras

        from autoq import quant
        from autoq.quant import layers as qlayers

        self.keras, self.quant, self.q = keras, quant, qlayers
        if config is None:
            from autoq.config import QuantConfig

            config = QuantConfig(model=model)
        elif config.model != model:
            config = config.with_model(model)
        self.config = config
        self.lq = {n: config.for_layer(n) for n in quant_layer_names(model)}

    # --- quantization lookups ---------------------------------------------------------
    def signed_input(self, name: str | None) -> bool:
        """Whether layer ``name`` binarises its input to {-1, +1} (sign, 1-bit signed).

        Only then is the preceding ReLU dropped; multi-bit signed quantizers (int8) keep it.
        """
        if name is None:
            return False
        q = self.quant.for_role(self.lq[name].activation, "activation")
        return bool(q is not None and q.signed and q.bits == 1)

    def _kwargs(self, name: str) -> dict:
        """Quantizer configs of layer ``name`` (each layer builds its own objects; the layer
        adds the [-1, 1] kernel constraint itself when the quantizer has ``clip_weights``)."""
        lq = self.lq[name]
        return {"kernel_quantizer": lq.weight, "input_quantizer": lq.activation, "name": name}

    # --- layers -----------------------------------------------------------------------
    def conv(self, x, name, filters, kernel, strides=1, init="glorot_uniform", padding="same"):
        return self.q.QConv2D(filters, kernel, strides=strides, padding=padding,
                              kernel_initializer=init, **self._kwargs(name))(x)

    def dense(self, x, name, units):
        return self.q.QDense(units, **self._kwargs(name))(x)

    def bn(self, x, name):
        # momentum 0.9 (not Keras' 0.99): the moving statistics must settle within the few
        # hundred steps of a short fine-tune on small data sets
        return self.keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)

    def act(self, x, after: str, consumer: str | None, name: str | None = None):
        """Scaled ReLU after layer ``after``; plain scaling if ``consumer`` reads it signed."""
        return self.q.QActivation(slope=self.lq[after].relu_slope,
                                  relu=not self.signed_input(consumer),
                                  name=name or f"{after}_act")(x)

    def conv_bn_act(self, x, name, filters, kernel, consumer, strides=1, init="glorot_uniform",
                    padding="same"):
        x = self.conv(x, name, filters, kernel, strides, init, padding)
        return self.act(self.bn(x, name), name, consumer)

    def pool(self, x, i, size=2, strides=2):
        return self.keras.layers.MaxPooling2D(size, strides=strides, padding="same",
                                              name=f"pool{i}")(x)

    def model(self, inputs, outputs, name):
        return self.keras.Model(inputs, outputs, name=name)


# --- architectures ------------------------------------------------------------------------

def lenet5_padding(input_shape) -> tuple[str, str]:
    """(conv1, conv2) padding of LeNet-5 for ``input_shape``.

    LeCun's LeNet-5 has `valid` 5x5 convs on 32x32 images (16x5x5 before fc1: 61,706
    parameters); the usual MNIST form pads conv1 (`same`) so that 28x28 gives the same 14x14
    map before conv2 and the same 61,706 parameters. Inputs too small for a `valid` conv2
    (a pooled map under 10x10, e.g. digits' 8x8) use the compact variant with `same` padding in
    both convs (digits: 8x8 -> 4x4 -> 2x2x16, fc1 has 64 inputs)."""
    side = min(int(input_shape[0]), int(input_shape[1]))
    if side >= 32:
        return "valid", "valid"
    return ("same", "valid") if -(-side // 2) >= 10 else ("same", "same")


def _lenet5(b: _Builder, inputs, num_classes):
    pad1, pad2 = lenet5_padding(inputs.shape[1:])
    x = b.conv_bn_act(inputs, "conv1", 6, 5, consumer="conv2", padding=pad1)
    x = b.pool(x, 1)
    x = b.conv_bn_act(x, "conv2", 16, 5, consumer="fc1", padding=pad2)
    x = b.pool(x, 2)
    x = b.keras.layers.Flatten(name="flatten")(x)
    x = b.act(b.bn(b.dense(x, "fc1", 120), "fc1"), "fc1", "fc2")
    x = b.act(b.bn(b.dense(x, "fc2", 84), "fc2"), "fc2", "fc3")
    return b.dense(x, "fc3", num_classes)


def _vgg7(b: _Builder, inputs, num_classes):
    """2x(128-C3) MP2 2x(256-C3) MP2 2x(512-C3) MP2 FC-1024 FC-classes (TWN paper)."""
    x = inputs
    widths = [128, 128, 256, 256, 512, 512]
    for i, width in enumerate(widths, start=1):
        consumer = f"conv{i + 1}" if i < 6 else "fc1"
        x = b.conv_bn_act(x, f"conv{i}", width, 3, consumer)
        if i % 2 == 0:
            x = b.pool(x, i // 2)
    x = b.keras.layers.Flatten(name="flatten")(x)
    x = b.act(b.bn(b.dense(x, "fc1", 1024), "fc1"), "fc1", "fc2")
    return b.dense(x, "fc2", num_classes)


def _resnet_block(b: _Builder, x, stage, block, filters, stride, next_consumer):
    prefix = f"stage{stage}_block{block}"
    policy = b.config.shortcut
    y = b.conv_bn_act(x, f"{prefix}_conv1", filters, 3, f"{prefix}_conv2", stride, "he_normal")
    y = b.bn(b.conv(y, f"{prefix}_conv2", filters, 3, 1, "he_normal"), f"{prefix}_conv2")
    projection = stride != 1 or x.shape[-1] != filters
    if not projection:
        y = b.keras.layers.Add(name=f"{prefix}_add")([y, x])
    elif policy != "removed":  # weighted 1x1 shortcut (quantized, or float via for_layer)
        # no BatchNorm on the projection (bias instead, as in Keras' CIFAR ResNet v1 that the
        # thesis used): a binary 1x1 kernel then changes the shortcut's scale, which is the
        # failure of plain BC on ResNets that the shortcut / scale / slope fixes address
        s = b.conv(x, f"{prefix}_shortcut", filters, 1, stride, "he_normal")
        y = b.keras.layers.Add(name=f"{prefix}_add")([y, s])
    return b.act(y, f"{prefix}_conv2", next_consumer)


def _resnet(blocks: int):
    def build(b: _Builder, inputs, num_classes):
        """He 2015 CIFAR ResNet-(6n+2): 16/32/64 channels, 1x1 projection shortcuts."""
        x = b.conv_bn_act(inputs, "conv1", 16, 3, "stage1_block1_conv1", init="he_normal")
        for stage, filters in ((1, 16), (2, 32), (3, 64)):
            for block in range(1, blocks + 1):
                stride = 2 if stage > 1 and block == 1 else 1
                if block < blocks:
                    nxt = f"stage{stage}_block{block + 1}_conv1"
                elif stage < 3:
                    nxt = f"stage{stage + 1}_block1_conv1"
                else:
                    nxt = "fc"
                x = _resnet_block(b, x, stage, block, filters, stride, nxt)
        x = b.keras.layers.GlobalAveragePooling2D(name="gap")(x)
        return b.dense(x, "fc", num_classes)

    return build


FIRES = {2: (16, 64), 3: (16, 64), 4: (32, 128), 5: (32, 128),
         6: (48, 192), 7: (48, 192), 8: (64, 256), 9: (64, 256)}


def _fire(b: _Builder, x, i, squeeze, expand, consumer, bypass):
    s = b.conv_bn_act(x, f"fire{i}_squeeze", squeeze, 1,
                      consumer=f"fire{i}_expand1")  # expand1/expand3 read the same tensor
    e1 = b.conv_bn_act(s, f"fire{i}_expand1", expand, 1, consumer)
    e3 = b.conv_bn_act(s, f"fire{i}_expand3", expand, 3, consumer)
    y = b.keras.layers.Concatenate(name=f"fire{i}_concat")([e1, e3])
    if bypass:
        y = b.keras.layers.Add(name=f"fire{i}_bypass")([y, x])
    return y


def _squeezenet(bypass: bool):
    def build(b: _Builder, inputs, num_classes):
        """SqueezeNet v1.0 for CIFAR: 3x3 conv1 (64), fire2..9, 1x1 conv10, global pool.

        Max pooling (3x3, stride 2) after conv1, fire4 and fire8; ``bypass`` adds identity
        shortcuts around fire 3, 5, 7, 9 (Iandola 2016, "simple bypass").
        """
        x = b.conv_bn_act(inputs, "conv1", 64, 3, "fire2_squeeze")
        x = b.pool(x, 1, 3, 2)
        for i, (sq, ex) in FIRES.items():
            consumer = f"fire{i + 1}_squeeze" if i < 9 else "conv10"
            x = _fire(b, x, i, sq, ex, consumer, bypass and i % 2 == 1)
            if i in (4, 8):
                x = b.pool(x, 2 if i == 4 else 3, 3, 2)
        x = b.conv(x, "conv10", num_classes, 1)
        return b.keras.layers.GlobalAveragePooling2D(name="gap")(x)

    return build


def _tiny(b: _Builder, inputs, num_classes):
    """Three small convs + dense: a model for fast tests (a few hundred parameters)."""
    x = b.conv_bn_act(inputs, "conv1", 4, 3, "conv2")
    x = b.conv_bn_act(x, "conv2", 8, 3, "conv3", strides=2)
    x = b.conv_bn_act(x, "conv3", 8, 3, "fc")
    x = b.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return b.dense(x, "fc", num_classes)


MODELS: dict[str, ModelInfo] = {
    "lenet5": ModelInfo("lenet5", "LeNet-5 (LeCun 1998), BN after each layer", "adam", _lenet5),
    "vgg7": ModelInfo("vgg7", "VGG-7 (TWN paper)", "sgd", _vgg7),
    "resnet20": ModelInfo("resnet20", "ResNet-20 (He 2015, CIFAR)", "sgd",
                          _resnet(RESNET_BLOCKS["resnet20"])),
    "resnet32": ModelInfo("resnet32", "ResNet-32 (He 2015, CIFAR)", "sgd",
                          _resnet(RESNET_BLOCKS["resnet32"])),
    "squeezenet": ModelInfo("squeezenet", "SqueezeNet v1.0 for CIFAR", "sgd", _squeezenet(False)),
    "squeezenet_bypass": ModelInfo("squeezenet_bypass", "SqueezeNet with simple bypass", "sgd",
                                   _squeezenet(True)),
    "tiny": ModelInfo("tiny", "tiny 3-conv net for tests", "adam", _tiny),
}
assert tuple(MODELS) == MODEL_NAMES


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise UserError(f"model: unknown model {name!r}; known: {list(MODELS)}")


def build_model(name: str, input_shape, num_classes: int, config: QuantConfig | None = None):
    """Build zoo model ``name`` for ``input_shape`` (H, W, C) with ``config`` (None = float).

    Returns an unbuilt-weights-initialised ``keras.Model`` that outputs logits.
    """
    _check_name(name)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise UserError(f"input_shape: expected H,W,C with positive sizes, got {input_shape!r}")
    if shape[0] < 4 or shape[1] < 4:
        raise UserError(f"input_shape: {shape[0]}x{shape[1]} is too small; the zoo needs "
                        f"H, W >= 4 (>= 8 recommended)")
    b = _Builder(name, config)
    import keras

    inputs = keras.Input(shape, name="input")
    outputs = MODELS[name].builder(b, inputs, int(num_classes))
    return b.model(inputs, outputs, name)


def layer_names(name: str, input_shape=None, config: QuantConfig | None = None) -> list[str]:
    """Quantizable (conv/dense) layer names of ``name`` in order; input-shape independent.

    With ``config.shortcut == "removed"`` the projection shortcuts are left out.
    """
    _check_name(name)
    names = quant_layer_names(name)
    if config is not None and config.shortcut == "removed":
        names = [n for n in names if not n.endswith("_shortcut")]
    return names


def compute_layers(model) -> list:
    """The QConv2D / QDense layers of a built model, in layer order."""
    return [layer for layer in model.layers if hasattr(layer, "kernel_quantizer")]


def model_stats(model) -> dict:
    """Parameters (conv/dense kernels + biases), MACs and compute-layer count of a model.

    MACs: conv = H_out * W_out * kh * kw * C_in * C_out; dense = n_in * n_out.
    """
    params = macs = 0
    layers = compute_layers(model)
    for layer in layers:
        kernel = layer.kernel
        n = int(kernel.shape.num_elements() if hasattr(kernel.shape, "num_elements")
                else _prod(kernel.shape))
        bias = getattr(layer, "bias", None)
        params += n + (int(_prod(bias.shape)) if bias is not None else 0)
        out_shape = layer.output.shape
        if len(kernel.shape) == 4:
            macs += n * int(out_shape[1]) * int(out_shape[2])
        else:
            macs += n
    return {"params": params, "macs": macs, "layers": len(layers)}


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out
