"""The search runner: budget, presets, cache, failures, multi-fidelity, resume after Ctrl-C and
kill -9, bad input. Most tests use FakeSteps (a pure function of the config, no TensorFlow);
the real objective and the Ray backend have one small test each."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest

from autoq.config import QuantConfig
from autoq.errors import UserError
from autoq.models.names import quant_layer_names
from autoq.search import Budget, SearchOptions, TrainOutcome, parse_budget, run_search
from autoq.search.objective import constraint_values, should_promote
from autoq.search.progress import summarize
from autoq.search.study import count_done
from autoq.space import config_hash, parse_space

REPO = Path(__file__).resolve().parent.parent
TS = optuna.trial.TrialState

SPACE = {
    "model": "tiny", "dataset": "synthetic", "input": [8, 8, 1],
    "training": {"epochs": 2, "baseline_epochs": 1},
    "targets": ["m4"], "objectives": ["accuracy", "latency", "flash"],
    "model_choices": {"first_last_float": [True]},
    "layers": [{"select": {"type": "conv"}, "weight": [None, "bc", "twn", {"name": "dorefa", "bits": [2, 4]}],
                "activation": [None, "sign"]}],
    "presets": ["base", "bc", "bnn", "twn"],
}


def make_space(**changes):
    raw = json.loads(json.dumps(SPACE))
    raw.update(changes)
    return parse_space(raw, "test-space")


def _bits(q) -> int:
    if q is None:
        return 32
    from autoq import quant

    return quant.get(q).bits


class FakeSteps:
    """Costs and accuracy as pure functions of the config (fewer bits: cheaper, less accurate)."""

    def __init__(self, diverge=None, interrupt_at=None, sleep=0.0):
        self.trained: list[tuple[str, int]] = []
        self.diverge = diverge                  # predicate(config) -> bool
        self.interrupt_at = interrupt_at        # raise KeyboardInterrupt on this train call
        self.sleep = sleep

    def plan(self, config):
        qc = QuantConfig.from_dict(config)
        return {"layers": [{"name": n, "weight_bits": _bits(qc.for_layer(n).weight),
                            "act_bits": _bits(qc.for_layer(n).activation)}
                           for n in quant_layer_names(config["model"])]}

    def cost(self, plan, target):
        wb = sum(entry["weight_bits"] for entry in plan["layers"])
        ab = sum(entry["act_bits"] for entry in plan["layers"])
        flash = 100 * wb
        return {"latency_ms": 0.1 * wb + 0.05 * ab, "flash_bytes": flash, "peak_ram_bytes": 500,
                "ram_limit_bytes": 32768, "flash_limit_bytes": 20000, "fits": flash <= 20000}

    def train(self, config, epochs, ctx):
        if self.interrupt_at is not None and len(self.trained) == self.interrupt_at:
            raise KeyboardInterrupt
        self.trained.append((config_hash(config), epochs))
        time.sleep(self.sleep)
        if self.diverge and self.diverge(config):
            return TrainOutcome("failed", reason="loss diverged: nan at epoch 1")
        plan = self.plan(config)
        mean_bits = sum(min(e["weight_bits"], 8) for e in plan["layers"]) / len(plan["layers"])
        acc = 0.5 + 0.05 * mean_bits + 0.01 * epochs
        ctx.trial_dir.mkdir(parents=True, exist_ok=True)
        path = ctx.trial_dir / "model.keras"
        path.write_text("fake")
        return TrainOutcome("ok", val_acc=acc, test_acc=acc - 0.01, weights_path=str(path), seconds=0.01)


def opts(tmp_path, budget=6, name="run", **kw):
    kw.setdefault("space", make_space())
    return SearchOptions(budget=Budget(trials=budget) if isinstance(budget, int) else budget,
                         out_dir=tmp_path / name, **kw)


def load(tmp_path, name="run"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / name / 'study.db'}")


# --- budget, presets, stored attributes ---------------------------------------------------------


def test_budget_is_met_exactly_presets_first_and_every_trial_stores_the_contract(tmp_path):
    steps = FakeSteps()
    res = run_search(opts(tmp_path, budget=7), steps_factory=lambda o: steps)
    assert res.done == 7 and not res.interrupted
    assert res.presets_enqueued == ["base", "bc", "bnn", "twn"]
    study = load(tmp_path)
    trials = study.get_trials()
    assert len(trials) == 7 and count_done(study) == 7
    assert [t.user_attrs.get("preset") for t in trials[:4]] == ["base", "bc", "bnn", "twn"]
    for t in trials:
        a = t.user_attrs
        assert t.state == TS.COMPLETE and a["status"] == "ok"
        QuantConfig.from_dict(a["config"])
        assert a["plan"]["layers"] and set(a["costs"]) == {"m4"}
        assert set(a["metrics"]) >= {"val_acc", "test_acc", "train_seconds"}
        assert Path(a["weights_path"]).is_absolute() and Path(a["weights_path"]).is_file()
        assert t.values[0] == pytest.approx(a["metrics"]["val_acc"])
        assert t.values[1] == pytest.approx(a["costs"]["m4"]["latency_ms"])
        assert set(a["timings"]) == ({"store"} if "cached_from" in a else {"build", "cost", "train", "store", "upload"})
    assert study.user_attrs["targets"] == ["m4"]
    assert study.metric_names == ["accuracy", "latency@m4 ms", "flash@m4 B"]
    assert study.user_attrs["objectives"] == ["accuracy", "latency", "flash"]
    assert study.user_attrs["objective_names"] == ["accuracy", "latency@m4", "flash@m4"]
    assert study.user_attrs["space"]["model"] == "tiny"
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE,
                                optuna.study.StudyDirection.MINIMIZE]


@pytest.mark.parametrize("sampler", ["nsga2", "tpe", "random"])
def test_each_sampler_runs(tmp_path, sampler):
    res = run_search(opts(tmp_path, budget=6, sampler=sampler, space=make_space(presets=[])),
                     steps_factory=lambda o: FakeSteps())
    assert res.done == 6


def test_same_config_is_not_trained_twice(tmp_path):
    # two distinct models only: the other proposals are cache hits
    space = make_space(layers=[{"select": {"type": "conv"}, "share": True, "weight": [None, "bc"]}], presets=[])
    steps = FakeSteps()
    res = run_search(opts(tmp_path, budget=8, space=space), steps_factory=lambda o: steps)
    assert res.done == 8
    assert len(steps.trained) == len({h for h, _ in steps.trained}) <= 2
    trials = load(tmp_path).get_trials()
    hits = [t for t in trials if "cached_from" in t.user_attrs]
    assert len(hits) == 8 - len(steps.trained)
    for t in hits:
        src = trials[t.user_attrs["cached_from"]]
        assert t.user_attrs["config_hash"] == src.user_attrs["config_hash"]
        assert t.values == src.values


def test_diverging_trial_is_recorded_failed_and_the_search_goes_on(tmp_path):
    diverge = lambda cfg: any((e.get("weight") or {}).get("name") == "twn" for e in cfg["layers"].values())  # noqa: E731
    res = run_search(opts(tmp_path, budget=6), steps_factory=lambda o: FakeSteps(diverge=diverge))
    assert res.done == 6
    trials = load(tmp_path).get_trials()
    failed = [t for t in trials if t.user_attrs["status"] == "failed"]
    assert failed and all(t.state == TS.FAIL for t in failed)
    assert all("diverged" in t.user_attrs["fail_reason"] for t in failed)
    assert trials[3].user_attrs["preset"] == "twn" and trials[3] in failed
    assert any(t.user_attrs["status"] == "ok" for t in trials[4:])   # went on after the failure


def test_infeasible_configs_are_costed_but_not_trained(tmp_path):
    # 100 B per weight bit: all-float tiny (4 x 32 bits) needs 12.5 KB > 10 KB
    space = make_space(constraints={"max_flash_kb": 10.0})
    steps = FakeSteps()
    run_search(opts(tmp_path, budget=6, space=space), steps_factory=lambda o: steps)
    trials = load(tmp_path).get_trials()
    skipped = [t for t in trials if t.user_attrs["status"] == "skipped"]
    assert trials[0].user_attrs["preset"] == "base" and trials[0] in skipped
    for t in skipped:
        assert t.state == TS.COMPLETE and t.values[0] == 0.0
        assert "infeasible" in t.user_attrs["fail_reason"] and max(t.user_attrs["constraints"]) > 0
        assert t.user_attrs["config_hash"] not in {h for h, _ in steps.trained}
    assert len(steps.trained) == sum(t.user_attrs["status"] != "skipped" and "cached_from" not in t.user_attrs
                                     for t in trials)


def test_constraint_values_follow_optunas_sign_convention():
    costs = {"m4": {"latency_ms": 12.0, "flash_bytes": 2048, "peak_ram_bytes": 40000,
                    "ram_limit_bytes": 32768, "flash_limit_bytes": 262144}}
    v = constraint_values(costs, {"max_latency_ms": 10, "max_flash_kb": 4, "fits": ["sram", "flash"]})
    assert v == [2.0, -2.0, 40000 - 32768, 2048 - 262144]


def test_screen_promotes_only_promising_configs(tmp_path):
    assert should_promote(0.9, [1.0], [(0.95, [2.0])], 0.02)          # the other is dearer
    assert not should_promote(0.9, [1.0], [(0.95, [1.0])], 0.02)      # as cheap, 5 points better
    assert should_promote(0.94, [1.0], [(0.95, [1.0])], 0.02)         # within the margin
    space = make_space(training={"epochs": 3, "baseline_epochs": 1, "screen": {"epochs": 1, "margin": 0.0}})
    steps = FakeSteps()
    run_search(opts(tmp_path, budget=8, space=space), steps_factory=lambda o: steps)
    trials = load(tmp_path).get_trials()
    fid = {t.user_attrs["fidelity"] for t in trials if t.user_attrs["status"] == "ok"}
    assert fid <= {"screen", "full"} and "full" in fid
    for t in trials:
        m = t.user_attrs["metrics"]
        assert "screen_acc" in m
        if t.user_attrs["fidelity"] == "screen":
            assert m["val_acc"] == m["screen_acc"]
    assert {e for _, e in steps.trained} <= {1, 3}


def test_time_budget_stops_starting_trials(tmp_path):
    # the clock includes set-up; no trial starts after the deadline, a started one finishes
    import datetime

    t0 = datetime.datetime.now()
    res = run_search(opts(tmp_path, budget=Budget(seconds=4.0)), steps_factory=lambda o: FakeSteps(sleep=0.3))
    trials = [t for t in load(tmp_path).get_trials() if t.datetime_start is not None]  # not the waiting presets
    assert res.done >= 1 and count_done(load(tmp_path)) == res.done == len(trials)
    assert (trials[-1].datetime_start - t0).total_seconds() <= 4.0 + 0.5


# --- run folder: refuse, force, resume ----------------------------------------------------------------


def test_existing_run_is_refused_then_force_starts_over(tmp_path):
    run_search(opts(tmp_path, budget=2), steps_factory=lambda o: FakeSteps())
    with pytest.raises(UserError, match="already holds a search.*--resume.*--force"):
        run_search(opts(tmp_path, budget=2), steps_factory=lambda o: FakeSteps())
    res = run_search(opts(tmp_path, budget=3, force=True), steps_factory=lambda o: FakeSteps())
    assert res.done == 3 and len(load(tmp_path).get_trials()) == 3


def test_resume_without_run_and_with_other_space_are_refused(tmp_path):
    with pytest.raises(UserError, match="no search to resume"):
        run_search(opts(tmp_path, resume=True), steps_factory=lambda o: FakeSteps())
    run_search(opts(tmp_path, budget=2), steps_factory=lambda o: FakeSteps())
    with pytest.raises(UserError, match="different search space"):
        run_search(opts(tmp_path, budget=4, resume=True, space=make_space(presets=["base"])),
                   steps_factory=lambda o: FakeSteps())
    with pytest.raises(UserError, match="same --epochs"):
        run_search(opts(tmp_path, budget=4, resume=True, epochs=5), steps_factory=lambda o: FakeSteps())
    with pytest.raises(UserError, match="different objectives|objectives"):
        run_search(opts(tmp_path, budget=4, resume=True, targets=["m4", "a53"]), steps_factory=lambda o: FakeSteps())


def test_ctrl_c_stops_cleanly_and_resume_meets_the_budget_retrying_the_interrupted_config(tmp_path):
    steps = FakeSteps(interrupt_at=3)
    res = run_search(opts(tmp_path, budget=7), steps_factory=lambda o: steps)
    assert res.interrupted and res.done == 3
    study = load(tmp_path)
    cut = study.get_trials()[-1]
    assert cut.state == TS.FAIL and cut.user_attrs["status"] == "interrupted"
    steps2 = FakeSteps()
    res = run_search(opts(tmp_path, budget=7, resume=True), steps_factory=lambda o: steps2)
    assert res.done == 7 and not res.interrupted and res.retried == [cut.number]
    trials = load(tmp_path).get_trials()
    retry = [t for t in trials if t.user_attrs.get("retry_of") == cut.number]
    assert len(retry) == 1 and retry[0].params == cut.params and retry[0].user_attrs["status"] == "ok"
    assert count_done(load(tmp_path)) == 7


def test_resume_marks_trials_left_running_as_interrupted(tmp_path):
    space = make_space()
    run_search(opts(tmp_path, budget=2, space=space), steps_factory=lambda o: FakeSteps())
    study = load(tmp_path)
    orphan = study.ask()          # what a killed process leaves behind: RUNNING with params
    space.suggest(orphan)
    res = run_search(opts(tmp_path, budget=4, resume=True, space=space), steps_factory=lambda o: FakeSteps())
    assert res.done == 4 and res.retried == [orphan.number]
    t = load(tmp_path).get_trials()[orphan.number]
    assert t.state == TS.FAIL and t.user_attrs["status"] == "interrupted"


KILL_SCRIPT = textwrap.dedent("""
    import sys, importlib.util
    sys.path.insert(0, {repo!r})
    spec = importlib.util.spec_from_file_location("ts", {test!r})
    ts = importlib.util.module_from_spec(spec); spec.loader.exec_module(ts)
    from pathlib import Path
    from autoq.search import run_search
    o = ts.opts(Path({tmp!r}), budget=8, resume={resume})
    run_search(o, steps_factory=lambda _: ts.FakeSteps(sleep=0.4))
