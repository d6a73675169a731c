"""Pricing of the non-kernel ops (profile section ``ops``, autoq.cost.ops) and their
calibration on the exported C (autoq.cost.calibrate_ops: timer marks, fit)."""
from __future__ import annotations

import copy
import re

import pytest
import yaml

from autoq.cost.calibrate_ops import fit_ops, instrument
from autoq.cost.ops import op_latency_ns, ops_latency_ns, unpriced_ops
from autoq.cost.profile import dump_profile, load_profile
from autoq.errors import UserError
from autoq.plan import LayerPlan, OpEntry

PROFILE = {
    "id": "toy", "board": "b", "cpu": "c", "clock_hz": 1000000, "word_bits": 32,
    "memory": {"sram_bytes": 4096, "flash_bytes": 65536}, "overhead_ns": 0.0,
    "kernels": {"f32": {"coefficients": {"ns_per_mac": 1.0}, "provenance": "measured-host", "source": "t",
                        "fit": {"points": 3, "mape": 0.0}}},
    "ops": {"act": {"coefficients": {"ns_per_element": 0.5, "ns_fixed": 20.0}, "provenance": "measured-host",
                    "source": "t", "fit": {"points": 5, "mape": 0.01, "loo_mape": 0.02}},
            "maxpool": {"coefficients": {"ns_per_tap": 0.25, "ns_per_input": 0.1}, "provenance": "measured-host",
                        "source": "t", "fit": {"points": 5, "mape": 0.01}}},
}


def _profile(tmp_path, data):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_profile(path)


def test_ops_priced_by_hand(tmp_path):
    profile = _profile(tmp_path, PROFILE)
    plan = LayerPlan([8, 8, 4], [], [OpEntry("relu", "act", 256, 256), OpEntry("pool", "maxpool", 256, 64, window=4),
                                     OpEntry("res", "add", 512, 256)])
    assert ops_latency_ns(plan, profile) == [("relu", 0.5 * 256 + 20.0), ("pool", 0.25 * 64 * 4 + 0.1 * 256),
                                             ("res", 0.0)]
    assert unpriced_ops(plan, profile) == ["add"]
    assert op_latency_ns(OpEntry("x", "act", 10, 10), profile) == pytest.approx(25.0)


def test_ops_section_round_trips(tmp_path):
    profile = _profile(tmp_path, PROFILE)
    back = load_profile(dump_profile(profile, tmp_path / "again.yaml"))
    assert back.ops == profile.ops and back.kernels == profile.kernels
    no_ops = copy.deepcopy(PROFILE)
    del no_ops["ops"]
    assert _profile(tmp_path, no_ops).ops == {}


@pytest.mark.parametrize("mutate,key", [
    (lambda d: d["ops"].update(softmax=d["ops"]["act"]), "ops.softmax"),
    (lambda d: d["ops"]["act"]["coefficients"].update(ns_per_mac=1.0), "ops.act.coefficients.ns_per_mac"),
    (lambda d: d["ops"]["act"]["coefficients"].update(ns_fixed=-1.0), "ops.act.coefficients.ns_fixed"),
    (lambda d: d["ops"]["act"].update(c_out_block=4), "ops.act.c_out_block"),
])
def test_ops_section_errors_name_the_key(tmp_path, mutate, key):
    data = copy.deepcopy(PROFILE)
    mutate(data)
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        _profile(tmp_path, data)


def test_fit_recovers_exact_coefficients():
    points = [(OpEntry("", "act", n, n), 0.4 * n + 30.0) for n in (64, 256, 1024, 4096, 16384)]
    points += [(OpEntry("", "maxpool", 4 * n, n, window=w), 0.3 * n * w + 5.0) for n in (64, 256, 1024) for w in (4, 9)]
    fitted = fit_ops(points, "synthetic")
    assert fitted["act"].coefficients == pytest.approx({"ns_per_element": 0.4, "ns_fixed": 30.0}, rel=1e-6)
    assert fitted["maxpool"].coefficients["ns_per_tap"] == pytest.approx(0.3, rel=1e-6)
    assert fitted["act"].mape < 1e-6 and fitted["act"].loo_mape < 1e-6
    assert fitted["act"].provenance == "measured-host" and fitted["act"].points == 5


def test_fit_drops_implausibly_fast_points_but_keeps_a_fixed_cost():
    # 0.1 ns per value + 40 ns per op; three sizes read (almost) 0, as timer marks around an op
    # in the shadow of the previous one do: without the filter the relative fit prices ~0
    good = [(OpEntry("", "act", n, n), 0.1 * n + 40.0) for n in (84, 120, 256, 1024, 1024, 2048, 4096, 8192, 16384)]
    bad = [(OpEntry("", "act", n, n), ns) for n, ns in ((1024, 0.0), (2048, 7.0), (120, 0.0))]
    fitted = fit_ops(good + bad, "synthetic")["act"]
    assert fitted.coefficients == pytest.approx({"ns_per_element": 0.1, "ns_fixed": 40.0}, rel=1e-6)
    assert fitted.points == len(good) and "3 implausibly fast dropped" in fitted.source
    # a large fixed cost alone (small ops slow per value) drops nothing
    fixed = [(OpEntry("", "add", 2 * n, n), 500.0 + 0.01 * n) for n in (16, 64, 256, 1024, 4096, 16384, 65536)]
    assert fit_ops(fixed, "synthetic")["add"].points == len(fixed)


def test_instrument_marks_every_plan_item_of_the_emitted_c():
    from autoq.config import preset
    from autoq.export import c_emit
    from autoq.export.graph import build_graph
    from autoq.export.planning import plan_from_emission
    from autoq.models.zoo import build_model

    model = build_model("resnet20", (8, 8, 3), 10, preset("bnn", "resnet20"))
    graph = build_graph(model, fold_bn=False)
    em = c_emit.emit_c(graph)
    plan = plan_from_emission(graph, em)
    text, pieces = instrument(em.source, plan)
    assert sorted(p.index for p in pieces if p.what == "op") == list(range(len(plan.ops)))
    assert sorted(p.index for p in pieces if p.what == "kernel") == list(range(len(plan.layers)))
    marks = [int(m) for m in re.findall(r"AQ_PROF_MARK\((\d+)\);", text)]
    assert marks == list(range(len(pieces) + 2))
    # items in execution order: each layer's input ops come right before its kernel
    order = [plan.ops[p.index].name if p.what == "op" else plan.layers[p.index].name for p in pieces]
    first = next(e.name for e in plan.layers if e.kind == "xnor")
    assert order[order.index(first) - 2:order.index(first)] == [f"{first}:quantize", f"{first}:pack"]
    broken = LayerPlan(plan.input_shape, plan.layers, [o for o in plan.ops if not o.name.endswith(":pack")])
    with pytest.raises(UserError, match="input ops"):
        instrument(em.source, broken)
