"""Turn kernel measurements into a hardware profile.

- :func:`profile_from_measurements`: fit every kind present in a measurement CSV (the user's
  board, or the host bench) with weighted NNLS (autoq.cost.fit); kinds the CSV lacks are
  *derived* from a base profile: ``c_k = s * c_k(base)`` with one scale factor ``s`` per
  target, fitted on the rows of the kinds both have::

      s = argmin_s sum_i ((s * p_i - y_i) / y_i)^2 = sum_i (p_i / y_i) / sum_i (p_i / y_i)^2

  (p_i: the base profile's prediction for measured row i, y_i: the measured time). The
  derived kinds keep the base's ratio between kinds; that is an estimate and is labelled
  provenance ``derived`` with the scale and its fit error in the source text. With
  instruction counts of the target (the shipped boards m4, a53, i5), every kind is priced from
  the counts instead (autoq.cost.counts).
- :func:`calibrate_host`: run the kernel bench on this machine over a grid of shapes
  (autoq.cost.bench), then fit as above (provenance ``measured-host``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autoq.cost.board_facts import board_facts, host_facts
from autoq.cost.counts import count_scale, counter_name, derive_from_counts, read_counts
from autoq.cost.fit import choose_coefficients, fit_best_block, leave_group_out_mape, mape, round_sig, \
    round_sig_or_none
from autoq.cost.measurements import (Measurement, MeasurementFile, read_measurements, select_variant,
                                     write_measurements)
from autoq.cost.model import layer_latency_ns
from autoq.cost.profile import HardwareProfile, KernelCost, load_profile, profiles_dir
from autoq.errors import UserError
from autoq.kinds import KINDS

if TYPE_CHECKING:
    from autoq.cost.bench import ProgressFn

log = logging.getLogger(__name__)


def fit_kernels(rows: Sequence[Measurement], word_bits: int, provenance: str, source: str) -> dict[str, KernelCost]:
    """One KernelCost per kind in ``rows`` (weighted NNLS, MAPE and leave-one-shape-out MAPE)."""
    result = {}
    for kind in KINDS:
        kind_rows = [r for r in rows if r.kind == kind]
        if not kind_rows:
            continue
        names = choose_coefficients(kind_rows, repack=True)
        block, coeffs = fit_best_block(kind_rows, names, word_bits)
        bits = sorted({r.bits for r in kind_rows})
        n_shapes = len({r.shape for r in kind_rows})
        text = (f"{source}; {len(kind_rows)} rows ({n_shapes} shapes, bits {bits}, variant "
                f"{kind_rows[0].variant}); weighted NNLS on {', '.join(names)}, c_out block {block}")
        result[kind] = KernelCost(
            coefficients={k: round_sig(v) for k, v in coeffs.items()}, provenance=provenance, source=text,
            points=len(kind_rows), mape=round_sig(mape(kind_rows, coeffs, word_bits, block), 4),
            loo_mape=round_sig_or_none(leave_group_out_mape(kind_rows, names, word_bits, block=block), 4),
            c_out_block=block)
    return result


def scale_factor(rows: Sequence[Measurement], base: HardwareProfile) -> tuple[float, float]:
    """Least-relative-squares scale s of ``base``'s predictions to ``rows`` and the MAPE of s*p."""
    usable = [r for r in rows if r.kind in base.kernels]
    if not usable:
        raise UserError(f"base profile {base.id!r} has none of the measured kinds "
                        f"({', '.join(sorted({r.kind for r in rows}))}); cannot fit a scale factor")
    p = np.array([layer_latency_ns(r.entry(), base) for r in usable])
    y = np.array([r.time_ns for r in usable])
    ratio = p / y
    s = float(ratio.sum() / (ratio ** 2).sum())
    return s, float(np.mean(np.abs(s * p - y) / y))


