"""Deployment forms: what a quantizer's weights become and what its input operation is, as data.

Every quantizer declares its forms (``q.weight_form()``, ``q.input_form()``); the exporters
(ONNX, .qbin, C) and the kernel-kind mapping read only these, never a quantizer's name.
NumPy only.

Weight forms (``value[c, i]`` is the deployed value of index ``i`` in output channel ``c``):

| form    | values                          | levels z              |
|---------|---------------------------------|-----------------------|
| binary  | scale[c] * {-1, +1}             | (-1, 1)               |
| ternary | scale[c] * {-1, 0, +1}          | (-1, 0, 1)            |
| integer | scale[c] * z[i], z integers     | e.g. -127..127, odd   |
| table   | table[c, i] (any floats)        | ()                    |

``scale`` is fixed by the parameters (``WeightForm.scale``, e.g. bc_scaled 0.125) or computed
from the weights / learned (``None``; the value is in :class:`EncodedWeights`). A binary or
ternary form with a fixed power-of-two scale is a power-of-two form (``power_of_two``).

Input forms (applied to a float tensor at inference; the range is fixed, never taken from the
batch):

| op   | y                                                             |
|------|---------------------------------------------------------------|
| sign | +1 if x >= 0 else -1                                          |
| grid | clip(round(x / step), qmin, qmax) * step, round half to even  |

``InputForm.apply`` is the NumPy reference of that arithmetic (float32, one division and one
multiplication), which the TF forward passes, onnxruntime and the C helpers reproduce bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WEIGHT_FORMS = ("binary", "ternary", "integer", "table")
INPUT_OPS = ("sign", "grid")
RANGE_SOURCES = ("definition", "fixed", "learned", "calibrated")


def is_power_of_two(x: float | None) -> bool:
    if x is None or not x > 0:
        return False
    mantissa, _ = math.frexp(x)
    return mantissa == 0.5


@dataclass(frozen=True)
class WeightForm:
    """What a weight quantizer's values are (see the module table)."""

    form: str
    bits: int                          # bits of one stored index
    levels: tuple[int, ...] = ()       # integer level of each index, ascending (table: ())
    size: int = 0                      # number of indices (table entries); 0 = len(levels)
    scale: float | None = None         # fixed by the parameters, or None (from the weights / learned)
    per_channel: bool = False          # one scale (or table row) per output channel

    def __post_init__(self):
        if self.form not in WEIGHT_FORMS:
            raise ValueError(f"weight form {self.form!r}; allowed: {', '.join(WEIGHT_FORMS)}")
        expected = {"binary": (-1, 1), "ternary": (-1, 0, 1)}.get(self.form)
        if expected is not None and tuple(self.levels) != expected:
            raise ValueError(f"{self.form} weight form needs levels {expected}, got {self.levels}")
        if self.form != "table" and (not self.levels or list(self.levels) != sorted(set(self.levels))):
            raise ValueError(f"{self.form} weight form needs ascending distinct integer levels, got {self.levels}")
        if self.form == "table" and self.size < 1:
            raise ValueError("table weight form needs size >= 1")

    @property
    def count(self) -> int:
        """Number of distinct indices."""
        return len(self.levels) or self.size

    @property
    def zero_point(self) -> int | None:
        """zp with value = scale * (index - zp) when the levels are consecutive integers, else None."""
        if not self.levels or list(self.levels) != list(range(self.levels[0], self.levels[0] + len(self.levels))):
            return None
        return -int(self.levels[0])

    @property
    def power_of_two(self) -> bool:
        """{-1, (0,) +1} times a fixed power of two: add/subtract and one shift."""
        return self.form in ("binary", "ternary") and is_power_of_two(self.scale)

    @property
    def kind(self) -> str:
        """The kernel kind these weights imply on their own (with float inputs)."""
        if self.power_of_two:
            return "shift"
        if self.form == "integer" and self.bits == 8 and -128 <= self.levels[0] and self.levels[-1] <= 127:
            return "int8"
        return "lut"


@dataclass(eq=False)
class EncodedWeights:
    """A weight tensor in its deployment form: indices plus the numbers the form needs.

    ``codebook`` is what decode uses: ``scale[c] * levels`` (float32) for the integer forms,
    the table otherwise; ``(L,)`` per tensor or ``(C, L)`` per output channel.
    """

    form: WeightForm
    indices: np.ndarray                # uint8, the shape of w
    codebook: np.ndarray               # float32
    scale: np.ndarray | None = None    # float32 (1,) or (C,): integer forms

    def integers(self) -> np.ndarray:
        """The integer level z of every weight (integer forms): value = scale[c] * z."""
        return np.asarray(self.form.levels, np.int64)[self.indices.astype(np.intp)]


@dataclass(frozen=True)
class InputForm:
    """What an input quantizer computes at inference (see the module table)."""

    op: str
    bits: int
    step: float = 1.0                  # grid: float32 step
    qmin: int = -1
    qmax: int = 1
    range_source: str = "definition"   # where the range comes from (RANGE_SOURCES)

    def __post_init__(self):
        if self.op not in INPUT_OPS:
            raise ValueError(f"input op {self.op!r}; allowed: {', '.join(INPUT_OPS)}")
        if self.range_source not in RANGE_SOURCES:
            raise ValueError(f"range_source {self.range_source!r}; allowed: {', '.join(RANGE_SOURCES)}")
        if self.op == "grid" and not (self.step > 0 and math.isfinite(self.step) and self.qmin < self.qmax):
            raise ValueError(f"grid input form needs step > 0 and qmin < qmax, got {self}")

    @property
    def levels(self) -> tuple[int, ...]:
        return (-1, 1) if self.op == "sign" else tuple(range(self.qmin, self.qmax + 1))

    @property
    def kind(self) -> str:
        """The kernel kind an input of this form selects (with matching weights)."""
        if self.op == "sign":
            return "xnor"
        if (self.qmin, self.qmax, self.step) == (0, 1, 1.0):
            return "and"                       # values {0, 1}
        if self.bits == 8 and -128 <= self.qmin and self.qmax <= 127:
            return "int8"
        return "lut"

    def apply(self, x) -> np.ndarray:
        """The deployed operation in float32 (the reference the TF, ONNX and C forms equal)."""
        x = np.asarray(x, np.float32)
        if self.op == "sign":
            return np.where(x >= 0, np.float32(1), np.float32(-1)).astype(np.float32)
        return self.values(self.indices(x))

    def indices(self, x) -> np.ndarray:
        """Index of each value's level (level = levels[index])."""
        x = np.asarray(x, np.float32)
        if self.op == "sign":
            return (x >= 0).astype(np.uint8)
        q = np.clip(np.round(x / np.float32(self.step)), self.qmin, self.qmax)
        return (q - self.qmin).astype(np.int64)

    def values(self, idx) -> np.ndarray:
        """Level values of indices: levels * step in float32."""
        return (np.asarray(self.levels, np.float32) * np.float32(self.step))[np.asarray(idx, np.intp)]
