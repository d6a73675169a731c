"""Kernel costs of the shipped boards from instruction (or modelled cycle) counts of autoq's kernels.

The published rows of the shipped boards (m4, a53, i5; ``autoq calibrate --counts``) time the
thesis's naive kernels, not autoq's. They only fit one ns-per-instruction scale per board
against the instruction counts of our ``ref`` kernels (same algorithm) at the same shapes
(:func:`count_scale`); every kind is then priced as that scale x the instruction counts of our
``opt`` kernels (what autoq exports) over a grid of shapes (:func:`derive_from_counts`), so f32
and the quantized kinds compare like with like. :func:`validate_counts` puts the published
times next to the predictions for our ref and opt kernels.
"""
from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autoq.cost.fit import fit_derived, round_sig, round_sig_or_none
from autoq.cost.measurements import Measurement, MeasurementFile, read_measurements, select_variant
from autoq.cost.model import layer_latency_ns
from autoq.cost.profile import HardwareProfile, KernelCost
from autoq.errors import UserError
from autoq.fileio import MAX_CSV_BYTES, read_text
from autoq.resources import resource_dir

COUNT_FIELDS = ("target", "kind", "bits", "variant", "c_in", "c_out", "h", "w", "f", "stride", "pad", "macs",
                "instructions")


