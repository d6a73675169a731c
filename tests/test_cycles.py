"""The cycle model (autoq/cost/cycles.py, autoq/cost/cycle_profile.py): llvm-mca block cycles,
the block-count arithmetic, the board-scale fit and the shipped m4f80 profile.

llvm-mca / llvm-mc / llvm-objdump (Debian package llvm, installed by .ci/run) are a hard
dependency: these tests fail, not skip, without them."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from autoq.cost.cycles import (
    ARCHS,
    Block,
    elf_cycles,
    mca_block_cycles,
    normalize,
    program_cycles,
    read_blocks,
)
from autoq.cost.measurements import Measurement

M4, A53 = ARCHS["m4"], ARCHS["a53"]


def test_llvm_tools_are_installed():
    for tool in ("llvm-mca", "llvm-mc", "llvm-objdump"):
        assert shutil.which(tool), f"{tool} missing: install the Debian package llvm"


def test_known_blocks_get_the_cores_cycles():
    """Model facts the tool must reproduce: the M4 issues one ALU op per cycle and chains VFMA at
    3 cycles; the A53 dual-issues independent adds; a call is timed as a branch (llvm-mca would
    charge 100 cycles)."""
    adds = ["add r0, r1, r2", "add r3, r4, r5", "add r6, r7, r8", "add r9, r10, r11"]
    cycles, replaced = mca_block_cycles([adds, ["vfma.f32 s0, s1, s2"] * 2, [normalize("bl\t0x1234 <f>", M4)]], M4)
    assert cycles == [pytest.approx(4, abs=0.05), pytest.approx(6, abs=0.05), pytest.approx(1, abs=0.05)]
    assert replaced == {}
    cycles, _ = mca_block_cycles([["add x0, x1, x2", "add x3, x4, x5", "add x6, x7, x8", "add x9, x10, x11"]], A53)
    assert cycles == [pytest.approx(2, abs=0.05)]
    # regions are timed independently: a block's cycles do not depend on its neighbours
    alone, _ = mca_block_cycles([["vfma.f32 s0, s1, s2"] * 2], M4)
    both, _ = mca_block_cycles([adds, ["vfma.f32 s0, s1, s2"] * 2], M4)
    assert alone[0] == both[1]


def test_unparseable_lines_are_timed_as_nops_and_reported():
    cycles, replaced = mca_block_cycles([["add r0, r1, r2"], ["movne r0, #2", "<unknown>", "add r0, r1, r2"]], M4)
    assert replaced == {1: 2} and len(cycles) == 2


def test_normalize_rewrites_addresses_comments_and_calls():
    assert normalize("bne\t0x4f9a <$t+0x12e>       @ imm = #-112", M4) == "bne\ttgt"
    assert normalize("ldr\tr3, [pc, #24]   @ 0x5000", M4) == "ldr\tr3, [pc, #24]"
    assert normalize("vldr\ts0, [r3, #0x10]", M4) == "vldr\ts0, [r3, #0x10]"
    assert normalize("blr\tx3", A53) == "br\tx3"
    assert normalize("adrp\tx0, 0x4a0000 <foo>", A53) == "adrp\tx0, tgt"


def test_block_counts_times_cycles_sum(tmp_path):
    blocks = [Block(0x100, 4, 10, 9), Block(0x200, 2, 1, 1)]
    assert program_cycles(blocks, {(0x100, 4): 5.0, (0x200, 2): 3.0}, taken_penalty=2.0) == 10 * 5 + 9 * 2 + 3 + 2
    # the plugin's file: a block translated twice is summed
    path = tmp_path / "run.tbs"
    path.write_text("100 108 4 6 5\n200 204 2 1 1\n100 108 4 4 4\n")
    assert read_blocks(path) == blocks


def test_elf_blocks_map_to_the_disassembly(tmp_path):
    """A tiny Thumb object through llvm-objdump: the counted block's instructions are the ones
    timed, and instructions / cycles follow the block counts."""
    src = tmp_path / "loop.s"
    src.write_text(".syntax unified\n.thumb\n.text\nloop:\nadds r0, r0, r1\nsubs r2, #1\nbne loop\nbl loop\n")
    obj = tmp_path / "loop.o"
    subprocess.run(["llvm-mc", "-triple=thumbv7em-none-eabihf", "-mcpu=cortex-m4", "-filetype=obj", "-o", str(obj),
                    str(src)], check=True)
    (instructions, cycles, replaced), = elf_cycles({"k": [Block(0, 3, 10, 9), Block(6, 1, 1, 1)]}, obj, M4).values()
    loop, call = mca_block_cycles([["adds r0, r0, r1", "subs r2, #1", "bne tgt"], ["b tgt"]], M4)[0]
    assert instructions == 31 and replaced == 0
    assert cycles == pytest.approx(10 * loop + 9 * M4.taken_penalty + call + M4.taken_penalty)


def test_fitted_scale_recovers_a_synthetic_scale():
    from autoq.cost.cycle_profile import kind_errors

    counts, rows = {}, []
    for f in (3, 4, 5):
        for kind, bits, n in (("f32", 32, 1000 * f), ("lut", 1, 1500 * f)):
            shape = (3, 8, 16, 16, f, 1, "valid")
            counts[("b", kind, bits, "ref", shape)] = n
            time = 7.5 * n * (0.9 if kind == "f32" else 1.0)   # f32 runs 10 % faster than the counts say
            rows.append(Measurement(kind, bits, "thesis", *shape[:6], shape[6], 0, time, None))
    scale, errors = kind_errors([r for r in rows if r.kind == "lut"], counts, "b")
    assert scale == pytest.approx(7.5) and errors[0].mape == pytest.approx(0, abs=1e-12)
    assert errors[0].loo_mape == pytest.approx(0, abs=1e-12)
    scale, errors = kind_errors(rows, counts, "b")
    by_kind = {e.kind: e for e in errors}
    assert by_kind["f32"].bias > 0 > by_kind["lut"].bias   # one scale: f32 over-, lut under-predicted


def test_shipped_cycle_profiles_regenerate_and_are_labelled():
    from autoq.cost.cycle_profile import board_profile, cycle_profile
    from autoq.cost.profile import list_profiles, load_profile
    from autoq.kinds import KINDS

    for target in ("m4", "a53"):   # the boards as measured: cycles x the scale fitted on the published times
        fresh, shipped = board_profile(target), load_profile(target)
        for kind in KINDS:
            assert fresh.kernels[kind].coefficients == shipped.kernels[kind].coefficients, (target, kind)
            assert "ns/cycle fitted on the 9 published" in shipped.kernels[kind].source
        assert "as measured" in shipped.notes

    shipped = load_profile("m4f80")
    assert "m4f80" in list_profiles() and set(shipped.kernels) == set(KINDS)
    fresh = cycle_profile()
    for kind in KINDS:
        assert fresh.kernels[kind].coefficients == shipped.kernels[kind].coefficients, kind
        assert shipped.kernels[kind].provenance == "derived" and "ESTIMATE" in shipped.kernels[kind].source
        assert "llvm-mca" in shipped.kernels[kind].source and "12.5 ns/cycle" in shipped.kernels[kind].source
    assert shipped.deploy == load_profile("m4").deploy and shipped.clock_hz == 80_000_000
    assert "ESTIMATE" in shipped.notes and "as measured" in load_profile("m4").board


def test_plugin_block_counts_sum_to_the_instruction_count(tmp_path):
    """The TCG plugin's per-block mode (tbs=FILE) on a small aarch64 program: executions x
    instructions summed over the blocks = the plain mode's count, and the loop's block is
    found with its trip count and taken back edges."""
    from pathlib import Path

    kdir = Path(__file__).resolve().parent.parent / "kernels"
    plugin = tmp_path / "icount_plugin.so"
    subprocess.run(["cc", "-std=c99", "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-o", str(plugin),
                    str(kdir / "tools" / "icount_plugin.c")], check=True)
    src = tmp_path / "loop.c"
    src.write_text("volatile int sink;\nint main(void) { for (int i = 0; i < 1000; i++) sink += i; return 0; }\n")
    exe = tmp_path / "loop"
    subprocess.run(["aarch64-linux-gnu-gcc", "-O1", "-static", "-o", str(exe), str(src)], check=True)

    def icount(arg: str) -> int:
        res = subprocess.run(["qemu-aarch64", "-plugin", f"{plugin}{arg}", "-d", "plugin", str(exe)],
                             capture_output=True, text=True, check=True)
        return int(re.search(r"icount (\d+)", res.stdout + res.stderr).group(1))

    tbs = tmp_path / "run.tbs"
    plain, per_block = icount(""), icount(f",tbs={tbs}")
    blocks = read_blocks(tbs)
    assert plain == per_block == sum(b.execs * b.n for b in blocks)
    assert all(0 <= b.taken <= b.execs for b in blocks)
    loop = [b for b in blocks if 999 <= b.execs <= 1000]   # the loop body, leaving by its back edge
    assert loop and max(b.taken for b in loop) >= 998, [b for b in blocks if b.execs > 500]
