"""Sensitivity-guided ILP proposals and multi-target constraints (no TensorFlow: fake steps)."""
from __future__ import annotations

import numpy as np
import optuna
import pytest

from autoq.config import QuantConfig
from autoq.models.names import quant_layer_names
from autoq.search import Budget, SearchOptions, run_search
from autoq.search.command import result_line
from autoq.search.ilp import propose, select
from autoq.search.objective import TrainOutcome, constraint_values
from autoq.search.runner import enqueue_presets, waiting_params
from autoq.space import parse_space



def _bits(spec) -> int:
    if spec is None:
        return 32
    from autoq import quant

    return quant.get(spec).bits


class CostSteps:
    """Per-layer costs from the bits (latency: weight x act bits; flash: weight bits) and a
    sensitivity table where fewer bits hurt more (conv1 most)."""

    def __init__(self):
        self.trained = []

    def plan(self, config):
        qc = QuantConfig.from_dict(config)
        return {"layers": [{"name": n, "w": _bits(qc.for_layer(n).weight), "a": _bits(qc.for_layer(n).activation)}
                           for n in quant_layer_names(config["model"])]}

    def cost(self, plan, target):
        scale = {"m4": 1.0, "a53": 0.1}[target]
        per = [{"name": e["name"], "latency_ms": scale * 0.01 * e["w"] * e["a"], "flash_bytes": 100 * e["w"],
                "ram_bytes": 1000} for e in plan["layers"]]
        flash = sum(p["flash_bytes"] for p in per) + 50
        limit = {"m4": 9000, "a53": 10 ** 9}[target]
        return {"latency_ms": sum(p["latency_ms"] for p in per) + 0.5, "flash_bytes": flash,
                "peak_ram_bytes": 1000, "ram_limit_bytes": 32768, "flash_limit_bytes": limit,
                "fits": flash <= limit, "per_layer": per}

    def sensitivity(self, space):
        weight = {"bc": 1.0, "twn": 0.5, "dorefa(bits=2)": 0.3, "dorefa(bits=4)": 0.05}
        act = {"sign": 2.0}
        return {"layers": {n: {"weight": {k: v * (3 if n == "conv1" else 1) for k, v in weight.items()},
                               "activation": dict(act)} for n in quant_layer_names("tiny")}}

    def train(self, config, epochs, ctx):
        self.trained.append(config)
        ctx.trial_dir.mkdir(parents=True, exist_ok=True)
        path = ctx.trial_dir / "model.keras"
        path.write_text("fake")
        return TrainOutcome("ok", val_acc=0.8, test_acc=0.8, weights_path=str(path), seconds=0.01)


def space(**changes):
    raw = {"model": "tiny", "dataset": "synthetic", "input": [8, 8, 1],
           "training": {"epochs": 1}, "targets": ["m4"], "objectives": ["accuracy", "latency", "flash"],
           "model_choices": {"first_last_float": [False]},
           "layers": [{"select": {"type": "conv"},
                       "weight": [None, "bc", "twn", {"name": "dorefa", "bits": [2, 4]}],
                       "activation": [None, "sign"]}],
           "presets": []}
    raw.update(changes)
    return parse_space(raw, "test-space")


def test_proposals_are_distinct_and_cheaper_budgets_give_cheaper_configs():
    sp, steps = space(), CostSteps()
    found = propose(sp, steps.sensitivity(sp), steps, ["m4"], sp.objective_names(["m4"]), {}, 5)
    assert len(found) >= 3
    keys = [tuple(sorted(p["params"].items())) for p in found]
    assert len(set(keys)) == len(keys)
    costs = [steps.cost(steps.plan(sp.config_from_params(p["params"])), "m4") for p in found]
    for p, c in zip(found, costs):  # the real (here: fake model's) cost is within the budget
        assert c["latency_ms"] <= p["budget"]["latency@m4"] + 1e-9
        assert c["flash_bytes"] <= p["budget"]["flash@m4"] + 1e-9
    latencies = [c["latency_ms"] for c in costs]
    losses = [p["predicted_loss"] for p in found]
    assert latencies == sorted(latencies) and losses == sorted(losses, reverse=True)
    # the most sensitive layer is the last to lose bits
    cheapest = sp.config_from_params(found[0]["params"])
    assert QuantConfig.from_dict(cheapest).for_layer("conv1").weight is None or len(found) == 1 or \
        found[0]["predicted_loss"] > 1.0


