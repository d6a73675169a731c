"""Measure a target's ``deploy`` costs (autoq/cost/deploy.py) from links of exported models.

For each calibration model: build it (untrained: sizes do not depend on weight values), take
its plan, emit the C exactly as ``autoq export`` does (opt kernels, the target build's
scratch), link it with the target's compiler and read the ELF: flash = text + rodata + data,
static RAM = data + bss, stack from gcc's -fstack-usage. The code bytes beyond the plan's
arrays are fitted by non-negative least squares to
``base + per_layer * layers + per_op * ops + kinds used + op kinds used``; the library RAM
beyond the plan's buffers and scratch and the stack as ``base + max(kinds used)``.

Only the Cortex-M4 build is linked here (arm-none-eabi-gcc): the other targets' flash is a
disk, where code size does not decide anything. Needs TensorFlow (model building).
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoq.cost.deploy import DeployCost, emit_for_target, scratch_bytes
from autoq.kinds import KINDS

log = logging.getLogger(__name__)

# (model, input shape, weight quantizer, input quantizer): every kind and op kind appears in
# some models and is absent from others, so each fitted term is identified.
CALIBRATION_MODELS = [
    ("tiny", (8, 8, 1), None, None),
    ("tiny", (8, 8, 1), {"name": "bc"}, None),
    ("tiny", (8, 8, 1), {"name": "bc"}, {"name": "sign"}),
    ("tiny", (8, 8, 1), {"name": "bc"}, {"name": "dorefa", "bits": 1}),
    ("tiny", (8, 8, 1), {"name": "dorefa", "bits": 2}, None),
    ("tiny", (8, 8, 1), {"name": "uniform", "bits": 8}, {"name": "uniform", "bits": 8}),
    ("lenet5", (8, 8, 1), None, None),
    ("lenet5", (8, 8, 1), {"name": "dorefa", "bits": 4}, {"name": "dorefa", "bits": 2}),
    ("lenet5", (8, 8, 1), {"name": "twn"}, None),
    ("lenet5", (8, 8, 1), {"name": "bc"}, {"name": "sign"}),
    ("resnet20", (16, 16, 3), None, None),
    ("resnet20", (16, 16, 3), {"name": "bc"}, None),
    ("resnet20", (16, 16, 3), {"name": "uniform", "bits": 8}, {"name": "uniform", "bits": 8}),
]


@dataclass
class LinkedModel:
    label: str
    plan: object
    flash_bytes: int
    sram_bytes: int
    stack_bytes: int


def quant_config(model: str, weight, activation):
    from autoq.config import QuantConfig

    default = {"weight": weight, "activation": activation, "relu_slope": 1.0}
    return QuantConfig.from_dict({"model": model, "default": default, "layers": {}}) if weight else None


def link_m4(model, arch: str = "m4", work: Path | None = None, label: str = "") -> LinkedModel:
    """Plan, emit and link ``model`` (a built Keras model) for the Cortex-M4; the ELF's sizes."""
    from autoq.export import c_emit
    from autoq.export.graph import build_graph
    from autoq.resources import resource_dir

    graph = build_graph(model, fold_bn=False)
    plan, em = emit_for_target(graph, arch)
    with tempfile.TemporaryDirectory(prefix="autoq-link-", dir=work) as tmp:
        out = Path(tmp)
        (out / "model.c").write_text(em.source)
        (out / "model.h").write_text(em.header)
        c_emit.copy_kernels(resource_dir("kernels"), out)
        sizes = c_emit.build_m4(out, out / "build")
    return LinkedModel(label or model.name, plan, sizes["flash_bytes"], sizes["sram_bytes"],
                       sizes["stack_bytes_estimate"] or 0)


def _design(plan, op_kinds: list[str]) -> list[float]:
    kinds = {e.kind for e in plan.layers}
    ops = {o.op for o in plan.ops}
    return ([1.0, len(plan.layers), len(plan.ops)] + [float(k in kinds) for k in KINDS]
            + [float(o in ops) for o in op_kinds])


def fit_deploy(linked: list[LinkedModel], arch: str = "m4", source: str = "") -> DeployCost:
    """DeployCost fitted to linked models (module docstring)."""
    from scipy.optimize import nnls

    from autoq.plan import OP_KINDS

    op_kinds = list(OP_KINDS)
    a = np.array([_design(m.plan, op_kinds) for m in linked])
    code = np.array([m.flash_bytes - m.plan.const_bytes for m in linked], float)
    coef, _ = nnls(a, code)
    coef = np.round(coef).astype(int)
    err = int(np.max(np.abs(a @ coef - code)))
    lib_ram = [m.sram_bytes - m.plan.arena_bytes - scratch_bytes(m.plan, arch) for m in linked]
    ram_kinds = _max_term(linked, lib_ram)
    stack_kinds = _max_term(linked, [m.stack_bytes for m in linked])
    n = len(KINDS)
    return DeployCost(
        arch=arch, code_base=int(coef[0]), code_per_layer=int(coef[1]), code_per_op=int(coef[2]),
        code_kinds={k: int(v) for k, v in zip(KINDS, coef[3:3 + n]) if v},
        code_ops={o: int(v) for o, v in zip(op_kinds, coef[3 + n:]) if v},
        static_ram_bytes=min(lib_ram), ram_kinds={k: v - min(lib_ram) for k, v in ram_kinds.items() if v > min(lib_ram)},
        stack_base=0, stack_kinds=stack_kinds, provenance="measured-host", source=source,
        points=len(linked), max_error_bytes=err)


def _max_term(linked: list[LinkedModel], values: list[int]) -> dict[str, int]:
    """Per kind: the smallest value among the models using it (value = max over the kinds used)."""
    result: dict[str, int] = {}
    for m, v in zip(linked, values):
        for kind in {e.kind for e in m.plan.layers}:
            result[kind] = min(result.get(kind, v), v)
    return result


def measure_deploy(arch: str = "m4", models=CALIBRATION_MODELS) -> tuple[DeployCost, list[LinkedModel]]:
    """Link every calibration model for ``arch`` and fit its deploy costs."""
    import subprocess

    from autoq.models.zoo import build_model

    linked = []
    for i, (name, shape, weight, act) in enumerate(models):
        model = build_model(name, shape, 10, quant_config(name, weight, act))
        label = f"{name} {weight and weight['name']}{weight and weight.get('bits', '')} / {act and act['name']}"
        linked.append(link_m4(model, arch, label=label))
        log.info("[%d/%d] %s: flash %d B, SRAM %d B, stack %d B", i + 1, len(models), label,
                 linked[-1].flash_bytes, linked[-1].sram_bytes, linked[-1].stack_bytes)
    version = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    source = (f"{len(linked)} models linked with {version} (the export's M4 flags, --gc-sections) by "
              "benchmarks/measure_deploy.py; code = ELF flash - the plan's arrays, fitted by NNLS")
    return fit_deploy(linked, arch, source), linked
