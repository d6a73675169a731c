"""Level check: are logit differences from Keras explained by rounding-tie level flips?

An exported model sums in another order than TensorFlow. In front of a quantized activation a
last-bit difference can move a value to the next level (a rounding tie); in a deep network
(ResNet-20, 8-bit grids) such a flip moves the layers after it by more, so many samples end up
with logits visibly apart while the translation is faithful. The check maps each quantized
layer's float input (the export's and Keras') to level indices with the layer's input form and
looks, per sample, at the FIRST layer where the two part: a faithful translation differs there
by one level on a few values; a wrong one moves many values or by several levels.

Inputs per layer come from ONNX debug outputs (autoq.export.onnx) or from a debug build of the
exported C that writes the float input of every quantizer call (:func:`c_layer_inputs`).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from autoq.errors import UserError

MAX_LEVEL_SHARE = 1e-3      # quantized input values allowed one level apart where a sample parts
LEVEL_CHECK_SAMPLES = 32    # samples beyond tolerance the level check looks at


def quantized_layers(graph) -> list:
    """The compute ops with an input form, in execution order (the C quantizes in this order)."""
    return [op for op in graph.compute if op.input_form is not None]


def compare_levels(graph, ours: dict, keras: dict, samples: int) -> dict:
    """Level indices of ``ours[layer]`` vs ``keras[layer]`` (float inputs of each quantized
    layer for the same ``samples``); totals over every layer and at each sample's first
    parting layer (``first_*``)."""
    differ = total = step = 0
    first_differ = first_values = first_step = 0
    parted = np.zeros(samples, bool)          # samples whose levels already differed upstream
    for op in quantized_layers(graph):
        if op.name not in keras or op.name not in ours:
            continue
        a = op.input_form.indices(ours[op.name]).astype(np.int64).reshape(samples, -1)
        b = op.input_form.indices(keras[op.name]).astype(np.int64).reshape(samples, -1)
        gap = np.abs(a - b)
        differ += int(np.sum(gap > 0))
        total += gap.size
        step = max(step, int(gap.max(initial=0)))
        first = (gap.max(axis=1, initial=0) > 0) & ~parted
        first_differ += int(np.sum(gap[first] > 0))
        first_values += int(gap[first].size)
        first_step = max(first_step, int(gap[first].max(initial=0)))
        parted |= first
    return {"values": total, "differ": differ, "share": differ / max(total, 1), "max_level_step": step,
            "first_values": first_values, "first_differ": first_differ,
            "first_share": first_differ / max(first_values, 1), "first_max_level_step": first_step,
            "samples": int(samples)}


def explained(levels: dict | None) -> bool:
    """Single-level flips on at most MAX_LEVEL_SHARE of the values where each sample parts."""
    return bool(levels and levels["values"] and levels["first_max_level_step"] <= 1
                and levels["first_share"] <= MAX_LEVEL_SHARE)


def describe(levels: dict) -> str:
    return (f"level check of the worst {levels['samples']} samples: at the first layer where they part "
            f"{levels['first_differ']} of {levels['first_values']} quantized inputs differ, by up to "
            f"{levels['first_max_level_step']} levels (all layers: {levels['differ']} of {levels['values']}, up to "
            f"{levels['max_level_step']})")


_QUANT_CALL = re.compile(r"^(\s*)(aq_q_sign|aq_q_grid|aq_q_int8)\(([^,]+), [^,]+, (\d+)")
_DUMP = """#include <stdio.h>
#include <stdlib.h>
/* level-check build: the float input of every quantizer call, appended to $AUTOQ_LEVEL_DUMP */
static void aq_level_dump(const float *x, long n) {
    static FILE *f;
    if (!f && !(f = fopen(getenv("AUTOQ_LEVEL_DUMP"), "wb"))) return;
    fwrite(x, sizeof(float), (size_t)n, f);
    fflush(f);
}
"""


def c_layer_inputs(out: Path, graph, x: np.ndarray, work: Path) -> dict:
    """{layer: float input} of every quantized layer as the exported C (``out``/model.c, its
    kernels) computes it for samples ``x``: a copy of model.c writes each quantizer's input."""
    import os
    import subprocess

    from autoq.export import c_emit

    lines, calls = [], 0
    for line in (out / "model.c").read_text().splitlines():
        m = _QUANT_CALL.match(line)
        if m:
            lines.append(f"{m.group(1)}aq_level_dump({m.group(3)}, {m.group(4)});")
            calls += 1
        lines.append(line)
    layers = quantized_layers(graph)
    if calls != len(layers):
        raise UserError(f"level check: model.c has {calls} quantizer calls, the graph {len(layers)} quantized layers")
    src = work / "level_build"
    src.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    at = text.index('#include "autoq_kernels.h"')
    (src / "model.c").write_text(text[:at] + _DUMP + text[at:])
    for name in ("model.h", "main.c"):
        (src / name).write_text((out / name).read_text())
    os.symlink(out / "kernels", src / "kernels")
    exe = c_emit.build_host(src, work / "level_bin")
    inp, dump = work / "level_in.f32", work / "levels.f32"
    np.ascontiguousarray(x, "<f4").tofile(inp)
    subprocess.run([str(exe), str(inp), str(work / "level_logits.f32")], check=True, capture_output=True,
                   env={**os.environ, "AUTOQ_LEVEL_DUMP": str(dump)})
    raw = np.fromfile(dump, "<f4")
    shapes = {o.output: o.shape for o in graph.ops}
    sizes = [int(np.prod(shapes[op.inputs[0]])) for op in layers]
    per_sample = raw.reshape(len(x), sum(sizes))
    result, offset = {}, 0
    for op, n in zip(layers, sizes):
        result[op.name] = per_sample[:, offset:offset + n].reshape(len(x), *shapes[op.inputs[0]])
        offset += n
    return result
