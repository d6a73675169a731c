"""Instructions per kernel call on aarch64 (Cortex-A53 build) and Cortex-M4F, under QEMU.

    python benchmarks/count_kernel_instructions.py [--targets a53,m4] [--csv out.csv]

Needs the cross toolchains and QEMU (kernels/ci_cross.sh lists the Debian packages). Builds
with `make -C kernels count-tools`: a QEMU TCG plugin that counts executed guest instructions
(kernels/tools/icount_plugin.c) and the count program kernels/bench/aq_count_main.c, which runs
one variant `reps` times on random inputs. Instructions per call = (count(reps=3) -
count(reps=1)) / 2, exact and deterministic (start-up and set-up cancel). These are counts, not
latencies: wall-clock time under QEMU is emulation speed (shared/reference/targets-emulation.md
explains how the cost model turns counts into latency estimates).

Shapes: the thesis setting (3x16x16 -> 8, 3x3/4x4/5x5, valid) on both targets; the 64->64
16x16 3x3 'same' layer on aarch64 only (its 64 KB float input does not fit the M4's 32 KB SRAM).
Output CSV: target,kind,bits,variant,c_in,c_out,h,w,f,stride,pad,macs,instructions
"""
from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KDIR = ROOT / "kernels"
BUILD = KDIR / "build"
THESIS = [(3, 8, 16, 16, f, 1, "valid") for f in (3, 4, 5)]
BIG = (64, 64, 16, 16, 3, 1, "same")
KIND_BITS = {"f32": [32], "lut": [1, 2, 4, 8], "shift": [2], "xnor": [1], "and": [1], "int8": [8]}


def variants() -> list[tuple[str, str]]:
    text = (KDIR / "include" / "aq_variants.inc").read_text()
    return re.findall(r'^AQ_VARIANT\(\w+, "(\w+)", "(\w+)"', text, flags=re.M)


def count(target: str, kind: str, variant: str, bits: int, shape: tuple, reps: int) -> int:
    plugin = str(BUILD / "icount_plugin.so")
    if target == "a53":
        cmd = ["qemu-aarch64", "-plugin", plugin, "-d", "plugin", str(BUILD / "aq_count_a64"), kind, variant,
               str(bits), ",".join(map(str, shape)), str(reps)]
    else:
        args = ",".join(f"arg={a}" for a in ["aq_count", kind, variant, str(bits), ":".join(map(str, shape)), str(reps)])
        cmd = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting-config",
               f"enable=on,target=native,{args}", "-plugin", plugin, "-d", "plugin",
               "-kernel", str(BUILD / "aq_count_m4.elf")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    m = re.search(r"icount (\d+)", res.stdout + res.stderr)
    if res.returncode != 0 or not m or "rc=0" not in res.stdout:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stdout} {res.stderr}")
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", default="a53,m4")
    ap.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    args = ap.parse_args()
    subprocess.run(["make", "-s", "-C", str(KDIR), "count-tools"], check=True)
    rows = []
    writer = csv.writer(sys.stdout)
    header = ["target", "kind", "bits", "variant", "c_in", "c_out", "h", "w", "f", "stride", "pad", "macs",
              "instructions"]
    writer.writerow(header)
    for target in args.targets.split(","):
        shapes = THESIS + ([BIG] if target == "a53" else [])
        for shape in shapes:
            c_in, c_out, h, w, f, s, pad = shape
            oh = (h - f) // s + 1 if pad == "valid" else -(-h // s)
            ow = (w - f) // s + 1 if pad == "valid" else -(-w // s)
            macs = oh * ow * c_out * f * f * c_in
            for kind, variant in variants():
                if target == "a53" and shape == BIG and variant == "ref" and kind not in ("f32", "xnor"):
                    continue  # slow under emulation and not needed for the cost model
                for bits in KIND_BITS[kind]:
                    n1 = count(target, kind, variant, bits, shape, 1)
                    n3 = count(target, kind, variant, bits, shape, 3)
                    row = [target, kind, bits, variant, c_in, c_out, h, w, f, s, pad, macs, (n3 - n1) // 2]
                    writer.writerow(row)
                    sys.stdout.flush()
                    rows.append(row)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            csv.writer(fh).writerows([header] + rows)


if __name__ == "__main__":
    main()
