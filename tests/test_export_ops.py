"""Every graph op the exporter knows (residual add, channel concat, max/avg pooling 'same' and
'valid', standalone BatchNorm, dropout, flatten, ReLU slope, strided/valid convs) through ONNX
and C, compared with Keras on random inputs. Untrained weights with random BatchNorm
statistics: these tests check the translation, not accuracy."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from layer_helpers import assert_matches_keras, build_c, randomise_batchnorm, write_c


def _model():
    from autoq.tf_env import import_tf

    import_tf()
    import keras

    from autoq.quant.layers import QActivation, QConv2D, QDense

    keras.utils.set_random_seed(7)   # fixed weights: an unlucky draw can put an activation on a rounding tie
    inp = keras.Input((9, 9, 2), name="input")
    a = QConv2D(6, 3, padding="same", name="c1")(inp)
    a = keras.layers.BatchNormalization(name="c1_bn")(a)
    a = QActivation(slope=0.125, name="c1_act")(a)
    b = QConv2D(6, 1, kernel_quantizer={"name": "twn"}, input_quantizer={"name": "dorefa", "bits": 2}, name="c2")(a)
    s = keras.layers.Add(name="add")([a, b])
    s = keras.layers.BatchNormalization(name="add_bn")(s)                    # standalone: not after a conv
    s = QActivation(name="add_act")(s)
    p = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool_same")(s)     # 9 -> 5
    e1 = QConv2D(4, 1, kernel_quantizer={"name": "bc"}, input_quantizer={"name": "sign"}, name="e1")(p)
    e3 = QConv2D(4, 3, padding="same", kernel_quantizer={"name": "xnor", "per_channel": True},
                 input_quantizer={"name": "sign"}, name="e3")(p)
    c = keras.layers.Concatenate(name="concat")([e1, e3, p])
    c = keras.layers.AveragePooling2D(2, strides=2, padding="same", name="avg")(c)        # 5 -> 3 (partial windows)
    c = QConv2D(8, 2, strides=1, padding="valid", kernel_quantizer={"name": "dorefa", "bits": 3},
                input_quantizer={"name": "lsq", "bits": 4}, name="c4")(c)
    c = keras.layers.MaxPooling2D(2, strides=1, padding="valid", name="pool_valid")(c)   # 2 -> 1
    f = keras.layers.Flatten(name="flatten")(c)
    f = keras.layers.Dropout(0.5, name="drop")(f)
    f = QDense(12, kernel_quantizer={"name": "uniform", "bits": 8, "per_channel": True},
               input_quantizer={"name": "uniform", "bits": 8, "alpha": 2.0}, name="d1")(f)
    f = keras.layers.ReLU(name="relu")(f)
    out = QDense(5, kernel_quantizer={"name": "ttq"} if _has("ttq") else None, name="d2")(f)
    model = keras.Model(inp, out)
    randomise_batchnorm(model, seed=3)
    return model


def _has(name: str) -> bool:
    from autoq import quant

    return name in quant.names()


@pytest.fixture(scope="module")
def case():
    from autoq.export.exporter import keras_logits
    from autoq.export.graph import build_graph

    model = _model()
    x = np.random.default_rng(4).uniform(-0.5, 1.5, (40, 9, 9, 2)).astype(np.float32)
    return model, build_graph(model), x, keras_logits(model, x, per_sample=False)


def test_graph_has_every_op_kind(case):
    _, graph, _, _ = case
    kinds = {op.kind for op in graph.ops}
    assert kinds == {"input", "conv2d", "dense", "affine", "act", "maxpool", "avgpool", "add", "concat",
                     "flatten", "identity"}
    assert next(op for op in graph.ops if op.name == "c1").attrs["folded_bn"] == "c1_bn"


def test_onnx_equals_keras(case, tmp_path):
    from autoq.export.onnx import export_onnx

    _, graph, x, ref = case
    info = export_onnx(graph, x, ref, tmp_path / "m.onnx")
    assert info["max_abs_diff"] <= 1e-4


def test_onnx_check_allows_only_counted_level_flips(case, tmp_path):
    from autoq.errors import UserError
    from autoq.export.onnx import export_onnx

    _, graph, x, ref = case
    shifted = ref.copy()
    shifted[0] += 0.01 * np.sign(shifted[0] - shifted[0].mean())  # one sample off by a level, same argmax
    with pytest.raises(UserError, match=r"on 1 of 40 test samples \(allowed 0"):
        export_onnx(graph, x, shifted, tmp_path / "a.onnx")
    info = export_onnx(graph, x, shifted, tmp_path / "b.onnx", allowed_flips=1)
    assert info["samples_beyond_tolerance"] == 1 and info["argmax_agreement"] == 1.0
    swapped = ref.copy()
    swapped[0] = swapped[0][::-1] + np.linspace(0, 1, swapped.shape[1])  # a different argmax
    with pytest.raises(UserError, match=r", 1 argmax differ"):
        export_onnx(graph, x, swapped, tmp_path / "c.onnx", allowed_flips=5)


@pytest.mark.parametrize("variant", ["ref", "opt"])
def test_c_equals_keras(case, tmp_path, variant):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    _, graph, x, ref = case
    em, run = build_c(graph, tmp_path, variant)
    assert (em.scratch_bytes > 0) == (variant == "opt")
    assert ("_opt(&a)" in em.source) == (variant == "opt")
    d1 = next(cl for cl in em.layers if cl.op.name == "d1")      # uniform 8/8 (fixed alpha): the int8 kernel
    assert d1.kind == "int8" and not d1.note and f"aq_conv_int8_{variant}(&a)" in em.source
    assert_matches_keras(run(x), ref)


@pytest.mark.parametrize("variant", ["ref", "opt"])
def test_c_of_every_op_kind_compiles_without_warnings(case, tmp_path, variant):
    # model.c with its headers (kernels/include, the input quantizers of aq_input_quant.h among
    # them) as strict as a user's firmware build may be
    import subprocess

    from autoq.export import c_emit
    from autoq.resources import resource_dir

    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    _, graph, _, _ = case
    em = c_emit.emit_c(graph, variant=variant, scratch_bytes=4096)
    assert '#include "aq_input_quant.h"' in em.source
    assert all(f"aq_q_{q}(" in em.source for q in ("sign", "grid", "int8"))
    for name, text in (("model.h", em.header), ("model.c", em.source)):
        (tmp_path / name).write_text(text)
    kdir = resource_dir("kernels")
    proc = subprocess.run(["gcc", *c_emit.HOST_CFLAGS, "-Wextra", "-Werror", f"-I{kdir / 'include'}",
                           f"-I{kdir / 'src'}", "-c", "-o", str(tmp_path / "model.o"), str(tmp_path / "model.c")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_arena_plan_never_overlaps_live_tensors(case):
    from autoq.export.c_emit import numel, plan_arena

    _, graph, _, _ = case
    offsets, size = plan_arena(graph)
    order = [op for op in graph.ops if op.kind != "input"]
    last = {t: i for i, op in enumerate(order) for t in op.inputs}
    last[graph.output] = len(order)
    spans = {op.output: (i, last.get(op.output, i)) for i, op in enumerate(order)}
    sizes = {op.output: numel(op.shape) for op in order}
    producer = {op.output: op for op in order}
    for a in spans:
        for b in spans:
            if a < b and spans[a][0] <= spans[b][1] and spans[b][0] <= spans[a][1]:   # lifetimes overlap
                first, second = sorted((a, b), key=lambda t: spans[t][0])
                op = producer[second]
                in_place = (op.kind in ("act", "affine", "identity") and op.inputs[0] == first
                            and spans[first][1] == spans[second][0] and offsets[a] == offsets[b])
                assert in_place or offsets[a] + sizes[a] <= offsets[b] or offsets[b] + sizes[b] <= offsets[a], (a, b)
    assert size < sum(sizes.values())          # buffers are reused


def _gap_model():
    """conv -> BatchNorm -> ReLU -> strided conv -> global average pool -> dense, with logits in
    the hundreds (large activations: where summation order shows)."""
    from autoq.tf_env import import_tf

    import_tf()
    import keras

    from autoq.quant.layers import QActivation, QConv2D, QDense

    keras.utils.set_random_seed(11)
    inp = keras.Input((12, 12, 3), name="input")
    a = QConv2D(16, 3, padding="same", kernel_quantizer={"name": "bc"}, name="c1")(inp)
    a = keras.layers.BatchNormalization(name="c1_bn")(a)
    a = QActivation(name="c1_act")(a)
    a = QConv2D(32, 3, strides=2, padding="same", name="c2")(a)
    a = keras.layers.GlobalAveragePooling2D(name="gap")(a)
    return keras.Model(inp, QDense(10, name="fc")(a))


def test_onnx_with_global_pool_is_batch_free_and_scale_aware(tmp_path):
    # ReduceMean over NHWC's H, W sums in another order for batch 1 than for batch N (~1e-7 of
    # the logits, 1e-4 absolute here); the graph's GlobalAveragePool in NCHW is batch-free
    from autoq.export.exporter import keras_logits
    from autoq.export.graph import build_graph
    from autoq.export.onnx import export_onnx

    model = _gap_model()
    graph = build_graph(model, fold_bn=False)
    assert "gap" in {op.kind for op in graph.ops}
    x = np.random.default_rng(5).uniform(0, 300, (300, 12, 12, 3)).astype(np.float32)
    ref = keras_logits(model, x, per_sample=False)
    assert np.abs(ref).max() > 300
    info = export_onnx(graph, x, ref, tmp_path / "m.onnx")
    assert info["batch1_vs_batch_max_abs_diff"] <= 1e-5
    assert info["argmax_differ"] == 0 and info["max_rel_diff"] <= 1e-4


def test_level_check_reads_the_c_and_tells_flips_from_errors(case, tmp_path):
    # the debug build of model.c hands back every quantized layer's float input: the same levels
    # as Keras; a layer moved by 3 levels is not a rounding tie, one value one level off is
    from autoq.export.exporter import keras_layer_inputs
    from autoq.export.levels import c_layer_inputs, compare_levels, explained, quantized_layers

    if shutil.which("gcc") is None:
        pytest.fail("gcc not installed")
    model, graph, x, _ = case
    write_c(graph, tmp_path, "ref")
    ours = c_layer_inputs(tmp_path, graph, x[:8], tmp_path / "work")
    keras = keras_layer_inputs(model, graph, x[:8])
    assert set(ours) == {op.name for op in quantized_layers(graph)} == set(keras)
    for name in ours:
        assert np.allclose(ours[name], keras[name], atol=1e-4, rtol=1e-4), name
    same = compare_levels(graph, ours, keras, 8)
    assert same["first_max_level_step"] <= 1 and explained(same)
    last = quantized_layers(graph)[-1]
    step = last.input_form.step
    moved = {**keras, last.name: keras[last.name] + 3 * step}
    wrong = compare_levels(graph, keras, moved, 8)
    assert wrong["first_max_level_step"] >= 2 and not explained(wrong)
    one = keras[last.name].copy()
    one.reshape(8, -1)[0, 0] += step
    assert compare_levels(graph, {**keras, last.name: one}, keras, 8)["first_differ"] <= 1