def read_counts(path: str | Path, column: str = "instructions") -> dict[tuple, int]:
    """Instruction counts per kernel call (kernels/bench/results/icount_qemu.csv format):
    {(target, kind, bits, variant, shape): instructions}; ``column="cycles"`` reads the cycle
    model's file (kernels/bench/results/cycles_qemu.csv, autoq/cost/cycles.py) the same way."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"instruction-count file {str(path)!r} does not exist")
    text = read_text(path, "instruction-count CSV", MAX_CSV_BYTES)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    fields = (*COUNT_FIELDS[:-1], column)
    missing = [c for c in fields if c not in (reader.fieldnames or [])]
    if missing:
        raise UserError(f"{path}: missing column {missing[0]!r}; expected {','.join(fields)}")
    counts = {}
    for number, row in enumerate(reader, start=2):
        try:
            shape = (int(row["c_in"]), int(row["c_out"]), int(row["h"]), int(row["w"]), int(row["f"]),
                     int(row["stride"]), row["pad"].strip())
            counts[(row["target"].strip(), row["kind"].strip(), int(row["bits"]), row["variant"].strip(), shape)] = \
                int(row[column])
        except (ValueError, TypeError, AttributeError):
            raise UserError(f"{path}: data row {number - 1}: expected integers in c_in..stride, bits and "
                            f"{column}, got {str(dict(row))[:200]}") from None
    return counts


@dataclasses.dataclass
class CountScale:
    """ns per instruction of one target, fitted on the board's measured rows against the
    instruction counts of our ``variant`` kernels at the same shapes (:func:`count_scale`)."""

    ns_per_instruction: float
    mape: float
    loo_mape: float | None  # leave one filter size out
    rows: int
    kinds: list[str]
    variant: str


def count_scale(rows: Sequence[Measurement], counts: dict[tuple, int], target: str,
                variant: str = "ref", counts_path: str = "counts") -> CountScale:
    """Relative least squares s = argmin sum_i ((s * n_i - y_i) / y_i)^2 = sum(n/y) / sum((n/y)^2)
    (n_i: instructions per call of our ``variant`` kernel at measured row i's shape, y_i: the
    measured time); MAPE of s * n_i, and leave-one-filter-size-out MAPE (fit s without size f,
    predict the rows of size f)."""
    pairs = [(r, counts[(target, r.kind, r.bits, variant, r.shape)]) for r in rows
             if (target, r.kind, r.bits, variant, r.shape) in counts]
    if not pairs:
        raise UserError(f"{counts_path}: no {variant} instruction counts for target {target!r} at the "
                        f"measured shapes; cannot fit the ns-per-instruction scale")

    def fit(subset):
        ratio = np.array([n / r.time_ns for r, n in subset])
        return float(ratio.sum() / (ratio ** 2).sum())

    def err(subset, s):
        return [abs(s * n / r.time_ns - 1) for r, n in subset]

    s = fit(pairs)
    sizes = sorted({r.f for r, _ in pairs})
    loo = None
    if len(sizes) >= 2:
        held = []
        for f in sizes:
            held.extend(err([p for p in pairs if p[0].f == f], fit([p for p in pairs if p[0].f != f])))
        loo = float(np.mean(held))
    return CountScale(s, float(np.mean(err(pairs, s))), loo, len(pairs), sorted({r.kind for r, _ in pairs}), variant)


def count_points(counts: dict[tuple, int], target: str, kind: str, variant: str,
                 ns_per_instruction: float) -> list[Measurement]:
    """Derived 'measurements' of one kind: ns_per_instruction x instructions per call of our
    ``variant`` kernel at every counted shape and bit width."""
    points = [Measurement(kind, b, variant, *shape[:6], shape[6], 0, ns_per_instruction * n, None)
              for (t, k, b, v, shape), n in counts.items() if t == target and k == kind and v == variant]
    return [dataclasses.replace(p, macs=p.entry().macs) for p in points]


def counter_name(target: str) -> str:
    return "callgrind (x86-64 build)" if target == "i5" else "QEMU"


def derive_from_counts(rows: Sequence[Measurement], counts: dict[tuple, int], target: str, kinds: Sequence[str],
                       word_bits: int, counts_path: str, scale_variant: str = "ref",
                       deploy_variant: str = "opt") -> dict[str, KernelCost]:
    """Latency of ``kinds`` on a board from instruction counts of autoq's kernels.

    One scale factor per target, s [ns per instruction], is fitted (:func:`count_scale`) between
    the board's measured rows and the instruction counts of our ``scale_variant`` kernels
    (``ref``: the thesis's plain loop nest, the algorithm the board ran) at the same shapes.
    Derived time of kind k at a counted shape = s * instructions of our ``deploy_variant`` kernel
    (the kernels autoq exports); the kind's coefficients are fitted to those points as a
    measurement would be (weighted NNLS, as :func:`fit_kernels`). fit.mape = MAPE of the scale +
    MAPE of the coefficients on the derived points; fit.loo_mape = the scale's
    leave-one-filter-size-out MAPE + the coefficients' leave-one-shape-out MAPE. Assumes one
    cycles-per-instruction for all kernels of a target."""
    scale = count_scale(rows, counts, target, scale_variant, counts_path)
    s = scale.ns_per_instruction
    result = {}
    for kind in kinds:
        points = count_points(counts, target, kind, deploy_variant, s)
        if not points:
            continue
        names, block, coeffs, coef_err, coef_loo = fit_derived(points, word_bits)
        n_shapes = len({p.shape for p in points})
        loo_text = "n/a" if scale.loo_mape is None else f"{scale.loo_mape:.1%}"
        source = (f"ESTIMATE: instructions per call of autoq's {deploy_variant} {kind} kernel under "
                  f"{counter_name(target)} ({counts_path}, {n_shapes} shapes, bits "
                  f"{sorted({p.bits for p in points})}) x {s:.4g} ns/instruction; that board scale is fitted on "
                  f"the {scale.rows} published {'/'.join(scale.kinds)} board times (variant {rows[0].variant}) "
                  f"against the counts of our {scale_variant} kernels (the thesis algorithm) at the same shapes: "
                  f"MAPE {scale.mape:.1%}, leave-one-filter-size-out {loo_text}; one cycles-per-instruction for "
                  f"every kernel is assumed; coefficients {', '.join(names)} (c_out block {block}) fitted to the "
                  f"derived points (MAPE {coef_err:.1%}); fit.mape / fit.loo_mape = scale error + coefficient error")
        loo = None if scale.loo_mape is None or coef_loo is None else scale.loo_mape + coef_loo
        result[kind] = KernelCost(coefficients={k: round_sig(v) for k, v in coeffs.items()}, provenance="derived",
                                  source=source, points=len(points), mape=round_sig(scale.mape + coef_err, 4),
                                  loo_mape=round_sig_or_none(loo, 4), c_out_block=block)
    return result


@dataclasses.dataclass
class ValidationRow:
    """One published board time next to what the count-derived model says about it."""

    kind: str
    bits: int
    f: int
    published_ms: float
    ref_ms: float       # s x instructions of our ref kernel (the scale's fit: validation)
    opt_ms: float       # the profile's prediction for the layer (our opt kernel: what autoq prices)


def validate_counts(profile: HardwareProfile, mfile: MeasurementFile, counts: dict[tuple, int],
                    variant: str | None = None) -> tuple[CountScale, list[ValidationRow]]:
    """Published thesis-kernel times, the scale's prediction for our ref kernel and the profile's
    prediction (our opt kernel) at each measured shape."""
    rows = select_variant(mfile.rows, variant, profile.id)
    scale = count_scale(rows, counts, profile.id)
    out = []
    for r in rows:
        key = (profile.id, r.kind, r.bits, "ref", r.shape)
        if key not in counts or r.kind not in profile.kernels:
            continue
        out.append(ValidationRow(r.kind, r.bits, r.f, r.time_ns / 1e6, scale.ns_per_instruction * counts[key] / 1e6,
                                 layer_latency_ns(r.entry(), profile) / 1e6))
    return scale, out


def priced_by_cycles(profile: HardwareProfile) -> bool:
    """Whether the profile was built by autoq.cost.cycle_profile (ns per modelled cycle, the
    shipped m4/a53/m4f80) rather than from instruction counts."""
    return any("ns/cycle" in k.source for k in profile.kernels.values())


def shipped_validation(profile: HardwareProfile) -> tuple[CountScale, list[ValidationRow]] | None:
    """:func:`validate_counts` with the shipped measurement CSV and instruction counts, or None
    when either is missing or the profile was not derived from counts."""
    cycles = priced_by_cycles(profile)
    try:
        mpath = resource_dir("hw_models") / "measurements" / f"{profile.id}.csv"
        cpath = resource_dir("kernels") / "bench" / "results" / ("cycles_qemu.csv" if cycles else "icount_qemu.csv")
    except (FileNotFoundError, ValueError):
        return None
    if not (mpath.is_file() and cpath.is_file()) or not all(k.provenance == "derived" for k in profile.kernels.values()):
        return None
    counts = read_counts(cpath, column="cycles" if cycles else "instructions")
    if not any(key[0] == profile.id for key in counts):
        return None
    return validate_counts(profile, read_measurements(mpath), counts)
