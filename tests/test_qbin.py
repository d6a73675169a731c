""".qbin: packing layout, round trip for every weight quantizer, corrupted/truncated files rejected."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from quantizer_cases import registry_cases

from autoq import quant
from autoq.export import qbin
from autoq.quant.forms import InputForm
from autoq.quant import layer_kind

# float and every registered weight quantizer in every parameter combination (tests/quantizer_cases.py)
WEIGHT_QUANTIZERS = [None] + [c for c, _ in registry_cases("weight")]


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("k", [1, 7, 8, 9, 15, 16, 17, 33])
def test_pack_rows_layout_and_round_trip(bits, k):
    rng = np.random.default_rng(k * 10 + bits)
    idx = rng.integers(0, 1 << bits, size=(3, k), dtype=np.uint8)
    packed = qbin.pack_rows(idx, bits)
    assert len(packed) == 3 * ((k * bits + 7) // 8)
    assert np.array_equal(qbin.unpack_rows(packed, 3, k, bits), idx)
    if 8 % bits == 0:  # the kernels' (thesis) layout: byte = row[j / q], shift = bits * (j % q)
        q, rb = 8 // bits, (k * bits + 7) // 8
        rows = np.frombuffer(packed, np.uint8).reshape(3, rb)
        for r in range(3):
            for j in range(k):
                assert (rows[r, j // q] >> (bits * (j % q))) & ((1 << bits) - 1) == idx[r, j]


INPUT_FORMS = [None, InputForm("sign", 1), InputForm("grid", 8, 0.0123, -127, 127, "calibrated"),
               InputForm("grid", 2, 1 / 3, 0, 3)]


def _layers(rng):
    out = []
    for i, spec in enumerate(WEIGHT_QUANTIZERS):
        q = quant.for_role(spec, "weight")
        conv = i % 2 == 0
        # dense n_in 16 = Flatten of a 2x2x4 conv output: a valid chain for input_shape [8, 8, 5]
        kernel = rng.normal(0, 0.5, size=(3, 3, 5, 4) if conv else (16, 6)).astype(np.float32)
        c_out = kernel.shape[-1]
        form = INPUT_FORMS[i % len(INPUT_FORMS)]
        out.append((q, kernel, qbin.encode_layer(
            f"layer{i}", "conv2d" if conv else "dense", layer_kind(q, None), kernel, q,
            act_bits=32 if form is None else form.bits, stride=1 + i % 4 // 2 if conv else 1, padding="same" if conv else "valid",
            bias=rng.normal(size=c_out).astype(np.float32) if i % 2 else None,
            scale=rng.normal(size=c_out).astype(np.float32) if i % 4 == 1 else None,
            input_form=form)))
    return out


def test_round_trip_every_weight_quantizer(tmp_path):
    rng = np.random.default_rng(0)
    items = _layers(rng)
    path = qbin.write_qbin(tmp_path / "m.qbin", [layer for _, _, layer in items], {"model": "test", "input_shape": [8, 8, 5]})
    qf = qbin.read_qbin(path)
    assert qf.meta == {"model": "test", "input_shape": [8, 8, 5]}
    assert len(qf.layers) == len(items)
    for (q, kernel, written), read in zip(items, qf.layers):
        expected = kernel if q is None else q.decode(*q.encode(kernel))
        assert np.array_equal(read.keras_kernel(), expected), read.name       # bit-exact
        assert (read.name, read.op, read.kind, read.shape, read.stride, read.padding) == (
            written.name, written.op, written.kind, written.shape, written.stride, written.padding)
        for a, b in ((read.bias, written.bias), (read.scale, written.scale)):
            assert (a is None and b is None) or np.array_equal(a, b)
        f, g = read.input_form, written.input_form        # the fixed input range the ONNX and C use
        assert (f is None and g is None) or (f.op, np.float32(f.step), f.qmin, f.qmax) == (
            g.op, np.float32(g.step), g.qmin, g.qmax), read.name


def test_quantized_weights_are_compressed(tmp_path):
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 64, 64)).astype(np.float32)
    sizes = {}
    for spec in (None, {"name": "bc"}, {"name": "twn"}, {"name": "uniform", "bits": 8, "per_channel": True}):
        q = quant.for_role(spec, "weight")
        layer = qbin.encode_layer("c", "conv2d", layer_kind(q, None), kernel, q)
        sizes[None if q is None else q.name] = qbin.write_qbin(tmp_path / "x.qbin", [layer]).stat().st_size
    assert sizes["bc"] < sizes[None] / 30          # 1 bit vs 32 bits (+ header)
    assert sizes["twn"] < sizes[None] / 15         # 2 bits
    assert sizes["uniform"] < sizes[None] / 3.9    # 8 bits + 64 affine scales, no 256-entry tables


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    rng = np.random.default_rng(2)
    path = tmp_path_factory.mktemp("q") / "good.qbin"
    qbin.write_qbin(path, [layer for _, _, layer in _layers(rng)[:6]], {"model": "t"})
    return path


def test_every_truncation_is_rejected(good_file, tmp_path):
    data = good_file.read_bytes()
    bad = tmp_path / "cut.qbin"
    for n in sorted(set(range(0, len(data), max(1, len(data) // 97))) | {len(data) - 1, len(data) - 5, 27, 8}):
        bad.write_bytes(data[:n])
        with pytest.raises(qbin.QbinError, match="truncated|corrupted|not a .qbin|CRC"):
            qbin.read_qbin(bad)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_bit_flip_is_rejected(good_file, tmp_path_factory, data):
    raw = bytearray(good_file.read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    bad = tmp_path_factory.mktemp("flip") / "bad.qbin"
    bad.write_bytes(bytes(raw))
    with pytest.raises(qbin.QbinError):
        qbin.read_qbin(bad)


def test_record_crc_names_the_record(good_file, tmp_path):
    raw = bytearray(good_file.read_bytes())
    raw[-20] ^= 0x10                               # inside the last record
    bad = tmp_path / "bad.qbin"
    bad.write_bytes(bytes(raw))
    with pytest.raises(qbin.QbinError, match=r"record 5 .*CRC mismatch"):
        qbin.read_qbin(bad)


def test_inspect_cli(good_file, tmp_path):
    env = {**os.environ, "COLUMNS": "200"}
    ok = subprocess.run([sys.executable, "-m", "autoq.cli", "inspect", str(good_file)], capture_output=True,
                        text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "layer0" in ok.stdout and "layer5" in ok.stdout
    bad = tmp_path / "cut.qbin"
    bad.write_bytes(good_file.read_bytes()[:-3])
    out = subprocess.run([sys.executable, "-m", "autoq.cli", "inspect", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "error:" in out.stderr and "cut.qbin" in out.stderr and "Traceback" not in out.stderr
