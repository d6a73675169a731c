"""NumPy binding of autoq's C kernels (kernels/include/autoq_kernels.h is the authority).

The C code is compiled into ``autoq._kernels`` when the package is installed; nothing is
compiled at run time. Layouts (batch 1):

- activations NHWC without N: ``x[h, w, c]``; output ``y[out_h, out_w, c_out]``
- weights OHWI: ``w[c_out, kh, kw, c_in]`` (``keras_to_ohwi`` converts a Keras kernel)
- binary (xnor, and): ``pack_bits`` packs the last axis into ``ceil(c / 64)`` uint64 words,
  channel ``ci`` at bit ``ci % 64`` of word ``ci // 64``; bit 1 means +1 (or 1), tail bits 0
- indices (lut, shift): one row of ``K = kh * kw * c_in`` indices per output channel in OHWI
  order, ``8 / bits`` per byte, LSB first (``pack_indices``); shift codes 0, 1, 2 = -1, 0, +1
- int8: the C kernels take pre-packed weights (``pack_int8_weights``, done once, e.g. at
  export; ``packed_weight_nbytes`` gives the stored size of every kind); ``conv2d`` /
  ``dense`` take OHWI int8 weights and pack them per call

Per kind, what ``conv2d`` computes for output channel ``c`` (acc over the valid taps; a padded
position is an exact zero):

- f32 / lut / shift / xnor / and: ``y = acc * m[c] * scale[c] + bias[c]`` (float32), with
  ``m = 2**-shift[c]`` for shift and 1 otherwise
- int8: ``y = clip(rint(acc * scale[c] + bias[c]) + y_zero_point, -128, 127)`` with
  ``acc = sum (x - x_zero_point) * w`` (int8 output); with ``float_output=True``
  ``y = float32(acc) * scale[c] + bias[c]`` (float32 output; ``scale[c] = x_step * w_step[c]``
  dequantises the exact integer product)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autoq.errors import UserError

try:
    from autoq import _kernels as _ext
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "autoq's compiled C kernels (module autoq._kernels) are missing: the package was "
        "installed without building its C extension. Reinstall from the source tree with a C "
        "compiler available: `pip install .` or `pip install -e .`"
    ) from exc

from autoq.kinds import KINDS, LUT_BITS, weight_storage  # noqa: E402  (the one list of kernel kinds)
#: every (kind, variant) pair compiled in, in the order of kernels/include/aq_variants.inc
VARIANTS: list[tuple[str, str]] = [tuple(v) for v in _ext.variants()]
PADDINGS = {"valid": 0, "same": 1}
WORD_BITS = 64

__all__ = ["KINDS", "VARIANTS", "LUT_BITS", "PADDINGS", "conv2d", "dense", "geometry", "keras_to_ohwi",
           "pack_bits", "pack_indices", "pack_int8_weights", "packed_weight_nbytes", "simd_level",
           "time_kernel", "unpack_bits", "unpack_indices", "words"]


def words(c: int) -> int:
    """Number of 64-bit words holding ``c`` packed channels: ``ceil(c / 64)``."""
    return (int(c) + WORD_BITS - 1) // WORD_BITS


def keras_to_ohwi(kernel: np.ndarray) -> np.ndarray:
    """Keras Conv2D kernel ``(kh, kw, c_in, c_out)`` -> OHWI ``(c_out, kh, kw, c_in)``."""
    kernel = np.asarray(kernel)
    if kernel.ndim != 4:
        raise UserError(f"kernel: expected a 4-D Keras kernel (kh, kw, c_in, c_out), got shape {kernel.shape}")
    return np.ascontiguousarray(np.transpose(kernel, (3, 0, 1, 2)))


def simd_level(cap: int | None = None) -> int:
    """SIMD level of the opt kernels (0 portable C, 1 AVX2, 2 AVX-512+VPOPCNTQ); ``cap`` limits it."""
    return int(_ext.simd_level(-1 if cap is None else int(cap)))


# --- packing ---------------------------------------------------------------------------------


def pack_bits(a: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Pack the last axis into uint64 words: bit = (a > threshold), shape ``a.shape[:-1] + (words,)``.

    Channel ``ci`` goes to bit ``ci % 64`` (LSB first) of word ``ci // 64``; the unused tail
    bits of the last word are zero. For values in {-1, +1} or {0, 1} the default threshold 0
    maps -1 / 0 to bit 0 and +1 / 1 to bit 1 (bit 1 = +1).
    """
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim < 1 or a.shape[-1] < 1:
        raise UserError(f"pack_bits: need at least one channel on the last axis, got shape {a.shape}")
    c = a.shape[-1]
    n = a.size // c
    out = np.empty(a.shape[:-1] + (words(c),), dtype=np.uint64)
    _ext.pack_bits(a, n, c, float(threshold), out)
    return out


