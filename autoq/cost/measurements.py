"""Kernel measurement CSVs: the bench harness's output and the format users send from boards.

Columns (docs/contracts.md)::

    kind,bits,variant,c_in,c_out,h,w,f,stride,pad,macs,ns_median,ns_min

One row = one call of a conv kernel on an h x w x c_in input with c_out filters of f x f
(a dense layer is h = w = f = 1), ``pad`` valid|same. ``ns_min`` may be empty (published
averages). Lines starting with ``#`` are comments; a comment ``# key: value`` with a key of
META_KEYS describes the board (used by ``autoq calibrate --from-csv``).
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from autoq.errors import UserError
from autoq.fileio import MAX_CSV_BYTES, atomic_write_text, free_text, read_text
from autoq.plan import KINDS, LayerEntry, conv_entry

CSV_FIELDS = ("kind", "bits", "variant", "c_in", "c_out", "h", "w", "f", "stride", "pad", "macs",
              "ns_median", "ns_min")
META_KEYS = ("id", "board", "cpu", "clock_hz", "word_bits", "sram_bytes", "flash_bytes", "ram_bytes",
             "storage_bytes", "overhead_ns", "source")
_INT_FIELDS = ("bits", "c_in", "c_out", "h", "w", "f", "stride", "macs")
MAX_DIM = 1 << 20          # c_in, c_out, h, w, f, stride of one measured call
MAX_MACS = 10**15
MAX_BITS = 32


@dataclass(frozen=True)
class Measurement:
    kind: str
    bits: int
    variant: str
    c_in: int
    c_out: int
    h: int
    w: int
    f: int
    stride: int
    pad: str
    macs: int
    ns_median: float
    ns_min: float | None = None

    def entry(self) -> LayerEntry:
        """The LayerEntry of the measured call (its features drive the fit)."""
        return conv_entry(f"{self.kind}{self.bits}_{self.c_in}x{self.h}x{self.w}_{self.f}", c_in=self.c_in,
                          c_out=self.c_out, h_in=self.h, w_in=self.w, kh=self.f, stride=self.stride,
                          padding=self.pad, kind=self.kind, weight_bits=32 if self.kind == "f32" else self.bits)

    @property
    def time_ns(self) -> float:
        """The time the fits use: ns_min when measured, else ns_median.

        On a shared machine interference only ever adds time, so the minimum over repetitions
        is the most repeatable estimate of the kernel's own cost (published board figures are
        means and have no minimum)."""
        return self.ns_min if self.ns_min is not None else self.ns_median

    @property
    def shape(self) -> tuple:
        return (self.c_in, self.c_out, self.h, self.w, self.f, self.stride, self.pad)


@dataclass
class MeasurementFile:
    rows: list[Measurement]
    meta: dict[str, str]
    comments: list[str]


def parse_pad(value: str, where: str) -> str:
    text = str(value).strip().lower()
    if text in ("valid", "0"):
        return "valid"
    if text == "same":
        return "same"
    raise UserError(f"{where}: pad {value!r} not understood; allowed: valid, same (or 0 for valid)")


def read_measurements(path: str | Path) -> MeasurementFile:
    """Parse a measurement CSV; errors name the file, the line and the column."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"measurement file {str(path)!r} does not exist")
    return parse_measurements(read_text(path, "measurement CSV", MAX_CSV_BYTES), str(path))


def parse_measurements(text: str, source: str = "<csv>") -> MeasurementFile:
    comments, meta, body = [], {}, []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#"):
            comment = stripped.lstrip("#").strip()
            comments.append(comment)
            key, sep, value = comment.partition(":")
            if sep and key.strip() in META_KEYS:
                meta[key.strip()] = free_text(value.strip(), f"{source}:{number}", f"comment '# {key.strip()}'",
                                              200 if key.strip() != "source" else 2000)
        elif stripped:
            body.append((number, line))
    if not body:
        raise UserError(f"{source}: no header line; expected columns {','.join(CSV_FIELDS)}")
    header_line, header = body[0][0], next(csv.reader([body[0][1]]))
    header = [h.strip() for h in header]
    missing = [c for c in CSV_FIELDS if c not in header]
    if missing:
        raise UserError(f"{source}:{header_line}: missing column {missing[0]!r}; "
                        f"expected columns {','.join(CSV_FIELDS)}")
    rows = []
    for number, line in body[1:]:
        cells = next(csv.reader([line]))
        if len(cells) != len(header):
            raise UserError(f"{source}:{number}: {len(cells)} columns; expected {len(header)} as in the header "
                            f"({','.join(header)})")
        values = dict(zip(header, cells))
        rows.append(_row(values, f"{source}:{number}"))
    if not rows:
        raise UserError(f"{source}: no measurement rows")
    return MeasurementFile(rows=rows, meta=meta, comments=comments)


