"""Profiles (schema errors), the cost model against hand arithmetic, fitting and calibration."""
from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import yaml

from autoq.cost.calibrate import calibrate_from_csv, profile_from_measurements, scale_factor
from autoq.cost.measurements import Measurement, format_measurements, parse_measurements, read_measurements
from autoq.cost.model import estimate
from autoq.cost.profile import dump_profile, list_profiles, load_profile
from autoq.errors import UserError
from autoq.plan import KINDS, LayerPlan, conv_entry, dense_entry

VALID = {
    "id": "toy", "board": "toy board", "cpu": "toy cpu", "clock_hz": 1000000, "word_bits": 32,
    "memory": {"sram_bytes": 4096, "flash_bytes": 65536}, "overhead_ns": 500.0,
    "kernels": {
        "f32": {"coefficients": {"ns_per_mac": 2.0, "ns_per_output": 10.0, "ns_fixed": 1000.0},
                "provenance": "measured-board", "source": "test", "fit": {"points": 3, "mape": 0.01}},
        "xnor": {"coefficients": {"ns_per_word_op": 3.0, "ns_per_input": 0.5},
                 "provenance": "derived", "source": "test", "fit": {"points": 3, "mape": 0.1, "loo_mape": 0.2}},
    },
}


def _write(tmp_path, data, name="toy.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("mutate,key,what", [
    (lambda d: d.pop("clock_hz"), "clock_hz", "missing"),
    (lambda d: d.update(colour="red"), "colour", "unknown key"),
    (lambda d: d["kernels"]["f32"].update(provenance="guessed"), "kernels.f32.provenance", "guessed"),
    (lambda d: d["kernels"].update(fp16=d["kernels"]["f32"]), "kernels.fp16", "unknown kernel kind"),
    (lambda d: d["kernels"]["f32"]["coefficients"].update(ns_per_mac=-1), "kernels.f32.coefficients.ns_per_mac", ">= 0"),
    (lambda d: d["kernels"]["f32"]["coefficients"].update(ns_per_flop=1), "kernels.f32.coefficients.ns_per_flop", "unknown coefficient"),
    (lambda d: d["kernels"]["xnor"]["fit"].pop("points"), "kernels.xnor.fit.points", "missing"),
    (lambda d: d["memory"].update(ram_bytes=1), "memory", "expected exactly"),
    (lambda d: d.update(word_bits="32"), "word_bits", "'32'"),
])
def test_profile_schema_errors_name_file_and_key(tmp_path, mutate, key, what):
    data = copy.deepcopy(VALID)
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(UserError) as info:
        load_profile(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}"), message
    assert what in message


def test_valid_profile_round_trips(tmp_path):
    profile = load_profile(_write(tmp_path, VALID))
    out = dump_profile(profile, tmp_path / "again.yaml")
    again = load_profile(out)
    assert again == profile and again.ram_limit_bytes == 4096 and again.flash_limit_bytes == 65536


def test_unknown_target_lists_known_ones():
    with pytest.raises(UserError) as info:
        load_profile("nonexistent_board")
    message = str(info.value)
    assert "nonexistent_board" in message
    for known in ("m4", "a53", "i5"):
        assert known in message


def test_shipped_profiles_load_and_cover_every_kind():
    ids = list_profiles()
    assert {"m4", "a53", "i5"} <= set(ids)
    for target in ("m4", "a53", "i5"):
        profile = load_profile(target)
        assert set(profile.kernels) == set(KINDS), target
        for kind in KINDS:   # every kind prices autoq's opt kernels from instruction counts
            k = profile.kernels[kind]
            assert k.provenance == "derived", (target, kind)
            assert "ESTIMATE" in k.source and f"autoq's opt {kind} kernel" in k.source
            unit = "ns/cycle" if target in ("m4", "a53") else "ns/instruction"   # m4/a53: autoq/cost/cycle_profile.py
            assert unit in k.source and "leave-one-filter-size-out" in k.source
            assert k.loo_mape is not None


