""".qbin validator: every rule rejects with a message naming the file, record/field and what is
allowed; a fuzz with CRCs recomputed accepts no invalid file and raises nothing but QbinError;
the writer refuses what the reader rejects; `autoq inspect` turns every failure into one line."""
from __future__ import annotations

import math
import struct
import sys
import zlib
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoq import quant
from autoq.export import qbin
from autoq.export import qbin_rules as rules
from autoq.quant.forms import InputForm

INPUT = (6, 6, 3)
# (name, op, weight quantizer, kind, act_bits, kernel size, stride, padding, c_out)
BASE = [
    ("c0", "conv2d", None, "f32", 32, 3, 1, "same", 4),
    ("c1", "conv2d", {"name": "xnor", "per_channel": True}, "xnor", 1, 3, 1, "valid", 5),
    ("c2", "conv2d", {"name": "bc"}, "and", 1, 1, 1, "valid", 4),
    ("c3", "conv2d", {"name": "uniform", "bits": 8, "per_channel": True}, "int8", 8, 3, 1, "same", 6),
    ("c4", "conv2d", {"name": "bc_scaled", "scale": 0.125}, "shift", 32, 1, 2, "valid", 4),
    ("c5", "conv2d", {"name": "twn"}, "lut", 4, 1, 1, "valid", 4),
    ("d0", "dense", {"name": "dorefa", "bits": 3}, "lut", 32, 1, 1, "valid", 3),
    ("d1", "dense", {"name": "lsq", "bits": 8}, "int8", 8, 1, 1, "valid", 2),
]
META = {"model": "t", "input_shape": list(INPUT), "num_classes": 2}
# the input form v2 requires for every quantized input (kind, act_bits) of BASE
INPUT_FORMS = {("xnor", 1): InputForm("sign", 1), ("and", 1): InputForm("grid", 1, 1.0, 0, 1),
               ("int8", 8): InputForm("grid", 8, 0.02, -127, 127, "calibrated"),
               ("lut", 4): InputForm("grid", 4, 0.25, 0, 15)}


def make_layers(seed: int, specs=BASE) -> list[qbin.QLayer]:
    """A valid chain on INPUT: each layer reads the previous output (dense: after GAP)."""
    rng = np.random.default_rng(seed)
    layers, c_in = [], INPUT[2]
    for name, op, spec, kind, act_bits, k, stride, padding, c_out in specs:
        q = quant.for_role(spec, "weight")
        form = None if act_bits == 32 else INPUT_FORMS[kind, act_bits]
        shape = (k, k, c_in, c_out) if op == "conv2d" else (c_in, c_out)
        kernel = rng.normal(0, 0.5, size=shape).astype(np.float32)
        layers.append(qbin.encode_layer(name, op, kind, kernel, q, act_bits=act_bits, stride=stride, padding=padding,
                                        bias=rng.normal(size=c_out).astype(np.float32) if rng.random() < .7 else None,
                                        scale=rng.normal(size=c_out).astype(np.float32) if rng.random() < .5 else None,
                                        input_form=form))
        c_in = c_out
    return layers


# --- an independent parse of the layout (offsets of every field) ------------------------


def split(data: bytes):
    """(header fields, metadata bytes, payloads) of a valid file."""
    version, order, reserved, n, meta_len = struct.unpack_from("<HBBII", data, 8)
    meta = data[20:20 + meta_len]
    pos, payloads = 20 + meta_len, []
    for _ in range(n):
        (length,) = struct.unpack_from("<I", data, pos)
        payloads.append(bytearray(data[pos + 4:pos + 4 + length]))
        pos += 8 + length
    return {"version": version, "order": order, "reserved": reserved, "n_layers": n}, meta, payloads


def join(header: dict, meta: bytes, payloads, meta_len: int | None = None) -> bytes:
    """Reassemble with every record CRC and the file CRC recomputed."""
    parts = [qbin.MAGIC, struct.pack("<HBBII", header["version"] & 0xFFFF, header["order"] & 0xFF,
                                     header["reserved"] & 0xFF, header["n_layers"] & 0xFFFFFFFF,
                                     len(meta) if meta_len is None else meta_len), meta]
    for p in payloads:
        head = struct.pack("<I", len(p))
        parts += [head, bytes(p), struct.pack("<I", zlib.crc32(head + bytes(p)))]
    body = b"".join(parts) + qbin.END_MAGIC
    return body + struct.pack("<I", zlib.crc32(body))


