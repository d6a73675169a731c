"""C literals of the emitted source: exact float32 values, ``static const`` arrays, symbols."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from autoq.errors import UserError

C_TYPE_BYTES = {"float": 4, "uint8_t": 1, "int8_t": 1, "int16_t": 2, "int32_t": 4, "uint32_t": 4,
                "uint64_t": 8, "int64_t": 8}


def c_float(v: float) -> str:
    v = float(np.float32(v))
    if not math.isfinite(v):
        raise UserError(f"cannot emit non-finite weight value {v} as C")
    return "0.0f" if v == 0 else f"{v.hex()}f"   # hex literal: exact float32


def c_byte(v) -> str:
    return f"0x{int(v):02x}"


def c_int(v) -> str:
    return str(int(v))


@dataclass(frozen=True)
class CArray:
    """One ``static const`` array of the emitted C. Its text is rendered only with the source
    (``str``); a plan only needs its bytes (``nbytes``), and writing the weight literals is most
    of the time of emit_c on a float ResNet-20."""

    ctype: str
    name: str
    values: np.ndarray
    fmt: object = str
    per_line: int = 12

    @property
    def count(self) -> int:
        return max(int(self.values.size), 1)          # an empty array is emitted as {0}

    @property
    def nbytes(self) -> int:
        return C_TYPE_BYTES[self.ctype] * self.count

    def __str__(self) -> str:
        vals = [self.fmt(v) for v in self.values.ravel()] or ["0"]
        lines = [", ".join(vals[i:i + self.per_line]) for i in range(0, len(vals), self.per_line)]
        return f"static const {self.ctype} {self.name}[{len(vals)}] = {{\n  " + ",\n  ".join(lines) + "\n};\n"


def c_array(ctype: str, name: str, values, fmt=str, per_line: int = 12) -> CArray:
    values = np.asarray(values)
    if fmt is c_float:       # the check c_float makes per value, up front: the text may never be rendered
        bad = values[~np.isfinite(values.astype(np.float32))]
        if bad.size:
            c_float(bad.ravel()[0])
    return CArray(ctype, name, values, fmt, per_line)


def float_array(name: str, values) -> CArray:
    """A float array, six exact literals a line (weights, codebooks, scales, biases)."""
    return c_array("float", name, values, c_float, 6)


def c_symbol(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)
