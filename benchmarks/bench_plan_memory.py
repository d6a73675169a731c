"""Predicted (plan + m4 profile) vs linked (arm-none-eabi-gcc) flash and SRAM on the held-out grid.

    python benchmarks/bench_plan_memory.py

The grid is tests/test_deploy.py's (LeNet-5 8x8x1 and ResNet-20 32x32x3, every kernel kind,
mixed configurations); the test asserts 3 %, this prints the table.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    spec = importlib.util.spec_from_file_location("test_deploy", ROOT / "tests" / "test_deploy.py")
    grid_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid_module)
    from autoq.cost.calibrate_deploy import link_m4
    from autoq.cost.model import estimate
    from autoq.cost.profile import load_profile
    from autoq.models.zoo import build_model

    profile = load_profile("m4")
    print("| model | config | flash linked | predicted | err | SRAM+stack linked | predicted | err | fits |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for model, shape, default, overrides in grid_module.GRID:
        linked = link_m4(build_model(model, shape, 10, grid_module._config(model, default, overrides)), "m4")
        report = estimate(linked.plan, profile)
        ram = linked.sram_bytes + linked.stack_bytes
        ef, er = report.flash_bytes / linked.flash_bytes - 1, report.peak_ram_bytes / ram - 1
        worst = max(worst, abs(ef), abs(er))
        label = f"{default[0] or 'f32'}/{default[1] or 'float'}" + (" mixed" if overrides else "")
        print(f"| {model} {'x'.join(map(str, shape))} | {label} | {linked.flash_bytes:,} | {report.flash_bytes:,} | "
              f"{100 * ef:+.2f} % | {ram:,} | {report.peak_ram_bytes:,} | {100 * er:+.2f} % | "
              f"{'yes' if report.fits else 'no'} |")
    print(f"worst |error|: {100 * worst:.2f} % over {len(grid_module.GRID)} models")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
