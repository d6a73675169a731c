"""Kernel measurements of this machine: the rows of the measurements CSV, timed by the C kernels.

- :func:`bench` / :func:`run_bench`: one (kind, variant, shape) call timed by
  autoq.kernels.time_kernel, as a Measurement (the CSV row); ``autoq bench-kernels`` prints them.
- :func:`calibration_grid` / :func:`measure_host`: the shapes ``autoq calibrate --target host``
  benches, and the repeated passes over them.

Shapes are ``(c_in, c_out, h, w, f, stride, pad)`` with pad valid|same (a dense layer is
``h = w = f = 1``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from autoq import kernels
from autoq.cost.measurements import Measurement
from autoq.errors import UserError
from autoq.kinds import KINDS, LUT_BITS
from autoq.plan import conv_entry

Shape = tuple  # (c_in, c_out, h, w, f, stride, pad)
ProgressFn = Callable[[int, int], None]

#: the 64->64 channel 16x16 3x3 'same' layer and the thesis setting (methods.md 5)
DEFAULT_SHAPES = [(64, 64, 16, 16, 3, 1, "same")] + [(3, 8, 16, 16, f, 1, "valid") for f in (3, 4, 5)]


def default_bits(kind: str) -> int:
    """Bits recorded for a kind in the CSV (lut has several; 4 by default)."""
    return {"f32": 32, "lut": 4, "shift": 2, "xnor": 1, "and": 1, "int8": 8}[kind]


def bench(kind: str, variant: str, shape: Shape, bits: int | None = None, reps: int = 50,
          warmup: int = 3) -> Measurement:
    """One row of the measurements CSV: ``reps`` calls of one variant on random inputs of
    ``shape`` timed in C after ``warmup`` calls (autoq.kernels.time_kernel); ns_min always set."""
    bits = default_bits(kind) if bits is None else int(bits)
    ns_median, ns_min, macs = kernels.time_kernel(kind, variant, shape, bits, reps=reps, warmup=warmup)
    c_in, c_out, h, w, f, stride, pad = shape
    return Measurement(kind, bits, variant, int(c_in), int(c_out), int(h), int(w), int(f), int(stride),
                       pad, macs, ns_median, ns_min)


def parse_shape(text: str) -> Shape:
    """``"c_in,c_out,h,w,f,stride,pad"`` (pad: valid|same) -> tuple, with a clear error."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 7 or parts[6] not in kernels.PADDINGS:
            raise ValueError
        nums = tuple(int(p) for p in parts[:6])
        if min(nums) < 1:
            raise ValueError
    except ValueError:
        raise UserError(f"--shape: {text!r} is not c_in,c_out,h,w,f,stride,pad with positive integers "
                        f"and pad in {sorted(kernels.PADDINGS)} (e.g. 64,64,16,16,3,1,same)") from None
    return nums + (parts[6],)


def run_bench(shapes: Sequence[Shape] | None = None, kinds: Sequence[str] | None = None,
              variants: Sequence[str] = ("ref", "opt"), reps: int = 20, lut_bits=LUT_BITS) -> list[Measurement]:
    """Bench every selected (kind, variant) of kernels.VARIANTS on every shape (default
    DEFAULT_SHAPES; lut at each of ``lut_bits``); the records are the rows of the measurements CSV."""
    shapes = DEFAULT_SHAPES if not shapes else [tuple(s) for s in shapes]
    kinds = list(KINDS) if not kinds else list(kinds)
    for k in kinds:
        if k not in KINDS:
            raise UserError(f"--kinds: {k!r} is not a kernel kind; allowed: {list(KINDS)}")
    out = []
    for shape in shapes:
        for kind, variant in kernels.VARIANTS:
            if kind in kinds and variant in variants:
                for bits in (lut_bits if kind == "lut" else [default_bits(kind)]):
                    out.append(bench(kind, variant, shape, bits=bits, reps=reps))
    return out


# --- host calibration: run the kernel bench over a grid of shapes ---------------------------


def shape_macs(shape: Shape) -> int:
    """Multiply-accumulates of one call at ``shape`` (autoq.plan's conv geometry)."""
    c_in, c_out, h, w, f, stride, pad = shape
    return conv_entry("shape", c_in=c_in, c_out=c_out, h_in=h, w_in=w, kh=f, stride=stride, padding=pad).macs


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
        if not 2_000 <= shape_macs(shape) <= max_macs or shape in shapes:
            continue
        shapes.append(shape)
    dense = [(64, 10, 1, 1, 1, 1, "valid"), (256, 64, 1, 1, 1, 1, "valid"), (784, 120, 1, 1, 1, 1, "valid"),
             (120, 84, 1, 1, 1, 1, "valid"), (1024, 256, 1, 1, 1, 1, "valid"), (512, 1024, 1, 1, 1, 1, "valid"),
             (2048, 512, 1, 1, 1, 1, "valid")]
    return shapes + (dense[:4] if quick else dense)


def reps_for(shape: Shape, reps: int) -> int:
    """Fewer repetitions for big shapes (long calls are stable, and the slow ref variants may run)."""
    return max(2, min(reps, int(2e7 // max(shape_macs(shape), 1))))


def measure_host(shapes: Sequence[Shape], reps: int, rounds: int = 3, progress: ProgressFn | None = None,
                 kinds: Sequence[str] | None = None, variant: str = "opt") -> list[Measurement]:
    """Bench every shape of one variant (lut at 1/2/4/8 bits) in ``rounds`` passes over the grid;
    keep per row the minimum over the passes of ns_median and of ns_min (a busy neighbour only
    adds time, and spreading the passes in time keeps one busy moment from spoiling a shape)."""
    passes: list[list[Measurement]] = []
    total, done = rounds * len(shapes), 0
    for _ in range(rounds):
        rows: list[Measurement] = []
        for shape in shapes:
            rows.extend(run_bench([shape], kinds, (variant,), reps=reps_for(shape, reps)))
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
