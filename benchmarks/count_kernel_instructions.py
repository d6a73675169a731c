"""Instructions per kernel call on aarch64 (Cortex-A53 build) and Cortex-M4F under QEMU, and on x86-64 (i5) under callgrind.

    python benchmarks/count_kernel_instructions.py [--targets a53,m4,i5] [--csv out.csv]
    python benchmarks/count_kernel_instructions.py --targets m4,a53 --cycles [--csv cycles.csv]

Needs the cross toolchains and QEMU (kernels/ci_cross.sh lists the Debian packages). Builds
with `make -C kernels count-tools`: a QEMU TCG plugin that counts executed guest instructions
(kernels/tools/icount_plugin.c) and the count program kernels/bench/aq_count_main.c, which runs
one variant `reps` times on random inputs. Instructions per call = (count(reps=3) -
count(reps=1)) / 2, exact and deterministic (start-up and set-up cancel). These are counts, not
latencies: wall-clock time under QEMU is emulation speed (shared/reference/targets-emulation.md
explains how the cost model turns counts into latency estimates).

i5 (x86-64): the host build's flags (kernels/flags.mk: -O3 -march=x86-64-v2, runtime SIMD dispatch; valgrind
reports AVX2+FMA but no AVX-512, the i5-7300HQ's level) counted with `valgrind --tool=callgrind`
(exact and repeatable), same reps difference.

Shapes: the thesis setting (3x16x16 -> 8, 3x3/4x4/5x5, valid; every kind, ref and opt) and a
grid of zoo-like layers (GRID: small convs, strided, 1x1, dense; opt only) on every target, so
the cost model can fit each kind's coefficients to our opt kernels; bigger layers (BIG_GRID) on
a53 and i5 (only BIG on the M4, to keep the emulation time down). The M4 counts of the grid come from a build linked with 1 MB of SRAM
(instruction counts do not depend on the memory size; the TM4C123G's 32 KB heap is too small
for the grid's float tensors plus the opt kernels' scratch); the thesis shapes use the 32 KB build.
Output CSV: target,kind,bits,variant,c_in,c_out,h,w,f,stride,pad,macs,instructions

--cycles (targets m4 and a53 only): the same cases with the plugin's per-block counts (tbs=FILE):
each executed block timed by llvm-mca (autoq/cost/cycles.py), so every row gets instructions AND
modelled cycles per call (reps difference as above; nop_timed = executed lines llvm-mc could not
parse, timed as a nop: a few per call in the A53's glibc malloc). Prints the rows (--csv writes
them: kernels/bench/results/cycles_qemu.csv, which `python -m autoq.cost.cycle_profile` turns into
the m4, a53 and m4f80 profiles), instructions and cycles per MAC per kind over the shapes, and
per board the scale fitted on the published thesis times with per-kind bias, MAPE and
leave-one-filter-size-out MAPE, for one ns/instruction and for one ns/cycle.

--m4-table prints instructions per call of the int8 and f32 opt kernels on the four M4 layers of
the CMSIS-NN comparison (M4_TABLE) and, per valid MAC, and with --cmsis-nn DIR (a CMSIS-NN source
tree, e.g. a clone of github.com/ARM-software/CMSIS-NN) the same count of CMSIS-NN's
arm_convolve_wrapper_s8 side by side: benchmarks/cmsis_nn_count.c built against DIR with the same
M4 flags (or --cmsis-elf: a program built elsewhere; its arguments: the shape as
c_in:c_out:h:w:f:stride:pad and reps, same reps-difference protocol) plus the ratios;
"CMSIS-NN: not available" without either.
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
# opt-only shapes (c_in, c_out, h, w, f, stride, pad); on the M4 counted in a 1 MB-SRAM build (build_m4_big)
GRID = [(1, 6, 8, 8, 5, 1, "same"), (6, 16, 8, 8, 3, 1, "same"), (16, 16, 8, 8, 3, 1, "same"),
        (8, 16, 12, 12, 3, 2, "same"), (32, 16, 6, 6, 3, 1, "same"), (64, 8, 4, 4, 3, 1, "same"),
        (32, 32, 4, 4, 1, 1, "valid"), (64, 10, 1, 1, 1, 1, "valid"), (128, 32, 1, 1, 1, 1, "valid")]
BIG_GRID = [BIG, (128, 128, 8, 8, 3, 1, "same"), (32, 64, 16, 16, 3, 2, "same"), (256, 64, 1, 1, 1, 1, "valid")]
sys.path.insert(0, str(ROOT))
from autoq.kernel_flags import read_flags  # noqa: E402

FLAGS = read_flags(KDIR / "flags.mk")   # the flags the extension and the exported programs use
X86_FLAGS = FLAGS["AQ_CFLAGS"] + FLAGS["AQ_X86_64_CFLAGS"]
KIND_BITS = {"f32": [32], "lut": [1, 2, 4, 8], "shift": [2], "xnor": [1], "and": [1], "int8": [8]}


M4_TABLE = [(3, 8, 16, 16, 3, 1, "valid"), (64, 64, 16, 16, 3, 1, "same"), (16, 16, 32, 32, 3, 1, "same"),
            (6, 16, 4, 4, 5, 1, "same")]


def valid_macs(shape: tuple) -> int:
    """MACs over the valid (unpadded) taps only."""
    c_in, c_out, h, w, f, s, pad = shape
    def taps(n: int) -> int:
        out = (n - f) // s + 1 if pad == "valid" else -(-n // s)
        lo = max((out - 1) * s + f - n, 0) // 2 if pad == "same" else 0
        return sum(min(o * s - lo + f, n) - max(o * s - lo, 0) for o in range(out))
    return taps(h) * taps(w) * c_in * c_out


def count_elf(elf: Path, shape: tuple, reps: int) -> int:
    """Instructions of a user-built M4 program run as `prog shape reps` (the CMSIS-NN driver)."""
    args = ",".join(f"arg={a}" for a in ["prog", ":".join(map(str, shape)), str(reps)])
    cmd = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting-config", f"enable=on,target=native,{args}",
           "-plugin", str(BUILD / "icount_plugin.so"), "-d", "plugin", "-kernel", str(elf)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    m = re.search(r"icount (\d+)", res.stdout + res.stderr)
    if res.returncode != 0 or not m:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stdout} {res.stderr}")
    return int(m.group(1))


def m4_table(cmsis_elf: Path | None) -> None:
    """The int8 / f32 opt kernels vs CMSIS-NN arm_convolve_wrapper_s8 on M4_TABLE (module docstring)."""
    per_call = lambda fn: (fn(3) - fn(1)) // 2
    print("layer,macs_valid,autoq_int8_opt,cmsis_nn_s8,cmsis_over_autoq,autoq_f32_opt,f32_per_valid_mac")
    if cmsis_elf is None:
        print("# CMSIS-NN: not available (pass --cmsis-elf with a CMSIS-NN count program built for the M4)")
    for shape in M4_TABLE:
        i8 = per_call(lambda r: count("m4", "int8", "opt", 8, shape, r))
        f32 = per_call(lambda r: count("m4", "f32", "opt", 32, shape, r))
        cm = per_call(lambda r: count_elf(cmsis_elf, shape, r)) if cmsis_elf else None
        ratio = f"{cm / i8:.2f}" if cm else "n/a"
        print(f"{':'.join(map(str, shape))},{valid_macs(shape)},{i8},{cm if cm else 'not available'},{ratio},"
              f"{f32},{f32 / valid_macs(shape):.2f}", flush=True)


def variants() -> list[tuple[str, str]]:
    text = (KDIR / "include" / "aq_variants.inc").read_text()
    return re.findall(r'^AQ_VARIANT\(\w+, "(\w+)", "(\w+)"', text, flags=re.M)


def count(target: str, kind: str, variant: str, bits: int, shape: tuple, reps: int, tbs: Path | None = None) -> int:
    """Instructions of one count-program run; with ``tbs`` (m4/a53) the plugin also writes its
    per-block counts there (the cycle model's input, autoq/cost/cycles.py)."""
    plugin = str(BUILD / "icount_plugin.so") + (f",tbs={tbs}" if tbs else "")
    if target == "i5":
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(BUILD / "aq_count_x86"), kind,
               variant, str(bits), ",".join(map(str, shape)), str(reps)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        m = re.search(r"Collected : (\d+)", res.stderr)
        if res.returncode != 0 or not m or "rc=0" not in res.stdout:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stdout} {res.stderr}")
        return int(m.group(1))
    if target == "a53":
        cmd = ["qemu-aarch64", "-plugin", plugin, "-d", "plugin", str(BUILD / "aq_count_a64"), kind, variant,
               str(bits), ",".join(map(str, shape)), str(reps)]
    else:
        args = ",".join(f"arg={a}" for a in ["aq_count", kind, variant, str(bits), ":".join(map(str, shape)), str(reps)])
        cmd = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting-config",
               f"enable=on,target=native,{args}", "-plugin", plugin, "-d", "plugin",
               "-kernel", str(m4_elf(shape))]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    m = re.search(r"icount (\d+)", res.stdout + res.stderr)
    if res.returncode != 0 or not m or "rc=0" not in res.stdout:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stdout} {res.stderr}")
    return int(m.group(1))