def _row(values: dict[str, str], where: str) -> Measurement:
    out: dict = {}
    kind = values.get("kind", "").strip()
    if kind not in KINDS:
        raise UserError(f"{where}: column kind: got {_short(kind)}; allowed: {', '.join(KINDS)}")
    out["kind"] = kind
    out["variant"] = values.get("variant", "").strip()
    for name in _INT_FIELDS:
        raw = (values.get(name) or "").strip()
        try:
            out[name] = int(raw)
        except ValueError:
            raise UserError(f"{where}: column {name}: got {_short(raw)}; expected an integer") from None
        top = MAX_MACS if name == "macs" else MAX_BITS if name == "bits" else MAX_DIM
        if not 1 <= out[name] <= top:
            raise UserError(f"{where}: column {name}: got {raw!r}; expected an integer 1..{top}")
    out["pad"] = parse_pad(values.get("pad", ""), where)
    for name in ("ns_median", "ns_min"):
        raw = (values.get(name) or "").strip()
        if name == "ns_min" and raw in ("", "nan", "NA"):
            out[name] = None
            continue
        try:
            out[name] = float(raw)
        except ValueError:
            raise UserError(f"{where}: column {name}: got {_short(raw)}; expected a number of nanoseconds") from None
        if not out[name] > 0 or math.isinf(out[name]):
            raise UserError(f"{where}: column {name}: got {raw!r}; expected a finite number > 0")
    if len(out["variant"]) > 64 or not out["variant"].isprintable():
        raise UserError(f"{where}: column variant: got {out['variant'][:80]!r}; expected a printable name of at "
                        "most 64 characters")
    row = Measurement(**out)
    try:
        expected = row.entry().macs
    except (ValueError, ZeroDivisionError) as exc:
        raise UserError(f"{where}: the shape c_in={row.c_in} h={row.h} w={row.w} f={row.f} stride={row.stride} "
                        f"pad={row.pad} is not a valid conv: {exc}") from None
    if expected < 1:
        raise UserError(f"{where}: the shape gives no output (h={row.h}, w={row.w}, f={row.f}, pad={row.pad}); "
                        "expected h, w >= f for pad valid")
    if row.macs != expected:
        raise UserError(f"{where}: column macs: got {row.macs}, but the shape gives {expected} "
                        f"(h_out*w_out*c_out*f*f*c_in)")
    return row


def _short(raw: str) -> str:
    return repr(raw) if len(raw) <= 40 else repr(raw[:40]) + f"... ({len(raw)} characters)"


def format_measurements(rows: list[Measurement], comments: list[str] = ()) -> str:
    buf = io.StringIO()
    for comment in comments:
        buf.write(f"# {comment}\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in rows:
        d = asdict(r)
        d["ns_min"] = "" if r.ns_min is None else f"{r.ns_min:.1f}"
        d["ns_median"] = f"{r.ns_median:.1f}"
        writer.writerow([d[c] for c in CSV_FIELDS])
    return buf.getvalue()


def write_measurements(path: str | Path, rows: list[Measurement], comments: list[str] = ()) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, format_measurements(rows, comments))


def select_variant(rows: Sequence[Measurement], variant: str | None, source: str) -> list[Measurement]:
    """Rows of one kernel variant: ``variant`` or, if None, the variant of the first row."""
    chosen = rows[0].variant if variant is None else variant
    picked = [r for r in rows if r.variant == chosen]
    if not picked:
        known = sorted({r.variant for r in rows})
        raise UserError(f"{source}: no rows of variant {chosen!r}; variants in the file: {', '.join(known)}")
    return picked
