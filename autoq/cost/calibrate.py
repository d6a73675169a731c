"""Turn kernel measurements into a hardware profile.

- :func:`profile_from_measurements`: fit every kind present in a measurement CSV (the user's
  board, or the host bench) with weighted NNLS (autoq.cost.fit); kinds the CSV lacks are
  *derived* from a base profile: ``c_k = s * c_k(base)`` with one scale factor ``s`` per
  target, fitted on the rows of the kinds both have::

      s = argmin_s sum_i ((s * p_i - y_i) / y_i)^2 = sum_i (p_i / y_i) / sum_i (p_i / y_i)^2

  (p_i: the base profile's prediction for measured row i, y_i: the measured time). The
  derived kinds keep the base's ratio between kinds; that is an estimate and is labelled
  provenance ``derived`` with the scale and its fit error in the source text.
- :func:`calibrate_host`: run the kernel bench on this machine over a grid of shapes, then
  fit as above (provenance ``measured-host``).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from autoq.cost.fit import choose_coefficients, fit_best_block, fit_coefficients, leave_group_out_mape, mape
from autoq.cost.measurements import Measurement, MeasurementFile, read_measurements
from autoq.cost.model import layer_latency_ns
from autoq.cost.profile import HardwareProfile, KernelCost, load_profile, profiles_dir
from autoq.errors import UserError
from autoq.plan import KINDS

log = logging.getLogger(__name__)


def select_variant(rows: Sequence[Measurement], variant: str | None, source: str) -> list[Measurement]:
    """Rows of one kernel variant: ``variant`` or, if None, the variant of the first row."""
    chosen = rows[0].variant if variant is None else variant
    picked = [r for r in rows if r.variant == chosen]
    if not picked:
        known = sorted({r.variant for r in rows})
        raise UserError(f"{source}: no rows of variant {chosen!r}; variants in the file: {', '.join(known)}")
    return picked


def fit_kernels(rows: Sequence[Measurement], word_bits: int, provenance: str, source: str) -> dict[str, KernelCost]:
    """One KernelCost per kind in ``rows`` (weighted NNLS, MAPE and leave-one-shape-out MAPE)."""
    result = {}
    for kind in KINDS:
        kind_rows = [r for r in rows if r.kind == kind]
        if not kind_rows:
            continue
        names = choose_coefficients(kind_rows)
        block, coeffs = fit_best_block(kind_rows, names, word_bits)
        bits = sorted({r.bits for r in kind_rows})
        n_shapes = len({r.shape for r in kind_rows})
        text = (f"{source}; {len(kind_rows)} rows ({n_shapes} shapes, bits {bits}, variant "
                f"{kind_rows[0].variant}); weighted NNLS on {', '.join(names)}, c_out block {block}")
        result[kind] = KernelCost(
            coefficients={k: _round(v) for k, v in coeffs.items()}, provenance=provenance, source=text,
            points=len(kind_rows), mape=_round(mape(kind_rows, coeffs, word_bits, block), 4),
            loo_mape=_round_or_none(leave_group_out_mape(kind_rows, names, word_bits, block=block), 4),
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
        result[kind] = KernelCost(coefficients={k: _round(v * s) for k, v in b.coefficients.items()},
                                  provenance="derived", source=source, points=len(rows),
                                  mape=_round(err + (b.mape or 0.0), 4), c_out_block=b.c_out_block)
    return result


# --- kinds derived from instruction counts under emulation -----------------------------------

COUNT_FIELDS = ("target", "kind", "bits", "variant", "c_in", "c_out", "h", "w", "f", "stride", "pad", "macs",
                "instructions")


def read_counts(path: str | Path) -> dict[tuple, int]:
    """Instruction counts per kernel call (kernels/bench/results/icount_qemu.csv format):
    {(target, kind, bits, variant, shape): instructions}."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise UserError(f"instruction-count file {str(path)!r} does not exist")
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    missing = [c for c in COUNT_FIELDS if c not in (reader.fieldnames or [])]
    if missing:
        raise UserError(f"{path}: missing column {missing[0]!r}; expected {','.join(COUNT_FIELDS)}")
    counts = {}
    for number, row in enumerate(reader, start=2):
        try:
            shape = (int(row["c_in"]), int(row["c_out"]), int(row["h"]), int(row["w"]), int(row["f"]),
                     int(row["stride"]), row["pad"].strip())
            counts[(row["target"].strip(), row["kind"].strip(), int(row["bits"]), row["variant"].strip(), shape)] = \
                int(row["instructions"])
        except ValueError:
            raise UserError(f"{path}: data row {number - 1}: expected integers, got {dict(row)}") from None
    return counts


