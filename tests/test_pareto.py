"""autoq.pareto: front, hypervolume, re-costing, renderers and the HTML report in Chromium.

The studies here are written by hand with the trial user_attrs of contracts.md ("Study"), so
these tests need neither TensorFlow nor a search run.
"""
from __future__ import annotations

import csv
import itertools
import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoq import pareto
from autoq.config import relu_slope_label
from autoq.errors import UserError

# (val_acc, latency_ms, flash_bytes, peak_ram, fits) of the hand-made trials; 0, 1, 2 and 4 are
# on the front (accuracy up, latency down, flash down), 3 is dominated by 1, 5 failed.
TRIALS = [
    (0.98, 12.0, 90_000, 20_000, True),
    (0.95, 6.0, 30_000, 12_000, True),
    (0.90, 3.0, 8_000, 6_000, True),
    (0.94, 7.0, 31_000, 12_000, True),
    (0.99, 20.0, 400_000, 40_000, False),
]


def _plan(kind: str) -> dict:
    layer = {"name": "conv1", "op": "conv2d", "kind": kind, "weight_bits": 1 if kind != "f32" else 32,
             "act_bits": 32, "c_in": 1, "c_out": 4, "h_in": 8, "w_in": 8, "h_out": 8, "w_out": 8,
             "kh": 3, "kw": 3, "stride": 1, "padding": "same", "macs": 2304, "weight_count": 36,
             "codebook_len": 2, "per_channel": False, "weight_bytes": 5, "codebook_bytes": 8,
             "bias_bytes": 16, "in_bytes": 256, "out_bytes": 1024}
    dense = {**layer, "name": "fc", "op": "dense", "kind": "f32", "weight_bits": 32, "c_in": 256,
             "c_out": 10, "h_in": 1, "w_in": 1, "h_out": 1, "w_out": 1, "kh": 1, "kw": 1,
             "macs": 2560, "weight_count": 2560}
    return {"input_shape": [8, 8, 1], "layers": [layer, dense]}


def _config(weight) -> dict:
    return {"model": "lenet5", "shortcut": "float", "first_last_float": False,
            "default": {"weight": None, "activation": None, "relu_slope": 1.0},
            "layers": {"conv1": {"weight": weight, "activation": None}}}


def make_study(path: Path, trials=TRIALS, targets=("m4",)) -> Path:
    """A study like `autoq search` writes: objectives, costs per target, one failed trial."""
    storage = f"sqlite:///{path}"
    study = optuna.create_study(study_name="handmade", storage=storage,
                                directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("targets", list(targets))
    study.set_user_attr("objectives", ["accuracy", "latency", "flash"])
    for acc, lat, flash, ram, fits in trials:
        weight = {"name": "bc"} if flash < 50_000 else None
        attrs = {"config": _config(weight), "plan": _plan("lut" if weight else "f32"),
                 "metrics": {"val_acc": acc, "test_acc": acc - 0.01, "train_seconds": 1.0},
                 "costs": {t: {"latency_ms": lat, "flash_bytes": flash, "peak_ram_bytes": ram, "fits": fits,
                               "per_layer": []} for t in targets},
                 "weights_path": "/nonexistent/model.keras", "status": "ok"}
        study.add_trial(optuna.trial.create_trial(values=[acc, lat, flash], user_attrs=attrs))
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL,
        user_attrs={"status": "failed", "fail_reason": "diverged"}))
    return path


@pytest.fixture()
def run_dir(tmp_path) -> Path:
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    make_study(run / "study.db")
    return run


# --- data -----------------------------------------------------------------------------------


def test_front_members_ranks_and_skipped(run_dir):
    pf = pareto.pareto_front(run_dir)
    assert pf.target == "m4"
    assert [p.number for p in pf.front] == [4, 0, 1, 2]          # most accurate first
    assert {p.number: p.rank for p in pf.points}[3] == 1
    assert [n for n, _ in pf.skipped] == [5]
    assert all(p.cost_source == "stored" for p in pf.points)
    layer = pf.front[2].layers[0]                                  # trial 1, binary conv1
    assert (layer["name"], layer["kind"], layer["weight"]) == ("conv1", "lut", "bc")


def test_only_fitting_drops_non_fitting_points(run_dir):
    pf = pareto.pareto_front(run_dir, only_fitting=True)
    assert [p.number for p in pf.front] == [0, 1, 2]
    assert (4, "does not fit m4") in pf.skipped