def derive_kinds(rows: Sequence[Measurement], base: HardwareProfile, kinds: Sequence[str]) -> dict[str, KernelCost]:
    """Coefficients for ``kinds`` = scale factor x the base profile's (provenance derived)."""
    s, err = scale_factor(rows, base)
    fitted_on = sorted({r.kind for r in rows if r.kind in base.kernels})
    result = {}
    for kind in kinds:
        if kind not in base.kernels:
            continue
        b = base.kernels[kind]
        origin = f", {base.notes}" if base.notes and base.notes.startswith("fitted from") else ""
        source = (f"ESTIMATE: base profile {base.id!r} ({base.cpu}{origin}) coefficients for {kind} x scale "
                  f"{s:.4g}; the scale is fitted on {len(rows)} measured rows of kinds {', '.join(fitted_on)} "
                  f"(MAPE {err:.1%} of the scaled base against them); assumes {kind} relates to "
                  f"{'/'.join(fitted_on)} as on the base machine; fit.mape = this MAPE + the base fit's. "
                  f"Base {kind}: {b.provenance}, {b.source}")
        result[kind] = KernelCost(coefficients={k: round_sig(v * s) for k, v in b.coefficients.items()},
                                  provenance="derived", source=source, points=len(rows),
                                  mape=round_sig(err + (b.mape or 0.0), 4), c_out_block=b.c_out_block)
    return result


def profile_from_measurements(mfile: MeasurementFile, target: str, *, source: str,
                              base: HardwareProfile | str | None = None, variant: str | None = None,
                              provenance: str | None = None, counts: str | Path | None = None) -> HardwareProfile:
    """Fit a profile for ``target`` from a measurement file.

    - With instruction ``counts`` covering ``target`` (the shipped boards, whose published rows
      time the thesis's kernels, not ours): the rows only calibrate the ns-per-instruction scale
      (against our ``ref`` kernels, or the measured variant when the counts have it) and EVERY
      kind is priced from our ``opt`` kernels' counts x that scale (:func:`derive_from_counts`,
      provenance ``derived``), so all kinds price the same kernel family, the one autoq exports.
    - Otherwise (a user's board or the host measuring autoq's own kernels): the measured kinds
      are fitted directly (provenance measured-board / measured-host) and the kinds the CSV
      lacks are derived from ``base`` (:func:`derive_kinds`), if given.

    Board facts (board, cpu, clock_hz, word_bits, memory) come from the CSV's ``# key: value``
    comments, else from an existing profile named ``target``, else from ``base``.
    """
    rows = select_variant(mfile.rows, variant, source)
    base_profile = load_base(base) if base is not None else None
    existing = load_profile(target) if (profiles_dir() / f"{target}.yaml").is_file() else None
    facts = board_facts(mfile.meta, target, existing, base_profile, source)
    provenance = provenance or ("measured-host" if target == "host" else "measured-board")
    counted = read_counts(counts) if counts is not None else {}
    if counts is not None and any(key[0] == target for key in counted):
        kernels, notes = _kernels_from_counts(rows, counted, target, facts["word_bits"], str(counts), source)
    else:
        if counts is not None:
            log.warning("%s has no instruction counts for target %r; fitting the measured kinds directly", counts, target)
        kernels, notes = _kernels_from_rows(rows, base_profile, facts["word_bits"], provenance,
                                            mfile.meta.get("source", source), source)
    absent = [k for k in KINDS if k not in kernels]
    if absent:
        notes += f"; no coefficients for {', '.join(absent)} (give --base or --counts to derive them)"
    return HardwareProfile(id=target, board=facts["board"], cpu=facts["cpu"], clock_hz=facts["clock_hz"],
                           word_bits=facts["word_bits"], memory=facts["memory"],
                           overhead_ns=facts["overhead_ns"], kernels={k: kernels[k] for k in KINDS if k in kernels},
                           notes=notes, **({"deploy": facts["deploy"]} if facts["deploy"] else {}))


def _kernels_from_counts(rows: Sequence[Measurement], counted: dict[tuple, int], target: str, word_bits: int,
                         counts: str, source: str) -> tuple[dict[str, KernelCost], str]:
    """Every kind priced from the counts of our opt kernels (autoq.cost.counts), and the notes."""
    measured_variant = rows[0].variant
    scale_variant = measured_variant if any(k[0] == target and k[3] == measured_variant for k in counted) else "ref"
    kernels = derive_from_counts(rows, counted, target, KINDS, word_bits, counts, scale_variant=scale_variant)
    scale = count_scale(rows, counted, target, scale_variant, counts)
    notes = (f"fitted by autoq calibrate from {source} (variant {measured_variant}) and {counts}: every kind "
             f"prices autoq's opt kernels = {counter_name(target)} instruction counts x "
             f"{scale.ns_per_instruction:.4g} ns/instruction; the scale is fitted on the {scale.rows} measured "
             f"{'/'.join(scale.kinds)} times against our {scale_variant} kernels' counts at the same shapes "
             f"(MAPE {scale.mape:.1%}, leave-one-filter-size-out "
             f"{'n/a' if scale.loo_mape is None else f'{scale.loo_mape:.1%}'}); estimates")
    return kernels, notes