def test_m4_prices_float_and_quantized_kinds_from_the_same_kernel_family():
    """The board scale is fitted on the thesis's (ref-shaped) kernels; autoq prices its opt ones:
    opt f32 on the thesis layer is cheaper than the ref prediction, and on a 64->64 layer the
    xnor-popcount kernel is cheaper than float."""
    from autoq.cost.counts import shipped_validation

    profile = load_profile("m4")
    scale, rows = shipped_validation(profile)
    assert scale.mape < 0.2 and scale.loo_mape is not None   # the scale's fit error is reported
    f32_3x3 = [r for r in rows if r.kind == "f32" and r.f == 3][0]
    assert f32_3x3.opt_ms < f32_3x3.ref_ms
    assert f32_3x3.ref_ms == pytest.approx(f32_3x3.published_ms, rel=0.3)

    def layer(kind, bits):
        e = conv_entry("t", c_in=64, c_out=64, h_in=8, w_in=8, kh=3, padding="same", kind=kind, weight_bits=bits,
                       codebook_len=0 if kind == "f32" else 2)
        return estimate(LayerPlan([8, 8, 64], [e]), profile).latency_ms

    assert layer("xnor", 1) < layer("f32", 32)
    assert layer("int8", 8) < 2 * layer("f32", 32)   # same family: int8 is not priced as a different world


