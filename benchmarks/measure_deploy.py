"""Measure the Cortex-M4 deploy costs (kernel code, library RAM, stack) and write them into a profile.

    python benchmarks/measure_deploy.py [--target m4] [--dry-run]

Links the calibration models of autoq/cost/calibrate_deploy.py with arm-none-eabi-gcc, fits the
profile's ``deploy`` section (autoq/cost/deploy.py) and prints the fit per model. Rerun after a
change to the kernels or to the C emitter.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autoq.cost.calibrate_deploy import measure_deploy  # noqa: E402
from autoq.cost.deploy import code_bytes, library_ram_bytes, stack_bytes  # noqa: E402
from autoq.cost.profile import dump_profile, load_profile, resolve_profile_path  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="m4", help="profile id or path to update (default m4)")
    parser.add_argument("--dry-run", action="store_true", help="print the fit, write nothing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    deploy, linked = measure_deploy("m4")
    print(f"{'model':42s} {'flash':>8s} {'pred':>8s} {'err%':>6s} {'sram+stack':>10s} {'pred':>8s} {'err%':>6s}")
    for m in linked:
        from autoq.cost.deploy import scratch_bytes

        flash = m.plan.const_bytes + code_bytes(m.plan, deploy)
        ram = m.plan.arena_bytes + scratch_bytes(m.plan, "m4") + library_ram_bytes(m.plan, deploy) + \
            stack_bytes(m.plan, deploy)
        real_ram = m.sram_bytes + m.stack_bytes
        print(f"{m.label:42s} {m.flash_bytes:8d} {flash:8d} {100 * (flash / m.flash_bytes - 1):6.2f} "
              f"{real_ram:10d} {ram:8d} {100 * (ram / real_ram - 1):6.2f}")
    print(deploy.to_dict())
    if not args.dry_run:
        profile = load_profile(args.target)
        profile.deploy = deploy
        path = dump_profile(profile, resolve_profile_path(args.target))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