def test_hypervolume_matches_hand_computation_2d():
    # staircase of (1,3), (2,2), (3,1) under reference (4,4): 3 + 2 + 1 = 6
    assert pareto.hypervolume(np.array([[1, 3], [2, 2], [3, 1]]), [4, 4]) == pytest.approx(6.0)
    # a dominated point and a point outside the reference add nothing
    assert pareto.hypervolume(np.array([[1, 3], [2, 2], [3, 1], [3, 3], [5, 0]]), [4, 4]) == pytest.approx(6.0)
    assert pareto.hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0


def _grid_hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """Brute force on the grid spanned by the coordinates: sum of dominated cells."""
    axes = [np.unique(np.append(points[:, i], ref[i])) for i in range(len(ref))]
    total = 0.0
    for idx in itertools.product(*[range(len(a) - 1) for a in axes]):
        lo = np.array([axes[i][j] for i, j in enumerate(idx)])
        hi = np.array([axes[i][j + 1] for i, j in enumerate(idx)])
        if np.any(np.all(points <= lo, axis=1)):
            total += float(np.prod(hi - lo))
    return total


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 3).flatmap(lambda d: st.lists(
    st.lists(st.integers(0, 9), min_size=d, max_size=d), min_size=1, max_size=7)))
def test_hypervolume_equals_brute_force(rows):
    points = np.array(rows, dtype=float)
    ref = np.full(points.shape[1], 10.0)
    assert pareto.hypervolume(points, ref) == pytest.approx(_grid_hypervolume(points, ref))


def test_reported_hypervolume_uses_normalised_front(run_dir):
    pf = pareto.pareto_front(run_dir)
    front = np.array([[1 - p.val_acc, p.latency_ms / 20.0, p.flash_bytes / 400_000] for p in pf.front])
    assert pf.normalisers == [1.0, 20.0, 400_000.0]
    assert pf.hypervolume == pytest.approx(_grid_hypervolume(front, np.array([1.0, 1.1, 1.1])))
    assert pf.hypervolume > 0


def test_other_target_is_recosted_from_the_stored_plan(run_dir):
    seen = []

    def fake_estimate(plan):             # a cost model where only the first layer's kind matters
        seen.append(plan["layers"][0]["kind"])
        slow = plan["layers"][0]["kind"] == "lut"
        return {"latency_ms": 50.0 if slow else 5.0, "flash_bytes": 1000 if slow else 9000,
                "peak_ram_bytes": 100, "fits": True, "per_layer": []}

    pf = pareto.pareto_front(run_dir, target="a53", estimator=fake_estimate)
    assert len(seen) == 5 and all(p.cost_source == "estimated" for p in pf.points)
    by_n = {p.number: p for p in pf.points}
    assert by_n[1].latency_ms == 50.0 and by_n[0].latency_ms == 5.0
    # re-ranked: float trials (0, 4) now cost the same, so 4 (more accurate) dominates 0; among
    # the binary ones (1, 2, 3) the most accurate, 1, dominates the others.
    assert {p.number for p in pf.front} == {4, 1}
    assert [by_n[n].rank for n in (0, 3, 2)] == [1, 1, 2]     # 2 is also dominated by 3


def test_recost_with_the_real_cost_model(run_dir):
    """A real LayerPlan is re-estimated with the shipped i5 profile."""
    from autoq.cost.profile import load_profile
    from autoq.cost.model import estimate
    from autoq.plan import LayerPlan

    profile = load_profile("i5")
    pf = pareto.pareto_front(run_dir, target="i5")
    expected = estimate(LayerPlan.from_dict(_plan("lut")), profile)
    p1 = next(p for p in pf.points if p.number == 1)
    assert p1.cost_source == "estimated"
    assert p1.latency_ms == pytest.approx(expected.latency_ms)
    assert p1.flash_bytes == expected.flash_bytes


def test_missing_study_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no study found"):
        pareto.pareto_front(tmp_path / "nope")


def test_unknown_objective_is_a_user_error(run_dir):
    with pytest.raises(UserError, match="unknown objective 'speed'"):
        pareto.pareto_front(run_dir, objectives=["accuracy", "speed"])


