"""Cycle model for the ARM boards: llvm-mca cycles per executed basic block x its executions.

QEMU's TCG plugin (kernels/tools/icount_plugin.c, argument ``tbs=FILE``) writes one line per
translated block: start pc, end, instructions, executions, and how often its closing branch was
taken. Each block's instructions are read from the ELF's disassembly (llvm-objdump) and timed by
llvm-mca's in-order scheduling model of the core (Cortex-M4 / Cortex-A53), as the steady-state
cycles per iteration of the block run back to back (``ITERATIONS``). A program's cycles =
sum over blocks of executions x block cycles + taken branches x the core's refill penalty
(llvm-mca does not model branches). Calls are timed as plain branches (llvm-mca would charge a
call 100 cycles). Not modelled: flash wait states, cache misses (A53), interrupts.

- :func:`program_cycles` the arithmetic; :func:`mca_block_cycles` one llvm-mca run for many
  blocks (one code region each); :func:`elf_cycles` the two together for a plugin output.
- The board scales and profiles built on these counts: autoq/cost/cycle_profile.py. The
  counts themselves: benchmarks/count_kernel_instructions.py --cycles.
"""
from __future__ import annotations

import bisect
import dataclasses
import re
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

MCA = "llvm-mca"
OBJDUMP = "llvm-objdump"
ITERATIONS = 100


@dataclasses.dataclass(frozen=True)
class Arch:
    triple: str
    cpu: str
    header: str            # assembler directives before the blocks
    comment: str           # llvm-objdump's comment marker for this architecture
    taken_penalty: float   # cycles per taken branch (pipeline refill), an assumption
    calls: tuple           # (call mnemonic, branch mnemonic) rewrites


# Cortex-M4 TRM: a taken branch costs 1 + P cycles, P = 1..3 (refill; 2 used); llvm-mca charges the 1.
# Cortex-A53: predicted taken branches cost about one fetch bubble.
ARCHS = {
    "m4": Arch("thumbv7em-none-eabihf", "cortex-m4", ".syntax unified\n.thumb\n", "@", 2.0,
               (("bl", "b"), ("blx", "bx"))),
    "a53": Arch("aarch64", "cortex-a53", "", "//", 1.0, (("bl", "b"), ("blr", "br"))),
}


@dataclasses.dataclass(frozen=True)
class Block:
    pc: int
    n: int          # instructions
    execs: int
    taken: int      # executions that left through a taken branch


def read_blocks(path: str | Path) -> list[Block]:
    """The plugin's ``tbs=`` file; a block translated more than once is summed."""
    merged: dict[tuple[int, int], list[int]] = {}
    for line in Path(path).read_text().splitlines():
        pc, _end, n, execs, taken = line.split()
        acc = merged.setdefault((int(pc, 16), int(n)), [0, 0])
        acc[0] += int(execs)
        acc[1] += int(taken)
    return [Block(pc, n, e, t) for (pc, n), (e, t) in sorted(merged.items())]


def program_cycles(blocks: Iterable[Block], cycles: dict[tuple[int, int], float], taken_penalty: float) -> float:
    """sum executions x cycles of the block + taken branches x penalty."""
    return sum(b.execs * cycles[(b.pc, b.n)] + b.taken * taken_penalty for b in blocks)


_ADDR = re.compile(r"(?<![#\w])0x[0-9a-f]+(\s*<[^>]*>)?")


def normalize(text: str, arch: Arch) -> str:
    """One llvm-objdump instruction as llvm-mc input: comment dropped, absolute addresses
    (branch / literal / adrp targets) replaced by a label, calls by branches."""
    text = text.split(arch.comment, 1)[0].strip()
    text = _ADDR.sub("tgt", text)
    mnemonic, _, rest = text.partition("\t" if "\t" in text else " ")
    for call, branch in arch.calls:
        if mnemonic == call:
            mnemonic = branch
    return f"{mnemonic}\t{rest.strip()}".strip()