""")


def test_kill_9_then_resume_loses_no_completed_trial_and_meets_the_budget(tmp_path):
    script = KILL_SCRIPT.format(repo=str(REPO), test=__file__, tmp=str(tmp_path), resume=False)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    deadline = time.time() + 60
    # watch the trained-model files, not the database (opening it could race its creation)
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if len(list((tmp_path / "run").glob("trials/*/model.keras"))) >= 4:
            break
    assert proc.poll() is None, "the search ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    study = load(tmp_path)
    before = {t.number: t.values for t in study.get_trials() if t.state == TS.COMPLETE}
    assert len(before) >= 3
    running = [t.number for t in study.get_trials() if t.state == TS.RUNNING]
    script = KILL_SCRIPT.format(repo=str(REPO), test=__file__, tmp=str(tmp_path), resume=True)
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=120)
    study = load(tmp_path)
    after = {t.number: t.values for t in study.get_trials() if t.state == TS.COMPLETE}
    assert all(after[n] == v for n, v in before.items())         # nothing lost or changed
    assert count_done(study) == 8
    for n in running:
        assert study.get_trials()[n].user_attrs["status"] == "interrupted"


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0", "-3", "abc", "20x", "", "m"])
def test_bad_budget(text):
    with pytest.raises(UserError, match="--budget"):
        parse_budget(text)


def test_budget_forms():
    assert parse_budget("40") == Budget(trials=40)
    assert parse_budget("20m") == Budget(seconds=1200)
    assert parse_budget("1h30m") == Budget(seconds=5400)
    assert parse_budget("90s") == Budget(seconds=90)


def test_unwritable_out_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    o = SearchOptions(space=make_space(), budget=Budget(trials=2), out_dir=blocker / "run")
    with pytest.raises(UserError, match="--out: cannot write the run folder"):
        run_search(o, steps_factory=lambda _: FakeSteps())


def test_unknown_target(tmp_path):
    with pytest.raises(UserError, match="unknown target 'm9'.*m4"):
        run_search(opts(tmp_path, targets=["m9"]), steps_factory=lambda o: FakeSteps())


def test_resolved_options_fill_the_defaults_and_change_neither_the_options_nor_the_space(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = make_space(training={"epochs": 3, "baseline_epochs": 1, "screen": {"epochs": 2, "margin": 0.0}},
                       data_path="data/x.npz")
    given = SearchOptions(space=space, budget=Budget(trials=2), out_dir=Path("run"), epochs=2)
    before = (repr(given), repr(space))
    o = given.resolved()
    assert repr(given) == before[0] and repr(space) == before[1]        # nothing written back
    assert o.out_dir == tmp_path / "run" and o.targets == ["m4"] and o.seed == space.seed and o.epochs == 2
    assert o.space.screen is None and space.screen is not None          # --epochs 2 <= screen epochs: off
    assert o.space.data_path == str(tmp_path / "data" / "x.npz") == o.space.raw["data_path"]
    assert o.cache_dir == tmp_path / ".autoq-cache" and o.artifacts == str(tmp_path / "run" / "artifacts")
    assert o.resolved() == o                                            # resolving twice changes nothing


def test_local_backend_refuses_workers(tmp_path):
    with pytest.raises(UserError, match="--backend ray"):
        run_search(opts(tmp_path, workers=2), steps_factory=lambda o: FakeSteps())


def test_missing_data_file_is_a_user_error_before_any_study_is_written(tmp_path):
    space = make_space(dataset=str(tmp_path / "nope.npz"))
    with pytest.raises(UserError, match="nope.npz"):
        run_search(opts(tmp_path, space=space))          # the real steps: data loads first
    assert not (tmp_path / "run" / "study.db").exists()


def test_progress_summary_counts_and_front(tmp_path):
    run_search(opts(tmp_path, budget=6, sampler="nsga2"), steps_factory=lambda o: FakeSteps())  # no repeats
    s = summarize(load(tmp_path), Budget(trials=10), start=time.monotonic() - 5)
    assert s.done == 6 and s.ok == 6 and s.front
    accs = [p.accuracy for p in s.front]
    lat = [p.costs["latency@m4"] for p in s.front]
    assert accs == sorted(accs, reverse=True) and lat == sorted(lat, reverse=True)  # a trade-off curve


def test_live_progress_draws_counts_front_and_clock(tmp_path):
    import io

    from rich.console import Console

    from autoq.search.progress import LiveProgress

    console = Console(file=io.StringIO(), width=140, force_terminal=False)
    with LiveProgress(Budget(trials=5), console) as live:
        run_search(opts(tmp_path, budget=5, sampler="nsga2"), steps_factory=lambda o: FakeSteps(),
                   on_trial=live.update)
    text = console.file.getvalue()
    assert "trials 5/5" in text and "(ok 5, failed 0, skipped 0, cached 0)" in text
    assert "latency@m4" in text and "flash@m4" in text and "ETA" in text and "elapsed" in text


# --- the real objective (TensorFlow) and the Ray backend ---------------------------------------------


def test_real_objective_on_the_tiny_model(tmp_path):
    space = make_space(training={"epochs": 2, "baseline_epochs": 30}, presets=["base", "twn"])
    res = run_search(opts(tmp_path, budget=2, space=space, cache_dir=tmp_path / "cache"))
    assert res.done == 2
    for t in load(tmp_path).get_trials():
        a = t.user_attrs
        assert a["status"] == "ok", a.get("fail_reason")
        assert 0.0 <= a["metrics"]["val_acc"] <= 1.0
        assert Path(a["weights_path"]).is_file() and str(tmp_path / "run" / "trials") in a["weights_path"]
        assert [e["name"] for e in a["plan"]["layers"]] == quant_layer_names("tiny")
        assert a["costs"]["m4"]["latency_ms"] > 0


def test_ray_searcher_logic_without_a_cluster(tmp_path):
    """The Ray backend's driver side (define-by-run, cache, recording) driven by hand."""
    from autoq.search.ray_backend import make_searcher, run_job
    from autoq.search.runner import run_info
    from autoq.search.study import make_sampler, open_study

    space = make_space(layers=[{"select": {"type": "conv"}, "share": True, "weight": [None, "twn"]}],
                       constraints={"max_flash_kb": 100})
    o = opts(tmp_path, budget=4, space=space).resolved()
    study = open_study(o.out_dir, run_info(o), make_sampler("random", 0, o.budget), False, False)
    study.enqueue_trial({"rule0.weight": "twn"})
    seen = []
    searcher = make_searcher(study, o, on_trial=lambda s: seen.append(len(s.trials)))
    searcher.set_search_properties(None, None, {})
    steps = FakeSteps(diverge=lambda cfg: not cfg["layers"])          # float diverges here
    for i in range(4):
        suggestion = searcher.suggest(f"t{i}")
        assert set(suggestion) == {"rule0.weight", "autoq"}
        searcher.on_trial_complete(f"t{i}", run_job(suggestion["autoq"], steps))
    trials = load(tmp_path).get_trials()
    assert trials[0].params == {"rule0.weight": "twn"} and trials[0].state == TS.COMPLETE
    assert count_done(load(tmp_path)) == 4 and seen == [1, 2, 3, 4]
    assert len(steps.trained) <= 2                                    # the rest: cache hits
    for t in trials:
        a = t.user_attrs
        assert a["status"] in ("ok", "failed") and "config" in a and "costs" in a
        if a["status"] == "failed":
            assert t.state == TS.FAIL and "diverged" in a["fail_reason"]
        else:
            assert t.constraints == {"m4:max_flash_kb": pytest.approx(a["costs"]["m4"]["flash_bytes"] / 1024 - 100)}
            first = a.get("cached_from", t.number)        # the model travelled back into the run folder
            assert a["weights_path"] == str(o.out_dir / "trials" / f"{first:05d}" / "model.keras")
            assert Path(a["weights_path"]).read_text() == "fake"
        assert set(a["worker"]) == {"node_id", "hostname", "pid"}
    searcher.suggest("t4")
    searcher.on_trial_complete("t4", None, error=True)                # a worker that crashed
    searcher.suggest("t5")
    searcher.on_trial_complete("t5", None, error=False)               # stopped by Tune (time, Ctrl-C)
    crashed, stopped = load(tmp_path).get_trials()[-2:]
    assert crashed.state == TS.FAIL and "ray trial error" in crashed.user_attrs["fail_reason"]
    assert stopped.state == TS.FAIL and stopped.user_attrs["status"] == "interrupted"
    assert count_done(load(tmp_path)) == 5                            # the crash counts, the stop does not