def fields(p: bytes) -> dict:
    """name -> (offset, struct format) of every fixed field; regions as (offset, count) of floats."""
    (name_len,) = struct.unpack_from("<H", p, 4)
    o = 6 + name_len
    f = {"op": (0, "B"), "kind": (1, "B"), "weight_bits": (2, "B"), "act_bits": (3, "B"), "name_len": (4, "H")}
    for i, key in enumerate(("c_out", "kh", "kw", "c_in", "stride")):
        f[key] = (o + 4 * i, "I")
    f.update({"padding": (o + 20, "B"), "flags": (o + 21, "B"), "form": (o + 22, "B"), "levels": (o + 23, "H"),
              "zero_point": (o + 25, "i"), "n_book": (o + 29, "I")})
    c_out, kh, kw, c_in = struct.unpack_from("<IIII", p, o)
    flags, form = p[o + 21], p[o + 22]
    (n_book,) = struct.unpack_from("<I", p, o + 29)
    regions = {"codebook": (o + 33, n_book)}
    f["n_weights"] = (o + 33 + 4 * n_book, "I")
    (n_weights,) = struct.unpack_from("<I", p, f["n_weights"][0])
    w0 = f["n_weights"][0] + 4
    if form == 0:
        regions["weights"] = (w0, n_weights // 4)
    regions["packed"] = (w0, n_weights)
    end = w0 + n_weights
    for bit, key in ((1, "bias"), (2, "scale")):
        if flags & bit:
            regions[key] = (end, c_out)
            end += 4 * c_out
    return f | {"_regions": regions, "_name": (6, name_len)}


def set_field(p: bytearray, key: str, value: int) -> None:
    off, fmt = fields(p)[key]
    bits = 8 * struct.calcsize(fmt)
    value &= (1 << bits) - 1
    if fmt == "i" and value >= 1 << 31:
        value -= 1 << 32
    struct.pack_into("<" + fmt, p, off, value)


def set_float(p: bytearray, region: str, index: int, value: float) -> bool:
    off, count = fields(p)["_regions"].get(region, (0, 0))
    if region == "packed" or count == 0:
        return False
    struct.pack_into("<f", p, off + 4 * (index % count), value)
    return True


def set_name(p: bytearray, name: bytes) -> bytearray:
    off, n = fields(p)["_name"]
    out = bytearray(p[:4] + struct.pack("<H", len(name)) + name + p[off + n:])
    return out


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "good.qbin"
    qbin.write_qbin(path, make_layers(0), META)
    return path.read_bytes()


def mutated(good: bytes, record: int | None = None, **change) -> bytes:
    header, meta, payloads = split(good)
    if "meta" in change:
        meta = change["meta"]
    for key, value in change.get("header", {}).items():
        header[key] = value
    if record is not None:
        p = payloads[record]
        for key, value in change.get("fields", {}).items():
            set_field(p, key, value)
        for region, index, value in change.get("floats", []):
            assert set_float(p, region, index, value)
        if "name" in change:
            p = set_name(p, change["name"])
        if "packed_byte" in change:
            off, n = fields(p)["_regions"]["packed"]
            i, value = change["packed_byte"]
            p[off + i % n] = value
        payloads[record] = p
    return join(header, meta, payloads)


def test_base_file_round_trips(good, tmp_path):
    path = tmp_path / "g.qbin"
    path.write_bytes(good)
    qf = qbin.read_qbin(path)
    assert [layer.kind for layer in qf.layers] == [s[3] for s in BASE]
    assert mutated(good) == good           # the test's own layout parser rebuilds the file exactly


# --- one case per rule ---------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
RULES = [  # (id, mutation, pattern the message must contain: the record/field and what is allowed)
    ("stride-0", dict(record=1, fields={"stride": 0}), r"record 1 \(c1\): stride 0 .*allowed 1\.\.64"),
    ("stride-2^32-1", dict(record=0, fields={"stride": 2**32 - 1}), r"stride 4294967295 .*allowed 1\.\.64"),
    ("c_out-0", dict(record=0, fields={"c_out": 0}), r"c_out 0 .*allowed 1\.\.65536"),
    ("c_in-0", dict(record=0, fields={"c_in": 0}), r"c_in 0 .*allowed 1\.\."),
    ("kh-0", dict(record=0, fields={"kh": 0}), r"kh 0 .*allowed 1\.\.64"),
    ("kw-huge", dict(record=0, fields={"kw": 70000}), r"kw 70000 .*allowed 1\.\.64"),
    ("act_bits-17", dict(record=0, fields={"act_bits": 17}), r"act_bits 17 with kind f32; allowed 1, 2, .*8, 32"),
    ("act_bits-0", dict(record=5, fields={"act_bits": 0}), r"act_bits 0 .*allowed"),
    ("xnor-act-8", dict(record=1, fields={"act_bits": 8}), r"act_bits 8 with kind xnor; allowed 1"),
    ("int8-act-32", dict(record=3, fields={"act_bits": 32}), r"act_bits 32 with kind int8; allowed 8"),
    ("xnor-8bit", dict(record=1, fields={"weight_bits": 8}), r"weight_bits 8 with kind xnor; allowed 1"),
    ("f32-8bit", dict(record=0, fields={"weight_bits": 8}), r"weight_bits 8 with kind f32; allowed 32"),
    ("lut-32bit", dict(record=5, fields={"weight_bits": 32}), r"weight_bits 32 with kind lut; allowed 1, .*8"),
    ("wbits-9", dict(record=5, fields={"weight_bits": 9}), r"weight_bits 9 .*allowed"),
    ("kind-f32-on-table", dict(record=5, fields={"kind": 0}), r"weight_bits 2 with kind f32; allowed 32"),
    ("kind-int8-on-table", dict(record=6, fields={"kind": 5}), r"weight_bits 3 with kind int8; allowed 8"),
    # same 1-bit table, but the record's 0/1 input form is not xnor's sign
    ("and-to-xnor-input-form", dict(record=2, fields={"kind": 3}), r"grid input 0\.\.1 step 1\.0 with kind xnor; allowed"),
    ("kind-lut-on-int8-act", dict(record=3, fields={"kind": 4}), r"weight_bits 8 with kind and; allowed 1"),
    ("shift-on-nonpow2", dict(record=1, fields={"kind": 2, "act_bits": 32}),
     r"shift codebook row 0 .*power of two"),
    ("xnor-asymmetric", dict(record=1, floats=[("codebook", 0, 0.5)]), r"xnor codebook row 0 .*symmetric pair"),
    ("int8-as-table", dict(record=3, fields={"form": 1}), r"codebook form table with kind int8; allowed affine"),
    ("f32-with-form", dict(record=0, fields={"form": 1}), r"codebook form table with kind f32; allowed none"),
    ("form-4", dict(record=5, fields={"form": 4}), r"codebook form code 4 .*allowed 0\.\.3"),
    ("int8-zp-200", dict(record=3, fields={"zero_point": 200}), r"zero_point 200 .*allowed -256\.\.256|int8 levels"),
    ("int8-zp-0", dict(record=3, fields={"zero_point": 0}), r"int8 levels 0\.\.254 .*allowed inside -128\.\.127"),
    ("table-zp", dict(record=6, fields={"zero_point": 1}), r"zero_point 1 with a table codebook; allowed 0"),
    ("levels-over-bits", dict(record=5, fields={"levels": 5}), r"levels 5 .*allowed 1\.\.4"),
    ("levels-0", dict(record=6, fields={"levels": 0}), r"levels 0 .*allowed 1\.\.8"),
    ("float-levels", dict(record=0, fields={"levels": 3}), r"float weights with levels 3.*allowed 0, 0, 0"),
    ("dense-2x2", dict(record=6, fields={"kh": 2, "kw": 2}), r"record 6 \(d0\): dense layer with kh x kw 2x2.*allowed: 1x1"),
    ("dense-stride-2", dict(record=7, fields={"stride": 2}), r"dense layer .*stride 2.*allowed: 1x1, stride 1, valid"),
    ("dense-same", dict(record=7, fields={"padding": 1}), r"dense layer .*padding same"),
    ("padding-2", dict(record=0, fields={"padding": 2}), r"padding code 2 is invalid; allowed 0\.\.1"),
    ("op-2", dict(record=0, fields={"op": 2}), r"op code 2 is invalid; allowed 0\.\.1"),
    ("kind-6", dict(record=0, fields={"kind": 6}), r"kind code 6 is invalid; allowed 0\.\.5"),
    ("flags-8", dict(record=0, fields={"flags": 11}), r"flags 0xb: unknown bits; allowed bit 0"),   # bit 2 is the v2 input form
    ("nan-weight", dict(record=0, floats=[("weights", 3, NAN)]), r"record 0 \(c0\): weights\[3\] is nan; allowed: finite"),
    ("inf-weight", dict(record=0, floats=[("weights", 0, -INF)]), r"weights\[0\] is -inf; allowed: finite"),
    ("nan-codebook", dict(record=6, floats=[("codebook", 1, NAN)]), r"codebook\[1\] is nan; allowed: finite"),
    ("inf-scale-affine", dict(record=3, floats=[("codebook", 2, INF)]), r"codebook\[2\] is inf; allowed: finite"),
    ("nan-bias", dict(record=0, floats=[("bias", 1, NAN)]), r"bias\[1\] is nan; allowed: finite"),
    ("index-over-levels", dict(record=5, packed_byte=(0, 0xFF)), r"weight index 3; allowed 0\.\.2"),
    ("chain-c_in", dict(record=1, fields={"c_in": 3}), None),       # length changes: see size pattern below
    ("empty-name", dict(record=2, name=b""), r"record 2: name '' is not allowed; allowed: 1\.\.255 printable"),
    ("ansi-name", dict(record=2, name=b"\x1b[31mred"), r"name '\\x1b\[31mred' is not allowed"),
    ("newline-name", dict(record=2, name=b"a\nb"), r"name 'a\\nb' is not allowed"),
    ("bad-utf8-name", dict(record=2, name=b"\xff\xfe"), r"record 2: name is not valid UTF-8"),
    ("duplicate-name", dict(record=2, name=b"c1"), r"record 2 \(c1\): name 'c1' repeats record 1; allowed: unique"),
    ("reserved-byte", dict(header={"reserved": 1}), r"header: reserved byte at offset 11 is 1; allowed 0"),
    ("too-many-layers", dict(header={"n_layers": 2**32 - 1}), r"header: layer count 4294967295 .*allowed 0\.\.10000"),
    ("meta-list", dict(meta=b"[]"), r"metadata: is a list; allowed: a JSON object"),
    ("meta-null", dict(meta=b"null"), r"metadata: is a NoneType; allowed: a JSON object"),
    ("meta-5", dict(meta=b"5"), r"metadata: is a int; allowed"),
    ("meta-nested", dict(meta=b"[" * 50000 + b"]" * 50000), r"metadata: .*allowed at most 65536|nested too deeply"),
    ("meta-nested-small", dict(meta=b'{"model": ' + b"[" * 30000 + b"]" * 30000 + b"}"), r"metadata: JSON nested too deeply"),
    ("meta-5000-digits", dict(meta=b'{"trial": ' + b"7" * 5000 + b"}"), r"metadata: number with 5000 digits; allowed at most 20"),
    ("meta-nan", dict(meta=b'{"trial": NaN}'), r"metadata: NaN is not allowed"),
    ("meta-unknown-key", dict(meta=b'{"evil": 1}'), r"metadata: unknown key 'evil'; allowed: model, input_shape"),
    ("meta-dup-key", dict(meta=b'{"model": "a", "model": "b"}'), r"metadata: duplicate key"),
    ("meta-shape-type", dict(meta=b'{"input_shape": "6x6x3"}'), r"metadata key 'input_shape': value '6x6x3' is invalid"),
    ("meta-shape-0", dict(meta=b'{"input_shape": [6, 0, 3]}'), r"metadata key 'input_shape': .*allowed: list of 1 or 3"),
    ("meta-classes-bool", dict(meta=b'{"num_classes": true}'), r"metadata key 'num_classes': value True"),
    ("meta-ansi-target", dict(meta=b'{"target": "\\u001b[2J"}'), r"metadata key 'target': value '\\x1b\[2J' is invalid"),
    ("meta-not-utf8", dict(meta=b'{"model": "\xff"}'), r"metadata: not valid UTF-8 JSON"),
    ("meta-chain-channels", dict(meta=b'{"input_shape": [6, 6, 4]}'),
     r"record 0 \(c0\): c_in 3 matches no tensor before it; allowed: the input's channels"),
    ("meta-chain-kernel", dict(meta=b'{"input_shape": [2, 2, 3]}'), r"record 1 \(c1\): 3x3 valid kernel on an input of at most 2x2"),
    ("meta-chain-kernel-1x1", dict(meta=b'{"input_shape": [1, 1, 3]}'), r"3x3 valid kernel on an input of at most 1x1"),
]


def _case(good: bytes, mutation: dict) -> bytes:
    return mutated(good, **mutation)


def _chain_c_in(good: bytes) -> bytes:
    """c1 reads 5 channels instead of 4 (its weights resized consistently): no earlier tensor has 5."""
    c1 = qbin.encode_layer("c1", "conv2d", "xnor", np.ones((3, 3, 5, 5), np.float32),
                           quant.for_role({"name": "xnor"}, "weight"), act_bits=1,
                           input_form=INPUT_FORMS["xnor", 1])
    header, meta, payloads = split(good)
    payloads[1] = bytearray(qbin._encode(c1, "x", 1)[4:-4])
    return join(header, meta, payloads)


@pytest.mark.parametrize("case_id,mutation,pattern", RULES, ids=[r[0] for r in RULES])
def test_each_rule_rejects_with_a_clear_message(good, tmp_path, case_id, mutation, pattern):
    path = tmp_path / f"{case_id}.qbin"
    if case_id == "chain-c_in":
        data, pattern = _chain_c_in(good), r"record 1 \(c1\): c_in 5 matches no tensor before it; allowed"
    else:
        data = _case(good, mutation)
    path.write_bytes(data)
    with pytest.raises(qbin.QbinError) as err:
        qbin.read_qbin(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: "), msg
    assert "allowed" in msg and "\n" not in msg, msg
    assert __import__("re").search(pattern, msg), msg


@pytest.mark.parametrize("index", [i for i, spec in enumerate(BASE) if spec[4] != 32])
def test_quantized_input_without_form_is_refused(tmp_path, index):
    """Version 2 stores the fixed input range of every quantized input: a record without one
    (flag bit 2 clear) would leave the C and ONNX guessing it, so reader and writer refuse it."""
    layers = make_layers(0)
    layers[index].input_form = None
    path = tmp_path / "no-form.qbin"
    name, kind, abits = BASE[index][0], BASE[index][3], BASE[index][4]
    with pytest.raises(qbin.QbinError, match=rf"record {index} \({name}\): no input form with kind {kind}, "
                                             rf"act_bits {abits}; allowed only for float inputs"):
        qbin.write_qbin(path, layers, META)
    assert not path.exists()


def test_dense_chain_rules(tmp_path):
    """Dense n_in = k * channels (Flatten, k <= H*W) or a sum of earlier dense outputs."""
    conv = ("c0", "conv2d", None, "f32", 32, 3, 1, "same", 4)
    ok_flat = [conv, ("d0", "dense", None, "f32", 32, 1, 1, "valid", 3)]
    layers = make_layers(1, ok_flat)
    for n_in, accepted in ((4, True), (4 * 36, True), (4 * 37, False), (7, True), (11, False)):
        layers[1] = qbin.encode_layer("d0", "dense", "f32", np.ones((n_in, 3), np.float32), None)
        path = tmp_path / f"d{n_in}.qbin"
        if accepted:   # 7 = 4 + 3 channels (concat of the input and c0), then GAP
            qbin.write_qbin(path, layers, META)
            assert qbin.read_qbin(path).layers[1].shape[3] == n_in
        else:
            with pytest.raises(qbin.QbinError, match=rf"record 1 \(d0\): dense n_in {n_in} matches no tensor"):
                qbin.write_qbin(path, layers, META)
            assert not path.exists()


@pytest.mark.parametrize("model_name,preset_name", [("lenet5", "int8"), ("resnet20", "bnn"),
                                                    ("squeezenet_bypass", "twn")])
def test_zoo_exports_pass_the_validator(tmp_path, model_name, preset_name):
    """The chain rules accept real graphs: residual shortcuts, fire-module concatenations, int8."""
    from autoq.config import preset
    from autoq.export.graph import build_graph
    from autoq.models.zoo import build_model

    shape = (8, 8, 1) if model_name == "lenet5" else (16, 16, 3)
    graph = build_graph(build_model(model_name, shape, 10, preset(preset_name, model_name)), fold_bn=True)
    meta = {"model": model_name, "input_shape": list(graph.input_shape), "num_classes": 10}
    qf = qbin.read_qbin(qbin.write_qbin(tmp_path / "m.qbin", [op.layer for op in graph.compute], meta))
    assert len(qf.layers) == len(graph.compute) and qf.meta == meta


# --- the writer refuses what the reader rejects ----------------------------------------


def _writer_case(name: str):
    layers = make_layers(0)
    meta = dict(META)
    lay = layers[{"c_out0": 0, "nanw": 0, "nanbias": 0, "dense2x2": 6, "act17": 5, "stride0": 1}.get(name, 1)]
    if name == "c_out0":
        lay.shape, lay.weights, lay.bias, lay.scale = (0, 3, 3, 3), np.zeros((0, 3, 3, 3), np.float32), None, None
    elif name == "xnor8":
        lay.weight_bits = 8
    elif name == "nanw":
        lay.weights = lay.weights.copy()
        lay.weights.flat[5] = np.nan
    elif name == "nanbias":
        lay.bias = np.full(4, np.inf, np.float32)
    elif name == "dense2x2":
        lay.shape = (3, 2, 2, 1)
    elif name == "act17":
        lay.act_bits = 17
    elif name == "stride0":
        lay.stride = 0
    elif name == "dup":
        lay.name = "c0"
    elif name == "ansi":
        lay.name = "\x1b[1mc1"
    elif name == "kind-unknown":
        lay.kind = "fp16"
    elif name == "index-too-big":
        lay.indices = lay.indices.copy()
        lay.indices.flat[0] = 7
    elif name == "meta-list":
        meta = []
    elif name == "meta-huge-int":
        meta["trial"] = 10 ** 5000
    elif name == "meta-nested":
        nested: list = []
        for _ in range(5000):
            nested = [nested]
        meta["model"] = nested
    elif name == "meta-nan":
        meta["num_classes"] = float("nan")
    return layers, meta


WRITER_CASES = {"c_out0": r"c_out 0 .*allowed 1\.\.", "xnor8": r"weight_bits 8 with kind xnor; allowed 1",
                "nanw": r"weights\[5\] is nan", "nanbias": r"bias\[0\] is inf", "dense2x2": r"dense layer with kh x kw 2x2",
                "act17": r"act_bits 17", "stride0": r"stride 0", "dup": r"name 'c0' repeats record 0",
                "ansi": r"name '\\x1b\[1mc1' is not allowed", "kind-unknown": r"kind 'fp16'; allowed: f32, lut",
                "index-too-big": r"cannot be encoded: index 7 does not fit in 1 bits",
                "meta-list": r"metadata: is a list", "meta-huge-int": r"metadata key 'trial': value \(an integer of 16610 bits\)",
                "meta-nested": r"metadata key 'model': value \(a list of 1 items, nested\)", "meta-nan": r"metadata key 'num_classes': value nan"}


@pytest.mark.parametrize("name", list(WRITER_CASES))
def test_writer_refuses_what_the_reader_rejects(tmp_path, name):
    layers, meta = _writer_case(name)
    path = tmp_path / "w.qbin"
    with pytest.raises(qbin.QbinError, match=WRITER_CASES[name]) as err:
        qbin.write_qbin(path, layers, meta)
    assert str(err.value).startswith(str(path)) and "allowed" in str(err.value) or "encoded" in str(err.value)
    assert not path.exists() and not list(tmp_path.iterdir())


# --- fuzz: mutate fields and bytes of valid files, CRCs recomputed ----------------------

INTERESTING = [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 64, 65, 127, 128, 129, 200, 255, 256, 65535,
               2**31 - 1, 2**31, 2**32 - 1]
FLOATS = [NAN, INF, -INF, 0.0, -0.0, 1.0, -1.0, 0.125, 0.3, 3e38, -1e-45]
METAS = [b"{}", b"[]", b"null", b"5", b'"x"', b"{", b'{"model": "m"}', b'{"model": null}', b'{"trial": 1e400}',
         b'{"input_shape": [6, 6, 3]}', b'{"input_shape": [6, 6, 4]}', b'{"input_shape": [36]}',
         b'{"input_shape": [1, 1, 3]}', b'{"trial": -1}', b'{"x": {}}', b'{"model": "\\u0007"}',
         b'{"trial": ' + b"9" * 5000 + b"}", b"[" * 3000 + b"]" * 3000, b'{"model": "[/x]"}']
NAMES = [b"", b"c0", b"[/x]", b"\x1b[0m", b"a\tb", b"\xc3\x28", "\u00e9t\u00e9".encode(), b"x" * 300, b" "]
COUNTS: Counter = Counter()


@st.composite
def mutations(draw):
    seed = draw(st.integers(0, 3))
    n = draw(st.integers(1, len(BASE)))
    start = draw(st.integers(0, len(BASE) - n)) if n < len(BASE) else 0
    specs = BASE[start:start + n]
    ops = []
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["field", "field", "field", "float", "byte", "name", "meta", "header", "tail"]))
        rec = draw(st.integers(0, n - 1))
        if what == "field":
            key = draw(st.sampled_from(["op", "kind", "weight_bits", "act_bits", "c_out", "kh", "kw", "c_in", "stride",
                                        "padding", "flags", "form", "levels", "zero_point", "n_book", "n_weights"]))
            ops.append((what, rec, key, draw(st.sampled_from(INTERESTING) | st.integers(0, 2**32 - 1))))
        elif what == "float":
            ops.append((what, rec, draw(st.sampled_from(["codebook", "weights", "bias", "scale"])),
                        draw(st.integers(0, 10**6)), draw(st.sampled_from(FLOATS) | st.floats(width=32))))
        elif what == "byte":
            ops.append((what, rec, draw(st.integers(0, 10**6)), draw(st.integers(0, 255))))
        elif what == "name":
            ops.append((what, rec, draw(st.sampled_from(NAMES))))
        elif what == "meta":
            ops.append((what, draw(st.sampled_from(METAS))))
        elif what == "header":
            ops.append((what, draw(st.sampled_from(["version", "order", "reserved", "n_layers"])),
                        draw(st.sampled_from(INTERESTING))))
        else:
            ops.append((what, rec, draw(st.sampled_from([-4, -1, 1, 4]))))
    return seed, specs, ops


