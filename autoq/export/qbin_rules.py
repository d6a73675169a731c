"""The .qbin validity rules, shared by the reader and the writer (``autoq.export.qbin``).

NumPy only. Every check raises :class:`QbinError` naming the file, the record (index and
layer name) or metadata key, the field, the value found and what is allowed. What is checked:

- header: reserved byte 0, layer count <= MAX_LAYERS, metadata <= MAX_META_BYTES;
- metadata: a JSON object whose keys are META_KEYS with their types (strings printable and
  <= MAX_META_STRING characters; input_shape 1 or 3 integers in 1..MAX_CHANNELS; integers bounded;
  no NaN/Infinity, no duplicate keys, no numbers longer than 20 digits, no nesting);
- every record field: op, kind, padding codes; weight_bits (1..8 for the quantized kinds, 32
  exactly for f32), act_bits in ACT_BITS; c_out, c_in in 1..MAX_CHANNELS (dense c_in up to
  MAX_DENSE_IN), kh, kw in 1..MAX_KERNEL, stride in 1..MAX_STRIDE; dense layers 1x1, stride 1,
  padding valid; flag bits 0/1 only; name non-empty printable UTF-8, <= MAX_NAME, unique;
- kind / bits / codebook form (KIND_RULES): f32 = form none; xnor/and = 1-bit table of a
  symmetric pair {-a, +a} per row, 1-bit inputs; int8 = 8-bit affine with integer levels
  (index - zero_point) inside [-128, 127] (the exporter writes zp 127 / 255 levels for
  uniform, zp 128 / 256 levels for lsq), 8-bit inputs; shift = 1- or 2-bit, every codebook
  row {-p, +p} or {-p, 0, +p} with p a power of two; lut = any table or affine form;
- codebook: levels in 1..2^weight_bits, the float count the form needs, zero_point 0 unless
  affine (affine: |zp| <= 2^weight_bits), every float finite; every index < levels and the
  padding bits of each packed row 0; float weights, bias and scale finite;
- the layer chain, when the metadata gives input_shape (see :func:`check_chain`).
"""
from __future__ import annotations

import math

import numpy as np

from autoq.errors import UserError
from autoq.quant.forms import is_power_of_two

MAX_LAYERS = 10_000
MAX_META_BYTES = 1 << 16
MAX_FILE_BYTES = 1 << 30
MAX_NAME = 255                  # layer names
MAX_META_STRING = 4096          # metadata strings (a dataset or target may be a file path)
MAX_CHANNELS = 1 << 16
MAX_DENSE_IN = 1 << 22
MAX_KERNEL = 64
MAX_STRIDE = 64
ACT_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 32)
META_KEYS = {"model": "printable string or null", "input_shape": "list of 1 or 3 integers 1..65536",
             "num_classes": "integer 1..4194304", "trial": "integer 0..2147483647",
             "target": "printable string", "dataset": "printable string"}
# kind -> (allowed weight bits, allowed act bits or None = any, allowed codebook forms)
FORM_NAMES = ("none", "table", "per-channel table", "affine")
KIND_RULES = {"f32": ((32,), None, (0,)), "lut": (tuple(range(1, 9)), None, (1, 2, 3)),
              "shift": ((1, 2), None, (1, 2, 3)), "xnor": ((1,), (1,), (1, 2)),
              "and": ((1,), (1,), (1, 2)), "int8": ((8,), (8,), (3,))}


class QbinError(UserError):
    """A truncated, corrupted, invalid or unsupported .qbin file."""


def fail(path: str, where: str, msg: str) -> QbinError:
    return QbinError(f"{path}: {where}: {msg}")