def derive_from_counts(rows: Sequence[Measurement], counts: dict[tuple, int], target: str, kinds: Sequence[str],
                       word_bits: int, counts_path: str, scale_variant: str = "ref",
                       deploy_variant: str = "opt") -> dict[str, KernelCost]:
    """Latency of ``kinds`` on a board from instruction counts of autoq's kernels under emulation.

    One scale factor per target, s [ns per instruction], is fitted (relative least squares, as in
    :func:`scale_factor`) between the board's measured rows and the instruction counts of our
    ``scale_variant`` kernels (``ref``: the thesis's plain loop nest, the algorithm the board
    ran) at the same shapes. Derived time of kind k at a counted shape = s * instructions of our
    ``deploy_variant`` kernel; the kind's coefficients are fitted to those points (SMALL_SET /
    BINARY_SMALL_SET). Assumes one cycles-per-instruction for all kernels of a target."""
    pairs = [(counts[(target, r.kind, r.bits, scale_variant, r.shape)], r.time_ns) for r in rows
             if (target, r.kind, r.bits, scale_variant, r.shape) in counts]
    if not pairs:
        raise UserError(f"{counts_path}: no {scale_variant} instruction counts for target {target!r} at the "
                        f"measured shapes; cannot fit the ns-per-instruction scale")
    ratio = np.array([i / y for i, y in pairs])
    s = float(ratio.sum() / (ratio ** 2).sum())
    err = float(np.mean(np.abs(s * ratio - 1)))
    fitted_on = sorted({r.kind for r in rows})
    result = {}
    for kind in kinds:
        bits = {"f32": 32, "lut": 4, "shift": 2, "xnor": 1, "and": 1, "int8": 8}[kind]
        points = [Measurement(kind, b, deploy_variant, *shape[:6], shape[6], 0, s * n, None)
                  for (t, k, b, v, shape), n in counts.items()
                  if t == target and k == kind and b == bits and v == deploy_variant]
        if not points:
            continue
        points = [dataclasses.replace(p, macs=p.entry().macs) for p in points]
        names = choose_coefficients(points)
        coeffs = fit_coefficients(points, names, word_bits)
        coef_err = mape(points, coeffs, word_bits)
        source = (f"ESTIMATE: instructions per call of autoq's {deploy_variant} {kind} kernel under QEMU "
                  f"({counts_path}, {len(points)} shapes) x {s:.4g} ns/instruction; that scale is fitted on the "
                  f"board's {len(pairs)} published {'/'.join(fitted_on)} times against the counts of our "
                  f"{scale_variant} kernels (the thesis algorithm) at the same shapes, MAPE {err:.1%}; one "
                  f"cycles-per-instruction for every kernel is assumed; coefficients {', '.join(names)} fitted "
                  f"to the derived points (MAPE {coef_err:.1%}); fit.mape = the sum of both MAPEs")
        result[kind] = KernelCost(coefficients={k: _round(v) for k, v in coeffs.items()}, provenance="derived",
                                  source=source, points=len(pairs), mape=_round(err + coef_err, 4))
    return result