def _apply(data: bytes, ops) -> bytes:
    header, meta, payloads = split(data)
    for op in ops:
        if op[0] == "field":
            set_field(payloads[op[1]], op[2], op[3])
        elif op[0] == "float":
            set_float(payloads[op[1]], op[2], op[3], op[4])
        elif op[0] == "byte":
            p = payloads[op[1]]
            p[op[2] % len(p)] = op[3]
        elif op[0] == "name":
            payloads[op[1]] = set_name(payloads[op[1]], op[2])
        elif op[0] == "meta":
            meta = op[1]
        elif op[0] == "header":
            header[op[1]] = op[2]
        else:
            p = payloads[op[1]]
            payloads[op[1]] = p[:op[2]] if op[2] < 0 else p + bytes(op[2])
    return join(header, meta, payloads)


def independently_valid(qf: qbin.QbinFile) -> list[str]:
    """Rules restated without the validator's code: what an accepted file must satisfy."""
    problems = []
    if not isinstance(qf.meta, dict) or set(qf.meta) - set(rules.META_KEYS):
        problems.append("metadata")
    names = [layer.name for layer in qf.layers]
    if len(set(names)) != len(names) or not all(n and n.isprintable() and len(n) <= 255 for n in names):
        problems.append("names")
    for layer in qf.layers:
        c_out, kh, kw, c_in = layer.shape
        floats = [layer.weights, layer.codebook, layer.bias, layer.scale]
        if not all(v is None or np.all(np.isfinite(v)) for v in floats):
            problems.append(f"{layer.name}: not finite")
        if not (1 <= min(layer.shape) and max(c_out, kh, kw) <= 65536 and 1 <= layer.stride <= 64):
            problems.append(f"{layer.name}: ranges")
        if layer.op == "dense" and (kh, kw, layer.stride, layer.padding) != (1, 1, 1, "valid"):
            problems.append(f"{layer.name}: dense")
        if layer.act_bits not in (1, 2, 3, 4, 5, 6, 7, 8, 32):
            problems.append(f"{layer.name}: act_bits")
        if (layer.kind == "f32") != (layer.indices is None) or (layer.kind == "f32") != (layer.weight_bits == 32):
            problems.append(f"{layer.name}: f32 form")
        if layer.indices is not None and int(layer.indices.max(initial=0)) >= layer.levels:
            problems.append(f"{layer.name}: index")
        book = None if layer.codebook is None else np.asarray(layer.codebook, np.float64).reshape(-1, layer.levels)
        if layer.kind in ("xnor", "and") and not (layer.weight_bits == 1 == layer.act_bits and book.shape[1] == 2
                                                  and np.all(book[:, 0] == -book[:, 1])):
            problems.append(f"{layer.name}: binary")
        if layer.kind == "int8" and not (layer.weight_bits == 8 == layer.act_bits and layer.zero_point is not None
                                         and -128 <= -layer.zero_point and layer.levels - 1 - layer.zero_point <= 127):
            problems.append(f"{layer.name}: int8")
        if layer.kind == "shift" and not all(row[-1] > 0 and math.frexp(row[-1])[0] == 0.5 and
                                             sorted(set(row.tolist()) - {0.0}) == [-row[-1], row[-1]] for row in book):
            problems.append(f"{layer.name}: shift")
    shape = qf.meta.get("input_shape") if isinstance(qf.meta, dict) else None
    first = qf.layers[0] if qf.layers else None
    if shape and len(shape) == 3 and first is not None and first.op == "conv2d" and first.shape[3] != shape[2]:
        problems.append("first conv reads the wrong channel count")
    return problems


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_fuzz_reader_with_crcs_recomputed(tmp_path_factory, case):
    seed, specs, ops = case
    layers = make_layers(seed, specs)
    meta = {"model": "t", "input_shape": list(INPUT)}
    path = tmp_path_factory.mktemp("fz") / "m.qbin"
    qbin.write_qbin(path, layers, meta)
    data = _apply(path.read_bytes(), ops)
    path.write_bytes(data)
    COUNTS["cases"] += 1
    try:
        qf = qbin.read_qbin(path)
    except qbin.QbinError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        COUNTS["clean errors"] += 1
        return
    except Exception:
        COUNTS["tracebacks"] += 1
        raise
    problems = independently_valid(qf)
    if problems:
        COUNTS["accepted invalid"] += 1
    assert not problems, (ops, problems)
    again = path.with_name("again.qbin")                  # accepted => exactly what the writer writes
    qbin.write_qbin(again, qf.layers, qf.meta)
    assert split(again.read_bytes())[2] == split(data)[2], ops
    COUNTS["accepted valid"] += 1


