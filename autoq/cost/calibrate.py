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
- The shipped boards (m4, a53, i5; ``--counts``): the published rows time the thesis's naive
  kernels, not autoq's. They only fit one ns-per-instruction scale per board against the
  instruction counts of our ``ref`` kernels (same algorithm) at the same shapes
  (:func:`count_scale`); every kind is then priced as that scale x the instruction counts of
  our ``opt`` kernels (what autoq exports) over a grid of shapes (:func:`derive_from_counts`),
  so f32 and the quantized kinds compare like with like. :func:`validate_counts` puts the
  published times next to the predictions for our ref and opt kernels.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from autoq.cost.fit import choose_coefficients, fit_best_block, fit_derived, leave_group_out_mape, mape
from autoq.cost.measurements import Measurement, MeasurementFile, read_measurements
from autoq.cost.model import layer_latency_ns
from autoq.cost.profile import HardwareProfile, KernelCost, load_profile, profiles_dir
from autoq.errors import UserError
from autoq.kinds import KINDS

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
        names = choose_coefficients(kind_rows, repack=True)
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


def read_counts(path: str | Path, column: str = "instructions") -> dict[tuple, int]:
    """Instruction counts per kernel call (kernels/bench/results/icount_qemu.csv format):
    {(target, kind, bits, variant, shape): instructions}; ``column="cycles"`` reads the cycle
    model's file (kernels/bench/results/cycles_qemu.csv, autoq/cost/cycles.py) the same way."""
    import csv

    from autoq.fileio import MAX_CSV_BYTES, read_text

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
        result[kind] = KernelCost(coefficients={k: _round(v) for k, v in coeffs.items()}, provenance="derived",
                                  source=source, points=len(points), mape=_round(scale.mape + coef_err, 4),
                                  loo_mape=_round_or_none(loo, 4), c_out_block=block)
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
    from autoq.resources import resource_dir

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
    facts = _board_facts(mfile.meta, target, base_profile, source)
    provenance = provenance or ("measured-host" if target == "host" else "measured-board")
    counted = read_counts(counts) if counts is not None else {}
    if counts is not None and any(key[0] == target for key in counted):
        measured_variant = rows[0].variant
        scale_variant = measured_variant if any(k[0] == target and k[3] == measured_variant for k in counted) else "ref"
        kernels = derive_from_counts(rows, counted, target, KINDS, facts["word_bits"], str(counts),
                                     scale_variant=scale_variant)
        scale = count_scale(rows, counted, target, scale_variant, str(counts))
        notes = (f"fitted by autoq calibrate from {source} (variant {measured_variant}) and {counts}: every kind "
                 f"prices autoq's opt kernels = {counter_name(target)} instruction counts x "
                 f"{scale.ns_per_instruction:.4g} ns/instruction; the scale is fitted on the {scale.rows} measured "
                 f"{'/'.join(scale.kinds)} times against our {scale_variant} kernels' counts at the same shapes "
                 f"(MAPE {scale.mape:.1%}, leave-one-filter-size-out "
                 f"{'n/a' if scale.loo_mape is None else f'{scale.loo_mape:.1%}'}); estimates")
    else:
        if counts is not None:
            log.warning("%s has no instruction counts for target %r; fitting the measured kinds directly", counts, target)
        label = mfile.meta.get("source", source)
        kernels = fit_kernels(rows, facts["word_bits"], provenance, label)
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
    absent = [k for k in KINDS if k not in kernels]
    if absent:
        notes += f"; no coefficients for {', '.join(absent)} (give --base or --counts to derive them)"
    return HardwareProfile(id=target, board=facts["board"], cpu=facts["cpu"], clock_hz=facts["clock_hz"],
                           word_bits=facts["word_bits"], memory=facts["memory"],
                           overhead_ns=facts["overhead_ns"], kernels={k: kernels[k] for k in KINDS if k in kernels},
                           notes=notes, **({"deploy": facts["deploy"]} if facts["deploy"] else {}))


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
    raw = meta.get("overhead_ns")
    facts["overhead_ns"] = _float_meta(raw, "overhead_ns", source) if raw is not None else \
        (fallback.overhead_ns if fallback else 0.0)
    facts["deploy"] = existing.deploy if existing else None   # measured from links: kept across refits
    missing = [k for k, v in facts.items() if v is None and k != "deploy"]
    if missing:
        raise UserError(f"{source}: board facts {', '.join(missing)} unknown for target {target!r}: add comment "
                        f"lines like '# clock_hz: 80000000' to the CSV (keys: board, cpu, clock_hz, word_bits, "
                        f"sram_bytes + flash_bytes or ram_bytes + storage_bytes), or give --base PROFILE")
    _check_facts(facts, meta, source)
    return facts


def _check_facts(facts: dict, meta: dict[str, str], source: str) -> None:
    """The profile schema's checks (autoq.cost.profile) on the board facts, reported against the
    CSV comment they came from."""
    skeleton = {"id": "check", **{k: facts[k] for k in ("board", "cpu", "clock_hz", "word_bits", "memory",
                                                         "overhead_ns")},
                "kernels": {"f32": {"coefficients": {"ns_fixed": 0.0}, "provenance": "derived", "source": "",
                                    "fit": {"points": 0, "mape": None}}}}
    try:
        HardwareProfile.from_dict(skeleton, source=None)
    except UserError as exc:
        key = str(exc).split(":", 1)[0].strip()
        key = key.split(".")[-1]
        origin = f"comment '# {key}: {meta[key]}'" if key in meta else f"board fact {key}"
        raise UserError(f"{source}: {origin}: {str(exc).split(':', 1)[1].strip()}") from None


def _int_meta(raw: str, key: str, source: str) -> int:
    text = raw.strip().replace("_", "")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value != int(value):
        raise UserError(f"{source}: comment '# {key}: {raw}': got {raw!r}; expected an integer") from None
    return int(value)


def _float_meta(raw: str, key: str, source: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UserError(f"{source}: comment '# {key}: {raw}': got {raw!r}; expected a finite number")
    return value


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
                   reps: int | None = None, ops: bool = True) -> HardwareProfile:
    """``autoq calibrate --target host``: bench the grid here, fit every kind, return the profile;
    ``ops``: also time the non-kernel ops in exported C programs (autoq.cost.calibrate_ops)."""
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
    from autoq.cost.measurements import MeasurementFile, write_measurements

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