def _family_note(rows: Sequence[Measurement], counts: dict[tuple, int], target: str) -> str:
    """Say how far the measured (thesis, plain-loop) kernels are from autoq's opt ones, per the counts."""
    parts = []
    for kind in sorted({r.kind for r in rows}):
        ratios = [counts[(target, kind, r.bits, "opt", r.shape)] / counts[(target, kind, r.bits, "ref", r.shape)]
                  for r in rows if r.kind == kind and (target, kind, r.bits, "opt", r.shape) in counts
                  and (target, kind, r.bits, "ref", r.shape) in counts]
        if ratios:
            parts.append(f"{kind} {np.mean(ratios):.2f}x")
    if not parts:
        return ""
    return ("; NOTE the measured kinds price the thesis's plain kernels while the derived ones price autoq's opt "
            "kernels; at the measured shapes autoq's opt kernels execute " + ", ".join(parts) +
            " the instructions of the plain ones")


def profile_from_measurements(mfile: MeasurementFile, target: str, *, source: str,
                              base: HardwareProfile | str | None = None, variant: str | None = None,
                              provenance: str | None = None, counts: str | Path | None = None) -> HardwareProfile:
    """Fit a profile for ``target`` from a measurement file; missing kinds derived from the
    instruction ``counts`` file when it has counts for ``target``, else from ``base``.

    Board facts (board, cpu, clock_hz, word_bits, memory) come from the CSV's ``# key: value``
    comments, else from an existing profile named ``target``, else from ``base``.
    """
    rows = select_variant(mfile.rows, variant, source)
    base_profile = load_base(base) if base is not None else None
    facts = _board_facts(mfile.meta, target, base_profile, source)
    provenance = provenance or ("measured-host" if target == "host" else "measured-board")
    label = mfile.meta.get("source", source)
    kernels = fit_kernels(rows, facts["word_bits"], provenance, label)
    missing = [k for k in KINDS if k not in kernels]
    counted = read_counts(counts) if counts is not None else {}
    derived_from, family = None, ""
    if missing and any(key[0] == target for key in counted):
        kernels.update(derive_from_counts(rows, counted, target, missing, facts["word_bits"], str(counts)))
        derived_from = f"instruction counts in {counts}"
        family = _family_note(rows, counted, target)
    elif missing and base_profile is not None:
        kernels.update(derive_kinds(rows, base_profile, missing))
        derived_from = f"base {base_profile.id!r}"
    notes = (f"fitted by autoq calibrate from {source} (variant {rows[0].variant}); kinds "
             f"{', '.join(k for k in KINDS if k in kernels and kernels[k].provenance != 'derived')} measured")
    derived = [k for k in KINDS if k in kernels and kernels[k].provenance == "derived"]
    if derived:
        notes += f"; {', '.join(derived)} derived from {derived_from} (estimates){family}"
    absent = [k for k in KINDS if k not in kernels]
    if absent:
        notes += f"; no coefficients for {', '.join(absent)} (give --base to derive them)"
    return HardwareProfile(id=target, board=facts["board"], cpu=facts["cpu"], clock_hz=facts["clock_hz"],
                           word_bits=facts["word_bits"], memory=facts["memory"],
                           overhead_ns=facts["overhead_ns"], kernels={k: kernels[k] for k in KINDS if k in kernels},
                           notes=notes)


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


def _board_facts(meta: dict[str, str], target: str, base: HardwareProfile | None, source: str) -> dict:
    existing = None
    if (profiles_dir() / f"{target}.yaml").is_file():
        existing = load_profile(target)
    fallback = existing or base
    facts: dict = {}
    for key in ("board", "cpu"):
        facts[key] = meta.get(key) or (getattr(fallback, key) if fallback else None)
    for key in ("clock_hz", "word_bits"):
        raw = meta.get(key)
        facts[key] = _int_meta(raw, key, source) if raw else (getattr(fallback, key) if fallback else None)
    memory = {k: _int_meta(meta[k], k, source) for k in ("sram_bytes", "flash_bytes", "ram_bytes", "storage_bytes")
              if k in meta}
    facts["memory"] = memory or (dict(fallback.memory) if fallback else None)
    facts["overhead_ns"] = float(meta.get("overhead_ns", fallback.overhead_ns if fallback else 0.0))
    missing = [k for k, v in facts.items() if v is None]
    if missing:
        raise UserError(f"{source}: board facts {', '.join(missing)} unknown for target {target!r}: add comment "
                        f"lines like '# clock_hz: 80000000' to the CSV (keys: board, cpu, clock_hz, word_bits, "
                        f"sram_bytes + flash_bytes or ram_bytes + storage_bytes), or give --base PROFILE")
    return facts


