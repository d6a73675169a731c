"""Shared by the layer and export tests: a tiny quantized Keras model, its emitted C written,
built and run on the host, and the comparison with Keras.

The exporter's own pieces do the work (c_emit, cost.deploy.emit_for_target); this module only
saves each test from repeating the same dozen lines.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np


def tiny_model(layers: dict | None = None, seed: int = 0, input_shape=(8, 8, 1), classes: int = 10):
    """conv c1 (4 filters, 3x3 same) -> BatchNorm -> ReLU -> conv c2 (6 filters, 3x3 valid) -> ReLU
    -> flatten -> dense fc (``classes``); ``layers`` maps c1 / c2 / fc to the keyword arguments
    (``kernel_quantizer``, ``input_quantizer``) of their QConv2D / QDense."""
    from autoq.tf_env import import_tf

    import_tf()
    import keras

    from autoq.quant.layers import QActivation, QConv2D, QDense

    layers = layers or {}
    keras.utils.set_random_seed(seed)
    inp = keras.Input(input_shape)
    a = QConv2D(4, 3, padding="same", name="c1", **layers.get("c1", {}))(inp)
    a = keras.layers.BatchNormalization(name="bn1")(a)
    a = QActivation(name="act1")(a)
    a = QConv2D(6, 3, name="c2", **layers.get("c2", {}))(a)
    a = QActivation(name="act2")(a)
    f = keras.layers.Flatten()(a)
    return keras.Model(inp, QDense(classes, name="fc", **layers.get("fc", {}))(f))


def randomise_batchnorm(model, seed: int = 3) -> None:
    """Random moving statistics, gamma and beta on every BatchNormalization (untrained models
    otherwise fold to the identity and hide BatchNorm bugs)."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.3, n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            layer.beta.assign(rng.normal(0, 0.3, n))


def write_c(graph, out: Path, variant: str = "ref", emission=None, kernels: Path | None = None):
    """The kernels and model.h / model.c / main.c of ``graph`` in ``out``; ``emission`` (a
    CEmission) is written as given, else the C is emitted as ``autoq export`` ships it for the
    host in ``variant`` (opt: scratch sized for x86_64). ``kernels``: a kernels folder to link
    to (see ``compiled_kernels``) instead of a copy. Returns the emission."""
    from autoq.cost.deploy import emit_for_target
    from autoq.export import c_emit
    from autoq.resources import resource_dir

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    em = emission if emission is not None else emit_for_target(graph, "x86_64", variant=variant)[1]
    if kernels is None:
        c_emit.copy_kernels(resource_dir("kernels"), out)
    else:
        (out / "kernels").symlink_to(Path(kernels).resolve(), target_is_directory=True)
    for name, text in (("model.h", em.header), ("model.c", em.source), ("main.c", em.main)):
        (out / name).write_text(text)
    return em


def compiled_kernels(folder: Path) -> Path:
    """The kernels copied into ``folder`` and compiled once with the exported Makefile
    (`make objects`); models linked to them build with `make host` in a second or two."""
    from autoq.export import c_emit
    from autoq.resources import resource_dir

    c_emit.copy_kernels(resource_dir("kernels"), folder)
    c_emit.write_makefile(folder)
    subprocess.run(["make", "-s", "objects"], cwd=folder, check=True, capture_output=True, text=True)
    return folder / "kernels"


def build_c(graph, out: Path, variant: str = "ref", emission=None, kernels: Path | None = None):
    """(emission, run): ``write_c`` then a host build (``c_emit.build_host``, or with
    ``kernels`` from ``compiled_kernels`` the exported Makefile); ``run(x)`` returns the logits."""
    from autoq.export import c_emit

    out = Path(out)
    em = write_c(graph, out, variant, emission, kernels)
    if kernels is None:
        exe = c_emit.build_host(out, out / "build")
    else:
        c_emit.write_makefile(out)
        subprocess.run(["make", "-s", "host"], cwd=out, check=True, capture_output=True, text=True)
        exe = out / "model_host"
    n_out = int(np.prod(graph.output_shape))
    return em, lambda x: c_emit.run_host(exe, x, n_out, out)


def assert_matches_keras(got: np.ndarray, ref: np.ndarray, atol: float = 1e-4, rtol: float = 1e-4) -> None:
    """The same argmax on every sample and logits within ``atol + rtol * |ref|``."""
    assert np.array_equal(got.argmax(1), ref.argmax(1)), f"argmax differs on {int(np.sum(got.argmax(1) != ref.argmax(1)))} samples"
    assert np.allclose(got, ref, atol=atol, rtol=rtol), f"max |diff| {float(np.abs(got - ref).max()):.3g}"