def m4_elf(shape: tuple) -> Path:
    return BUILD / ("aq_count_m4.elf" if shape in THESIS else "aq_count_m4_1M.elf")


def build_m4_big() -> None:
    """The M4 count program linked with 1 MB of SRAM (QEMU's mps2-an386 has 4 MB there): the
    instructions a kernel executes do not depend on the memory size, and the grid's float
    tensors plus the opt kernels' scratch outgrow the TM4C123G's 32 KB heap."""
    ld = BUILD / "m4_count_1M.ld"
    ld.write_text((KDIR / "m4" / "m4.ld").read_text().replace("LENGTH = 32K", "LENGTH = 1024K"))
    flags = [*FLAGS["AQ_CFLAGS"], *FLAGS["AQ_M4_CFLAGS"], "-Iinclude", "-Isrc", "--specs=rdimon.specs", "-nostartfiles", f"-T{ld}", "-Wl,--gc-sections"]
    srcs = ["m4/startup.c", *sorted(f"src/{p.name}" for p in (KDIR / "src").glob("conv_*.c")), "src/aq_common.c",
            "src/aq_f32_core.c", "src/aq_bin_narrow.c", "src/aq_bench.c", "bench/aq_count_main.c"]
    subprocess.run(["arm-none-eabi-gcc", *flags, "-o", str(BUILD / "aq_count_m4_1M.elf"), *srcs, "-lm"],
                   check=True, cwd=KDIR)


