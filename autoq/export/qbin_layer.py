"""A compute layer in export form (:class:`QLayer`), built from a Keras kernel and its weight
quantizer (:func:`encode_layer`), and the packed index rows the .qbin file and the C kernels
store (:func:`pack_rows`). NumPy only (no TensorFlow).

The back ends read QLayers: the ONNX and C emitters and the .qbin writer and reader
(:mod:`autoq.export.qbin`, which re-exports these names).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# --- bit packing ---------------------------------------------------------------------------


def row_bytes(k: int, bits: int) -> int:
    """Bytes of one packed row of ``k`` indices of ``bits`` bits: ceil(k * bits / 8)."""
    return (int(k) * int(bits) + 7) // 8


def pack_rows(indices: np.ndarray, bits: int) -> bytes:
    """Pack a (rows, K) array of indices < 2^bits, LSB first, each row byte-aligned."""
    idx = np.asarray(indices, dtype=np.uint8)
    rows, k = idx.shape
    if idx.size and int(idx.max()) >= 1 << bits:
        raise ValueError(f"index {int(idx.max())} does not fit in {bits} bits")
    # bit t of index j lands at bit j*bits + t of the row
    bitplanes = ((idx[:, :, None] >> np.arange(bits, dtype=np.uint8)) & 1).reshape(rows, k * bits)
    pad = row_bytes(k, bits) * 8 - k * bits
    bitplanes = np.pad(bitplanes, ((0, 0), (0, pad)))
    return np.packbits(bitplanes, axis=1, bitorder="little").tobytes()


def unpack_rows(data: bytes, rows: int, k: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_rows`: (rows, K) uint8 indices."""
    packed = np.frombuffer(data, dtype=np.uint8).reshape(rows, row_bytes(k, bits))
    bitplanes = np.unpackbits(packed, axis=1, bitorder="little")[:, : k * bits].reshape(rows, k, bits)
    return (bitplanes.astype(np.uint16) << np.arange(bits, dtype=np.uint16)).sum(axis=2).astype(np.uint8)


# --- records -------------------------------------------------------------------------------


def affine_book(scales: np.ndarray, zero_point: int, levels: int) -> np.ndarray:
    """The codebook of the affine form: value = scales[c] * (index - zero_point); (L,) for one
    scale, (c_out, L) for per-channel scales."""
    base = np.arange(levels, dtype=np.float32) - np.float32(zero_point)
    book = base[None, :] * np.asarray(scales, np.float32).reshape(-1, 1)
    return book[0] if len(scales) == 1 else book


@dataclass
class QLayer:
    """One compute layer in export form. Weights are OHWI (dense: (c_out, 1, 1, c_in)).

    Float layers: ``weights`` holds the float32 OHWI array and ``indices`` is None.
    Quantized layers: ``indices`` (uint8, OHWI) and ``codebook`` ((L,) or (c_out, L)); the
    quantizer's declared ``form`` (autoq.quant.forms.WeightForm; None when read from a file)
    and, for its integer forms, ``scales`` ((1,) or (c_out,)): value = scales[c] * levels[i].
    ``zero_point`` is set when the levels are consecutive (value = scales[c] * (i - zero_point)):
    the affine record form.
    """

    name: str
    op: str
    kind: str
    weight_bits: int
    act_bits: int
    shape: tuple[int, int, int, int]                  # (c_out, kh, kw, c_in)
    stride: int = 1
    padding: str = "valid"
    weights: np.ndarray | None = None
    indices: np.ndarray | None = None
    codebook: np.ndarray | None = None
    scales: np.ndarray | None = None
    zero_point: int | None = None
    form: object = None                               # WeightForm of the quantizer (export side)
    input_form: object = None                         # InputForm of the layer's input quantizer
    bias: np.ndarray | None = None
    scale: np.ndarray | None = None                   # per-channel post-accumulation multiplier
    extra: dict = field(default_factory=dict)

    @property
    def levels(self) -> int:
        if self.codebook is not None:
            return int(np.asarray(self.codebook).shape[-1])
        return 1 << self.weight_bits if self.indices is not None else 0

    def decoded(self) -> np.ndarray:
        """Float32 OHWI weights."""
        if self.indices is None:
            return np.asarray(self.weights, dtype=np.float32)
        idx = self.indices.astype(np.intp)
        if self.zero_point is not None:
            book = affine_book(self.scales, self.zero_point, self.levels)
        else:
            book = np.asarray(self.codebook, np.float32)
        if book.ndim == 1:
            return book[idx]
        channel = np.arange(book.shape[0]).reshape(-1, 1, 1, 1)
        return book[np.broadcast_to(channel, idx.shape), idx]

    def integers(self) -> np.ndarray | None:
        """The integer level z of every weight (OHWI), value = scales[c] * z, for the integer
        forms (binary, ternary, integer); None for float and table layers."""
        if self.indices is None or self.scales is None:
            return None
        idx = self.indices.astype(np.int64)
        if self.form is not None:
            return np.asarray(self.form.levels, np.int64)[idx]
        return idx - int(self.zero_point)

    def keras_kernel(self) -> np.ndarray:
        """Decoded weights in Keras layout: conv (kh, kw, c_in, c_out), dense (n_in, n_out)."""
        w = self.decoded()
        if self.op == "dense":
            return w.reshape(self.shape[0], self.shape[3]).T
        return w.transpose(1, 2, 3, 0)


def encode_layer(name: str, op: str, kind: str, kernel: np.ndarray, quantizer, act_bits: int = 32,
                 stride: int = 1, padding: str = "valid", bias: np.ndarray | None = None,
                 scale: np.ndarray | None = None, input_form=None) -> QLayer:
    """Build a QLayer from a Keras-layout kernel and its weight quantizer (None = float);
    ``input_form``: the InputForm of the layer's input quantizer (None = float input)."""
    kernel = np.asarray(kernel, dtype=np.float32)
    if op == "dense":
        n_in, n_out = kernel.shape
        shape = (n_out, 1, 1, n_in)
        to_ohwi = lambda a: a.T.reshape(shape)  # noqa: E731
    else:
        kh, kw, c_in, c_out = kernel.shape
        shape = (c_out, kh, kw, c_in)
        to_ohwi = lambda a: a.transpose(3, 0, 1, 2)  # noqa: E731
    layer = QLayer(name=name, op=op, kind=kind, weight_bits=32 if quantizer is None else int(quantizer.bits),
                   act_bits=int(act_bits), shape=tuple(int(s) for s in shape), stride=int(stride),
                   padding=padding, bias=None if bias is None else np.asarray(bias, np.float32),
                   scale=None if scale is None else np.asarray(scale, np.float32), input_form=input_form)
    if quantizer is None:
        layer.weights = np.ascontiguousarray(to_ohwi(kernel))
        return layer
    enc = quantizer.encode_weights(kernel)
    layer.form = enc.form
    layer.indices = np.ascontiguousarray(to_ohwi(enc.indices))
    bits_needed = max(1, int(np.ceil(np.log2(max(enc.form.count, 2)))))
    layer.weight_bits = max(layer.weight_bits, bits_needed)
    layer.codebook = enc.codebook
    if enc.scale is not None:
        layer.scales = enc.scale
        layer.zero_point = enc.form.zero_point
    return layer