def test_fuzz_counts(capsys):
    """Runs after the fuzz (file order): it ran, found errors, and accepted only valid files."""
    if COUNTS["cases"] == 0:
        pytest.skip("run together with test_fuzz_reader_with_crcs_recomputed")
    with capsys.disabled():
        print(f"\nqbin fuzz: {dict(COUNTS)}")
    assert COUNTS["tracebacks"] == COUNTS["accepted invalid"] == 0
    assert COUNTS["clean errors"] > COUNTS["cases"] // 2 and COUNTS["accepted valid"] > 0


# --- autoq inspect: one line, exit 2, markup escaped ------------------------------------


def _inspect(monkeypatch, capsys, path):
    from autoq import cli

    monkeypatch.setattr(sys, "argv", ["autoq", "inspect", str(path)])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("case_id,mutation,pattern", [r for r in RULES if r[0] != "chain-c_in"],
                         ids=[r[0] for r in RULES if r[0] != "chain-c_in"])
def test_inspect_bad_file_one_line_exit_2(good, tmp_path, monkeypatch, capsys, case_id, mutation, pattern):
    path = tmp_path / "bad.qbin"
    path.write_bytes(_case(good, mutation))
    code, out, err = _inspect(monkeypatch, capsys, path)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {path}: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert "\x1b" not in err