def check_range(path: str, where: str, field: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise fail(path, where, f"{field} {value} is out of range; allowed {low}..{high}")


def check_name(path: str, where: str, name) -> str:
    """A layer name or metadata string: non-empty, printable (no control characters or ANSI
    escapes), at most MAX_NAME characters."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or not name.isprintable():
        raise fail(path, where, f"name {name!r} is not allowed; allowed: 1..{MAX_NAME} printable characters "
                                "(no control characters or escapes)")
    return name


# --- metadata ----------------------------------------------------------------------------


def _small_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:
        raise QbinError(f"number with {len(text)} digits; allowed at most 20")
    return int(text)


def _reject_constant(text: str):
    raise QbinError(f"{text} is not allowed (finite numbers only)")


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise QbinError(f"duplicate key in {keys[:20]}; allowed: each key once")
    return dict(pairs)


def parse_meta(raw: bytes, path: str):
    """Decode the metadata bytes (strict UTF-8 JSON, no NaN, no huge numbers, no deep nesting)."""
    import json

    if len(raw) > MAX_META_BYTES:
        raise fail(path, "metadata", f"{len(raw)} bytes; allowed at most {MAX_META_BYTES}")
    try:
        meta = json.loads(raw.decode("utf-8"), parse_int=_small_int, parse_constant=_reject_constant,
                          object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise fail(path, "metadata", "JSON nested too deeply; allowed: one object of flat values") from None
    except QbinError as exc:
        raise fail(path, "metadata", str(exc)) from None
    except ValueError as exc:          # UnicodeDecodeError, JSONDecodeError
        raise fail(path, "metadata", f"not valid UTF-8 JSON ({exc}); allowed: a UTF-8 JSON object") from None
    check_meta(meta, path)
    return meta


def _is_int(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _meta_value_ok(key: str, value) -> bool:
    if key == "input_shape":
        return isinstance(value, list) and len(value) in (1, 3) and all(_is_int(v, 1, MAX_CHANNELS) for v in value)
    if key == "num_classes":
        return _is_int(value, 1, MAX_DENSE_IN)
    if key == "trial":
        return _is_int(value, 0, 2**31 - 1)
    if value is None and key == "model":
        return True
    return isinstance(value, str) and (value == "" or value.isprintable()) and len(value) <= MAX_META_STRING


def _short(value) -> str:
    """A bounded description of any value (huge integers and deep nesting included)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"(an integer of {value.bit_length()} bits)"
    if isinstance(value, (list, dict)):
        if all(isinstance(v, (str, float, bool, type(None))) or isinstance(v, int) and v.bit_length() <= 64
               for v in value):
            return repr(value)[:60]
        return f"(a {type(value).__name__} of {len(value)} items, nested)"
    return repr(value)[:60]


def check_meta(meta, path: str) -> None:
    """The metadata schema: a JSON object with only META_KEYS, each of its type."""
    if not isinstance(meta, dict):
        raise fail(path, "metadata", f"is a {type(meta).__name__}; allowed: a JSON object with keys "
                                     f"{', '.join(META_KEYS)}")
    for key, value in meta.items():
        if key not in META_KEYS:
            raise fail(path, "metadata", f"unknown key {str(key)[:40]!r}; allowed: {', '.join(META_KEYS)}")
        if not _meta_value_ok(key, value):
            raise fail(path, f"metadata key {key!r}", f"value {_short(value)} is invalid; allowed: {META_KEYS[key]}")


# --- record fields -----------------------------------------------------------------------


def check_fields(path: str, where: str, op: str, kind: str, wbits: int, abits: int,
                 shape: tuple[int, int, int, int], stride: int, padding: str) -> None:
    """Ranges of the fixed record fields and the kind's bit widths."""
    c_out, kh, kw, c_in = shape
    check_range(path, where, "c_out", c_out, 1, MAX_CHANNELS)
    check_range(path, where, "c_in", c_in, 1, MAX_DENSE_IN if op == "dense" else MAX_CHANNELS)
    check_range(path, where, "kh", kh, 1, MAX_KERNEL)
    check_range(path, where, "kw", kw, 1, MAX_KERNEL)
    check_range(path, where, "stride", stride, 1, MAX_STRIDE)
    if op == "dense" and (kh, kw, stride, padding) != (1, 1, 1, "valid"):
        raise fail(path, where, f"dense layer with kh x kw {kh}x{kw}, stride {stride}, padding {padding}; "
                                "allowed: 1x1, stride 1, valid")
    w_allowed, a_allowed, _ = KIND_RULES[kind]
    if wbits not in w_allowed:
        raise fail(path, where, f"weight_bits {wbits} with kind {kind}; allowed {_list(w_allowed)}")
    if abits not in (a_allowed or ACT_BITS):
        raise fail(path, where, f"act_bits {abits} with kind {kind}; allowed {_list(a_allowed or ACT_BITS)}")


def _list(values) -> str:
    return ", ".join(map(str, values))


def check_codebook_header(path: str, where: str, kind: str, wbits: int, c_out: int, form: int, levels: int,
                          zp: int, n_book: int) -> None:
    """The codebook form matches the kind; levels, zero_point and float count match the form."""
    if form >= len(FORM_NAMES):
        raise fail(path, where, f"codebook form code {form} is invalid; allowed 0..3 ({', '.join(FORM_NAMES)})")
    allowed = KIND_RULES[kind][2]
    if form not in allowed:
        raise fail(path, where, f"codebook form {FORM_NAMES[form]} with kind {kind}; allowed "
                                f"{', '.join(FORM_NAMES[f] for f in allowed)}")
    if form == 0:
        if (levels, zp, n_book) != (0, 0, 0):
            raise fail(path, where, f"float weights with levels {levels}, zero_point {zp}, {n_book} codebook "
                                    "floats; allowed 0, 0, 0")
        return
    check_range(path, where, "levels", levels, 2 if kind in ("xnor", "and") else 1, 1 << wbits)
    if form == 3:
        check_range(path, where, "zero_point", zp, -(1 << wbits), 1 << wbits)
        if n_book not in (1, c_out):
            raise fail(path, where, f"affine codebook has {n_book} scales; allowed 1 or c_out = {c_out}")
        if kind == "int8" and not (-128 <= -zp and levels - 1 - zp <= 127):
            raise fail(path, where, f"int8 levels {-zp}..{levels - 1 - zp} (zero_point {zp}, {levels} levels); "
                                    "allowed inside -128..127")
        return
    if zp != 0:
        raise fail(path, where, f"zero_point {zp} with a {FORM_NAMES[form]} codebook; allowed 0")
    need = levels if form == 1 else c_out * levels
    if n_book != need:
        raise fail(path, where, f"codebook has {n_book} floats; a {FORM_NAMES[form]} of {levels} levels and "
                                f"{c_out} channels needs {need}")


def check_finite(path: str, where: str, field: str, values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise fail(path, where, f"{field}[{i}] is {float(values.reshape(-1)[i])}; allowed: finite floats")


def check_book_values(path: str, where: str, kind: str, book: np.ndarray) -> None:
    """xnor/and: each row a symmetric pair {-a, +a}; shift: each row {-p, +p} or {-p, 0, +p}, p = 2^k."""
    rows = np.asarray(book, np.float64).reshape(-1, book.shape[-1])
    for c, row in enumerate(rows):
        if kind in ("xnor", "and") and not (row[1] >= 0 and row[0] == -row[1]):
            raise fail(path, where, f"{kind} codebook row {c} is {row.tolist()}; allowed a symmetric pair [-a, a]")
        if kind == "shift":
            p = float(row[-1])
            expected = [-p, p] if len(row) == 2 else [-p, 0.0, p]
            if not is_power_of_two(p) or row.tolist() != expected:
                raise fail(path, where, f"shift codebook row {c} is {row.tolist()}; allowed [-p, p] or "
                                        "[-p, 0, p] with p a power of two")


def check_indices(path: str, where: str, raw: bytes, rows: int, k: int, bits: int, levels: int,
                  indices: np.ndarray) -> None:
    """Every index < levels; the padding bits at the end of each packed row are 0."""
    if indices.size and int(indices.max()) >= levels:
        raise fail(path, where, f"weight index {int(indices.max())}; allowed 0..{levels - 1} (levels {levels})")
    pad = (8 - (k * bits) % 8) % 8
    if pad and rows:
        last = np.frombuffer(raw, np.uint8).reshape(rows, -1)[:, -1]
        if np.any(last >> (8 - pad)):
            raise fail(path, where, "non-zero padding bits at the end of a packed weight row; allowed 0")


# --- file level --------------------------------------------------------------------------


def check_unique_names(path: str, names: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise fail(path, f"record {i} ({name})", f"name {name!r} repeats record {seen[name]}; allowed: unique names")
        seen[name] = i


def _add(reach: int, value: int, limit: int) -> int:
    """Bit set of subset sums (bit s set: some distinct earlier values sum to s) after adding
    ``value``, sums above ``limit`` dropped; built incrementally so a file costs O(layers)."""
    reach |= reach << value
    return reach & ((1 << (limit + 1)) - 1) if reach.bit_length() > limit + 1 else reach


def _dense_input_ok(n_in: int, flat: int, spatial: int, hw: int) -> bool:
    if flat >> n_in & 1:
        return True
    for d in range(1, math.isqrt(n_in) + 1):
        if n_in % d == 0 and any(s <= MAX_CHANNELS and spatial >> s & 1 and n_in // s <= hw for s in (d, n_in // d)):
            return True
    return False


def check_chain(path: str, meta: dict, layers) -> None:
    """Shapes chained layer to layer, when the metadata has ``input_shape`` (else nothing).

    The file lists only the conv/dense layers; pooling, activations, Add, Concatenate, Flatten
    and GlobalAveragePooling between them are not recorded, and residual / fire-module models
    feed a layer from a tensor other than the previous layer's output. What holds exactly for
    every graph of the exporter's supported ops (nothing there makes a tensor larger):

    - conv2d: c_in is the channel count of the input (H, W, C) or of an earlier conv's output,
      or a sum of distinct ones (Concatenate); with padding valid, kh <= H and kw <= W;
    - dense: n_in is a sum of distinct earlier dense outputs (or the input's N for a 1-D
      input), or s * k with s a conv-side channel count as above (<= MAX_CHANNELS) and 1 <= k <= H*W
      (Flatten of an h x w x s tensor, h <= H, w <= W; GlobalAveragePooling: k = 1).

    So a sequential model's first conv must read exactly C channels, and a conv whose c_in is
    no combination of earlier channel counts is rejected.
    """
    shape = meta.get("input_shape")
    if shape is None:
        return
    channels, outputs = ([shape[2]], []) if len(shape) == 3 else ([], [shape[0]])    # for the messages
    spatial = _add(1, shape[2], MAX_CHANNELS) if len(shape) == 3 else 1
    flat = 1 if len(shape) == 3 else _add(1, shape[0], MAX_DENSE_IN)
    height, width = (shape[0], shape[1]) if len(shape) == 3 else (1, 1)
    for i, layer in enumerate(layers):
        where = f"record {i} ({layer.name})"
        c_out, kh, kw, c_in = layer.shape
        if layer.op == "conv2d":
            if not spatial >> c_in & 1:
                raise fail(path, where, f"c_in {c_in} matches no tensor before it; allowed: the input's channels "
                                        f"or earlier conv c_out, alone or concatenated (from {channels[:20]})")
            if layer.padding == "valid" and (kh > height or kw > width):
                raise fail(path, where, f"{kh}x{kw} valid kernel on an input of at most {height}x{width}; "
                                        f"allowed: kh <= {height}, kw <= {width}")
            spatial = _add(spatial, c_out, MAX_CHANNELS)
            channels.append(c_out)
        else:
            if not _dense_input_ok(c_in, flat, spatial, height * width):
                raise fail(path, where, f"dense n_in {c_in} matches no tensor before it; allowed: earlier dense "
                                        f"outputs {outputs[:20]} (or sums) or k * (channels {channels[:20]} or "
                                        f"sums), k <= {height * width}")
            flat = _add(flat, c_out, MAX_DENSE_IN)
            outputs.append(c_out)


def check_input_form(path: str, where: str, kind: str, abits: int, op: str | None, step: float = 1.0,
                     qmin: int = -1, qmax: int = 1) -> None:
    """The layer's input form (format version 2, flag bit 2; ``op`` None when absent) agrees with
    its kind and act_bits: xnor = sign; and = grid 0..1 step 1; int8 = 8-bit grid inside
    -128..127; a grid has a finite step > 0, qmin < qmax and at most 2^act_bits levels; a float
    input (act_bits 32) has no form (the v2 reader calls it for present and absent forms)."""
    if op is None:
        if kind in ("xnor", "and", "int8") or abits != 32:
            raise fail(path, where, f"no input form with kind {kind}, act_bits {abits}; allowed only for float "
                                    "inputs (act_bits 32) of kinds f32, lut, shift")
        return
    if abits == 32:
        raise fail(path, where, f"input form {op} with act_bits 32; allowed act_bits {_list(ACT_BITS[:-1])}")
    if op == "sign":
        if kind in ("and", "int8") or abits != 1:
            raise fail(path, where, f"sign input with kind {kind}, act_bits {abits}; allowed act_bits 1, not and/int8")
        return
    if not (math.isfinite(step) and step > 0 and qmin < qmax and qmax - qmin + 1 <= 1 << abits):
        raise fail(path, where, f"grid input step {step}, range {qmin}..{qmax} with act_bits {abits}; allowed a "
                                f"finite step > 0 and qmin < qmax with at most {1 << abits} levels")
    if kind == "xnor" or kind == "and" and (qmin, qmax, step) != (0, 1, 1.0) or \
            kind == "int8" and not (abits == 8 and -128 <= qmin and qmax <= 127):
        raise fail(path, where, f"grid input {qmin}..{qmax} step {step} with kind {kind}; allowed: xnor sign, and "
                                "0..1 step 1, int8 an 8-bit grid inside -128..127")