def test_study_stays_plain_optuna(run_dir):
    """optuna-dashboard reads plain Optuna storage: the study loads with Optuna alone."""
    study = optuna.load_study(study_name="handmade", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert len(study.best_trials) == 4


# --- renderers ------------------------------------------------------------------------------


def test_json_and_csv(run_dir, tmp_path):
    pf = pareto.pareto_front(run_dir)
    doc = json.loads(pareto.dumps(pf))
    assert [p["trial"] for p in doc["points"]] == [4, 0, 1, 2]
    assert doc["points"][0]["layers"][0]["name"] == "conv1"
    rows = list(csv.DictReader(pareto.write_csv(pf, tmp_path / "f.csv").open()))
    assert len(rows) == 5
    assert {r["trial"] for r in rows if r["on_front"] == "True"} == {"0", "1", "2", "4"}


def test_table_renders(run_dir):
    from rich.console import Console

    console = Console(record=True, width=160)
    for t in pareto.render_table(pareto.pareto_front(run_dir)):
        console.print(t)
    text = console.export_text()
    assert "hypervolume" in text and "trial 1: per-layer configuration" in text


def test_end_of_search_tables_give_each_target_its_front(tmp_path):
    run = tmp_path / "runs" / "two"
    run.mkdir(parents=True)
    make_study(run / "study.db", targets=("m4", "a53"))
    tables = pareto.front_tables(run, ["a53", "m4"])
    assert [t.title.split(":")[0] for t in tables] == ["Pareto front of handmade on a53",
                                                       "Pareto front of handmade on m4"]
    assert [t.row_count for t in tables] == [4, 4]          # trials 0, 1, 2, 4


def _png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) without Pillow."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif ctype == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        cur = np.zeros(stride, dtype=np.int32)
        for x in range(stride):  # PNG filters (sub/up/average/paeth) need the decoded left neighbour
            a = cur[x - channels] if x >= channels else 0
            b, c = prev[x], (prev[x - channels] if x >= channels else 0)
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + pred) & 0xFF
        out[y], prev = cur, cur
    return out.reshape(height, width, channels)[:, :, :3]


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    assert browser, "chromium is required for the HTML report test (Debian package `chromium`, in .ci/run)"
    return browser


def _chromium_flags(tmp_path) -> list[str]:
    return [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars", "--virtual-time-budget=10000", "--window-size=1250,1400"]


# trial 5 repeats trial 1's objectives exactly (e.g. the same config reached twice): it overlaps
OVERLAPPING = [*TRIALS, TRIALS[1]]


def _brute_force_front(pairs):
    return {i for i, (x, y) in enumerate(pairs)
            if not any(a <= x and b <= y and (a < x or b < y) for a, b in pairs)}


def test_each_pair_of_objectives_gets_its_own_front(run_dir):
    from autoq.pareto_html import pair_panels

    pf = pareto.pareto_front(run_dir)
    panels = pair_panels(pf)
    assert [(pn.x.name, pn.y.name) for pn in panels] == [("latency", "accuracy"), ("flash", "accuracy"),
                                                         ("latency", "flash")]
    for pn in panels:
        pairs = [(pn.x.minimised(p), pn.y.minimised(p)) for p in pf.points]
        expected = {pf.points[i].number for i in _brute_force_front(pairs)}
        assert {p.number for p in pn.front} == expected, (pn.x.name, pn.y.name)
        xs = [pn.value(p, "x") for p in pn.front]
        assert xs == sorted(xs)
    # latency vs accuracy alone: 4 (0.99 at 20 ms), 0 (0.98, 12 ms), 1, 2 -- but not 3 (dominated by 1)
    assert [p.number for p in panels[0].front] == [2, 1, 0, 4]


def test_overlapping_trials_get_distinct_markers(tmp_path):
    run = tmp_path / "runs" / "dup"
    run.mkdir(parents=True)
    make_study(run / "study.db", trials=OVERLAPPING)
    from autoq.pareto_html import pair_panels

    pf = pareto.pareto_front(run)
    for pn in pair_panels(pf):
        assert pn.markers[1] != pn.markers[5]          # same coordinates: another symbol and size
        assert pn.markers[1][1] > pn.markers[5][1]     # the later one is drawn smaller, on top
        assert pn.markers[0][1] == pn.markers[2][1]    # trials alone at their point: the plain size
        assert pn.labels[1] == "1, 5" and pn.labels[5] == ""   # one label for the group


def test_html_report_offline_and_rendered_in_headless_chromium(tmp_path):
    run = tmp_path / "runs" / "dup"
    run.mkdir(parents=True)
    make_study(run / "study.db", trials=OVERLAPPING)
    pf = pareto.pareto_front(run)
    report = pareto.write_html(pf, tmp_path / "report.html")
    text = report.read_text()
    assert not re.findall(r"<script[^>]*\ssrc=", text)       # plotly.js embedded, nothing fetched
    assert text.count("Plotly.newPlot") == 2                   # the pair panels and parallel coordinates
    assert "Trial 1: per-layer configuration" in text and "<th>ReLU slope</th>" in text
    flags = _chromium_flags(tmp_path)
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", report.as_uri()], check=True, capture_output=True, timeout=180)
    pixels = _png_pixels(shot.read_bytes())
    assert pixels.std() > 10, "screenshot is blank"
    red = (pixels[:, :, 0] > 180) & (pixels[:, :, 1] < 90) & (pixels[:, :, 2] < 90)   # FRONT_COLOUR #d62728
    width = pixels.shape[1]
    for third in range(3):      # every pair panel shows its own front (markers and staircase)
        assert red[:, third * width // 3:(third + 1) * width // 3].sum() > 50, f"no front drawn in panel {third}"
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], check=True, capture_output=True, text=True,
                         timeout=180).stdout
    for subplot in ('class="subplot xy"', 'class="subplot x2y2"', 'class="subplot x3y3"'):
        assert subplot in dom, subplot
    # one marker per trial in each of the 3 panels (the staircases are lines without markers)
    assert len(re.findall(r'class="point"', dom)) == 3 * len(pf.points)
    assert "parcoords" in dom and dom.count('class="axis-title"') >= 4   # trial + 3 objectives (+ RAM)


