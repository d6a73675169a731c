"""The plan prices the deployed artefact: predicted flash/SRAM vs the arm-none-eabi link of the
exported C, and the scratch rule vs the kernels' own aq_scratch_bytes on every target build.

The m4 profile's deploy section was fitted on other models (autoq/cost/calibrate_deploy.py,
CALIBRATION_MODELS); the grid here is held out: LeNet-5 on 8x8x1 and ResNet-20 on 32x32x3,
every kernel kind, mixed configurations.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from autoq.cost.deploy import layer_scratch_bytes
from autoq.plan import conv_entry, dense_entry
from autoq.resources import resource_dir

CROSS = ("arm-none-eabi-gcc", "qemu-system-arm", "aarch64-linux-gnu-gcc", "qemu-aarch64")

W = {"bc": {"name": "bc"}, "twn": {"name": "twn"}, "int8": {"name": "uniform", "bits": 8},
     **{f"lut{b}": {"name": "dorefa", "bits": b} for b in (1, 2, 4, 8)}}
A = {"sign": {"name": "sign"}, "a1": {"name": "dorefa", "bits": 1}, "a2": {"name": "dorefa", "bits": 2},
     "int8": {"name": "uniform", "bits": 8}}

# (model, input shape, default (weight, activation), per-layer overrides)
GRID = [
    ("lenet5", (8, 8, 1), (None, None), {}),
    ("lenet5", (8, 8, 1), ("lut1", None), {}),
    ("lenet5", (8, 8, 1), ("lut2", "a2"), {}),
    ("lenet5", (8, 8, 1), ("lut4", None), {}),
    ("lenet5", (8, 8, 1), ("lut8", "a2"), {}),
    ("lenet5", (8, 8, 1), ("bc", None), {}),                        # shift
    ("lenet5", (8, 8, 1), ("bc", "sign"), {}),                      # xnor
    ("lenet5", (8, 8, 1), ("bc", "a1"), {}),                        # and
    ("lenet5", (8, 8, 1), ("int8", "int8"), {}),
    ("lenet5", (8, 8, 1), ("bc", "sign"), {"fc1": ("int8", "int8"), "fc2": ("lut4", None)}),
    ("resnet20", (32, 32, 3), ("int8", "int8"), {}),
    ("resnet20", (32, 32, 3), ("bc", None), {}),
    ("resnet20", (32, 32, 3), ("bc", "sign"), {"stage3_block3_conv2": ("lut2", None)}),
    ("resnet20", (32, 32, 3), (None, None), {}),                    # 1.1 MB: does not fit the M4
]


def _config(model: str, default, overrides):
    from autoq.config import QuantConfig

    def lq(pair):
        w, a = pair
        return {"weight": W.get(w), "activation": A.get(a), "relu_slope": 1.0}

    if default == (None, None) and not overrides:
        return None
    return QuantConfig.from_dict({"model": model, "default": lq(default),
                                  "layers": {name: lq(pair) for name, pair in overrides.items()}})


@pytest.mark.parametrize("model,shape,default,overrides", GRID,
                         ids=[f"{g[0]}-{g[2][0]}-{g[2][1]}{'-mixed' if g[3] else ''}" for g in GRID])
def test_predicted_memory_matches_the_m4_link(model, shape, default, overrides):
    from autoq.cost.calibrate_deploy import link_m4
    from autoq.cost.model import estimate
    from autoq.cost.profile import load_profile
    from autoq.models.zoo import build_model

    keras_model = build_model(model, shape, 10, _config(model, default, overrides))
    linked = link_m4(keras_model, "m4")
    profile = load_profile("m4")
    assert profile.deploy.points > 0, "hw_models/m4.yaml has no measured deploy section"
    report = estimate(linked.plan, profile)
    ram_linked = linked.sram_bytes + linked.stack_bytes             # data + bss + stack estimate
    assert report.flash_bytes == pytest.approx(linked.flash_bytes, rel=0.03)
    assert report.peak_ram_bytes == pytest.approx(ram_linked, rel=0.03)
    fits = linked.flash_bytes <= profile.flash_limit_bytes and ram_linked <= profile.ram_limit_bytes
    assert report.fits == fits


# --- the scratch rule vs the kernels' own aq_scratch_bytes ---------------------------------

BITS = {"f32": 32, "lut": 2, "shift": 2, "xnor": 1, "and": 1, "int8": 8}
GEOMETRIES = [
    conv_entry("a", c_in=3, c_out=8, h_in=16, w_in=16, kh=3, kind=k, weight_bits=BITS[k])
    for k in ("f32", "lut", "shift", "xnor", "and", "int8")
] + [
    conv_entry("b", c_in=64, c_out=64, h_in=16, w_in=16, kh=3, padding="same", kind=k, weight_bits=BITS[k])
    for k in ("f32", "xnor", "and", "int8")
] + [
    conv_entry("c", c_in=6, c_out=16, h_in=4, w_in=4, kh=5, padding="same", kind=k, weight_bits=BITS[k])
    for k in ("int8", "and", "xnor")
] + [
    conv_entry("d", c_in=33, c_out=17, h_in=9, w_in=7, kh=2, stride=2, kind=k, weight_bits=BITS[k])
    for k in ("int8", "lut", "and")
] + [dense_entry("e", n_in=400, n_out=120, kind=k, weight_bits=BITS[k]) for k in ("f32", "lut", "int8", "xnor")] + [
    # a conv as large as its input: f32 reads its weight rows in place (no scratch), lut keeps its block
    conv_entry("f", c_in=16, c_out=120, h_in=5, w_in=5, kh=5, kind=k, weight_bits=BITS[k]) for k in ("f32", "lut")
] + [conv_entry("g", c_in=16, c_out=8, h_in=5, w_in=5, kh=5, padding="same", kind="f32", weight_bits=32)]


def _probe_source() -> str:
    lines = ['#include <stdio.h>', '#include "autoq_kernels.h"', "int main(void) {", "    aq_geom g;"]
    for e in GEOMETRIES:
        pad = "AQ_PAD_SAME" if e.padding == "same" else "AQ_PAD_VALID"
        if e.op == "dense":
            lines.append(f"    if (aq_dense_geom(&g, {e.c_in}, {e.c_out})) return 1;")
        else:
            lines.append(f"    if (aq_geom_init(&g, {e.h_in}, {e.w_in}, {e.c_in}, {e.c_out}, {e.kh}, {e.kw}, "
                         f"{e.stride}, {pad})) return 1;")
        lines.append(f'    printf("%lu\\n", (unsigned long)aq_scratch_bytes(AQ_{e.kind.upper()}, "opt", &g));')
    return "\n".join(lines + ["    return 0;", "}", ""])


def _build_and_run(arch: str, work: Path) -> list[int]:
    from autoq.export.c_emit import kernel_sources

    kdir = resource_dir("kernels")
    src = work / "probe.c"
    src.write_text(_probe_source())
    inc = [f"-I{kdir / 'include'}", f"-I{kdir / 'src'}"]
    files = [str(src), *map(str, kernel_sources(kdir))]
    exe = work / f"probe_{arch}"
    if arch == "x86_64":
        cmd, run = ["gcc", "-std=c99", "-O2", "-march=x86-64-v2", "-DAQ_X86_DISPATCH"], [str(exe)]
    elif arch == "aarch64":
        cmd, run = ["aarch64-linux-gnu-gcc", "-std=c99", "-O2", "-mcpu=cortex-a53", "-static"], ["qemu-aarch64", str(exe)]
    else:
        cmd = ["arm-none-eabi-gcc", "-std=c99", "-O2", "-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16",
               "-mfloat-abi=hard", "-DAQ_BARE_METAL", "--specs=rdimon.specs", "-nostartfiles",
               f"-T{kdir / 'm4' / 'm4.ld'}", "-Wl,--gc-sections", str(kdir / "m4" / "startup.c")]
        run = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting", "-kernel", str(exe)]
    subprocess.run([*cmd, *inc, "-o", str(exe), *files, "-lm"], check=True, capture_output=True, text=True)
    proc = subprocess.run(run, check=True, capture_output=True, text=True, timeout=120)
    return [int(v) for v in proc.stdout.split()]


@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "m4"])
def test_scratch_rule_equals_the_kernels_own_function(arch, tmp_path):
    missing = [t for t in CROSS if shutil.which(t) is None]
    assert not missing, f"cross tools missing (CI installs them): {missing}"
    measured = _build_and_run(arch, tmp_path)
    predicted = [layer_scratch_bytes(e, arch) for e in GEOMETRIES]
    assert measured == predicted, [(e.name, e.kind, m, p) for e, m, p in zip(GEOMETRIES, measured, predicted) if m != p]
