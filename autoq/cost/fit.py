"""Fit latency coefficients to kernel measurements (non-negative least squares).

For the rows of one kernel kind with measured times y_i (``Measurement.time_ns``) and features x_ij (autoq.cost.model),
the coefficients c >= 0 minimise the squared *relative* error::

    sum_i ((sum_j c_j x_ij - y_i) / y_i)^2

(weighted NNLS: scipy.optimize.nnls on A_ij = x_ij / y_i, b_i = 1), so small and large layers
count alike; then all coefficients are multiplied by one factor so that mean_i(pred_i / y_i) = 1
(the relative least-squares optimum alone predicts systematically low). The output-channel block B of the features (autoq.cost.model) is chosen per kind
among BLOCKS by the lowest MAPE. Fit quality: MAPE = mean_i |pred_i - y_i| / y_i on the fitted rows, and a
leave-one-group-out MAPE (hold out each shape group, fit on the rest, predict it).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from autoq.cost.measurements import Measurement
from autoq.cost.model import features

# Feature sets by how much data there is: few shapes only support a mac + output model.
FULL_SET = ("ns_per_mac", "ns_per_row", "ns_per_output", "ns_per_input", "ns_per_weight", "ns_per_weight_byte",
            "ns_fixed")
BINARY_FULL_SET = ("ns_per_mac", "ns_per_word_op", "ns_per_row", "ns_per_output", "ns_per_input",
                   "ns_per_weight", "ns_per_weight_byte", "ns_fixed")
SMALL_SET = ("ns_per_mac", "ns_per_output")
BINARY_SMALL_SET = ("ns_per_word_op", "ns_per_output")  # popcount kernels scale with words, not MACs
FULL_SET_MIN_SHAPES = 10


def choose_coefficients(rows: Sequence[Measurement], repack: bool = False) -> tuple[str, ...]:
    """Coefficient names to fit: the full model needs >= FULL_SET_MIN_SHAPES distinct shapes.
    ``repack``: the full model also prices the partial c_out block's weight repack
    (ns_per_tail_weight, autoq.cost.model): fits of measured kernels (host, a user's board); the
    shipped boards' count- and cycle-derived profiles keep the form they were generated with."""
    shapes = {r.shape for r in rows}
    if len(shapes) >= FULL_SET_MIN_SHAPES:
        names = BINARY_FULL_SET if rows[0].kind in ("xnor", "and") else FULL_SET
        return (*names[:-1], "ns_per_tail_weight", names[-1]) if repack else names
    if len(shapes) >= 2:
        return BINARY_SMALL_SET if rows[0].kind in ("xnor", "and") else SMALL_SET
    return ("ns_per_mac",)


def design(rows: Sequence[Measurement], names: Sequence[str], word_bits: int, block: int = 1) -> np.ndarray:
    feats = [features(r.entry(), word_bits, block) for r in rows]
    return np.array([[f[n] for n in names] for f in feats], dtype=np.float64)


def fit_coefficients(rows: Sequence[Measurement], names: Sequence[str], word_bits: int,
                     block: int = 1) -> dict[str, float]:
    """Weighted NNLS fit (module docstring) for output-channel block ``block``; {name: value >= 0}."""
    y = np.array([r.time_ns for r in rows], dtype=np.float64)
    coeffs = relative_nnls(design(rows, names, word_bits, block), y)
    return {n: float(v) for n, v in zip(names, coeffs)}


def relative_nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """c >= 0 minimising sum_i ((x_i . c - y_i) / y_i)^2, rescaled to mean(pred / y) = 1 (module docstring)."""
    from scipy.optimize import nnls

    a = x / y[:, None]
    scale = np.linalg.norm(a, axis=0)
    scale[scale == 0] = 1.0
    solution, _ = nnls(a / scale, np.ones_like(y), maxiter=50 * x.shape[1] + 100)
    coeffs = solution / scale
    # Least squares on relative errors predicts low (the optimum of sum((p - y) / y)^2 is
    # biased towards small y); rescale so the mean predicted/measured ratio over the rows is 1.
    ratio = float(np.mean(a @ coeffs))
    if ratio > 0:
        coeffs = coeffs / ratio
    return coeffs


def predict(rows: Sequence[Measurement], coeffs: dict[str, float], word_bits: int, block: int = 1) -> np.ndarray:
    names = list(coeffs)
    return design(rows, names, word_bits, block) @ np.array([coeffs[n] for n in names])


def mape(rows: Sequence[Measurement], coeffs: dict[str, float], word_bits: int, block: int = 1) -> float:
    y = np.array([r.time_ns for r in rows])
    return float(np.mean(np.abs(predict(rows, coeffs, word_bits, block) - y) / y))


BLOCKS = (1, 2, 4, 8, 16, 32)


def fit_best_block(rows: Sequence[Measurement], names: Sequence[str], word_bits: int) -> tuple[int, dict[str, float]]:
    """Try every output-channel block size in BLOCKS (only 1 for small data sets: too few shapes
    to tell them apart) and keep the one with the lowest MAPE."""
    blocks = BLOCKS if len({r.shape for r in rows}) >= FULL_SET_MIN_SHAPES else (1,)
    best = None
    for block in blocks:
        coeffs = fit_coefficients(rows, names, word_bits, block)
        err = mape(rows, coeffs, word_bits, block)
        if best is None or err < best[0] - 1e-9:
            best = (err, block, coeffs)
    return best[1], best[2]


def leave_group_out_mape(rows: Sequence[Measurement], names: Sequence[str], word_bits: int,
                         group: Callable[[Measurement], object] = lambda r: r.shape,
                         block: int = 1) -> float | None:
    """Hold out each group in turn, fit the rest, predict it; mean APE over all held-out rows.

    None when there are fewer than two groups or a training split has fewer rows than
    coefficients (the fit would be underdetermined)."""
    keys = sorted({group(r) for r in rows}, key=str)
    if len(keys) < 2:
        return None
    errors = []
    for key in keys:
        train = [r for r in rows if group(r) != key]
        test = [r for r in rows if group(r) == key]
        if len({r.shape for r in train}) < len(names):
            return None
        coeffs = fit_coefficients(train, names, word_bits, block)
        y = np.array([r.time_ns for r in test])
        errors.extend(np.abs(predict(test, coeffs, word_bits, block) - y) / y)
    return float(np.mean(errors))


def fit_derived(points: Sequence[Measurement], word_bits: int):
    """Fit derived points (counts or cycles x a board scale) as a measurement would be:
    (coefficient names, c_out block, coefficients, MAPE, leave-one-shape-out MAPE or None)."""
    names = choose_coefficients(points)
    block, coeffs = fit_best_block(points, names, word_bits)
    return (names, block, coeffs, mape(points, coeffs, word_bits, block),
            leave_group_out_mape(points, names, word_bits, block=block))


def round_sig(value: float, digits: int = 6) -> float:
    """``value`` to ``digits`` significant digits: how profiles store coefficients and errors."""
    return float(f"{value:.{digits}g}")


def round_sig_or_none(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round_sig(value, digits)
