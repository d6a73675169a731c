"""The Pareto front as plain data, and its mathematics (NumPy only: no Optuna, no TensorFlow).

Reading a run into TrialPoints is autoq.search.records; drawing a front is autoq.pareto (table,
CSV, JSON) and autoq.pareto_html. The live search display uses :func:`non_dominated_ranks`.

All objectives are compared in minimisation form (``Objective.minimised``: accuracy becomes
``1 - val_acc``, costs stay as they are).

Dominance: a dominates b  <=>  a_i <= b_i for every objective i and a_j < b_j for some j.
The front is the set of trials no other trial dominates (rank 0 of the non-dominated sort).

Hypervolume (Zitzler & Thiele 1998): the Lebesgue measure of the region dominated by the front
and bounded by a reference point r,  HV = vol( U_{p in front} [p_1, r_1] x ... x [p_d, r_d] ),
computed exactly by slicing along the first objective. Costs are normalised by their largest
value over the considered trials so that HV is unit-free: the point is
``(1 - acc, latency / max latency, flash / max flash, ...)`` and r = ``(1, 1.1, 1.1, ...)``
(the 1.1 margin lets the cheapest-extreme points contribute). HV values are comparable between
runs only for the same target and normalisation; the reference is reported with it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from autoq.objectives import Objective

__all__ = ["TrialPoint", "ParetoFront", "non_dominated_ranks", "hypervolume", "compute_front",
           "FRONT_HEADERS", "front_cells"]


@dataclass
class TrialPoint:
    """One finished trial, costed on one target."""

    number: int
    val_acc: float
    test_acc: float | None
    latency_ms: float
    flash_bytes: int
    peak_ram_bytes: int
    fits: bool
    cost_source: str                 # "stored" (costed during the search) or "estimated" (re-costed)
    config: dict
    layers: list[dict]               # per compute layer: name, op, kind, bits, quantizer labels
    weights_path: str | None = None
    rank: int = -1                   # non-dominated sorting rank; 0 = on the front
    preset: str | None = None        # the thesis preset the trial evaluated, if any
    relu_slope: str = "1"            # ReLU slope(s) after the hidden layers (BC-2.x fix): "1", "0.125", "mixed ..."
    shortcut: str = "-"              # residual shortcut policy (quantized | float | removed); "-": no shortcuts

    @property
    def on_front(self) -> bool:
        return self.rank == 0


@dataclass
class ParetoFront:
    """The computed front of one run for one target (plain data; renderers read only this)."""

    study_path: str
    study_name: str
    target: str
    objectives: list[Objective]
    points: list[TrialPoint]                     # every considered trial, with its rank
    hypervolume: float
    reference_point: list[float]                 # in normalised minimisation space
    normalisers: list[float]                     # divisor per objective (1 for accuracy)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    @property
    def front(self) -> list[TrialPoint]:
        """Front points, most accurate first."""
        return sorted((p for p in self.points if p.on_front), key=lambda p: (-p.val_acc, p.number))


def non_dominated_ranks(values: np.ndarray) -> np.ndarray:
    """Non-dominated sorting ranks of rows of ``values`` (all objectives minimised); 0 = front.

    Duplicated rows share a rank (neither dominates the other).
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    ranks = np.full(n, -1, dtype=int)
    if n == 0:
        return ranks
    le = np.all(values[:, None, :] <= values[None, :, :], axis=2)
    lt = np.any(values[:, None, :] < values[None, :, :], axis=2)
    dominates = le & lt                       # dominates[i, j]: i dominates j
    remaining = np.ones(n, dtype=bool)
    rank = 0
    while remaining.any():
        dominated = (dominates & remaining[:, None]).any(axis=0)
        layer = remaining & ~dominated
        ranks[layer] = rank
        remaining &= ~layer
        rank += 1
    return ranks


def hypervolume(points: np.ndarray, reference: Sequence[float]) -> float:
    """Exact hypervolume of minimisation ``points`` (n x d) with respect to ``reference``.

    Points not strictly better than the reference in every coordinate add nothing. Slicing on
    the first coordinate: sort by x_1; between consecutive x_1 values the slice's (d-1)-volume
    is the hypervolume of the points seen so far projected on the remaining coordinates:
    HV_d(P) = sum_k (x_1^(k+1) - x_1^(k)) * HV_{d-1}({p_{2..d} : p in P, p_1 <= x_1^(k)}).
    O(n^d) worst case; fronts here have tens of points and d <= 4.
    """
    ref = np.asarray(reference, dtype=float)
    pts = np.asarray(points, dtype=float).reshape(-1, len(ref))
    pts = pts[np.all(pts < ref, axis=1)]
    if len(pts) == 0:
        return 0.0
    if len(ref) == 1:
        return float(ref[0] - pts[:, 0].min())
    pts = pts[non_dominated_ranks(pts) == 0]
    pts = pts[np.argsort(pts[:, 0], kind="stable")]
    total = 0.0
    for k in range(len(pts)):
        upper = pts[k + 1, 0] if k + 1 < len(pts) else ref[0]
        width = upper - pts[k, 0]
        if width > 0:
            total += width * hypervolume(pts[: k + 1, 1:], ref[1:])
    return float(total)


def compute_front(points: list[TrialPoint], objectives: list[Objective], study_path: str, study_name: str,
                  target: str, skipped: list[tuple[int, str]]) -> ParetoFront:
    """Rank ``points`` (sets each one's rank) and compute the normalised hypervolume of the front
    (module docstring)."""
    values = np.array([[o.minimised(p) for o in objectives] for p in points]).reshape(len(points), len(objectives))
    for p, r in zip(points, non_dominated_ranks(values)):
        p.rank = int(r)
    normalisers = [1.0 if o.maximize else max(float(values[:, i].max()) if len(points) else 1.0, 1e-12)
                   for i, o in enumerate(objectives)]
    reference = [1.0 if o.maximize else 1.1 for o in objectives]
    front_values = values[[p.on_front for p in points]] / np.array(normalisers) if len(points) else values
    hv = hypervolume(front_values, reference) if len(points) else 0.0
    return ParetoFront(study_path=study_path, study_name=study_name, target=target, objectives=objectives,
                       points=points, hypervolume=hv, reference_point=reference, normalisers=normalisers,
                       skipped=skipped)


# --- a front point as text (the rich table and the HTML report) ---------------------------

FRONT_HEADERS = ("trial", "preset", "val acc", "test acc", "latency ms", "flash B", "peak RAM B", "fits",
                 "ReLU slope", "shortcut", "costs")
LEFT_COLUMNS = ("preset", "fits", "ReLU slope", "shortcut", "costs")   # text columns, left-aligned


def front_cells(p: TrialPoint) -> list[str]:
    """One front row as text, in FRONT_HEADERS order."""
    return [str(p.number), p.preset or "-", f"{p.val_acc:.4f}", "-" if p.test_acc is None else f"{p.test_acc:.4f}",
            f"{p.latency_ms:.3f}", f"{p.flash_bytes:,}", f"{p.peak_ram_bytes:,}", "yes" if p.fits else "NO",
            p.relu_slope, p.shortcut, p.cost_source]
