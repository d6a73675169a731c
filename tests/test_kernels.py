"""C kernels (autoq.kernels) against a NumPy reference, for every variant in VARIANTS.

Coverage is a covering design, not the full product (to stay well under a minute): CASES has
every required C_in (1, 3, 31, 33, 65) with both strides, both paddings spread over kernel
sizes 1x1..5x5 (plus non-square filters), output-channel counts that are not multiples of the
block sizes (4, 8, 16, 32), and one wide case (c_in 650) for long packed runs; every variant x case x bit width runs, and the opt variants run at
every SIMD level this CPU has (portable C, AVX2, AVX-512). Integer kinds (xnor, and, int8) must
match the reference exactly, float kinds within a relative bound of sum |x||w|.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from autoq import kernels as K
from autoq.errors import UserError

# (c_in, (kh, kw), stride, padding, h, w, c_out)
CASES = [
    (1, (1, 1), 1, "valid", 5, 6, 3),
    (1, (3, 3), 2, "same", 7, 6, 5),
    (3, (2, 2), 1, "same", 6, 5, 8),
    (3, (5, 5), 2, "valid", 9, 8, 17),
    (31, (4, 4), 1, "valid", 6, 7, 9),
    (31, (3, 3), 2, "same", 5, 5, 16),
    (33, (5, 5), 1, "same", 6, 6, 4),
    (33, (1, 1), 2, "valid", 5, 4, 7),
    (65, (3, 3), 1, "same", 5, 4, 19),
    (65, (2, 2), 2, "same", 6, 5, 2),
    (3, (1, 3), 1, "same", 4, 9, 33),
    (64, (3, 2), 2, "valid", 7, 6, 8),
    (650, (2, 4), 1, "same", 3, 5, 17),  # 11 words x 4 taps: > 31 words per filter row (AVX2 flush)
    (40, (3, 3), 1, "same", 7, 11, 72),  # >= 32 channels, >= 4 equal-tap pixels or rows: AVX-512 tiles + rest
    (70, (3, 3), 2, "same", 11, 13, 40),  # the same, 2 words per tap, stride 2
    (16, (3, 3), 1, "same", 7, 10, 24),  # c_in <= 32: two pixels per word (AVX-512), 16 + 8 channels
    (32, (3, 3), 2, "same", 11, 12, 56),  # the same, stride 2, 32 + 16 + 8 channels
    (5, (3, 3), 1, "valid", 8, 9, 16),
]
CASE_IDS = [f"cin{c[0]}-k{c[1][0]}x{c[1][1]}-s{c[2]}-{c[3]}-co{c[6]}" for c in CASES]
MAX_LEVEL = K.simd_level()
RUNS = [(kind, var, lvl) for kind, var in K.VARIANTS for lvl in (range(MAX_LEVEL + 1) if var == "opt" else [0])]
RUN_IDS = [f"{k}-{v}-simd{lvl}" for k, v, lvl in RUNS]


@pytest.fixture(autouse=True)
def _restore_simd_level():
    yield
    K.simd_level(99)


def same_padding(size: int, k: int, stride: int) -> tuple[int, int]:
    """(output size, padding before) of a 'same' convolution as TensorFlow documents it: out =
    ceil(size / stride), total padding max((out - 1) * stride + k - size, 0), the odd pixel at
    the end; checked against tf.nn.conv2d in test_ref_conv_matches_tensorflow."""
    out = -(-size // stride)
    return out, max((out - 1) * stride + k - size, 0) // 2


def ref_conv(x: np.ndarray, w: np.ndarray, stride: int, padding: str) -> np.ndarray:
    """Plain NumPy conv in float64: NHWC x, OHWI w, padded positions are exact zeros."""
    h, wd, _ = x.shape
    co, kh, kw, _ = w.shape
    if padding == "same":
        (oh, pt), (ow, pl) = same_padding(h, kh, stride), same_padding(wd, kw, stride)
    else:
        oh, ow, pt, pl = (h - kh) // stride + 1, (wd - kw) // stride + 1, 0, 0
    pb = max(0, (oh - 1) * stride + kh - h - pt)
    pr = max(0, (ow - 1) * stride + kw - wd - pl)
    xp = np.pad(x.astype(np.float64), ((pt, pb), (pl, pr), (0, 0)))
    out = np.zeros((oh, ow, co))
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride, :]
            out += patch @ w[:, ky, kx, :].astype(np.float64).T
    return out


def make_inputs(kind: str, case, bits: int, rng: np.random.Generator):
    """Random encoded inputs for `kind`, the kwargs of K.conv2d and the decoded values."""
    c_in, (kh, kw), stride, padding, h, wd, co = case
    kwargs = dict(stride=stride, padding=padding, scale=rng.uniform(0.5, 2, co).astype(np.float32),
                  bias=rng.uniform(-1, 1, co).astype(np.float32))
    if kind in ("xnor", "and"):
        xv = rng.integers(0, 2, (h, wd, c_in)).astype(np.float32)
        if kind == "xnor":
            xv = 2 * xv - 1
        wv = (2 * rng.integers(0, 2, (co, kh, kw, c_in)) - 1).astype(np.float32)
        return K.pack_bits(xv), K.pack_bits(wv), dict(kwargs, c_in=c_in), xv, wv
    if kind == "int8":
        x = rng.integers(-128, 128, (h, wd, c_in)).astype(np.int8)
        w = rng.integers(-128, 128, (co, kh, kw, c_in)).astype(np.int8)
        zp = int(rng.integers(-20, 20))
        kwargs.update(x_zero_point=zp, y_zero_point=int(rng.integers(-10, 10)),
                      scale=np.full(co, 1 / 4096, np.float32) * kwargs["scale"])
        return x, w, kwargs, x.astype(np.float64) - zp, w.astype(np.float64)
    x = rng.standard_normal((h, wd, c_in)).astype(np.float32)
    if kind == "f32":
        w = rng.standard_normal((co, kh, kw, c_in)).astype(np.float32)
        return x, w, kwargs, x, w
    levels = 1 << bits
    idx = rng.integers(0, 3 if kind == "shift" else levels, (co, kh, kw, c_in))
    packed = K.pack_indices(idx, bits)
    kwargs["kernel_size"] = (kh, kw)
    if kind == "shift":
        s = rng.integers(-2, 5, co)
        kwargs["shift"] = s
        wv = (idx.astype(np.float64) - 1) * 2.0 ** -s[:, None, None, None]
        return x, packed, kwargs, x, wv
    per_channel = (c_in + co) % 2 == 1  # alternate per-layer / per-channel codebooks over CASES
    cb = rng.standard_normal((co, levels) if per_channel else (levels,)).astype(np.float32)
    kwargs.update(bits=bits, codebook=cb)
    wv = cb[np.arange(co)[:, None, None, None], idx] if per_channel else cb[idx]
    return x, packed, kwargs, x, wv


def expected(kind, kwargs, xv, wv, acc):
    scale, bias = kwargs["scale"], kwargs["bias"]
    if kind == "int8":
        v = acc.astype(np.int32).astype(np.float32) * scale + bias  # float32 like the C epilogue
        return np.clip(np.rint(v) + kwargs["y_zero_point"], -128, 127).astype(np.int8)
    return acc * scale + bias


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("kind,variant,level", RUNS, ids=RUN_IDS)
def test_conv_matches_numpy_reference(kind, variant, level, case):
    K.simd_level(level)
    for bits in (K.LUT_BITS if kind == "lut" else [2 if kind == "shift" else 1]):
        rng = np.random.default_rng(zlib.crc32(repr((kind, bits, case)).encode()))
        x, w, kwargs, xv, wv = make_inputs(kind, case, bits, rng)
        y = K.conv2d(kind, x, w, variant=variant, **kwargs)
        acc = ref_conv(xv, wv, case[2], case[3])
        want = expected(kind, kwargs, xv, wv, acc)
        assert y.shape == want.shape
        if kind in ("xnor", "and", "int8"):
            # integer accumulators: exact, including the float epilogue (same float32 operations)
            want32 = want if kind == "int8" else (acc.astype(np.float32) * kwargs["scale"]) + kwargs["bias"]
            bad = np.argwhere(y != want32)
            assert bad.size == 0, f"bits={bits}: first mismatch at {tuple(bad[0])}: got {y[tuple(bad[0])]}, want {want32[tuple(bad[0])]}"
        else:
            bound = ref_conv(np.abs(xv), np.abs(wv), case[2], case[3]) * kwargs["scale"] * 1e-5 + 1e-5
            err = np.abs(y - want)
            worst = np.unravel_index(np.argmax(err - bound), err.shape)
            assert np.all(err <= bound), f"bits={bits}: at {worst}: got {y[worst]}, want {want[worst]}"


@pytest.mark.parametrize("kind", ["xnor", "and", "int8"])
def test_opt_equals_ref_exactly_for_integer_kinds(kind):
    case = (65, (3, 3), 1, "same", 9, 8, 37)
    rng = np.random.default_rng(7)
    x, w, kwargs, _, _ = make_inputs(kind, case, 1, rng)
    ref = K.conv2d(kind, x, w, variant="ref", **kwargs)
    for level in range(MAX_LEVEL + 1):
        K.simd_level(level)
        np.testing.assert_array_equal(K.conv2d(kind, x, w, variant="opt", **kwargs), ref)


INT8_RUNS = [r for r in RUNS if r[0] == "int8"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("kind,variant,level", INT8_RUNS, ids=[f"{v}-simd{lvl}" for _, v, lvl in INT8_RUNS])
def test_int8_float_output_mode(kind, variant, level, case):
    """y_float mode: exact int32 accumulation, then y = float32(acc) * scale + bias (float32)."""
    K.simd_level(level)
    rng = np.random.default_rng(zlib.crc32(repr(("int8-float", case)).encode()))
    x, w, kwargs, xv, wv = make_inputs(kind, case, 8, rng)
    kwargs["scale"] = (rng.uniform(0.5, 2, case[6]) * 0.02 * 0.01).astype(np.float32)  # x_step * w_step[c]
    kwargs["y_zero_point"] = 0
    y = K.conv2d(kind, x, w, variant=variant, float_output=True, **kwargs)
    acc = ref_conv(xv, wv, case[2], case[3])
    assert y.dtype == np.float32 and y.shape == acc.shape
    assert np.all(acc == np.rint(acc)) and np.abs(acc).max() < 2**31
    want = acc.astype(np.int32).astype(np.float32) * kwargs["scale"] + kwargs["bias"]  # float32 ops
    # two float32 roundings in both: equal up to an ulp of the result (FMA contraction aside)
    np.testing.assert_allclose(y, want, rtol=2.0**-22, atol=np.abs(kwargs["bias"]).max() * 2.0**-22)


def test_int8_float_output_opt_equals_ref_and_dense():
    case = (65, (3, 3), 1, "same", 9, 8, 37)
    rng = np.random.default_rng(11)
    x, w, kwargs, _, _ = make_inputs("int8", case, 8, rng)
    ref = K.conv2d("int8", x, w, variant="ref", float_output=True, **kwargs)
    for level in range(MAX_LEVEL + 1):
        K.simd_level(level)
        np.testing.assert_array_equal(K.conv2d("int8", x, w, variant="opt", float_output=True, **kwargs), ref)
    xd, wd = x.reshape(-1)[:100], rng.integers(-127, 128, (10, 100)).astype(np.int8)
    yd = K.dense("int8", xd, wd, scale=np.float32(1e-3), bias=np.float32(0.5), float_output=True)
    want = (xd.astype(np.int64) @ wd.T.astype(np.int64)).astype(np.float32) * np.float32(1e-3) + np.float32(0.5)
    np.testing.assert_allclose(yd, want, rtol=2.0**-22)
    with pytest.raises(UserError, match="float_output"):
        K.conv2d("f32", np.zeros((3, 3, 1), np.float32), np.zeros((1, 1, 1, 1), np.float32), float_output=True)


def test_padding_is_zero_not_minus_one_for_xnor():
    # all activations and weights +1: every valid tap adds +1, a padded tap adds 0
    x = K.pack_bits(np.ones((3, 3, 5), np.float32))
    w = K.pack_bits(np.ones((1, 3, 3, 5), np.float32))
    for variant in ("ref", "opt"):
        y = K.conv2d("xnor", x, w, c_in=5, padding="same", variant=variant)[..., 0]
        np.testing.assert_array_equal(y, 5 * np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]], np.float32))


# (size, k, stride) -> (out, pad before) of 'same', worked out by hand: total padding
# (out - 1) * stride + k - size (0 if negative), the odd pixel after (TensorFlow's rule)
SAME_BY_HAND = {(1, 1, 1): (1, 0), (1, 3, 2): (1, 1), (4, 2, 1): (4, 0), (4, 3, 2): (2, 0), (4, 4, 3): (2, 1),
                (5, 2, 2): (3, 0), (5, 4, 2): (3, 1), (5, 5, 1): (5, 2), (16, 3, 3): (6, 1), (16, 5, 2): (8, 1),
                (16, 4, 1): (16, 1), (7, 5, 3): (3, 2), (6, 1, 4): (2, 0)}


@pytest.mark.parametrize("size,k,s", sorted(SAME_BY_HAND))
def test_same_padding_geometry_by_hand(size, k, s):
    out, pad_before = SAME_BY_HAND[(size, k, s)]
    assert K.geometry(size, size + 1, (k, 1), s, "same")[::2] == (out, pad_before)
    assert K.geometry(size + 1, size, (1, k), s, "same")[1::2] == (out, pad_before)
    assert same_padding(size, k, s) == (out, pad_before)


def test_ref_conv_matches_tensorflow():
    """The test's reference conv (its geometry and zero padding) against tf.nn.conv2d."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    for h, wd, (kh, kw), s in [(5, 4, (4, 2), 2), (16, 7, (3, 5), 3), (1, 6, (3, 1), 2), (6, 6, (2, 2), 1)]:
        x = rng.standard_normal((h, wd, 3))
        w = rng.standard_normal((4, kh, kw, 3))
        for padding in ("same", "valid"):
            if padding == "valid" and (kh > h or kw > wd):
                continue
            want = tf.nn.conv2d(x[None], np.transpose(w, (1, 2, 3, 0)), s, padding.upper())[0].numpy()
            np.testing.assert_allclose(ref_conv(x, w, s, padding), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("c", list(range(1, 131)))
def test_pack_bits_round_trip_and_layout(c):
    rng = np.random.default_rng(c)
    bits = rng.integers(0, 2, (3, c))
    p = K.pack_bits(2 * bits.astype(np.float32) - 1)
    assert p.shape == (3, K.words(c)) and p.dtype == np.uint64
    for r in range(3):  # channel ci at bit ci % 64 of word ci // 64, tail bits zero
        want = sum(int(b) << i for i, b in enumerate(bits[r]))
        got = sum(int(wd) << (64 * j) for j, wd in enumerate(p[r]))
        assert got == want
    np.testing.assert_array_equal(K.unpack_bits(p, c, 0.0, 1.0), bits.astype(np.float32))


@pytest.mark.parametrize("bits", K.LUT_BITS)
def test_pack_indices_round_trip_every_remainder(bits):
    rng = np.random.default_rng(bits)
    for k in range(1, 2 * (8 // bits) + 2):
        idx = rng.integers(0, 1 << bits, (4, k))
        p = K.pack_indices(idx, bits)
        assert p.shape == (4, (k * bits + 7) // 8)
        np.testing.assert_array_equal(K.unpack_indices(p, bits, k), idx)
    p = K.pack_indices(np.array([[1, 2, 3, 0, 1]]), 2)  # thesis layout: LSB first
    assert list(p[0]) == [0b00111001, 0b01]


@pytest.mark.parametrize("c_in,c_out,kh,kw", [(3, 8, 3, 3), (6, 17, 5, 5), (64, 64, 3, 3), (1, 1, 1, 1), (33, 40, 2, 1)])
def test_pack_int8_weights_layout_and_size(c_in, c_out, kh, kw):
    """The packed int8 layout of autoq_kernels.h, rebuilt in NumPy from its byte-offset formula."""
    rng = np.random.default_rng(c_in * 1000 + c_out)
    w = rng.integers(-128, 128, (c_out, kh, kw, c_in)).astype(np.int8)
    packed = K.pack_int8_weights(w)
    c4, co2 = 4 * -(-c_in // 4), 2 * -(-c_out // 2)
    assert packed.shape == (co2 * kh * kw * c4,) == (K.packed_weight_nbytes("int8", c_in, c_out, kh, kw),)
    assert K.packed_weight_nbytes("int8", c_in, c_out, kh, kw) == K.int8_packed_bytes_of_the_kernels(c_in, c_out, kh, kw)
    want = np.zeros(packed.shape, np.int8)
    for co in range(c_out):
        c0 = co - co % 16
        nb = 2 * -(-min(16, c_out - c0) // 2)
        for t in range(kh * kw):
            for ci in range(c_in):
                off = c0 * kh * kw * c4 + (t * c4 // 4 + ci // 4) * nb * 4 + (co - c0) * 4 + ci % 4
                want[off] = w[co, t // kw, t % kw, ci]
    np.testing.assert_array_equal(packed, want)
    np.testing.assert_array_equal(K.pack_int8_weights(w[:, 0, 0, :]) if kh == kw == 1 else packed, packed)


def test_packed_weight_nbytes_of_the_other_kinds():
    assert K.packed_weight_nbytes("f32", 3, 8, 3, 3) == 4 * 8 * 27
    assert K.packed_weight_nbytes("lut", 3, 8, 3, 3, bits=4) == 8 * 14
    assert K.packed_weight_nbytes("shift", 3, 8, 3, 3) == 8 * 7
    assert K.packed_weight_nbytes("xnor", 65, 8, 3, 3) == 8 * 8 * 9 * 2
    with pytest.raises(UserError):
        K.packed_weight_nbytes("int4", 3, 8, 3, 3)
    with pytest.raises(UserError):
        K.pack_int8_weights(np.zeros((2, 3, 3, 3), np.float32))


@pytest.mark.parametrize("c_in,c_out,hw,stride", [(70, 11, 1, 1), (1, 1, 1, 1), (3, 4, 1, 1), (4, 5, 1, 1),
                                                   (16, 13, 5, 1), (3, 6, 5, 3)])
def test_f32_whole_window_reads_weight_rows_in_place(c_in, c_out, hw, stride):
    """A layer whose one output pixel sees the whole input (dense, or a valid conv as large as its
    input) runs as one dot product per channel (no weight block, no scratch): same result as ref
    at every SIMD level, channel tails (c_out % 4) and run tails (K % 4) included."""
    rng = np.random.default_rng(c_in * 100 + c_out)
    x = rng.standard_normal((hw, hw, c_in)).astype(np.float32)
    w = rng.standard_normal((c_out, hw, hw, c_in)).astype(np.float32)
    scale, bias = rng.random(c_out).astype(np.float32) + 0.5, rng.standard_normal(c_out).astype(np.float32)
    kw = dict(stride=stride, padding="valid", scale=scale, bias=bias)
    ref = K.conv2d("f32", x, w, variant="ref", **kw)
    expect = (w.reshape(c_out, -1).astype(np.float64) @ x.reshape(-1)) * scale + bias
    np.testing.assert_allclose(ref.reshape(-1), expect, rtol=1e-4, atol=1e-4)
    for level in range(MAX_LEVEL + 1):   # the autouse fixture restores the level
        K.simd_level(level)
        np.testing.assert_allclose(K.conv2d("f32", x, w, variant="opt", **kw), ref, rtol=1e-5, atol=1e-5)


def test_dense_is_the_1x1_case():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(70).astype(np.float32)
    w = rng.standard_normal((11, 70)).astype(np.float32)
    np.testing.assert_allclose(K.dense("f32", x, w), w @ x, rtol=1e-5, atol=1e-5)
    xb = np.sign(x) + (x == 0)
    wb = np.sign(w) + (w == 0)
    y = K.dense("xnor", K.pack_bits(xb), K.pack_bits(wb), c_in=70)
    np.testing.assert_array_equal(y, (wb @ xb).astype(np.float32))


def test_keras_to_ohwi():
    k = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    o = K.keras_to_ohwi(k)
    assert o.shape == (5, 2, 3, 4) and o[4, 1, 2, 3] == k[1, 2, 3, 4]


def test_bad_input_raises_user_error():
    x = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(UserError, match="kind"):
        K.conv2d("float", x, np.zeros((1, 1, 1, 3), np.float32))
    with pytest.raises(UserError, match="variant"):
        K.conv2d("f32", x, np.zeros((1, 1, 1, 3), np.float32), variant="fast")
    with pytest.raises(UserError, match="c_in"):
        K.conv2d("f32", x, np.zeros((1, 1, 1, 2), np.float32))
    with pytest.raises(UserError, match="bits"):
        K.pack_indices(np.zeros((1, 4), np.uint8), 3)
    with pytest.raises(UserError, match="codebook"):
        K.conv2d("lut", x, K.pack_indices(np.zeros((2, 27), np.uint8), 2), kernel_size=3, bits=2,
                 codebook=np.zeros(3, np.float32))
    with pytest.raises(UserError, match="geometry"):
        K.conv2d("f32", x, np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(UserError, match="padding"):
        K.conv2d("f32", x, np.zeros((1, 1, 1, 3), np.float32), padding="full")


def test_time_kernel_returns_plain_numbers():
    ns_median, ns_min, macs = K.time_kernel("xnor", "opt", (8, 4, 6, 6, 3, 1, "same"), 1, reps=3)
    assert macs == 6 * 6 * 4 * 3 * 3 * 8 and 0 < ns_min <= ns_median
    with pytest.raises(UserError, match="reps"):
        K.time_kernel("f32", "opt", (8, 4, 6, 6, 3, 1, "same"), 32, reps=0)


def test_every_kind_has_ref_and_opt():
    assert sorted(K.VARIANTS) == sorted((k, v) for k in K.KINDS for v in ("ref", "opt"))


def test_cli_bench_kernels_prints_the_measurements_csv():
    from typer.testing import CliRunner

    from autoq.cli import app

    res = CliRunner().invoke(app, ["bench-kernels", "--shape", "8,4,5,5,3,1,same", "--kinds", "xnor,lut",
                                   "--variants", "opt", "--reps", "2"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0] == "kind,bits,variant,c_in,c_out,h,w,f,stride,pad,macs,ns_median,ns_min"  # docs/contracts.md
    rows = [line.split(",") for line in lines[1:]]
    assert sorted((r[0], r[1]) for r in rows) == [("lut", "1"), ("lut", "2"), ("lut", "4"), ("lut", "8"), ("xnor", "1")]
    assert all(r[10] == str(5 * 5 * 4 * 9 * 8) for r in rows)
    res = CliRunner().invoke(app, ["bench-kernels", "--shape", "8,4,5"])
    assert res.exit_code != 0


@pytest.mark.parametrize("lo,hi,zp", [(-128, 127, 5), (-127, 127, 0), (0, 127, 0), (-128, -1, -128),
                                      (-1, 126, 127), (-128, 126, 0), (0, 127, -128)])
def test_int8_opt_exact_at_extreme_input_ranges(lo, hi, zp):
    """The x86 byte-dot-product paths (conv_int8_x86.c) pick their input offset from the input's
    range: [0, 127] spans (u8 x s8 pairs), [-127, 127] spans (the |w| x sign trick), the full
    range (VNNI, else the int16 pairs). Extreme pairs (inputs at the range ends, weights -128
    and 127) would saturate vpmaddubsw's int16 pair sums under a wrong offset."""
    rng = np.random.default_rng(zlib.crc32(repr((lo, hi, zp)).encode()))
    for c_in, k, s, pad, h, wd, co in [(3, 3, 1, "same", 5, 6, 17), (64, 3, 2, "same", 6, 7, 40), (8, 5, 1, "valid", 9, 9, 9)]:
        xs = [rng.integers(lo, hi + 1, (h, wd, c_in)), np.full((h, wd, c_in), hi), np.full((h, wd, c_in), lo)]
        ws = [rng.integers(-128, 128, (co, k, k, c_in)), np.full((co, k, k, c_in), -128), rng.choice([-128, 127], (co, k, k, c_in))]
        for x, w in zip(xs, ws):
            x, w = x.astype(np.int8), w.astype(np.int8)
            kw = dict(stride=s, padding=pad, x_zero_point=zp, y_zero_point=3, scale=np.full(co, 1e-5, np.float32),
                      bias=np.linspace(-1, 1, co).astype(np.float32))
            ref = K.conv2d("int8", x, w, variant="ref", **kw)
            reff = K.conv2d("int8", x, w, variant="ref", float_output=True, **kw)
            acc = ref_conv(x.astype(np.float64) - zp, w.astype(np.float64), s, pad)
            np.testing.assert_array_equal(reff, acc.astype(np.float32) * kw["scale"] + kw["bias"])
            for level in range(MAX_LEVEL + 1):
                K.simd_level(level)
                np.testing.assert_array_equal(K.conv2d("int8", x, w, variant="opt", **kw), ref)
                got = K.conv2d("int8", x, w, variant="opt", float_output=True, **kw)
                np.testing.assert_array_equal(got.view(np.uint32), reff.view(np.uint32))