def _kernels_from_rows(rows: Sequence[Measurement], base_profile: HardwareProfile | None, word_bits: int,
                       provenance: str, label: str, source: str) -> tuple[dict[str, KernelCost], str]:
    """The measured kinds fitted on ``rows``, the others derived from ``base_profile``, and the notes."""
    kernels = fit_kernels(rows, word_bits, provenance, label)
    missing = [k for k in KINDS if k not in kernels]
    derived_from = None
    if missing and base_profile is not None:
        kernels.update(derive_kinds(rows, base_profile, missing))
        derived_from = f"base {base_profile.id!r}"
    notes = (f"fitted by autoq calibrate from {source} (variant {rows[0].variant}); kinds "
             f"{', '.join(k for k in KINDS if k in kernels and kernels[k].provenance != 'derived')} measured")
    derived = [k for k in KINDS if k in kernels and kernels[k].provenance == "derived"]
    if derived:
        notes += f"; {', '.join(derived)} derived from {derived_from} (estimates)"
    return kernels, notes


def load_base(base: HardwareProfile | str | Path) -> HardwareProfile:
    """A base profile: a profile id / .yaml, or a measurement .csv fitted on the spot (its 'opt'
    rows if it has any, else its first row's variant)."""
    if isinstance(base, HardwareProfile) or not str(base).endswith(".csv"):
        return load_profile(base)
    mfile = read_measurements(base)
    variant = "opt" if any(r.variant == "opt" for r in mfile.rows) else None
    profile = profile_from_measurements(mfile, Path(base).stem, source=str(base), variant=variant,
                                        provenance=mfile.meta.get("provenance") or "measured-host")
    profile.notes = f"fitted from {base}"
    return profile


def calibrate_from_csv(csv_path: str | Path, target: str, base: str | None = None,
                       variant: str | None = None, counts: str | None = None) -> HardwareProfile:
    """``autoq calibrate --from-csv``: read, fit, derive; the caller writes the profile."""
    mfile = read_measurements(csv_path)
    return profile_from_measurements(mfile, target, source=str(csv_path), base=base, variant=variant,
                                     counts=counts)


def calibrate_host(variant: str = "opt", quick: bool = False, save_csv: str | Path | None = None,
                   base: str | None = None, progress: ProgressFn | None = None,
                   reps: int | None = None, ops: bool = True) -> HardwareProfile:
    """``autoq calibrate --target host``: bench the grid here, fit every kind, return the profile;
    ``ops``: also time the non-kernel ops in exported C programs (autoq.cost.calibrate_ops)."""
    from autoq.cost.bench import calibration_grid, measure_host  # the C kernels: only to measure

    facts = host_facts()
    shapes = calibration_grid(quick)
    rows = measure_host(shapes, reps or (3 if quick else 20), rounds=1 if quick else 3, progress=progress,
                        variant=variant)
    profile = host_profile(rows, f"autoq.kernels bench ({variant} kernels) on {facts['cpu']} ({len(shapes)} grid "
                                 f"shapes, min over {1 if quick else 3} passes)", variant, base, save_csv)
    if ops:
        from autoq.cost.calibrate_ops import calibrate_ops

        profile.ops = calibrate_ops(quick=quick)
    return profile


def host_profile(rows: Sequence[Measurement], what: str, variant: str = "opt", base: str | None = None,
                 save_csv: str | Path | None = None) -> HardwareProfile:
    """The host profile fitted on bench rows of this machine (``what``: how they were measured)."""
    facts = host_facts()
    meta = {"source": f"autoq calibrate --target host: {what}",
            "board": facts["board"], "cpu": facts["cpu"], "clock_hz": str(facts["clock_hz"]),
            "word_bits": str(facts["word_bits"]), "ram_bytes": str(facts["memory"]["ram_bytes"]),
            "storage_bytes": str(facts["memory"]["storage_bytes"])}
    comments = [f"{k}: {v}" for k, v in meta.items()]
    if save_csv:
        write_measurements(save_csv, rows, comments)
    mfile = MeasurementFile(rows=list(rows), meta=meta, comments=comments)
    return profile_from_measurements(mfile, "host", source="autoq calibrate --target host", base=base,
                                     variant=variant, provenance="measured-host")