def _int_meta(raw: str, key: str, source: str) -> int:
    try:
        return int(float(raw))
    except ValueError:
        raise UserError(f"{source}: comment '# {key}: {raw}': expected an integer") from None


def _round(value: float, digits: int = 6) -> float:
    return float(f"{value:.{digits}g}")


def _round_or_none(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else _round(value, digits)


def calibrate_from_csv(csv_path: str | Path, target: str, base: str | None = None,
                       variant: str | None = None, counts: str | None = None) -> HardwareProfile:
    """``autoq calibrate --from-csv``: read, fit, derive; the caller writes the profile."""
    mfile = read_measurements(csv_path)
    return profile_from_measurements(mfile, target, source=str(csv_path), base=base, variant=variant,
                                     counts=counts)


def host_facts() -> dict:
    """Board facts of this machine (CPU model, clock from /proc/cpuinfo, RAM, 64-bit words)."""
    cpu, mhz = platform.processor() or platform.machine(), 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and cpu in ("", platform.machine(), platform.processor()):
                cpu = value.strip()
            if key.strip() == "cpu MHz" and not mhz:
                mhz = float(value)
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"board": f"this machine ({platform.node() or 'host'})", "cpu": cpu,
            "clock_hz": int(mhz * 1e6) or 1, "word_bits": 64,
            "memory": {"ram_bytes": int(ram), "storage_bytes": int(ram)}}


ProgressFn = Callable[[int, int], None]


# --- host calibration: run the kernel bench over a grid of shapes ---------------------------

Shape = tuple  # (c_in, c_out, h, w, f, stride, pad)


