"""LayerPlan: byte/MAC formulas, JSON round trip and validation, plan_from_model on built models."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from autoq.errors import UserError
from autoq.plan import LayerPlan, conv_entry, dense_entry


def test_conv_entry_numbers_by_hand():
    # 1 -> 6 channels, 5x5 same on 8x8, binary lut weights with a 2-value codebook
    e = conv_entry("conv1", c_in=1, c_out=6, h_in=8, w_in=8, kh=5, padding="same", kind="lut",
                   weight_bits=1, codebook_len=2)
    assert (e.h_out, e.w_out) == (8, 8)
    assert e.weight_count == 5 * 5 * 1 * 6 == 150
    assert e.macs == 8 * 8 * 150        # every output pixel uses every weight once
    assert e.weight_bytes == 6 * 4       # one row of ceil(25 / 8) bytes per output channel
    assert e.codebook_bytes == 8         # 2 float32 values
    assert e.bias_bytes == 24            # 6 float32 biases
    assert e.in_bytes == 8 * 8 * 1 * 4 and e.out_bytes == 8 * 8 * 6 * 4


@pytest.mark.parametrize("kind,bits,expect_w,expect_in,expect_out", [
    ("f32", 32, 3 * 3 * 33 * 8 * 4, 10 * 10 * 33 * 4, 8 * 8 * 8 * 4),
    ("lut", 4, 8 * 149, 10 * 10 * 33 * 4, 8 * 8 * 8 * 4),        # 8 rows of ceil(297 * 4 / 8)
    ("xnor", 1, 8 * 9 * 8, 10 * 10 * 33 * 4, 8 * 8 * 8 * 4),     # 33 channels -> one 64-bit word per tap
    ("and", 1, 8 * 9 * 8, 10 * 10 * 33 * 4, 8 * 8 * 8 * 4),
    ("int8", 8, 8 * 9 * 36, 10 * 10 * 33 * 4, 8 * 8 * 8 * 4),    # packed: c_in 33 -> 36; float arena
])
def test_bytes_per_kind_valid_padding(kind, bits, expect_w, expect_in, expect_out):
    e = conv_entry("c", c_in=33, c_out=8, h_in=10, w_in=10, kh=3, kind=kind, weight_bits=bits,
                   codebook_len=0 if kind == "f32" else 2 ** bits)
    assert (e.h_out, e.w_out) == (8, 8)
    assert (e.weight_bytes, e.in_bytes, e.out_bytes) == (expect_w, expect_in, expect_out)


def test_stride_and_dense():
    e = conv_entry("c", c_in=3, c_out=4, h_in=9, w_in=9, kh=3, stride=2, padding="same")
    assert (e.h_out, e.w_out) == (5, 5)
    e = conv_entry("c", c_in=3, c_out=4, h_in=9, w_in=9, kh=3, stride=2, padding="valid")
    assert (e.h_out, e.w_out) == (4, 4)
    d = dense_entry("fc", n_in=120, n_out=84, kind="lut", weight_bits=2, codebook_len=3, per_channel=True)
    assert d.macs == 120 * 84 and d.weight_bytes == 2520 and d.codebook_bytes == 4 * 4 * 84   # padded to 2^2


def test_round_trip_and_json():
    plan = LayerPlan([8, 8, 1], [conv_entry("a", c_in=1, c_out=2, h_in=8, w_in=8, kh=3),
                                 dense_entry("fc", n_in=72, n_out=10, kind="xnor", weight_bits=1, codebook_len=2)])
    text = json.dumps(plan.to_dict())
    assert LayerPlan.from_dict(json.loads(text)) == plan
    data = plan.to_dict()
    del data["layers"][0]["live_bytes"]  # optional key
    assert LayerPlan.from_dict(data).layers[0].live_bytes == 0


@pytest.mark.parametrize("mutate,fragment", [
    (lambda d: d["layers"][1].update(kind="binary"), "plan.json: layers[1].kind"),
    (lambda d: d["layers"][0].pop("macs"), "layers[0].macs: missing"),
    (lambda d: d["layers"][0].update(colour=1), "layers[0].colour: unknown key"),
    (lambda d: d["layers"][0].update(c_in=-1), "layers[0].c_in: got -1"),
    (lambda d: d["layers"][0].update(stride=0), "layers[0].stride: got 0; expected an integer >= 1"),
    (lambda d: d.update(input_shape="8x8"), "input_shape"),
])
def test_from_dict_errors_name_the_key(mutate, fragment):
    plan = LayerPlan([8, 8, 1], [conv_entry("a", c_in=1, c_out=2, h_in=8, w_in=8, kh=3),
                                 dense_entry("fc", n_in=72, n_out=10)])
    data = plan.to_dict()
    mutate(data)
    with pytest.raises(UserError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        LayerPlan.from_dict(data, source="plan.json")


def test_imports_without_tensorflow():
    code = ("import sys, autoq.plan, autoq.cost, autoq.cost.calibrate, autoq.cost.fit;"
            "from typer.testing import CliRunner; from autoq.cli import app;"
            "r = CliRunner().invoke(app, ['targets']); assert r.exit_code == 0, r.output;"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- from built models (TensorFlow) --------------------------------------------------------


def test_plan_from_zoo_model_reads_quantizers_from_layers():
    from autoq.config import preset
    from autoq.export.planning import plan_from_model
    from autoq.models.zoo import build_model
    from autoq.quant.kinds import layer_kind

    model = build_model("tiny", (8, 8, 1), 10, preset("bnn", "tiny"))
    plan = plan_from_model(model)
    qlayers = [layer for layer in model.layers if hasattr(layer, "kernel_quantizer")]
    assert [e.name for e in plan.layers] == [layer.name for layer in qlayers]
    for entry, layer in zip(plan.layers, qlayers):
        assert entry.kind == layer_kind(layer.kernel_quantizer, layer.input_quantizer)
        assert entry.weight_count == int(np.prod(layer.kernel.shape))   # Keras' own kernel, not the plan's shape
        words = -(-entry.c_in // 64)
        if entry.kind == "xnor":
            assert entry.weight_bytes == 8 * entry.c_out * entry.kh * entry.kw * words
    assert plan.layers[0].kind == "f32" and plan.layers[-1].kind == "f32"   # first/last float
    assert {e.kind for e in plan.layers[1:-1]} == {"xnor"}
    assert plan.layers[1].stride == 2 and plan.layers[1].h_out == 4
    assert LayerPlan.from_dict(plan.to_dict()) == plan


def test_arena_of_a_residual_branch():
    import keras

    from autoq.export.planning import plan_from_model
    from autoq.quant.layers import QConv2D

    x = keras.Input((8, 8, 2))
    a = QConv2D(4, 3, padding="same", name="a")(x)
    b = QConv2D(4, 3, padding="same", name="b")(a)
    c = QConv2D(4, 3, padding="same", name="c")(b)
    y = keras.layers.Add(name="add")([a, c])
    plan = plan_from_model(keras.Model(x, y))
    # while c runs, a's output (8x8x4 floats) waits for the Add and b's is c's input: three
    # blocks; the Add reuses b's. The unused quantize/bits/int8-scale buffers are not linked.
    assert plan.arena_bytes == 3 * 8 * 8 * 4 * 4
    assert [e.kind for e in plan.layers] == ["f32"] * 3
    assert [(o.name, o.op) for o in plan.ops] == [("add", "add")]


@pytest.mark.parametrize("model_name,shape,preset_name", [("lenet5", (8, 8, 1), "base"), ("lenet5", (8, 8, 1), "int8"),
                                                          ("tiny", (8, 8, 3), "hybrid"), ("resnet20", (8, 8, 3), "bc"),
                                                          ("tiny", (8, 8, 3), "drf-a2")])
def test_sizes_only_plan_counts_the_bytes_of_the_rendered_c(model_name, shape, preset_name):
    # plan_from_model does not write the weight literals; its bytes must be those of the full
    # model.c text, read back from its declarations
    import re

    from autoq.config import preset
    from autoq.export.c_emit import emit_c
    from autoq.export.graph import build_graph
    from autoq.export.planning import plan_from_emission, plan_from_model
    from autoq.models.zoo import build_model

    model = build_model(model_name, shape, 10, preset(preset_name, model_name))
    graph = build_graph(model, fold_bn=False)
    full = emit_c(graph, variant="ref")
    size = {"float": 4, "uint8_t": 1, "int8_t": 1, "uint32_t": 4, "uint64_t": 8}
    declared = {m.group(2): size[m.group(1)] * int(m.group(3))
                for m in re.finditer(r"static const (\w+) (\w+)\[(\d+)\] = \{", full.source)}
    plan = plan_from_model(model)
    assert plan == plan_from_emission(graph, full)
    for entry, cl in zip(plan.layers, full.layers):
        names = [a.name for a in cl.arrays]
        assert entry.weight_bytes + entry.codebook_bytes + entry.bias_bytes == sum(declared[n] for n in names)
        assert entry.weight_bytes == sum(declared[n] for n in names if n.endswith("_w"))
    assert plan.const_bytes == sum(declared.values())
