"""Board scales and profiles from the cycle model (autoq/cost/cycles.py).

- :func:`kind_errors`: one scale per board (ns per instruction, or per modelled cycle) fitted on
  the published board times against our ``ref`` kernels' counts (the fit of
  :func:`autoq.cost.counts.count_scale`), and per measured kind its signed mean error, MAPE
  and leave-one-filter-size-out MAPE (the scale refitted without that filter size).
- :func:`cycle_profile`: a profile whose every kind prices our ``opt`` kernels as modelled
  cycles x a fixed ns per cycle (the nominal clock): the ``m4f80`` profile (a Cortex-M4F at
  80 MHz, an estimate, next to ``m4``, the thesis's board as measured).

- :func:`board_profile`: the shipped boards m4 and a53 as measured: modelled cycles x one
  ns/cycle scale fitted on the board's published times.

Regenerate (after ``benchmarks/count_kernel_instructions.py --targets m4,a53 --cycles --csv
kernels/bench/results/cycles_qemu.csv``): ``python -m autoq.cost.cycle_profile`` (writes
hw_models/m4.yaml, a53.yaml and m4f80.yaml).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autoq.cost.counts import count_points, count_scale, read_counts
from autoq.cost.cycles import ARCHS
from autoq.cost.fit import fit_derived
from autoq.cost.measurements import Measurement, read_measurements, select_variant
from autoq.cost.profile import HardwareProfile, KernelCost, load_profile
from autoq.kinds import KINDS

CYCLES_CSV = "kernels/bench/results/cycles_qemu.csv"


@dataclasses.dataclass
class KindError:
    kind: str
    bits: int
    rows: int
    bias: float            # mean of (predicted - published) / published
    mape: float
    loo_mape: float | None  # scale fitted without the row's filter size


def kind_errors(rows: Sequence[Measurement], counts: dict[tuple, int], target: str,
                variant: str = "ref") -> tuple[float, list[KindError]]:
    """The board scale fitted on all ``rows`` and its errors per (kind, bits)."""
    scale = count_scale(rows, counts, target, variant).ns_per_instruction
    sizes = sorted({r.f for r in rows})
    held = {f: count_scale([r for r in rows if r.f != f], counts, target, variant).ns_per_instruction
            for f in sizes} if len(sizes) >= 2 else {}
    out = []
    for kind, bits in dict.fromkeys((r.kind, r.bits) for r in rows):
        pairs = [(r, counts[(target, kind, bits, variant, r.shape)]) for r in rows
                 if (r.kind, r.bits) == (kind, bits) and (target, kind, bits, variant, r.shape) in counts]
        if not pairs:
            continue
        err = np.array([scale * n / r.time_ns - 1 for r, n in pairs])
        loo = [abs(held[r.f] * n / r.time_ns - 1) for r, n in pairs] if held else None
        out.append(KindError(kind, bits, len(pairs), float(err.mean()), float(np.abs(err).mean()),
                             None if loo is None else float(np.mean(loo))))
    return scale, out


def label(e: KindError) -> str:
    return e.kind if e.kind == "f32" else f"{e.kind}{e.bits}"


def scaled_kernels(cycles: dict[tuple, int], target: str, ns_per_cycle: float, word_bits: int, what: str,
                   scale_mape: float = 0.0, scale_loo: float | None = 0.0) -> dict[str, KernelCost]:
    """Every kind: coefficients fitted to ns_per_cycle x modelled cycles of our opt kernel at the
    counted shapes (weighted NNLS as for a measurement). fit.mape = ``scale_mape`` + the
    coefficients' MAPE, fit.loo_mape = ``scale_loo`` + their leave-one-shape-out MAPE."""
    result = {}
    for kind in KINDS:
        points = count_points(cycles, target, kind, "opt", ns_per_cycle)
        if not points:
            continue
        names, block, coeffs, err, loo = fit_derived(points, word_bits)
        source = (f"ESTIMATE: {what}; autoq's opt {kind} kernel at {len({p.shape for p in points})} shapes, bits "
                  f"{sorted({p.bits for p in points})}; coefficients {', '.join(names)} (c_out block {block}) "
                  f"fitted to those points (MAPE {err:.1%}); fit.mape / fit.loo_mape = scale error + coefficient error")
        total_loo = None if loo is None or scale_loo is None else scale_loo + loo
        result[kind] = KernelCost(coefficients={k: float(f"{v:.6g}") for k, v in coeffs.items()},
                                  provenance="derived", source=source, points=len(points),
                                  mape=float(f"{scale_mape + err:.4g}"),
                                  loo_mape=None if total_loo is None else float(f"{total_loo:.4g}"),
                                  c_out_block=block)
    return result


def resolve(path: str | Path) -> Path:
    """``kernels/...`` (the shipped file's name in the profiles' text) from any working folder."""
    from autoq.resources import resource_dir

    path = Path(path)
    if path.is_absolute() or path.exists() or path.parts[:1] != ("kernels",):
        return path
    return resource_dir("kernels").joinpath(*path.parts[1:])