def test_inspect_escapes_markup_in_names(tmp_path, monkeypatch, capsys):
    layers = make_layers(0)
    layers[1].name, layers[2].name = "[/x]", "[bold red]b"
    (tmp_path / "[").mkdir()
    path = tmp_path / "[" / "p].qbin"
    qbin.write_qbin(path, layers, META)
    code, out, err = _inspect(monkeypatch, capsys, path)
    assert code == 0, err
    assert "[/x]" in out and "[bold red]b" in out and "[/p].qbin" in out


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_inspect_missing_or_directory(tmp_path, monkeypatch, capsys, what):
    path = tmp_path / "nope.qbin"
    if what == "directory":
        path.mkdir()
    code, out, err = _inspect(monkeypatch, capsys, path)
    assert code == 2 and err.count("\n") == 1 and ("no such file" in err or "is a directory" in err)


@pytest.mark.parametrize("kind,abits,form,ok", [
    ("xnor", 1, ("sign",), True), ("xnor", 1, ("grid", 1.0, 0, 1), False), ("xnor", 1, None, False),
    ("and", 1, ("grid", 1.0, 0, 1), True), ("and", 1, ("grid", 0.5, 0, 1), False), ("and", 1, ("sign",), False),
    ("int8", 8, ("grid", 0.1, -127, 127), True), ("int8", 8, ("grid", 0.1, -200, 127), False),
    ("lut", 4, ("grid", 0.1, -7, 7), True), ("lut", 2, ("grid", 0.1, -7, 7), False),
    ("lut", 4, ("grid", float("nan"), -7, 7), False), ("lut", 4, ("grid", 0.0, -7, 7), False),
    ("lut", 4, ("grid", 0.1, 3, 3), False), ("f32", 32, None, True), ("f32", 32, ("sign",), False),
    ("lut", 4, None, False), ("shift", 1, ("sign",), True)])
def test_input_form_rules(kind, abits, form, ok):
    """Rules ready for the v2 records (input form in flag bit 2) of main's reader."""
    args = (None,) if form is None else form
    if ok:
        rules.check_input_form("f.qbin", "record 0 (c)", kind, abits, *args)
    else:
        with pytest.raises(qbin.QbinError, match=r"^f\.qbin: record 0 \(c\): .*allowed"):
            rules.check_input_form("f.qbin", "record 0 (c)", kind, abits, *args)