@pytest.mark.slow  # ~70 s (Ray start, TF import in two workers); logic: test above
def test_ray_backend_two_workers_writes_the_same_study(tmp_path):
    space = make_space(training={"epochs": 1, "baseline_epochs": 30}, presets=["base"])  # a baseline that learns
    res = run_search(opts(tmp_path, budget=2, space=space, backend="ray", workers=2,
                          cache_dir=tmp_path / "cache"))
    assert res.done == 2 and not res.interrupted
    trials = load(tmp_path).get_trials()
    assert len([t for t in trials if t.state == TS.COMPLETE]) == 2
    assert trials[0].user_attrs["preset"] == "base"
    for t in trials:
        assert t.user_attrs["status"] == "ok", t.user_attrs.get("fail_reason")
        assert Path(t.user_attrs["weights_path"]).is_absolute() and Path(t.user_attrs["weights_path"]).is_file()


# --- the command line ----------------------------------------------------------------------------------


def _cli(*args):
    from typer.testing import CliRunner

    from autoq.cli import app

    return CliRunner().invoke(app, ["search", *args])


@pytest.mark.parametrize("args, message", [
    (["--space", "lenet5", "--budget", "0"], "--budget: got '0'"),
    (["--space", "lenet5", "--budget", "ten"], "--budget: got 'ten'"),
    (["--space", "lenet5", "--budget", "3", "--target", "m9"], "unknown target 'm9'"),
    (["--space", "lenet5", "--budget", "3", "--targets", "m4,z80"], "unknown target 'z80'"),
    (["--space", "no_such_space", "--budget", "3"], "not a shipped space"),
    (["--space", "lenet5", "--budget", "3", "--sampler", "cmaes"], "--sampler: got 'cmaes'"),
    (["--space", "lenet5", "--budget", "3", "--backend", "dask"], "--backend: got 'dask'"),
    (["--space", "lenet5", "--budget", "3", "--data", "/no/such/file.npz"], "--data: got '/no/such/file.npz'"),
])
def test_cli_rejects_bad_input(args, message, tmp_path):
    res = _cli(*args, "--out", str(tmp_path / "run"))
    assert isinstance(res.exception, UserError) and message in str(res.exception)
    assert not (tmp_path / "run" / "study.db").exists()


def test_cli_refuses_an_existing_run_with_exit_code_2(tmp_path):
    run_search(opts(tmp_path, budget=1), steps_factory=lambda o: FakeSteps())
    proc = subprocess.run([sys.executable, "-m", "autoq.cli", "search", "--space", "lenet5", "--budget", "2",
                           "--out", str(tmp_path / "run")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "already holds a search" in proc.stderr and "Traceback" not in proc.stderr