class Disassembly:
    """Instructions of an ELF by address (llvm-objdump -d)."""

    def __init__(self, elf: str | Path, arch: Arch):
        out = subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn", f"--triple={arch.triple}", f"--mcpu={arch.cpu}",
                              str(elf)], capture_output=True, text=True, check=True).stdout
        rows = {}
        for line in out.splitlines():
            m = re.match(r"\s+([0-9a-f]+):\s+(.+)$", line)
            if m:
                rows[int(m.group(1), 16)] = m.group(2).strip()
        self.addrs = sorted(rows)
        self.text = [rows[a] for a in self.addrs]
        self.arch = arch

    def block(self, pc: int, n: int) -> list[str]:
        i = bisect.bisect_left(self.addrs, pc)
        if i == len(self.addrs) or self.addrs[i] != pc:
            raise ValueError(f"no instruction at {pc:#x} in the disassembly")
        return [normalize(t, self.arch) for t in self.text[i:i + n]]


def mca_block_cycles(blocks: Sequence[Sequence[str]], arch: Arch, iterations: int = ITERATIONS,
                     mca: str = MCA) -> tuple[list[float], dict[int, int]]:
    """Cycles per execution of each block (one llvm-mca code region each) and, per block index,
    how many of its lines llvm-mc could not parse (an IT block cut by a block boundary, data
    words, instructions llvm-objdump could not decode): each is timed as a nop (reported)."""
    lines, owner = arch.header.splitlines(), {}   # one entry per physical line
    for i, block in enumerate(blocks):
        lines.append(f"# LLVM-MCA-BEGIN b{i}")
        owner.update({len(lines) + j: i for j in range(len(block))})
        lines += [*block, "# LLVM-MCA-END"]
    lines.append("tgt:")
    replaced: set[int] = set()
    cmd = [mca, f"-mtriple={arch.triple}", f"-mcpu={arch.cpu}", f"-iterations={iterations}", "-summary-view",
           "-instruction-info=0", "-resource-pressure=0", "-"]
    for _ in range(5):
        res = subprocess.run(cmd, input="\n".join(lines) + "\n", capture_output=True, text=True, check=False)
        bad = {int(m.group(1)) - 1: m.group(2) for m in re.finditer(r"<stdin>:(\d+):\d+: error: (.*)", res.stderr)}
        if res.returncode == 0 and not bad:
            cycles = [int(c) / iterations for c in re.findall(r"Total Cycles:\s+(\d+)", res.stdout)]
            if len(cycles) != len(blocks):
                raise RuntimeError(f"llvm-mca reported {len(cycles)} regions for {len(blocks)} blocks")
            per_block: dict[int, int] = {}
            for index in replaced:
                per_block[owner[index]] = per_block.get(owner[index], 0) + 1
            return cycles, per_block
        if not bad or not bad.keys() <= owner.keys():
            raise RuntimeError(f"llvm-mca failed ({res.returncode}): {res.stderr[-2000:]}")
        for index, message in bad.items():
            cond = re.search(r"expected '(\w\w)'", message)   # inside an IT block: a nop of its condition
            lines[index] = f"nop{cond.group(1) if cond and 'IT block' in message else ''}"
            replaced.add(index)
    context = "; ".join(f"{i + 1}: {lines[max(i - 3, 0):i + 2]}" for i in sorted(bad)[:3])
    raise RuntimeError(f"llvm-mca still fails after replacing {len(replaced)} lines: {res.stderr[-1500:]} ({context})")


def mca_version(mca: str = MCA) -> str:
    out = subprocess.run([mca, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"LLVM version ([\w.]+)", out)
    return m.group(1) if m else out.strip().splitlines()[0]


def elf_cycles(runs: dict, elf: str | Path, arch: Arch) -> dict:
    """Instructions, cycles and nop-timed lines executed (see :func:`mca_block_cycles`) of
    several plugin outputs of one ELF ({key: [Block]}), one llvm-mca run for the union of their
    blocks: {key: (instructions, cycles, replaced)}."""
    dis = Disassembly(elf, arch)
    keys = sorted({(b.pc, b.n) for blocks in runs.values() for b in blocks})
    cycles, replaced = mca_block_cycles([dis.block(pc, n) for pc, n in keys], arch)
    per_block = dict(zip(keys, cycles))
    bad = {keys[i]: count for i, count in replaced.items()}
    return {k: (sum(b.execs * b.n for b in blocks), program_cycles(blocks, per_block, arch.taken_penalty),
                sum(b.execs * bad.get((b.pc, b.n), 0) for b in blocks)) for k, blocks in runs.items()}