def test_shared_rule_keeps_one_choice_for_all_its_layers():
    sp = space(layers=[{"select": {"type": "conv"}, "share": True,
                        "weight": [None, "bc", "twn"], "activation": [None]}])
    steps = CostSteps()
    for p in propose(sp, steps.sensitivity(sp), steps, ["m4"], sp.objective_names(["m4"]), {}, 4):
        qc = QuantConfig.from_dict(sp.config_from_params(p["params"]))
        assert len({str(qc.for_layer(n).weight) for n in ("conv1", "conv2", "conv3")}) == 1


def test_fits_flash_bounds_every_proposal():
    sp, steps = space(constraints={"fits": ["flash"]}), CostSteps()
    for p in propose(sp, steps.sensitivity(sp), steps, ["m4"], sp.objective_names(["m4"]),
                     sp.constraints, 4):
        assert steps.cost(steps.plan(sp.config_from_params(p["params"])), "m4")["fits"]


def test_search_enqueues_proposals_after_presets_then_the_sampler(tmp_path):
    steps = CostSteps()
    sp = space(presets=["base", "bc"], model_choices={"first_last_float": [True, False]})
    res = run_search(SearchOptions(space=sp, budget=Budget(trials=8), out_dir=tmp_path / "run"),
                     steps_factory=lambda o: steps)
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    trials = study.get_trials()
    assert res.done == 8 and res.presets_enqueued == ["base", "bc"] and res.proposals_enqueued == 3
    assert [t.user_attrs.get("preset") for t in trials[:2]] == ["base", "bc"]
    assert [t.user_attrs.get("proposal") for t in trials[2:5]] == ["ilp"] * 3
    assert all("proposal" not in t.user_attrs for t in trials[5:])
    assert "sensitivity/ILP proposals: 3" in result_line(res)


def test_random_search_gets_no_proposals(tmp_path):
    res = run_search(SearchOptions(space=space(), budget=Budget(trials=4), out_dir=tmp_path / "r",
                                   sampler="random"), steps_factory=lambda o: CostSteps())
    assert res.proposals_enqueued == 0


def test_a_trial_infeasible_on_one_target_counts_for_the_other(tmp_path):
    # m4 flash limit 9000 B: float tiny (4 layers x 32 bits x 100 B) does not fit m4, fits a53
    sp = space(constraints={"fits": ["flash"]}, presets=["base"], targets=["m4", "a53"])
    steps = CostSteps()
    res = run_search(SearchOptions(space=sp, budget=Budget(trials=3), out_dir=tmp_path / "run",
                                   proposals=0), steps_factory=lambda o: steps)
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    base = study.get_trials()[0]
    assert base.user_attrs["status"] == "ok" and not base.user_attrs["costs"]["m4"]["fits"]
    assert base.user_attrs["costs"]["a53"]["fits"] and max(base.user_attrs["constraints"]) <= 0
    from autoq.search.records import load_points

    fitting = {t: {p.number for p in load_points(study, t)[0] if p.fits} for t in ("m4", "a53")}
    assert base.number in fitting["a53"] and base.number not in fitting["m4"]
    assert res.done == 3


def test_skips_are_counted_by_reason_in_the_summary(tmp_path):
    sp = space(constraints={"fits": ["flash"]}, presets=["base"], targets=["m4"])
    res = run_search(SearchOptions(space=sp, budget=Budget(trials=3), out_dir=tmp_path / "run",
                                   proposals=0), steps_factory=lambda o: CostSteps())
    assert res.not_ok["trials"]["skipped"] >= 1 and res.not_ok["skipped"].get("m4: flash") >= 1
    assert "skipped" in result_line(res) and "m4: flash" in result_line(res)


