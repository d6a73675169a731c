"""Quantizable layer names of every zoo model, computed without TensorFlow.

The zoo (zoo.py) builds its Keras layers with exactly these names, in this order (a test
checks it), so that a QuantConfig can be validated and resolved (first/last layer, unknown
layer names) in processes that never import TensorFlow.

Naming scheme (dot-free, valid Keras names):

- lenet5:     conv1, conv2, fc1, fc2, fc3
- vgg7:       conv1 .. conv6, fc1, fc2
- resnet20/32: conv1, stage{s}_block{b}_conv1, stage{s}_block{b}_conv2,
              stage{s}_block1_shortcut (s = 2, 3: the 1x1 projections), fc
- squeezenet, squeezenet_bypass: conv1, fire{i}_squeeze, fire{i}_expand1, fire{i}_expand3
              (i = 2..9), conv10
- tiny:       conv1, conv2, conv3, fc
"""
from __future__ import annotations

MODEL_NAMES = ("lenet5", "vgg7", "resnet20", "resnet32", "squeezenet", "squeezenet_bypass", "tiny")

RESNET_BLOCKS = {"resnet20": 3, "resnet32": 5}
SQUEEZE_FIRES = tuple(range(2, 10))


def _resnet_names(blocks: int) -> list[str]:
    names = ["conv1"]
    for stage in (1, 2, 3):
        for block in range(1, blocks + 1):
            prefix = f"stage{stage}_block{block}"
            names += [f"{prefix}_conv1", f"{prefix}_conv2"]
            if stage > 1 and block == 1:
                names.append(f"{prefix}_shortcut")
    return names + ["fc"]


def _squeezenet_names() -> list[str]:
    names = ["conv1"]
    for i in SQUEEZE_FIRES:
        names += [f"fire{i}_squeeze", f"fire{i}_expand1", f"fire{i}_expand3"]
    return names + ["conv10"]


def quant_layer_names(model: str) -> list[str]:
    """All conv/dense layer names of ``model`` in execution order (shortcuts included)."""
    if model == "lenet5":
        return ["conv1", "conv2", "fc1", "fc2", "fc3"]
    if model == "vgg7":
        return [f"conv{i}" for i in range(1, 7)] + ["fc1", "fc2"]
    if model in RESNET_BLOCKS:
        return _resnet_names(RESNET_BLOCKS[model])
    if model in ("squeezenet", "squeezenet_bypass"):
        return _squeezenet_names()
    if model == "tiny":
        return ["conv1", "conv2", "conv3", "fc"]
    raise KeyError(model)


def is_shortcut(layer_name: str) -> bool:
    """True for the weighted (1x1 projection) residual shortcuts."""
    return layer_name.endswith("_shortcut")


def first_last(model: str) -> tuple[str, str]:
    """The first and the last compute layer (kept float when first_last_float)."""
    names = quant_layer_names(model)
    return names[0], names[-1]