def model_text(target: str, cycles_path: str | Path) -> str:
    """What the counts are; the llvm version is the one the CSV was generated with (its header)."""
    import re

    arch = ARCHS[target]
    version = re.search(r"llvm-mca ([\w.]+)", resolve(cycles_path).read_text(errors="replace")[:2000])
    return (f"cycles per call modelled in {cycles_path} (QEMU per-block execution counts x llvm-mca "
            f"{version.group(1) if version else '(version not recorded)'} -mcpu={arch.cpu} cycles per block + "
            f"{arch.taken_penalty:g} per taken branch)")


def published_rows(target: str, measurements: str | Path | None = None) -> list[Measurement]:
    from autoq.resources import resource_dir

    path = measurements or resource_dir("hw_models") / "measurements" / f"{target}.csv"
    return select_variant(read_measurements(path).rows, "thesis", str(path))


def errors_text(errors: Sequence[KindError]) -> str:
    return ", ".join(f"{label(e)} bias {e.bias:+.1%} MAPE {e.mape:.1%} LOO {e.loo_mape:.1%}"
                     if e.loo_mape is not None else f"{label(e)} bias {e.bias:+.1%} MAPE {e.mape:.1%}" for e in errors)


def board_profile(target: str, cycles_path: str | Path = CYCLES_CSV) -> HardwareProfile:
    """A shipped board (m4, a53) as measured: every kind = modelled cycles of our opt kernels x
    one ns/cycle scale fitted on the board's published times against our ref kernels' cycles.
    Board facts and the deploy section are kept from the existing profile."""
    board = load_profile(target)
    cycles = read_counts(resolve(cycles_path), column="cycles")
    rows = published_rows(target)
    scale = count_scale(rows, cycles, target, "ref", str(cycles_path))
    _, errors = kind_errors(rows, cycles, target)
    fitted = (f"x {scale.ns_per_instruction:.4g} ns/cycle fitted on the {scale.rows} published "
              f"{'/'.join(scale.kinds)} board times (variant thesis) against our ref kernels' (the thesis algorithm) "
              f"modelled cycles at the same shapes: MAPE {scale.mape:.1%}, leave-one-filter-size-out "
              f"{scale.loo_mape:.1%}; per kind {errors_text(errors)}")
    what = f"{model_text(target, cycles_path)} {fitted}"
    kernels = scaled_kernels(cycles, target, scale.ns_per_instruction, board.word_bits, what, scale.mape,
                             scale.loo_mape)
    notes = (f"the thesis's board as measured: fitted by autoq.cost.cycle_profile from hw_models/measurements/"
             f"{target}.csv and {cycles_path}: every kind prices autoq's opt kernels = modelled cycles x "
             f"{scale.ns_per_instruction:.4g} ns/cycle ({1e9 / board.clock_hz:.4g} ns at the nominal clock: the "
             f"published times are {scale.ns_per_instruction * board.clock_hz / 1e9:.2f}x the model there); "
             f"scale MAPE {scale.mape:.1%}, leave-one-filter-size-out {scale.loo_mape:.1%}; estimates")
    return dataclasses.replace(board, kernels=kernels, notes=notes, path=None)


def cycle_profile(profile_id: str = "m4f80", base: str = "m4", cycles_path: str | Path = CYCLES_CSV) -> HardwareProfile:
    """``base``'s core at its nominal clock priced by the cycle model (no wait states, no
    measured scale); the notes give what the thesis's board measures against the same model."""
    board = load_profile(base)
    cycles = read_counts(resolve(cycles_path), column="cycles")
    mhz = board.clock_hz / 1e6
    ns = 1e3 / mhz
    what = f"{model_text(base, cycles_path)} x {ns:.4g} ns/cycle ({mhz:g} MHz nominal clock; no flash wait states, " \
           f"no measured scale)"
    scale, errors = kind_errors(published_rows(base), cycles, base)
    return HardwareProfile(
        id=profile_id, board=f"{board.cpu} at its nominal {mhz:g} MHz (cycle-model estimate; {base} memory)",
        cpu=board.cpu, clock_hz=board.clock_hz, word_bits=board.word_bits, memory=dict(board.memory),
        overhead_ns=0.0, kernels=scaled_kernels(cycles, base, ns, board.word_bits, what),
        notes=(f"ESTIMATE, not measured: every kind = autoq's opt kernels' modelled cycles (autoq/cost/cycles.py) "
               f"at {mhz:g} MHz; the thesis's board (profile {base!r}, its published default-optimisation times "
               f"of the thesis's kernels vs our ref kernels' cycles) runs {scale / ns:.2f}x slower than this model "
               f"({errors_text(errors)}); deploy section copied from {base!r} (same core and build)"),
        deploy=board.deploy)


def main() -> None:
    from autoq.cost.profile import dump_profile, profiles_dir

    for profile in (board_profile("m4"), board_profile("a53"), cycle_profile()):
        print(f"wrote {dump_profile(profile, profiles_dir() / f'{profile.id}.yaml')}")


if __name__ == "__main__":
    main()