def test_constraint_values_come_from_the_best_target():
    costs = {"m4": {"latency_ms": 12.0, "flash_bytes": 300000, "peak_ram_bytes": 40000,
                    "ram_limit_bytes": 32768, "flash_limit_bytes": 262144},
             "a53": {"latency_ms": 1.0, "flash_bytes": 300000, "peak_ram_bytes": 40000,
                     "ram_limit_bytes": 10 ** 9, "flash_limit_bytes": 10 ** 9}}
    v = constraint_values(costs, {"fits": ["sram", "flash"]})
    assert v == [40000 - 10 ** 9, 300000 - 10 ** 9]
    assert max(constraint_values({"m4": costs["m4"]}, {"fits": ["sram", "flash"]})) > 0


@pytest.mark.parametrize("names, expected", [(["accuracy", "latency@m4", "flash@m4", "ram@a53"],
                                              ["accuracy", "latency@m4 ms", "flash@m4 B", "ram@a53 B"])])
def test_metric_names_carry_units(names, expected):
    from autoq.search.study import metric_names

    assert metric_names(names) == expected


def test_no_proposal_is_spent_where_an_enqueued_config_is_predicted_as_good():
    sp, steps = space(), CostSteps()
    table, names = steps.sensitivity(sp), sp.objective_names(["m4"])
    free = propose(sp, table, steps, ["m4"], names, {}, 20)
    assert len(free) >= 3
    # every solution already enqueued (as presets would be): nothing predicted is left to add
    assert propose(sp, table, steps, ["m4"], names, {}, 20, taken=[f["params"] for f in free]) == []
    # one of them enqueued: it is not proposed again, the others still are
    rest = propose(sp, table, steps, ["m4"], names, {}, 20, taken=[free[1]["params"]])
    assert free[1]["params"] not in [p["params"] for p in rest] and len(rest) >= 2


def test_proposals_predicted_past_half_the_chance_loss_are_dropped():
    """With num_classes known, a selected proposal predicted to lose more than ln(classes)/2
    is not enqueued; the rest are the same selection."""
    import math

    sp, steps = space(), CostSteps()
    names = sp.objective_names(["m4"])
    table = steps.sensitivity(sp)
    free = propose(sp, table, steps, ["m4"], names, {}, 20)           # no num_classes: nothing dropped
    assert any(p["predicted_loss"] > math.log(10) / 2 for p in free)  # (else the case tests nothing)
    # a 10-class table whose cap (ln 10) is above every prediction: the selection is the same,
    # only the proposals predicted past half the cap go
    big = {**table, "num_classes": 10 ** 6}
    kept = propose(sp, {**table, "num_classes": 10}, steps, ["m4"], names, {}, 20)
    assert kept and all(p["predicted_loss"] <= math.log(10) / 2 for p in kept)
    assert len(propose(sp, big, steps, ["m4"], names, {}, 20)) >= len(kept)


def test_select_picks_by_added_predicted_hypervolume():
    def cand(tag, loss, lat, flash):
        return {"params": {"tag": tag}, "predicted_loss": loss, "predicted": {"latency": lat, "flash": flash}}

    found = [cand("cheap", 0.5, 10.0, 100.0), cand("mid", 0.1, 20.0, 200.0), cand("big", 0.05, 30.0, 300.0),
             cand("worse-big", 0.2, 30.0, 300.0)]
    covered = [np.array([0.1, 20.0, 150.0])]  # as accurate as "mid", less flash
    picked = [p["params"]["tag"] for p in select(found, covered, 4, cap=2.3)]
    assert picked == ["cheap", "big"]  # cheapest first; "mid" and "worse-big" add nothing
    # a predicted loss beyond the cap (chance) counts as the cap: the cheaper of the two wins
    found = [cand("a", 50.0, 10.0, 100.0), cand("b", 5.0, 11.0, 110.0), cand("c", 0.0, 30.0, 300.0)]
    assert [p["params"]["tag"] for p in select(found, [], 3, cap=2.3)] == ["a", "c"]


def test_waiting_params_are_the_enqueued_presets():
    sp = space(presets=["base", "bc"], model_choices={"first_last_float": [True, False]})
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    enqueue_presets(study, sp)
    got = waiting_params(study)
    assert len(got) == 2 and all(sp.config_from_params(p) for p in got)
    assert got[0] != got[1] and got[0]["first_last_float"] is True