CMSIS_NN_SOURCES = [f"ConvolutionFunctions/{n}.c" for n in (
    "arm_convolve_wrapper_s8", "arm_convolve_s8", "arm_convolve_1x1_s8", "arm_convolve_1x1_s8_fast",
    "arm_convolve_1_x_n_s8", "arm_convolve_get_buffer_sizes_s8", "arm_nn_mat_mult_kernel_s8_s16",
    "arm_nn_mat_mult_kernel_row_offset_s8_s16")] + [f"NNSupportFunctions/{n}.c" for n in (
    "arm_s8_to_s16_unordered_with_offset", "arm_q7_to_q15_with_offset", "arm_nn_mat_mult_nt_t_s8",
    "arm_nn_mat_mul_core_1x_s8", "arm_nn_mat_mul_core_4x_s8")]


def build_cmsis_nn(root: Path) -> Path:
    """benchmarks/cmsis_nn_count.c against the CMSIS-NN tree ``root`` (Include/, Source/), built
    like the M4 count program (kernels/flags.mk M4 flags without AQ_BARE_METAL, startup, 1 MB SRAM)."""
    if not (root / "Include" / "arm_nnfunctions.h").is_file():
        sys.exit(f"--cmsis-nn {root}: not a CMSIS-NN source tree (expected Include/arm_nnfunctions.h)")
    m4 = [f for f in FLAGS["AQ_M4_CFLAGS"] if f != "-DAQ_BARE_METAL"]
    elf = BUILD / "cmsis_nn_count_m4.elf"
    flags = [*FLAGS["AQ_CFLAGS"], *m4, f"-I{root / 'Include'}", "--specs=rdimon.specs", "-nostartfiles",
             f"-T{BUILD / 'm4_count_1M.ld'}", "-Wl,--gc-sections"]
    srcs = [str(KDIR / "m4" / "startup.c"), *(str(root / "Source" / s) for s in CMSIS_NN_SOURCES),
            str(Path(__file__).with_name("cmsis_nn_count.c"))]
    subprocess.run(["arm-none-eabi-gcc", *flags, "-o", str(elf), *srcs, "-lm"], check=True)
    return elf


def build_x86() -> None:
    """The count program for x86-64 (the host build's flags; see the module docstring)."""
    srcs = sorted(str(p) for p in (KDIR / "src").glob("conv_*.c")) + [
        str(KDIR / "src" / n) for n in ("aq_common.c", "aq_f32_core.c", "aq_bin_narrow.c", "aq_bench.c")]
    BUILD.mkdir(exist_ok=True)
    subprocess.run(["cc", f"-I{KDIR / 'include'}", f"-I{KDIR / 'src'}", *X86_FLAGS,
                    "-o", str(BUILD / "aq_count_x86"), *srcs, str(KDIR / "bench" / "aq_count_main.c"), "-lm"],
                   check=True)


