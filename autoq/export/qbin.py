"""The ``.qbin`` packed-weight format: writer, reader, CRC checks. NumPy only (no TensorFlow).

One file holds the compute layers (conv2d / dense) of an exported model, in execution order,
with their weights in the compressed form the C kernels read. All multi-byte fields are
little-endian; floats are IEEE-754 binary32.

File::

    offset  size  field
    0       8     magic  b"AUTOQBIN"
    8       2     u16 version (2; the reader also reads 1, which has no input forms)
    10      1     u8  byte order: 1 = little-endian (the only value written)
    11      1     u8  reserved, 0
    12      4     u32 number of layer records N
    16      4     u32 metadata length M
    20      M     metadata, UTF-8 JSON (model, input_shape, num_classes, ...)
    20+M    ...   N layer records
    end-8   4     magic  b"AQND"
    end-4   4     u32 CRC-32 (zlib / IEEE 802.3) of every byte before it

Layer record::

    u32 payload length P, then P bytes of payload, then u32 CRC-32 of (length field + payload)

Payload::

    u8  op            0 conv2d, 1 dense
    u8  kind          0 f32, 1 lut, 2 shift, 3 xnor, 4 and, 5 int8 (autoq_kernels.h aq_kind order)
    u8  weight_bits   1..8, or 32 for float weights
    u8  act_bits      bits of the layer's input activations (32 = float)
    u16 name length L, then L bytes UTF-8 name (the Keras layer name)
    u32 c_out, kh, kw, c_in            weight shape in OHWI order (dense: kh = kw = 1)
    u32 stride, u8 padding (0 valid, 1 same), u8 flags (bit 0 bias, bit 1 scale, bit 2 input form)
    u8  codebook form 0 none (float weights) | 1 table (L floats) | 2 per-channel table
                      (c_out x L floats) | 3 affine: value = scale[c] * (index - zero_point)
    u16 levels L,  i32 zero_point (form 3), u32 number of codebook floats, then the floats
    u32 weight byte count, then the weights:
        form 0: c_out*kh*kw*c_in float32 in OHWI order;
        else  : per output channel one row of K = kh*kw*c_in indices in OHWI order, packed as
                an LSB-first bit stream, index j at bits [j*b, (j+1)*b) of the row, b =
                weight_bits; each row padded to a whole byte: ceil(K*b/8) bytes per row. For
                b in {1, 2, 4, 8} this is exactly the kernels' row layout
                (byte = row[j / q], shift = b * (j % q), q = 8 / b).
    then c_out float32 bias if flag bit 0, then c_out float32 scale if flag bit 1
    (the per-channel multiplier applied after the accumulation: folded BatchNorm), then if flag
    bit 2 the layer's input form (autoq.quant.forms.InputForm, the fixed range the ONNX and C
    use): u8 op (1 sign, 2 grid), f32 step, i32 qmin, i32 qmax; grid: y = clip(round(x / step),
    qmin, qmax) * step.

The reader checks every length against the file size, every CRC, the magic numbers, the
version and the byte order, then every field by the rules of :mod:`autoq.export.qbin_rules`
(ranges, kind / bits / codebook form, finite floats, indices below L, metadata schema,
printable unique names, reserved bits 0, the layer chain); any failure raises
:class:`QbinError` (a UserError) naming the file, the record and field, and what is allowed.
:func:`write_qbin` runs the same parse on the bytes it is about to write and refuses them
when the reader would. The layers written and read are :class:`autoq.export.qbin_layer.QLayer`
(re-exported here with its encoder and the bit packing).
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoq.export import qbin_rules as rules
from autoq.export.qbin_layer import QLayer, affine_book, encode_layer, pack_rows, row_bytes, unpack_rows
from autoq.export.qbin_rules import QbinError
from autoq.kinds import KINDS  # the one list of kernel kinds

MAGIC = b"AUTOQBIN"
END_MAGIC = b"AQND"
VERSION = 2
READABLE_VERSIONS = (1, 2)
INPUT_OPS = ("none", "sign", "grid")
LITTLE_ENDIAN = 1
OPS = ("conv2d", "dense")
PADDINGS = ("valid", "same")
FORM_NONE, FORM_TABLE, FORM_CHANNEL_TABLE, FORM_AFFINE = 0, 1, 2, 3

__all__ = ["QbinError", "QLayer", "QbinFile", "write_qbin", "read_qbin", "pack_rows", "unpack_rows",
           "encode_layer", "parse_qbin", "MAGIC", "VERSION"]


# --- writer --------------------------------------------------------------------------------


def _record_payload(layer: QLayer) -> bytes:
    c_out, kh, kw, c_in = layer.shape
    name = layer.name.encode("utf-8")
    flags = (1 if layer.bias is not None else 0) | (2 if layer.scale is not None else 0) | \
        (4 if layer.input_form is not None else 0)
    out = [struct.pack("<BBBBH", OPS.index(layer.op), KINDS.index(layer.kind), layer.weight_bits,
                       layer.act_bits, len(name)), name,
           struct.pack("<IIIIIBB", c_out, kh, kw, c_in, layer.stride, PADDINGS.index(layer.padding), flags)]
    if layer.indices is None:
        form, levels, zp, book = FORM_NONE, 0, 0, np.zeros(0, np.float32)
        weights = np.asarray(layer.weights, "<f4").tobytes()
    else:
        levels = layer.levels
        if layer.zero_point is not None:
            form, zp, book = FORM_AFFINE, layer.zero_point, np.asarray(layer.scales, np.float32)
        else:
            book = np.asarray(layer.codebook, np.float32)
            form, zp = (FORM_TABLE if book.ndim == 1 else FORM_CHANNEL_TABLE), 0
        weights = pack_rows(np.asarray(layer.indices).reshape(c_out, -1), layer.weight_bits)
    out += [struct.pack("<BHiI", form, levels, zp, book.size), book.astype("<f4").tobytes(),
            struct.pack("<I", len(weights)), weights]
    for vec in (layer.bias, layer.scale):
        if vec is not None:
            vec = np.asarray(vec, "<f4").reshape(-1)
            if vec.size != c_out:
                raise ValueError(f"{vec.size} bias/scale values for {c_out} channels")
            out.append(vec.tobytes())
    f = layer.input_form
    if f is not None:
        out.append(struct.pack("<Bfii", INPUT_OPS.index(f.op), f.step, f.qmin, f.qmax))
    return b"".join(out)


def _encode(layer: QLayer, path: str, i: int) -> bytes:
    """One record (length, payload, CRC); QbinError for what cannot be encoded at all."""
    where = f"record {i} ({getattr(layer, 'name', '?')})"
    rules.check_name(path, where, layer.name)
    for what, value, names in (("op", layer.op, OPS), ("kind", layer.kind, KINDS), ("padding", layer.padding, PADDINGS)):
        if value not in names:
            raise rules.fail(path, where, f"{what} {value!r}; allowed: {', '.join(names)}")
    ints = (layer.weight_bits, layer.act_bits, layer.stride, *layer.shape)
    if len(layer.shape) != 4 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in ints):
        raise rules.fail(path, where, f"shape {layer.shape}, bits, stride must be integers (shape: c_out, kh, kw, c_in)")
    rules.check_fields(path, where, layer.op, layer.kind, int(layer.weight_bits), int(layer.act_bits),
                       tuple(int(v) for v in layer.shape), int(layer.stride), layer.padding)
    try:
        payload = _record_payload(layer)
    except (struct.error, ValueError, TypeError, OverflowError) as exc:
        raise rules.fail(path, where, f"cannot be encoded: {exc}") from None
    head = struct.pack("<I", len(payload))
    return head + payload + struct.pack("<I", zlib.crc32(head + payload))


def write_qbin(path: str | Path, layers: list[QLayer], meta: dict | None = None) -> Path:
    """Write ``layers`` (in execution order) and ``meta`` to ``path`` (atomically); returns the path.

    The bytes are validated by the reader's own checks first: what :func:`read_qbin` would
    reject is refused with a QbinError and nothing is written."""
    path = Path(path)
    p = str(path)
    meta = {} if meta is None else meta
    rules.check_meta(meta, p)
    meta_bytes = json.dumps(meta, sort_keys=True, allow_nan=False).encode("utf-8")
    parts = [MAGIC, struct.pack("<HBBII", VERSION, LITTLE_ENDIAN, 0, len(layers), len(meta_bytes)), meta_bytes]
    parts += [_encode(layer, p, i) for i, layer in enumerate(layers)]
    body = b"".join(parts) + END_MAGIC
    data = body + struct.pack("<I", zlib.crc32(body))
    try:
        parse_qbin(data, p)
    except QbinError as exc:
        raise QbinError(f"{exc} (refused: nothing written)") from None
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


# --- reader --------------------------------------------------------------------------------


@dataclass
class QbinFile:
    path: str
    version: int
    meta: dict
    layers: list[QLayer]
    size: int


class _Cursor:
    """Bounds-checked little-endian reads; every overrun is a QbinError naming what was read."""

    def __init__(self, data: bytes, path: str, start: int = 0, end: int | None = None, what: str = "header"):
        self.data, self.path, self.pos = data, path, start
        self.end = len(data) if end is None else end
        self.what = what

    def take(self, n: int, field_name: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise QbinError(f"{self.path}: truncated: {self.what} field {field_name!r} needs {n} bytes at "
                            f"offset {self.pos}, only {self.end - self.pos} left")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, field_name: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), field_name))

    def floats(self, n: int, field_name: str) -> np.ndarray:
        values = np.frombuffer(self.take(4 * n, field_name), dtype="<f4").astype(np.float32)
        rules.check_finite(self.path, self.what, field_name, values)
        return values


def _enum(value: int, names: tuple, what: str, path: str, record: str) -> str:
    if value >= len(names):
        raise QbinError(f"{path}: {record}: {what} code {value} is invalid; allowed 0..{len(names) - 1} "
                        f"({', '.join(names)})")
    return names[value]


def _read_name(cur: _Cursor, path: str, label: str) -> str:
    (name_len,) = cur.unpack("H", "name length")
    try:
        name = cur.take(name_len, "name").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise rules.fail(path, label, f"name is not valid UTF-8 ({exc}); allowed: UTF-8 text") from None
    return rules.check_name(path, label, name)


def _read_weights(cur: _Cursor, path: str, layer: QLayer, form: int, levels: int, zp: int, book: np.ndarray) -> None:
    c_out, kh, kw, c_in = layer.shape
    k, bits, label = kh * kw * c_in, layer.weight_bits, cur.what
    (n_weights,) = cur.unpack("I", "weight length")
    expected = 4 * c_out * k if form == FORM_NONE else c_out * row_bytes(k, bits)
    if n_weights != expected:
        raise rules.fail(path, label, f"{n_weights} weight bytes; {c_out}x{kh}x{kw}x{c_in} "
                                      f"{'float32' if form == FORM_NONE else f'{bits}-bit indices'} need {expected}")
    if form == FORM_NONE:
        layer.weights = cur.floats(c_out * k, "weights").reshape(layer.shape)
        return
    raw = cur.take(n_weights, "weights")
    indices = unpack_rows(raw, c_out, k, bits)
    rules.check_indices(path, label, raw, c_out, k, bits, levels, indices)
    layer.indices = indices.reshape(layer.shape)
    if form == FORM_AFFINE:
        layer.scales, layer.zero_point = book, zp
        layer.codebook = affine_book(book, zp, levels)
    else:
        layer.codebook = book if form == FORM_TABLE else book.reshape(c_out, levels)
    rules.check_book_values(path, label, layer.kind, np.asarray(layer.codebook))


def _read_record(cur: _Cursor, path: str, label: str, version: int = VERSION) -> QLayer:
    op_code, kind_code, wbits, abits = cur.unpack("BBBB", "op/kind/bits")
    name = _read_name(cur, path, label)
    label = f"{label} ({name})"
    cur.what = label
    c_out, kh, kw, c_in, stride, pad_code, flags = cur.unpack("IIIIIBB", "shape")
    op, kind = _enum(op_code, OPS, "op", path, label), _enum(kind_code, KINDS, "kind", path, label)
    padding = _enum(pad_code, PADDINGS, "padding", path, label)
    shape = (c_out, kh, kw, c_in)
    rules.check_fields(path, label, op, kind, wbits, abits, shape, stride, padding)
    known = 7 if version >= 2 else 3
    if flags & ~known:
        allowed = "bit 0 (bias), bit 1 (scale)" + (", bit 2 (input form)" if version >= 2 else "")
        raise rules.fail(path, label, f"flags {flags:#x}: unknown bits; allowed {allowed}")
    form, levels, zp, n_book = cur.unpack("BHiI", "codebook header")
    rules.check_codebook_header(path, label, kind, wbits, c_out, form, levels, zp, n_book)
    book = cur.floats(n_book, "codebook")
    layer = QLayer(name=name, op=op, kind=kind, weight_bits=wbits, act_bits=abits,
                   shape=shape, stride=stride, padding=padding)
    _read_weights(cur, path, layer, form, levels, zp, book)
    if flags & 1:
        layer.bias = cur.floats(c_out, "bias")
    if flags & 2:
        layer.scale = cur.floats(c_out, "scale")
    if flags & 4:
        layer.input_form = _read_input_form(cur, path, label, kind, abits)
    elif version >= 2:  # v2 writes a form for every quantized input: its absence is an error
        rules.check_input_form(path, label, kind, abits, None)
    if cur.pos != cur.end:
        raise rules.fail(path, label, f"{cur.end - cur.pos} unexpected bytes at the end of the record")
    return layer


def _read_input_form(cur: _Cursor, path: str, label: str, kind: str, bits: int):
    from autoq.quant.forms import InputForm

    op_code, step, qmin, qmax = cur.unpack("Bfii", "input form")
    op = _enum(op_code, INPUT_OPS, "input op", path, label)
    rules.check_input_form(path, label, kind, bits, None if op == "none" else op, float(step), qmin, qmax)
    try:
        return InputForm(op, bits, float(step), qmin, qmax, "fixed") if op != "none" else None
    except ValueError as exc:
        raise QbinError(f"{path}: {label}: invalid input form ({exc})") from None


def _read_header(data: bytes, p: str) -> tuple[_Cursor, int, int, int]:
    if len(data) < 28:
        raise QbinError(f"{p}: truncated: {len(data)} bytes is shorter than the smallest .qbin (28)")
    if data[:8] != MAGIC:
        raise QbinError(f"{p}: not a .qbin file (magic {data[:8]!r}, expected {MAGIC!r})")
    cur = _Cursor(data, p, 8, len(data) - 8)
    version, order, reserved, n_layers, meta_len = cur.unpack("HBBII", "header")
    if version not in READABLE_VERSIONS:
        raise QbinError(f"{p}: format version {version} is not supported (this reader knows "
                        f"{', '.join(map(str, READABLE_VERSIONS))})")
    if order != LITTLE_ENDIAN:
        raise QbinError(f"{p}: byte-order code {order} is not supported (1 = little-endian)")
    if data[-8:-4] != END_MAGIC:
        raise QbinError(f"{p}: truncated or corrupted: end marker {data[-8:-4]!r} missing "
                        f"(expected {END_MAGIC!r} 8 bytes before the end)")
    if reserved:
        raise rules.fail(p, "header", f"reserved byte at offset 11 is {reserved}; allowed 0")
    rules.check_range(p, "header", "layer count", n_layers, 0, rules.MAX_LAYERS)
    return cur, version, n_layers, meta_len


def parse_qbin(data: bytes, p: str) -> QbinFile:
    """Parse and fully validate the bytes of a .qbin file (``p`` names it in errors)."""
    cur, version, n_layers, meta_len = _read_header(data, p)
    meta = rules.parse_meta(cur.take(meta_len, "metadata"), p)
    layers = []
    for i in range(n_layers):
        label = f"record {i}"
        cur.what = label
        start = cur.pos
        (length,) = cur.unpack("I", "record length")
        payload = cur.take(length, "record payload")
        (crc,) = cur.unpack("I", "record CRC")
        actual = zlib.crc32(data[start:start + 4 + length])
        if crc != actual:
            raise QbinError(f"{p}: {label} at offset {start}: CRC mismatch (stored {crc:#010x}, computed "
                            f"{actual:#010x}): the record is corrupted")
        layers.append(_read_record(_Cursor(payload, p, what=label), p, label, version))
    if cur.pos != len(data) - 8:
        raise QbinError(f"{p}: {len(data) - 8 - cur.pos} unexpected bytes after the last record")
    (file_crc,) = struct.unpack("<I", data[-4:])
    if file_crc != zlib.crc32(data[:-4]):
        raise QbinError(f"{p}: file CRC mismatch (stored {file_crc:#010x}, computed {zlib.crc32(data[:-4]):#010x}): "
                        "the file is corrupted")
    rules.check_unique_names(p, [layer.name for layer in layers])
    rules.check_chain(p, meta, layers)
    return QbinFile(path=p, version=version, meta=meta, layers=layers, size=len(data))


def read_qbin(path: str | Path) -> QbinFile:
    """Read and fully validate a .qbin file; QbinError on any inconsistency."""
    path = Path(path)
    if not path.is_file():
        raise QbinError(f"{path}: {'is a directory, not a .qbin file' if path.is_dir() else 'no such file'}")
    try:
        size = path.stat().st_size
        if size > rules.MAX_FILE_BYTES:
            raise QbinError(f"{path}: {size:,} bytes; allowed at most {rules.MAX_FILE_BYTES:,}")
        data = path.read_bytes()
    except OSError as exc:
        raise QbinError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_qbin(data, str(path))


def describe(qf: QbinFile) -> list[dict]:
    """One row per layer for `autoq inspect`."""
    rows = []
    for layer in qf.layers:
        c_out, kh, kw, c_in = layer.shape
        form = ("float" if layer.indices is None else
                "affine" if layer.zero_point is not None else
                "per-channel table" if np.asarray(layer.codebook).ndim == 2 else "table")
        rows.append({"name": layer.name, "op": layer.op, "kind": layer.kind, "weight_bits": layer.weight_bits,
                     "act_bits": layer.act_bits, "shape_ohwi": [c_out, kh, kw, c_in], "stride": layer.stride,
                     "padding": layer.padding, "levels": layer.levels, "codebook": form,
                     "bias": layer.bias is not None, "scale": layer.scale is not None,
                     "input": None if layer.input_form is None else
                     {"op": layer.input_form.op, "step": layer.input_form.step, "qmin": layer.input_form.qmin,
                      "qmax": layer.input_form.qmax}})
    return rows