def calibration_grid(quick: bool = False, seed: int = 0) -> list[Shape]:
    """Conv and dense shapes like those of the zoo's layers (deterministic for a seed).

    The full grid: 48 random conv shapes (c_in 1..512, c_out 4..512 (the zoo's range), 4..32 pixels, 1x1/3x3/5x5,
    stride 1-2, both paddings; 2 k..10 M MACs so a bench pass stays around a minute) + 7 dense
    shapes. ``quick``: 8 small conv + 4 dense shapes (a smoke test, not a calibration)."""
    rng = np.random.default_rng(seed)
    shapes: list[Shape] = []
    n_conv = 8 if quick else 48
    max_macs = 300_000 if quick else 10_000_000
    while len(shapes) < n_conv:
        c_in = int(rng.choice([1, 3, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512]))
        c_out = int(rng.choice([4, 6, 8, 10, 16, 32, 48, 64, 128, 256, 512]))
        hw = int(rng.choice([4, 6, 8, 12, 16, 24, 32]))
        f = int(rng.choice([1, 3, 3, 5]))
        stride = int(rng.choice([1, 1, 2]))
        pad = str(rng.choice(["same", "valid"]))
        if pad == "valid" and hw < f:
            continue
        shape = (c_in, c_out, hw, hw, f, stride, pad)
        h_out = -(-hw // stride) if pad == "same" else (hw - f) // stride + 1
        macs = h_out * h_out * c_out * f * f * c_in
        if not 2_000 <= macs <= max_macs or shape in shapes:
            continue
        shapes.append(shape)
    dense = [(64, 10, 1, 1, 1, 1, "valid"), (256, 64, 1, 1, 1, 1, "valid"), (784, 120, 1, 1, 1, 1, "valid"),
             (120, 84, 1, 1, 1, 1, "valid"), (1024, 256, 1, 1, 1, 1, "valid"), (512, 1024, 1, 1, 1, 1, "valid"),
             (2048, 512, 1, 1, 1, 1, "valid")]
    return shapes + (dense[:4] if quick else dense)


def reps_for(shape: Shape, reps: int) -> int:
    """Fewer repetitions for big shapes (long calls are stable, and the slow ref variants may run)."""
    c_in, c_out, h, w, f, stride, pad = shape
    h_out = -(-h // stride) if pad == "same" else (h - f) // stride + 1
    macs = h_out * h_out * c_out * f * f * c_in
    return max(2, min(reps, int(2e7 // max(macs, 1))))


def run_bench(shapes: Sequence[Shape], reps: int, kinds: Sequence[str] | None = None,
              variant: str = "opt") -> list[Measurement]:
    """Time the C kernels of one variant on ``shapes`` (autoq.kernels.run_bench, the bench
    harness's loop; lut at 1/2/4/8 bits); rows of the measurements CSV."""
    from autoq import kernels

    records = kernels.run_bench(shapes=[tuple(s) for s in shapes], kinds=list(kinds) if kinds else None,
                                variants=(variant,), reps=int(reps))
    return [Measurement(r.kind, r.bits, r.variant, r.c_in, r.c_out, r.h, r.w, r.f, r.stride, r.pad, r.macs,
                        float(r.ns_median), float(r.ns_min)) for r in records]


def measure_host(shapes: Sequence[Shape], reps: int, rounds: int = 3, progress: ProgressFn | None = None,
                 kinds: Sequence[str] | None = None, variant: str = "opt") -> list[Measurement]:
    """Bench every shape in ``rounds`` passes over the grid; keep per row the minimum over the
    passes of ns_median and of ns_min (a busy neighbour only adds time, and spreading the
    passes in time keeps one busy moment from spoiling a shape)."""
    passes: list[list[Measurement]] = []
    total, done = rounds * len(shapes), 0
    for _ in range(rounds):
        rows: list[Measurement] = []
        for shape in shapes:
            rows.extend(run_bench([shape], reps_for(shape, reps), kinds, variant))
            done += 1
            if progress:
                progress(done, total)
        passes.append(rows)
    return [combine_min(group) for group in zip(*passes)]


def combine_min(rows: Sequence[Measurement]) -> Measurement:
    """One row from repeated measurements of the same case: minimum median, minimum min."""
    first = rows[0]
    assert all((r.kind, r.bits, r.variant, r.shape) == (first.kind, first.bits, first.variant, first.shape)
               for r in rows)
    mins = [r.ns_min for r in rows if r.ns_min is not None]
    return dataclasses.replace(first, ns_median=min(r.ns_median for r in rows), ns_min=min(mins) if mins else None)


def calibrate_host(variant: str = "opt", quick: bool = False, save_csv: str | Path | None = None,
                   base: str | None = None, progress: ProgressFn | None = None,
                   reps: int | None = None) -> HardwareProfile:
    """``autoq calibrate --target host``: bench the grid here, fit every kind, return the profile."""
    from autoq.cost.measurements import MeasurementFile, write_measurements

    facts = host_facts()
    shapes = calibration_grid(quick)
    rows = measure_host(shapes, reps or (3 if quick else 20), rounds=1 if quick else 3, progress=progress,
                        variant=variant)
    meta = {"source": f"autoq calibrate --target host: autoq.kernels bench ({variant} kernels) on {facts['cpu']} "
                      f"({len(shapes)} grid shapes, min over {1 if quick else 3} passes)",
            "board": facts["board"], "cpu": facts["cpu"], "clock_hz": str(facts["clock_hz"]),
            "word_bits": str(facts["word_bits"]), "ram_bytes": str(facts["memory"]["ram_bytes"]),
            "storage_bytes": str(facts["memory"]["storage_bytes"])}
    comments = [f"{k}: {v}" for k, v in meta.items()]
    if save_csv:
        write_measurements(save_csv, rows, comments)
    mfile = MeasurementFile(rows=rows, meta=meta, comments=comments)
    return profile_from_measurements(mfile, "host", source="autoq calibrate --target host", base=base,
                                     variant=variant, provenance="measured-host")