CASE_FIELDS = ["target", "kind", "bits", "variant", "c_in", "c_out", "h", "w", "f", "stride", "pad", "macs"]


def cases(target: str) -> list[tuple]:
    """(kind, bits, variant, shape, macs) counted on ``target``, in the CSV's order."""
    out = []
    for shape in THESIS + GRID + (BIG_GRID if target != "m4" else [BIG]):
        c_in, c_out, h, w, f, s, pad = shape
        oh = (h - f) // s + 1 if pad == "valid" else -(-h // s)
        ow = (w - f) // s + 1 if pad == "valid" else -(-w // s)
        for kind, variant in variants():
            if variant == "ref" and shape not in THESIS:
                continue  # ref counts are only needed where the boards were measured
            out.extend((kind, bits, variant, shape, oh * ow * c_out * f * f * c_in) for bits in KIND_BITS[kind])
    return out


def cycle_rows(target: str, tmp: Path) -> list[list]:
    """Per case: instructions and cycles per call (reps difference) from the plugin's per-block
    counts and llvm-mca (autoq.cost.cycles), and the nop-timed lines executed per call."""
    from autoq.cost.cycles import ARCHS, elf_cycles, read_blocks

    runs: dict[Path, dict] = {}
    icounts = {}
    for case in cases(target):
        kind, bits, variant, shape, _ = case
        for reps in (1, 3):
            tbs = tmp / "run.tbs"
            icounts[(case, reps)] = count(target, kind, variant, bits, shape, reps, tbs)
            elf = BUILD / "aq_count_a64" if target == "a53" else m4_elf(shape)
            runs.setdefault(elf, {})[(case, reps)] = read_blocks(tbs)
    measured = {}
    for elf, elf_runs in runs.items():
        measured.update(elf_cycles(elf_runs, elf, ARCHS[target]))
    rows = []
    for case in cases(target):
        (i1, c1, r1), (i3, c3, r3) = measured[(case, 1)], measured[(case, 3)]
        if (i1, i3) != (icounts[(case, 1)], icounts[(case, 3)]):
            raise RuntimeError(f"{target} {case}: block sums {i1}, {i3} != icount {icounts[(case, 1)]}, "
                               f"{icounts[(case, 3)]}")
        kind, bits, variant, shape, macs = case
        rows.append([target, kind, bits, variant, *shape, macs, (i3 - i1) // 2, round((c3 - c1) / 2), (r3 - r1) // 2])
    return rows


def per_mac_table(rows: list[list]) -> None:
    """Instructions and cycles per MAC of the opt kernels per target and kind over the counted
    zoo-like shapes (median, min-max), and on the thesis 3x3 layer."""
    import statistics

    print("\n# per MAC, opt kernels over the counted shapes (median [min-max]); thesis = 3x16x16->8 3x3 valid")
    print("target,kind,bits,instr_per_mac,cycles_per_mac,thesis_instr_per_mac,thesis_cycles_per_mac")
    for target in dict.fromkeys(r[0] for r in rows):
        for kind, bits in dict.fromkeys((r[1], r[2]) for r in rows if r[0] == target):
            sel = [r for r in rows if r[:4] == [target, kind, bits, "opt"]]
            th = [r for r in sel if tuple(r[4:11]) == THESIS[0]][0]
            fmt = lambda xs: f"{statistics.median(xs):.2f} [{min(xs):.2f}-{max(xs):.2f}]"
            print(f"{target},{kind},{bits},{fmt([r[12] / r[11] for r in sel])},{fmt([r[13] / r[11] for r in sel])},"
                  f"{th[12] / th[11]:.2f},{th[13] / th[11]:.2f}")


def fit_table(rows: list[list]) -> None:
    """Per board: one scale fitted on the published thesis times (default optimisation) against
    our ref kernels' instructions and, separately, their modelled cycles; per measured kind the
    signed mean error, MAPE and leave-one-filter-size-out MAPE (autoq.cost.cycle_profile)."""
    from autoq.cost.cycle_profile import kind_errors, label
    from autoq.cost.measurements import select_variant
    from autoq.cost.measurements import read_measurements

    print("\n# board scale fitted on the published thesis times vs our ref kernels (variant thesis)")
    print("target,model,scale,kind,rows,bias,mape,loo_filter_size_mape")
    for target in dict.fromkeys(r[0] for r in rows):
        published = select_variant(read_measurements(ROOT / "hw_models" / "measurements" / f"{target}.csv").rows,
                                   "thesis", target)
        for model, col, unit in (("instructions", 12, "ns/instruction"), ("cycles", 13, "ns/cycle")):
            counts = {(r[0], r[1], r[2], r[3], tuple(r[4:11])): r[col] for r in rows if r[0] == target}
            scale, errors = kind_errors(published, counts, target)
            for e in errors:
                loo = "n/a" if e.loo_mape is None else f"{e.loo_mape:.1%}"
                print(f"{target},{model},{scale:.4g} {unit},{label(e)},{e.rows},{e.bias:+.1%},{e.mape:.1%},{loo}")


def cycles_main(args) -> None:
    """--cycles: the cycles CSV (stdout, and --csv), the per-MAC table and the fit table."""
    import datetime
    import tempfile

    from autoq.cost.cycles import ARCHS, ITERATIONS, mca_version

    targets = [t for t in args.targets.split(",") if t in ("m4", "a53")]
    header = [*CASE_FIELDS, "instructions", "cycles", "nop_timed"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            rows += cycle_rows(target, Path(tmp))
    if args.csv:
        note = (f"# per kernel call: instructions (QEMU TCG plugin kernels/tools/icount_plugin.c, per-block counts) "
                f"and cycles = sum of block executions x llvm-mca {mca_version()} cycles per block ("
                f"{', '.join(f'{t}: -mtriple={a.triple} -mcpu={a.cpu}, taken branch +{a.taken_penalty:g}' for t, a in ARCHS.items())}"
                f"; steady state of {ITERATIONS} iterations); nop_timed = executed lines llvm-mc could not parse, "
                f"timed as nop; gcc 12 -O3 builds as in icount_qemu.csv; generated by "
                f"benchmarks/count_kernel_instructions.py --cycles on {datetime.date.today()}")
        with open(args.csv, "w", newline="") as fh:
            fh.write(note + "\n")
            csv.writer(fh).writerows([header] + rows)
    csv.writer(sys.stdout).writerows([header] + rows)
    per_mac_table(rows)
    fit_table(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", default="a53,m4,i5")
    ap.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    ap.add_argument("--m4-table", action="store_true", help="only the M4 int8/f32 table (see the docstring)")
    ap.add_argument("--cmsis-elf", type=Path, help="user-built CMSIS-NN count program for --m4-table")
    ap.add_argument("--cmsis-nn", type=Path, help="CMSIS-NN source tree: build benchmarks/cmsis_nn_count.c "
                    "against it for --m4-table (instead of --cmsis-elf)")
    ap.add_argument("--cycles", action="store_true", help="m4/a53: instructions and llvm-mca cycles per call, "
                    "per MAC per kind, and the board-scale fit table (see the docstring)")
    args = ap.parse_args()
    subprocess.run(["make", "-s", "-C", str(KDIR), "count-tools"], check=True)
    if args.m4_table:
        build_m4_big()
        m4_table(build_cmsis_nn(args.cmsis_nn) if args.cmsis_nn else args.cmsis_elf)
        return
    if "i5" in args.targets.split(","):
        build_x86()
    if "m4" in args.targets.split(","):
        build_m4_big()
    if args.cycles:
        cycles_main(args)
        return
    rows = []
    writer = csv.writer(sys.stdout)
    header = [*CASE_FIELDS, "instructions"]
    writer.writerow(header)
    for target in args.targets.split(","):
        for kind, bits, variant, shape, macs in cases(target):
            n1 = count(target, kind, variant, bits, shape, 1)
            n3 = count(target, kind, variant, bits, shape, 3)
            row = [target, kind, bits, variant, *shape, macs, (n3 - n1) // 2]
            writer.writerow(row)
            sys.stdout.flush()
            rows.append(row)
    if args.csv:
        import datetime

        note = ("# instructions per kernel call, gcc 12 -O3; a53 = aarch64 -mcpu=cortex-a53 under qemu-aarch64, m4 = "
                "cortex-m4 hard float under qemu-system-arm mps2-an386 (QEMU TCG plugin kernels/tools/icount_plugin.c; "
                "grid shapes in a 1 MB-SRAM build), i5 = x86-64 -march=x86-64-v2 with runtime dispatch (AVX2+FMA "
                "under valgrind) under valgrind --tool=callgrind; generated by benchmarks/count_kernel_instructions.py "
                f"on {datetime.date.today()}")
        with open(args.csv, "w", newline="") as fh:
            fh.write(note + "\n")
            csv.writer(fh).writerows([header] + rows)


if __name__ == "__main__":
    main()
