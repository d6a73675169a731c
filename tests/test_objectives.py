"""autoq.objectives (the objectives and constraints tables) and the trial pipeline's use of them
(autoq.search.objective): names, directions, cost values, constraint values and messages."""
from __future__ import annotations

import pytest

from autoq.errors import UserError
from autoq.objectives import (COST_FIELDS, CONSTRAINT_KEYS, FIT_KINDS, direction, expand_objectives, objective,
                              split_objective)
from autoq.search.objective import TrialOutcome, constraint_items, cost_vector, objective_values, violated

COSTS = {"m4": {"latency_ms": 80.123, "flash_bytes": 300_000, "peak_ram_bytes": 40_000,
                "ram_limit_bytes": 32_768, "flash_limit_bytes": 262_144},
         "a53": {"latency_ms": 2.5, "flash_bytes": 3_000, "peak_ram_bytes": 1_000,
                 "ram_limit_bytes": 1 << 20, "flash_limit_bytes": 1 << 24}}
ALL = {"max_latency_ms": 50.0, "max_flash_kb": 256.0, "max_ram_kb": 16.0, "fits": ["flash", "sram"]}


def test_names_aliases_and_directions():
    assert objective("acc").name == "accuracy" and objective("peak_ram").field == "peak_ram_bytes"
    with pytest.raises(UserError, match="unknown objective 'speed'"):
        objective("speed")
    assert split_objective("latency@m4") == ("latency", "m4") and split_objective("flash") == ("flash", "")
    assert [direction(n) for n in ("accuracy", "latency@m4", "ram@a53")] == ["maximize", "minimize", "minimize"]
    assert COST_FIELDS == {"latency": "latency_ms", "flash": "flash_bytes", "ram": "peak_ram_bytes"}
    assert CONSTRAINT_KEYS == ("max_latency_ms", "max_flash_kb", "max_ram_kb", "fits")
    assert FIT_KINDS == ("sram", "flash")


def test_expand_objectives_puts_accuracy_first_and_each_cost_per_target():
    assert expand_objectives(["latency", "accuracy", "flash@a53", "latency@m4"], ["m4", "a53"]) == \
        ["accuracy", "latency@m4", "latency@a53", "flash@a53"]


def test_values_in_study_order():
    names = ["accuracy", "latency@m4", "flash@a53", "ram@m4"]
    out = TrialOutcome(status="skipped", config={}, costs=COSTS)
    assert objective_values(out, names) == [0.0, 80.123, 3000.0, 40000.0]
    assert cost_vector(COSTS, names) == [80.123, 3000.0, 40000.0]


def test_violations_read_as_before_and_match_the_constraint_values():
    assert violated(COSTS, ALL) == [
        "m4: latency ms 80.12 > 50", "m4: flash KB 293 > 256", "m4: peak RAM KB 39.06 > 16",
        "m4: peak RAM 40000 B > 32768 B", "m4: flash 300000 B > 262144 B"]
    items = dict(constraint_items({"m4": COSTS["m4"]}, ALL))
    assert list(items) == ["m4:max_latency_ms", "m4:max_flash_kb", "m4:max_ram_kb", "m4:fits_ram", "m4:fits_flash"]
    assert items["m4:max_flash_kb"] == pytest.approx(300_000 / 1024 - 256)
    assert items["m4:fits_ram"] == 40_000 - 32_768
    assert all(v > 0 for v in items.values())
    # the best target's values: a53 meets everything
    assert all(v <= 0 for _, v in constraint_items(COSTS, ALL)) and violated({"a53": COSTS["a53"]}, ALL) == []
    assert violated(COSTS, {}) == [] and constraint_items(COSTS, {"fits": []}) == []