def test_cost_of_a_small_plan_by_hand(tmp_path):
    profile = load_profile(_write(tmp_path, VALID))
    conv = conv_entry("c1", c_in=3, c_out=8, h_in=10, w_in=10, kh=3)            # f32 valid: 8x8x8 out
    xn = conv_entry("c2", c_in=8, c_out=16, h_in=8, w_in=8, kh=3, padding="same", kind="xnor",
                    weight_bits=1, codebook_len=2, live_bytes=100)
    fc = dense_entry("fc", n_in=8 * 8 * 16, n_out=10)
    plan = LayerPlan([10, 10, 3], [conv, xn, fc])
    report = estimate(plan, profile)
    t_conv = 2.0 * (8 * 8 * 8 * 27) + 10.0 * (8 * 8 * 8) + 1000.0
    t_xnor = 3.0 * (8 * 8 * 16 * 9 * 1) + 0.5 * (8 * 8 * 8)      # word ops: ceil(8 / 32) = 1 word
    t_fc = 2.0 * (1024 * 12) + 10.0 * 10 + 1000.0    # f32 dense: rows of 4 channels, 10 -> 12
    assert report.latency_ms == pytest.approx((t_conv + t_xnor + t_fc + 500.0) / 1e6)
    assert [x.latency_ms for x in report.per_layer] == pytest.approx([t_conv / 1e6, t_xnor / 1e6, t_fc / 1e6])
    # xnor: one 64-bit word of 8 channels per tap, + per-channel scale and bias; no deploy section: no code
    flash = (27 * 8 * 4 + 8 * 4) + (16 * 9 * 8 + 2 * 16 * 4) + (10240 * 4 + 40)
    assert report.flash_bytes == report.const_bytes == flash and report.code_bytes == 0
    ram_c1 = 10 * 10 * 3 * 4 + 8 * 8 * 8 * 4
    ram_c2 = 8 * 8 * 8 * 4 + 8 * 8 * 16 * 4 + 100
    ram_fc = 1024 * 4 + 10 * 4
    # shapes-only plan: largest layer + the x86_64 opt scratch: c1's f32 weight block (27 x 32 floats, the
    # x86 micro-kernel's 32-channel block); the dense fc reads its weight rows in place (no scratch)
    scratch = 8 * ((27 * 32 * 4 + 7) // 8 + 1)
    assert report.scratch_bytes == scratch
    assert report.peak_ram_bytes == max(ram_c1, ram_c2, ram_fc) + scratch == ram_c2 + scratch
    assert report.fits_ram is False and report.fits_flash is True and report.fits is False


def test_estimate_of_a_built_model_by_hand(tmp_path):
    """The zoo's tiny model (8x8x1, preset bc: f32 first and last layer, shift in between)
    priced with a toy profile of per-MAC and per-call costs, against its shapes worked out by
    hand: conv1 3x3 1->4 same 8x8, conv2 3x3 4->8 stride 2 -> 4x4, conv3 3x3 8->8 4x4, fc 8->10."""
    from autoq.config import preset
    from autoq.export.planning import plan_from_model
    from autoq.models.zoo import build_model

    data = copy.deepcopy(VALID)
    data["kernels"] = {kind: {"coefficients": {"ns_per_mac": per_mac, "ns_fixed": 100.0}, "provenance": "derived",
                              "source": "test", "fit": {"points": 2, "mape": 0.0}}
                       for kind, per_mac in (("f32", 2.0), ("shift", 0.5))}
    profile = load_profile(_write(tmp_path, data))
    plan = plan_from_model(build_model("tiny", (8, 8, 1), 10, preset("bc", "tiny")))
    report = estimate(plan, profile)
    macs = {"conv1": 8 * 8 * 4 * 9 * 1, "conv2": 4 * 4 * 8 * 9 * 4, "conv3": 4 * 4 * 8 * 9 * 8, "fc": 8 * 10}
    assert [x.kind for x in report.per_layer] == ["f32", "shift", "shift", "f32"]
    assert {e.name: e.macs for e in plan.layers} == macs
    want_ns = [2.0 * macs["conv1"] + 100, 0.5 * macs["conv2"] + 100, 0.5 * macs["conv3"] + 100,
               2.0 * 8 * 12 + 100]   # f32 dense: rows of 4 channels, 10 -> 12
    assert [x.latency_ms for x in report.per_layer] == pytest.approx([t / 1e6 for t in want_ns])
    assert report.latency_ms == pytest.approx((sum(want_ns) + 500.0) / 1e6)   # + the profile's overhead
    # float weights + biases, 2-bit shift codes (9 * c_in taps per channel) + codebook + biases,
    # and the three BatchNorms' scale and offset per channel; no deploy section: no code bytes
    weights = (36 * 4 + 16) + (8 * 9 * 4 * 2 // 8 + 8 + 32) + (8 * 9 * 8 * 2 // 8 + 8 + 32) + (80 * 4 + 40)
    batch_norms = 2 * 4 * (4 + 8 + 8)
    assert report.flash_bytes == plan.const_bytes == weights + batch_norms and report.code_bytes == 0


def _synthetic_rows(coeffs: dict[str, dict[str, float]], word_bits=64, variant="opt") -> list[Measurement]:
    """Rows whose times follow the linear model exactly (so the fit must recover it)."""
    from autoq.cost.model import features

    rows = []
    rng = np.random.default_rng(0)
    for kind, c in coeffs.items():
        for _ in range(14):
            c_in, c_out = int(rng.choice([3, 8, 16, 33, 64])), int(rng.choice([4, 8, 16, 32]))
            h, f = int(rng.choice([6, 8, 12, 16])), int(rng.choice([1, 3, 5]))
            stride, pad = int(rng.choice([1, 2])), str(rng.choice(["valid", "same"]))
            bits = {"f32": 32, "lut": 2, "shift": 2, "xnor": 1, "and": 1, "int8": 8}[kind]
            e = conv_entry("x", c_in=c_in, c_out=c_out, h_in=h, w_in=h, kh=f, stride=stride, padding=pad,
                           kind=kind, weight_bits=bits)
            feats = features(e, word_bits)
            ns = sum(v * feats[n] for n, v in c.items())
            rows.append(Measurement(kind, bits, variant, c_in, c_out, h, h, f, stride, pad, e.macs, ns * 1.01, ns))
    return rows


def test_from_csv_round_trip_recovers_coefficients(tmp_path):
    truth = {"f32": {"ns_per_mac": 0.5, "ns_per_output": 3.0, "ns_fixed": 200.0},
             "xnor": {"ns_per_word_op": 1.5, "ns_per_input": 0.25, "ns_fixed": 100.0}}
    rows = _synthetic_rows(truth, word_bits=32)
    comments = ["source: synthetic test", "board: test board", "cpu: test cpu", "clock_hz: 48000000",
                "word_bits: 32", "sram_bytes: 65536", "flash_bytes: 524288"]
    csv_path = tmp_path / "board.csv"
    csv_path.write_text(format_measurements(rows, comments))
    parsed = read_measurements(csv_path)
    assert parsed.rows == [Measurement(**{**r.__dict__, "ns_median": round(r.ns_median, 1),
                                          "ns_min": round(r.ns_min, 1)}) for r in rows]
    profile = calibrate_from_csv(csv_path, "myboard")
    out = dump_profile(profile, tmp_path / "myboard.yaml")
    loaded = load_profile(out)
    assert loaded.clock_hz == 48000000 and loaded.memory == {"sram_bytes": 65536, "flash_bytes": 524288}
    assert set(loaded.kernels) == {"f32", "xnor"}
    for kind, coeffs in truth.items():
        k = loaded.kernels[kind]
        assert k.provenance == "measured-board" and k.points == 14
        assert k.mape < 1e-4
        for name, value in coeffs.items():
            assert k.coefficients[name] == pytest.approx(value, rel=1e-3)


def test_from_csv_with_base_derives_missing_kinds_with_one_scale(tmp_path):
    base = load_profile(_write(tmp_path, VALID))
    # the board is exactly 3x slower than the base for f32
    rows = _synthetic_rows({"f32": {k: 3 * v for k, v in VALID["kernels"]["f32"]["coefficients"].items()}},
                           word_bits=32)
    s, err = scale_factor(rows, base)
    assert s == pytest.approx(3.0) and err < 1e-9
    mfile = parse_measurements(format_measurements(rows, ["clock_hz: 1", "word_bits: 32", "board: b", "cpu: c",
                                                         "sram_bytes: 1", "flash_bytes: 1"]), "mem.csv")
    profile = profile_from_measurements(mfile, "b", source="mem.csv", base=base)
    derived = profile.kernels["xnor"]
    assert derived.provenance == "derived" and "ESTIMATE" in derived.source
    assert derived.coefficients == pytest.approx({"ns_per_word_op": 9.0, "ns_per_input": 1.5}, rel=1e-4)


@pytest.mark.parametrize("line,fragment", [
    ("f16,32,opt,3,8,16,16,3,1,valid,42336,1000,", "column kind"),
    ("f32,32,opt,3,8,16,16,3,1,valid,42335,1000,", "column macs: got 42335"),
    ("f32,32,opt,3,8,16,16,3,1,valid,42336,fast,", "column ns_median"),
    ("f32,32,opt,3,8,16,16,3,1,full,42336,1000,", "pad 'full'"),
])
def test_measurement_csv_errors_name_line_and_column(line, fragment):
    text = "# comment\nkind,bits,variant,c_in,c_out,h,w,f,stride,pad,macs,ns_median,ns_min\n" + line + "\n"
    with pytest.raises(UserError, match=re.escape("m.csv:3: ") + ".*" + re.escape(fragment)):
        parse_measurements(text, "m.csv")


def test_board_csvs_reproduce_the_shipped_coefficients():
    counts = "kernels/bench/results/icount_qemu.csv"
    for target in ("m4", "a53", "i5"):
        if target == "i5":   # m4 and a53 are priced by the cycle model (tests/test_cycles.py)
            fitted = calibrate_from_csv(f"hw_models/measurements/{target}.csv", target, counts=counts)
            shipped = load_profile(target)
            for kind in KINDS:
                assert fitted.kernels[kind].coefficients == shipped.kernels[kind].coefficients, (target, kind)
        # without counts, the rows are fitted directly (a user's board measuring autoq's kernels)
        direct = calibrate_from_csv(f"hw_models/measurements/{target}.csv", target)
        for kind in ("f32", "lut"):
            assert direct.kernels[kind].provenance == "measured-board"
            assert direct.kernels[kind].mape < 0.05


def test_cli_unknown_target_and_plan_json(tmp_path):
    import json

    from typer.testing import CliRunner

    from autoq.cli import app

    plan = LayerPlan([8, 8, 1], [conv_entry("c", c_in=1, c_out=4, h_in=8, w_in=8, kh=3),
                                 dense_entry("fc", n_in=144, n_out=10)])
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan.to_dict()))
    runner = CliRunner()
    result = runner.invoke(app, ["cost", "--plan", str(path), "--target", "m4", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["cost"]["latency_ms"] == pytest.approx(estimate(plan, "m4").latency_ms)
    result = runner.invoke(app, ["cost", "--plan", str(path), "--target", "nope"])
    assert isinstance(result.exception, UserError) and "known targets: " in str(result.exception)
    result = runner.invoke(app, ["targets", "--json"])
    assert {p["id"] for p in json.loads(result.output)} >= {"m4", "a53", "i5"}
    result = runner.invoke(app, ["targets"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "predicted opt (priced)" in result.output and "ns/instruction" in result.output


def test_fit_finds_the_output_channel_block():
    from autoq.cost.fit import fit_best_block

    # a kernel that computes output channels in blocks of 8: time follows c_out rounded up to 8
    from autoq.cost.model import features

    rows = []
    rng = np.random.default_rng(1)
    for _ in range(20):
        c_in, c_out, h = int(rng.choice([3, 16, 32])), int(rng.choice([4, 6, 10, 16, 20, 33])), int(rng.choice([6, 8]))
        e = conv_entry("x", c_in=c_in, c_out=c_out, h_in=h, w_in=h, kh=3, padding="same")
        ns = 0.25 * features(e, 64, 8)["ns_per_mac"] + 50.0
        rows.append(Measurement("f32", 32, "opt", c_in, c_out, h, h, 3, 1, "same", e.macs, ns, ns))
    block, coeffs = fit_best_block(rows, ("ns_per_mac", "ns_fixed"), 64)
    assert block == 8 and coeffs["ns_per_mac"] == pytest.approx(0.25, rel=1e-6)



def test_fit_prices_the_partial_block_weight_repack():
    from autoq.cost.fit import FULL_SET, choose_coefficients, fit_best_block, mape
    from autoq.cost.model import features

    # a kernel with c_out blocks of 32 whose partial last block repacks its padded weights at
    # 0.4 ns each (x86 lut: scalar zero-filling decode): small dense / few-pixel layers with
    # c_out = 10 cost several times their MACs (f32 dense layers read their rows in place)
    def true_ns(e):
        f = features(e, 64, 32)
        return 0.01 * f["ns_per_mac"] + 0.2 * f["ns_per_output"] + 0.4 * f["ns_per_tail_weight"] + 100.0

    rows = []
    rng = np.random.default_rng(2)
    for _ in range(30):
        c_in, c_out, h = int(rng.choice([8, 32, 64, 128])), int(rng.choice([10, 16, 32, 64, 84, 120])), \
            int(rng.choice([1, 4, 8, 16]))
        e = conv_entry("x", c_in=c_in, c_out=c_out, h_in=h, w_in=h, kh=1 if h == 1 else 3, padding="same",
                       kind="lut", weight_bits=2, codebook_len=4)
        ns = true_ns(e)
        rows.append(Measurement("lut", 2, "opt", c_in, c_out, h, h, e.kh, 1, "same", e.macs, ns, ns))
    lut_dense = dict(kind="lut", weight_bits=2, codebook_len=4)
    assert features(dense_entry("d", n_in=84, n_out=10, **lut_dense), 64, 32)["ns_per_tail_weight"] == 84 * 32
    assert features(dense_entry("d", n_in=84, n_out=64, **lut_dense), 64, 32)["ns_per_tail_weight"] == 0
    f32_dense = features(dense_entry("d", n_in=84, n_out=10), 64, 32)      # rows in place: no copy, rows of 4
    assert (f32_dense["ns_per_tail_weight"], f32_dense["ns_per_weight"], f32_dense["ns_per_mac"]) == (0, 0, 84 * 12)
    names = choose_coefficients(rows, repack=True)
    assert names[-2:] == ("ns_per_tail_weight", "ns_fixed") and "ns_per_tail_weight" not in FULL_SET
    block, coeffs = fit_best_block(rows, names, 64)
    assert block == 32 and mape(rows, coeffs, 64, block) < 1e-3
    assert coeffs["ns_per_tail_weight"] == pytest.approx(0.4, rel=1e-3)
    block0, coeffs0 = fit_best_block(rows, FULL_SET, 64)
    assert mape(rows, coeffs0, 64, block0) > 0.05    # the old form cannot fit such a kernel


def test_bench_rows_are_rows_of_the_measurements_csv():
    from autoq.cost.bench import bench, parse_shape, shape_macs

    rec = bench("xnor", "opt", (8, 4, 6, 6, 3, 1, "same"), reps=3)
    assert (rec.kind, rec.bits, rec.variant, rec.shape) == ("xnor", 1, "opt", (8, 4, 6, 6, 3, 1, "same"))
    assert rec.macs == 6 * 6 * 4 * 3 * 3 * 8 and 0 < rec.ns_min <= rec.ns_median
    assert parse_measurements(format_measurements([rec])).rows[0].shape == rec.shape
    assert shape_macs((3, 8, 16, 16, 5, 1, "valid")) == 12 * 12 * 8 * 25 * 3
    assert shape_macs((64, 64, 16, 16, 3, 2, "same")) == 8 * 8 * 64 * 9 * 64
    assert parse_shape(" 64, 64,16,16,3,1,same") == (64, 64, 16, 16, 3, 1, "same")
    for bad in ("8,4,5", "8,4,5,5,3,1,full", "8,0,5,5,3,1,same"):
        with pytest.raises(UserError, match="--shape"):
            parse_shape(bad)


def test_calibrate_host_on_a_tiny_grid_writes_a_loadable_profile(tmp_path):
    from autoq.cost.calibrate import calibrate_host

    seen = []
    profile = calibrate_host(quick=True, reps=2, save_csv=tmp_path / "host.csv",
                             progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] == 12
    path = dump_profile(profile, tmp_path / "host.yaml")
    loaded = load_profile(path)
    assert set(loaded.kernels) == set(KINDS)
    assert all(k.provenance == "measured-host" and k.points >= 12 for k in loaded.kernels.values())
    again = calibrate_from_csv(tmp_path / "host.csv", "host", variant="opt")  # the saved CSV round-trips
    assert again.kernels["f32"].coefficients == loaded.kernels["f32"].coefficients
    plan = LayerPlan([8, 8, 3], [conv_entry("c", c_in=3, c_out=8, h_in=8, w_in=8, kh=3, kind="xnor", weight_bits=1)])
    assert estimate(plan, loaded).latency_ms > 0


def test_from_csv_with_instruction_counts_prices_every_kind_from_opt_counts(tmp_path):
    """Board rows take exactly 2 ns per instruction of our ref kernels: the fitted scale is 2
    (MAPE and leave-one-filter-size-out 0) and each kind's time at a counted shape is 2 x its
    opt instruction count; kinds without opt counts get no coefficients."""
    from autoq.cost.counts import count_scale, read_counts

    board = read_measurements("hw_models/measurements/m4.csv")
    rows = [r for r in board.rows if r.variant == "thesis"]
    lines = ["target,kind,bits,variant,c_in,c_out,h,w,f,stride,pad,macs,instructions"]
    for r in rows:
        lines.append(f"toy,{r.kind},{r.bits},ref,3,8,16,16,{r.f},1,valid,{r.macs},{int(r.ns_median / 2)}")
    opt_counts = {("xnor", 1): {3: 50_000, 4: 70_000, 5: 90_000}, ("f32", 32): {3: 40_000, 4: 61_000, 5: 80_000}}
    for (kind, bits), by_f in opt_counts.items():
        for f, n in by_f.items():
            macs = (17 - f) ** 2 * 8 * f * f * 3
            lines.append(f"toy,{kind},{bits},opt,3,8,16,16,{f},1,valid,{macs},{n}")
    counts = tmp_path / "counts.csv"
    counts.write_text("# test counts\n" + "\n".join(lines) + "\n")
    scale = count_scale(rows, read_counts(counts), "toy")
    assert scale.ns_per_instruction == pytest.approx(2.0, rel=1e-5)
    assert scale.mape < 1e-5 and scale.loo_mape < 1e-5
    profile = profile_from_measurements(board, "toy", source="m4.csv", variant="thesis", counts=str(counts))
    assert set(profile.kernels) == {"f32", "xnor"}      # no opt counts for the other kinds
    for (kind, bits), by_f in opt_counts.items():
        k = profile.kernels[kind]
        assert k.provenance == "derived" and "ESTIMATE" in k.source and "opt" in k.source
        assert k.mape < 0.02          # scale exact; 2 coefficients through 3 points
        for f, n in by_f.items():
            e = conv_entry("t", c_in=3, c_out=8, h_in=16, w_in=16, kh=f, kind=kind, weight_bits=bits)
            predicted = estimate(LayerPlan([16, 16, 3], [e]), profile).latency_ms * 1e6
            assert predicted == pytest.approx(2 * n, rel=0.02)


def test_count_scale_leave_one_filter_size_out_sees_a_misfit():
    """One filter size at 1.5x the others' ns per instruction: in-sample MAPE and the held-out
    error are both clearly non-zero, and holding out is worse than fitting it."""
    from autoq.cost.counts import count_scale

    rows, counts = [], {}
    for f, ns_per_instr in ((3, 2.0), (4, 2.0), (5, 3.0)):
        m = Measurement("f32", 32, "thesis", 3, 8, 16, 16, f, 1, "valid", (17 - f) ** 2 * 8 * f * f * 3,
                        ns_per_instr * 1000 * f, None)
        rows.append(m)
        counts[("t", "f32", 32, "ref", m.shape)] = 1000 * f
    scale = count_scale(rows, counts, "t")
    assert 0.05 < scale.mape < scale.loo_mape


def test_cli_cost_of_a_zoo_model_with_a_config_file(tmp_path):
    import json

    from typer.testing import CliRunner

    from autoq.cli import app
    from autoq.config import preset

    cfg = tmp_path / "cfg.json"
    cfg.write_text(preset("bnn", "tiny").to_json())
    runner = CliRunner()
    result = runner.invoke(app, ["cost", "--config", str(cfg), "--model", "tiny", "--target", "m4",
                                 "--input-shape", "8,8,1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert [x["kind"] for x in out["cost"]["per_layer"]] == [e["kind"] for e in out["plan"]["layers"]]
    assert "xnor" in {e["kind"] for e in out["plan"]["layers"]}
    result = runner.invoke(app, ["cost", "--preset", "bnn", "--model", "tiny", "--target", "a53",
                                 "--input-shape", "8,8,1"])
    assert result.exit_code == 0, result.output
    assert "fits: yes" in result.output and "estimate (derived)" in result.output