def unpack_bits(p: np.ndarray, c: int, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """Inverse of ``pack_bits``: ``c`` channels of ``lo`` (bit 0) / ``hi`` (bit 1), float32."""
    p = np.ascontiguousarray(p, dtype=np.uint64)
    if p.ndim < 1 or p.shape[-1] != words(c):
        raise UserError(f"unpack_bits: last axis must hold {words(c)} words for c={c}, got shape {p.shape}")
    n = p.size // p.shape[-1]
    out = np.empty(p.shape[:-1] + (int(c),), dtype=np.float32)
    _ext.unpack_bits(p, n, int(c), float(lo), float(hi), out)
    return out


def packed_weight_nbytes(kind: str, c_in: int, c_out: int, kh: int, kw: int, bits: int | None = None) -> int:
    """Bytes of one layer's weights in the form the C kernels read, without the per-channel
    scale / bias / codebook / shift arrays: autoq.kinds.weight_storage, the one table of the
    storage rules (int8: the pre-packed layout, checked against the kernels' own
    aq_int8_packed_bytes in tests/test_kernels.py)."""
    c_in, c_out, kh, kw = int(c_in), int(c_out), int(kh), int(kw)
    if min(c_in, c_out, kh, kw) < 1:
        raise UserError(f"packed_weight_nbytes: c_in, c_out, kh, kw must be >= 1, got {(c_in, c_out, kh, kw)}")
    if kind not in KINDS:
        raise UserError(f"kind: {kind!r} is not a kernel kind; allowed: {list(KINDS)}")
    if kind == "lut":
        bits = _check_bits(bits if bits is not None else -1)
    weights, _ = weight_storage(kind, c_out=c_out, kh=kh, kw=kw, c_in=c_in, bits=bits or 32)
    return weights


def int8_packed_bytes_of_the_kernels(c_in: int, c_out: int, kh: int, kw: int) -> int:
    """aq_int8_packed_bytes as the compiled kernels compute it."""
    return int(_ext.int8_packed_bytes(kh, kw, c_in, c_out, kh, kw, 1, PADDINGS["valid"]))


def pack_int8_weights(w: np.ndarray) -> np.ndarray:
    """OHWI int8 weights ``(c_out, kh, kw, c_in)`` -> the packed 1-D int8 array the int8 kernels
    read (``packed_weight_nbytes("int8", ...)`` bytes; layout in autoq_kernels.h). Dense
    weights ``(n_out, n_in)`` are the ``kh = kw = 1`` case."""
    w = np.asarray(w)
    if w.ndim == 2:
        w = w.reshape(w.shape[0], 1, 1, w.shape[1])
    if w.ndim != 4 or w.dtype != np.int8:
        raise UserError(f"pack_int8_weights: expected int8 OHWI (c_out, kh, kw, c_in) or (n_out, n_in) weights, "
                        f"got {w.dtype} shape {w.shape}")
    co, kh, kw, ci = (int(v) for v in w.shape)
    out = np.empty(packed_weight_nbytes("int8", ci, co, kh, kw), dtype=np.int8)
    _ext.pack_int8((kh, kw, ci, co, kh, kw, 1, PADDINGS["valid"]), np.ascontiguousarray(w), out)
    return out


def _check_bits(bits: int) -> int:
    if bits not in LUT_BITS:
        raise UserError(f"bits: {bits!r} is not supported by the packed kernels; allowed: {list(LUT_BITS)}")
    return int(bits)


def pack_indices(idx: np.ndarray, bits: int) -> np.ndarray:
    """Pack per-output-channel index rows: ``idx`` ``(c_out, ...)`` -> uint8 ``(c_out, ceil(K*bits/8))``.

    Row ``r`` holds the ``K = prod(idx.shape[1:])`` indices of ``idx[r]`` in C order (OHWI for
    a weight tensor), ``q = 8 / bits`` per byte: index ``j`` is ``(row[j // q] >> (bits *
    (j % q))) & (2**bits - 1)``, the thesis layout.
    """
    bits = _check_bits(bits)
    idx = np.asarray(idx)
    if idx.ndim < 1 or idx.size == 0:
        raise UserError(f"pack_indices: expected (c_out, ...) indices, got shape {idx.shape}")
    if idx.min() < 0 or idx.max() >= (1 << bits):
        raise UserError(f"pack_indices: indices must be in [0, {(1 << bits) - 1}] for bits={bits}, "
                        f"got range [{idx.min()}, {idx.max()}]")
    n = idx.shape[0]
    k = idx.size // n
    out = np.empty((n, (k * bits + 7) // 8), dtype=np.uint8)
    _ext.pack_indices(np.ascontiguousarray(idx, dtype=np.uint8), n, k, bits, out)
    return out


def unpack_indices(p: np.ndarray, bits: int, k: int) -> np.ndarray:
    """Inverse of ``pack_indices``: uint8 ``(n, row_bytes)`` -> uint8 ``(n, k)``."""
    bits = _check_bits(bits)
    p = np.ascontiguousarray(p, dtype=np.uint8)
    if p.ndim != 2 or p.shape[1] != (k * bits + 7) // 8:
        raise UserError(f"unpack_indices: expected shape (n, {(k * bits + 7) // 8}) for k={k}, "
                        f"bits={bits}, got {p.shape}")
    out = np.empty((p.shape[0], int(k)), dtype=np.uint8)
    _ext.unpack_indices(p, p.shape[0], int(k), bits, out)
    return out


# --- convolution -----------------------------------------------------------------------------


def _pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    v = tuple(int(t) for t in v)
    if len(v) != 2:
        raise UserError(f"{name}: expected an int or a pair, got {v!r}")
    return v


def _padding(padding: str) -> int:
    if padding not in PADDINGS:
        raise UserError(f"padding: {padding!r} is not allowed; allowed: {sorted(PADDINGS)}")
    return PADDINGS[padding]


def geometry(h: int, w: int, kernel_size, stride: int = 1, padding: str = "valid") -> tuple[int, int, int, int]:
    """``(out_h, out_w, pad_top, pad_left)``; 'same' follows Keras/TF (extra pad bottom/right)."""
    kh, kw = _pair(kernel_size, "kernel_size")
    try:
        return tuple(_ext.geometry(int(h), int(w), 1, 1, kh, kw, int(stride), _padding(padding)))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _variant_index(kind: str, variant: str) -> int:
    if kind not in KINDS:
        raise UserError(f"kind: {kind!r} is not a kernel kind; allowed: {list(KINDS)}")
    try:
        return VARIANTS.index((kind, variant))
    except ValueError:
        allowed = sorted(v for k, v in VARIANTS if k == kind)
        raise UserError(f"variant: {variant!r} does not exist for kind {kind!r}; allowed: {allowed}") from None


def _array(a, dtype, ndim: int, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.dtype(dtype) or a.ndim != ndim:
        raise UserError(f"{name}: expected a {ndim}-D {np.dtype(dtype).name} array, got "
                        f"{a.ndim}-D {a.dtype.name} with shape {a.shape}")
    return np.ascontiguousarray(a)


def _per_channel(v, c_out: int, dtype, name: str):
    if v is None:
        return None
    a = np.asarray(v, dtype=dtype)
    if a.ndim == 0:
        a = np.full(c_out, a, dtype=dtype)
    if a.shape != (c_out,):
        raise UserError(f"{name}: expected a scalar or shape ({c_out},), got shape {a.shape}")
    return np.ascontiguousarray(a)


@dataclass
class _Operands:
    """The checked arrays and sizes of one conv call, as the C entry point takes them."""

    x: np.ndarray
    w: np.ndarray
    h: int
    wd: int
    ci: int
    co: int
    kh: int
    kw: int
    bits: int = 0
    codebook: np.ndarray | None = None
    codebook_per_channel: int = 0
    shift: np.ndarray | None = None


def _float_or_int8_operands(kind: str, x, w) -> _Operands:
    """f32 / int8: plain (H, W, C) activations and OHWI weights of the same dtype."""
    dt = np.float32 if kind == "f32" else np.int8
    x = _array(x, dt, 3, "x")
    w = _array(w, dt, 4, "w")
    h, wd, ci = x.shape
    co, kh, kw, wci = w.shape
    if wci != ci:
        raise UserError(f"w: OHWI weights have c_in={wci} but x has {ci} channels")
    return _Operands(x, w, h, wd, ci, co, kh, kw)


def _binary_operands(x, w, c_in) -> _Operands:
    """xnor / and: activations and weights packed to 64-bit words along the channels."""
    if c_in is None:
        raise UserError("c_in: required for packed binary activations (x holds words, not channels)")
    ci = int(c_in)
    x = _array(x, np.uint64, 3, "x")
    w = _array(w, np.uint64, 4, "w")
    h, wd, nw = x.shape
    co, kh, kw, wnw = w.shape
    if nw != words(ci) or wnw != words(ci):
        raise UserError(f"x/w: packed last axis must be {words(ci)} words for c_in={ci}, got {nw} / {wnw}")
    return _Operands(x, w, h, wd, ci, co, kh, kw)


def _index_operands(kind: str, x, w, kernel_size, bits, codebook, shift) -> _Operands:
    """lut / shift: float activations and one packed index row per output channel."""
    if kernel_size is None:
        raise UserError("kernel_size: required for packed index rows (lut, shift)")
    kh, kw = _pair(kernel_size, "kernel_size")
    x = _array(x, np.float32, 3, "x")
    h, wd, ci = x.shape
    w = _array(w, np.uint8, 2, "w")
    co = w.shape[0]
    bits = 2 if kind == "shift" else _check_bits(bits if bits is not None else -1)
    row_bytes = (kh * kw * ci * bits + 7) // 8
    if w.shape[1] != row_bytes:
        raise UserError(f"w: index rows must have {row_bytes} bytes (K={kh * kw * ci}, bits={bits}), "
                        f"got shape {w.shape}")
    ops = _Operands(x, w, h, wd, ci, co, kh, kw, bits=bits)
    if kind == "lut":
        ops.codebook, ops.codebook_per_channel = _codebook(codebook, co, bits)
    else:
        ops.shift = _shift_exponents(shift, co)
    return ops


def _codebook(codebook, co: int, bits: int) -> tuple[np.ndarray, int]:
    """The lut codebook as float32 and whether it is per output channel (1) or per layer (0)."""
    if codebook is None:
        raise UserError("codebook: required for kind 'lut'")
    cb = np.ascontiguousarray(codebook, dtype=np.float32)
    levels = 1 << bits
    if cb.shape == (co, levels):
        return cb, 1
    if cb.shape != (levels,):
        raise UserError(f"codebook: expected shape ({levels},) or ({co}, {levels}) for bits={bits}, "
                        f"got {cb.shape}")
    return cb, 0


def _shift_exponents(shift, co: int) -> np.ndarray:
    """Per-channel exponents s of 2**-s as the int8 array the shift kernels read."""
    if shift is None:
        raise UserError("shift: required for kind 'shift' (exponent s of 2**-s per output channel)")
    sh = _per_channel(shift, co, np.int64, "shift")
    if sh.min() < -127 or sh.max() > 127:
        raise UserError(f"shift: exponents must be in [-127, 127], got [{sh.min()}, {sh.max()}]")
    return sh.astype(np.int8)


def _check_zero_points(x_zero_point, y_zero_point) -> None:
    for name, zp in (("x_zero_point", x_zero_point), ("y_zero_point", y_zero_point)):
        if not -128 <= int(zp) <= 127:
            raise UserError(f"{name}: must be in [-128, 127], got {zp!r}")


def conv2d(kind: str, x: np.ndarray, w: np.ndarray, *, kernel_size=None, c_in: int | None = None,
           stride: int = 1, padding: str = "valid", bits: int | None = None, codebook=None,
           shift=None, x_zero_point: int = 0, y_zero_point: int = 0, scale=None, bias=None,
           variant: str = "opt", float_output: bool = False) -> np.ndarray:
    """Run one kernel variant; returns ``y[out_h, out_w, c_out]`` (float32, int8 for int8
    unless ``float_output``).

    Inputs per kind (see the module docstring for the formulas):

    - f32: ``x`` float32 (H, W, C), ``w`` float32 OHWI (c_out, kh, kw, C)
    - lut: ``x`` float32 (H, W, C), ``w`` uint8 ``pack_indices`` rows (c_out, row_bytes),
      ``kernel_size``, ``bits`` in 1/2/4/8, ``codebook`` (2**bits,) per layer or
      (c_out, 2**bits) per output channel
    - shift: ``x`` float32, ``w`` uint8 2-bit rows, ``kernel_size``, ``shift`` int (scalar or per
      channel): weight = code * 2**-shift
    - xnor / and: ``x`` uint64 ``pack_bits`` (H, W, words), ``c_in``, ``w`` uint64 (c_out, kh, kw, words)
    - int8: ``x`` int8 (H, W, C), ``w`` int8 OHWI (packed here, per call), ``x_zero_point``, ``y_zero_point``, ``scale``;
      ``float_output=True`` selects the float epilogue (y_float mode) instead of requantising
    """
    vi = _variant_index(kind, variant)
    if float_output and kind != "int8":
        raise UserError(f"float_output: only applies to kind 'int8' (the other kinds always output float), got {kind!r}")
    s = int(stride)
    if s < 1:
        raise UserError(f"stride: must be >= 1, got {stride!r}")
    pad = _padding(padding)
    if kind in ("f32", "int8"):
        ops = _float_or_int8_operands(kind, x, w)
    elif kind in ("xnor", "and"):
        ops = _binary_operands(x, w, c_in)
    else:
        ops = _index_operands(kind, x, w, kernel_size, bits, codebook, shift)
    if kind == "int8":
        _check_zero_points(x_zero_point, y_zero_point)
    sc = _per_channel(scale, ops.co, np.float32, "scale")
    bi = _per_channel(bias, ops.co, np.float32, "bias")
    dims = (ops.h, ops.wd, ops.ci, ops.co, ops.kh, ops.kw, s, pad)
    try:
        oh, ow, _, _ = _ext.geometry(*dims)
    except ValueError as exc:
        raise UserError(f"conv2d: {exc}") from None
    y = np.empty((oh, ow, ops.co), dtype=np.int8 if kind == "int8" and not float_output else np.float32)
    w_arg = pack_int8_weights(ops.w) if kind == "int8" else ops.w
    _ext.conv(vi, ops.x, w_arg, y, dims, int(ops.bits), ops.codebook_per_channel, ops.codebook, ops.shift,
              int(x_zero_point), int(y_zero_point), sc, bi, int(bool(float_output)))
    return y


def dense(kind: str, x: np.ndarray, w: np.ndarray, **kwargs) -> np.ndarray:
    """Dense layer as the 1x1 case of ``conv2d``: ``x`` (n_in,) (or (words,) packed),
    ``w`` (n_out, n_in) (f32/int8), (n_out, words) (xnor/and) or index rows (lut/shift).
    Returns ``(n_out,)``. Keyword arguments as for ``conv2d`` (``c_in`` for packed inputs)."""
    x = np.asarray(x)
    w = np.asarray(w)
    if x.ndim != 1:
        raise UserError(f"x: dense input must be 1-D, got shape {x.shape}")
    if kind in ("f32", "int8", "xnor", "and"):
        if w.ndim != 2:
            raise UserError(f"w: dense weights must be 2-D (n_out, n_in), got shape {w.shape}")
        w4 = w.reshape(w.shape[0], 1, 1, w.shape[1])
    else:
        w4 = w
        kwargs.setdefault("kernel_size", 1)
    for key in ("stride", "padding"):
        if key in kwargs:
            raise UserError(f"dense: {key!r} does not apply to a dense layer")
    return conv2d(kind, x.reshape(1, 1, -1), w4, **kwargs).reshape(-1)


# --- timing --------------------------------------------------------------------------------


def time_kernel(kind: str, variant: str, shape: tuple, bits: int, reps: int = 50,
                warmup: int = 3) -> tuple[float, float, int]:
    """``(ns_median, ns_min, macs)`` of ``reps`` calls of one variant on random inputs of
    ``shape`` = ``(c_in, c_out, h, w, f, stride, pad)``, timed in C (aq_bench_case: the same loop
    as the bench program kernels/bench/aq_bench_main.c), single thread, after ``warmup`` calls."""
    vi = _variant_index(kind, variant)
    c_in, c_out, h, w, f, stride, pad = shape
    if kind == "lut":
        _check_bits(bits)
    if reps < 1:
        raise UserError(f"reps: must be >= 1, got {reps}")
    try:
        _ext.geometry(int(h), int(w), int(c_in), int(c_out), int(f), int(f), int(stride), _padding(pad))
        med, mn, macs = _ext.bench(vi, int(bits), int(c_in), int(c_out), int(h), int(w), int(f), int(stride),
                                   _padding(pad), int(reps), int(warmup))
    except ValueError as exc:
        raise UserError(f"bench {kind}/{variant} shape {shape}: {exc}") from None
    return float(med), float(mn), int(macs)