def test_preset_relu_slope_and_shortcut_columns_and_rounded_csv(tmp_path):
    from rich.console import Console

    run = tmp_path / "runs" / "methods"
    run.mkdir(parents=True)
    storage = f"sqlite:///{run / 'study.db'}"
    study = optuna.create_study(study_name="methods", storage=storage, directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("targets", ["m4"])
    study.set_user_attr("objectives", ["accuracy", "latency", "flash"])
    bc22 = _config({"name": "bc"})
    bc22["default"]["relu_slope"] = 0.125                    # BC-2.2: every hidden ReLU at slope 1/8
    mixed = _config({"name": "bc"})
    mixed["layers"]["conv1"]["relu_slope"] = 0.1
    resnet = {"model": "resnet20", "shortcut": "removed", "first_last_float": True,
              "default": {"weight": {"name": "bc"}, "activation": None, "relu_slope": 1.0}, "layers": {}}
    rows = [("bc-2.2", bc22, 0.97206703910614, 74.31939505599999, 9000),
            ("bc", _config({"name": "bc"}), 0.96, 70.0, 9000),
            (None, mixed, 0.95, 60.0, 8000), (None, resnet, 0.90, 50.0, 7000)]
    for preset, config, acc, lat, flash in rows:
        attrs = {"config": config, "plan": _plan("lut"), "status": "ok", "weights_path": "/x.keras",
                 "metrics": {"val_acc": acc, "test_acc": acc, "train_seconds": 1.0},
                 "costs": {"m4": {"latency_ms": lat, "flash_bytes": flash, "peak_ram_bytes": 100, "fits": True}}}
        if preset:
            attrs["preset"] = preset
        study.add_trial(optuna.trial.create_trial(values=[acc, lat, flash], user_attrs=attrs))
    pf = pareto.pareto_front(run)
    by_trial = {p.number: p for p in pf.points}
    assert (by_trial[0].preset, by_trial[0].relu_slope, by_trial[0].shortcut) == ("bc-2.2", "0.125", "-")
    assert (by_trial[1].preset, by_trial[1].relu_slope) == ("bc", "1")
    assert by_trial[2].relu_slope == "0.1"                    # conv1, the only hidden layer, at 0.1
    three = {"layers": [{"name": "conv1"}, {"name": "conv2"}, {"name": "fc"}]}
    mixed["layers"]["conv2"] = {"relu_slope": 1.0}
    assert relu_slope_label(mixed, three) == "mixed 1/0.1"
    assert by_trial[3].shortcut == "removed"
    console = Console(record=True, width=200)
    console.print(pareto.render_table(pf)[0])
    text = console.export_text()
    assert "preset" in text and "ReLU slope" in text and "shortcut" in text
    assert re.search(r"│\s+0 │ bc-2\.2\s+│\s+0\.9721 .*│ 0\.125\s+│ -\s+│", text), text
    csv_rows = list(csv.DictReader(pareto.write_csv(pf, tmp_path / "t.csv").open()))
    first = next(r for r in csv_rows if r["trial"] == "0")
    assert first["val_acc"] == "0.9721" and first["latency_ms"] == "74.32" and first["preset"] == "bc-2.2"
    assert first["relu_slope"] == "0.125" and next(r for r in csv_rows if r["trial"] == "2")["preset"] == ""


def test_run_targets_give_the_default_target_of_pareto_and_export(tmp_path):
    run = tmp_path / "runs" / "two"
    run.mkdir(parents=True)
    make_study(run / "study.db", targets=("a53", "m4"))
    assert pareto.run_targets(run) == ["a53", "m4"]
    assert pareto.pareto_front(run).target == "a53"
