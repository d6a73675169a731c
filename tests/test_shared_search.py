"""Several `autoq search` processes on one shared study (--storage), the run lock, the artifact
store. The workers are real `autoq search` command lines in subprocesses whose steps are the
fast fakes of test_search (swapped in for autoq.search.runner.default_steps by WORKER); every
"trained" model is a real Keras file, so `autoq export` of each trial is real.
PostgreSQL: a real server started by the module fixture (tests/pg_server.py)."""
from __future__ import annotations

import json
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
import yaml

from autoq.errors import UserError
from autoq.search import Budget, SearchOptions, run_search
from autoq.search.artifacts import BASELINE_FILES, MODEL_ATTR, model_file
from autoq.search.storage import check_url
from autoq.search.study import count_done, counted

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pg_server import PostgresServer  # noqa: E402
from test_search import SPACE, FakeSteps, make_space  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TS = optuna.trial.TrialState
BASELINE_KEY = "f" * 64


class SharedFakeSteps(FakeSteps):
    """FakeSteps whose models are a real Keras file and whose float baseline goes through the
    shared study's BaselineShare like autoq.train.train_baseline does."""

    def __init__(self, model_file: str, cache_dir: str, sleep: float = 0.0):
        super().__init__(sleep=sleep)
        self.model_file, self.cache_dir = model_file, Path(cache_dir)
        self.baseline_share = None

    def prepare(self):
        folder = self.cache_dir / "fake-baseline"
        if (folder / "result.json").is_file():
            return
        if self.baseline_share is not None and self.baseline_share.fetch(BASELINE_KEY, folder):
            return
        folder.mkdir(parents=True, exist_ok=True)
        for name in BASELINE_FILES:
            (folder / name).write_text(json.dumps({"folder": str(folder)}) if name == "result.json" else name)
        if self.baseline_share is not None:
            self.baseline_share.publish(BASELINE_KEY, folder)

    def train(self, config, epochs, ctx):
        out = super().train(config, epochs, ctx)
        if out.weights_path:
            Path(out.weights_path).write_bytes(Path(self.model_file).read_bytes())
        return out


WORKER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import autoq.search.runner as runner
    from test_shared_search import SharedFakeSteps
    runner.default_steps = lambda o: SharedFakeSteps({model!r}, str(o.cache_dir), sleep={sleep})
    from autoq.cli import main
    main(sys.argv[1:])
""")


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory) -> str:
    """One real (float, untrained) tiny model file: what every fake trial 'trains'."""
    from autoq.data import load_dataset
    from autoq.models.zoo import build_model
    from autoq.tf_env import import_tf

    import_tf()
    data = load_dataset("synthetic", seed=0)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_model("tiny", data.input_shape, data.num_classes, None).save(path)
    return str(path)


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer().start()
    yield server.url
    server.stop()


@pytest.fixture
def space_file(tmp_path) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**SPACE, "name": "shared"}))
    return str(path)


def worker(model: str, out: Path, *args: str, sleep: float = 0.2) -> subprocess.Popen:
    script = WORKER.format(tests=str(Path(__file__).parent), model=model, sleep=sleep)
    return subprocess.Popen([sys.executable, "-c", script, "search", "--no-progress", "--out", str(out), *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def finish(proc: subprocess.Popen, timeout: float = 180) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


_STORAGES: dict[str, object] = {}


def trials_of(url: str, name: str):
    # one storage (one connection pool) per URL: the polls must not exhaust the server's connections
    storage = _STORAGES.setdefault(url, optuna.storages.RDBStorage(url))
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def _export(args: list[str]):
    from typer.testing import CliRunner

    from autoq.cli import app

    res = CliRunner().invoke(app, ["export", *args])
    assert res.exit_code == 0, (res.output, res.exception)
    return res


# --- two workers on PostgreSQL -----------------------------------------------------------------


def test_two_workers_on_postgres_meet_the_budget_exactly_without_duplicates(tmp_path, postgres, keras_model,
                                                                            space_file):
    budget = 8
    common = ["--space", space_file, "--budget", str(budget), "--storage", postgres, "--study", "two",
              "--artifacts", str(tmp_path / "artifacts"), "--heartbeat", "2", "--sampler", "random"]
    t0 = time.monotonic()
    procs = [worker(keras_model, tmp_path / f"w{i}" / "run", *common) for i in range(2)]
    outs = [finish(p) for p in procs]
    seconds = time.monotonic() - t0
    trials = trials_of(postgres, "two")
    done = [t for t in trials if counted(t)]
    assert len(done) == budget, [(t.number, t.state, t.user_attrs.get("status")) for t in trials]
    assert all(t.user_attrs["status"] in ("unused",) for t in trials if not counted(t))
    trained = [t.user_attrs["config_hash"] for t in done if "cached_from" not in t.user_attrs]
    assert len(trained) == len(set(trained))                        # no config evaluated twice
    assert len({t.user_attrs["worker"] for t in done}) == 2          # both workers did trials
    assert len({t.user_attrs["sampler_seed"] for t in done}) == 2    # each with its own seed
    for t in done:
        assert t.user_attrs["host"] and t.user_attrs["pid"] in {p.pid for p in procs}
    presets = [t.user_attrs["preset"] for t in trials if "preset" in t.user_attrs]
    assert sorted(presets) == ["base", "bc", "bnn", "twn"]          # enqueued once per study
    text = "\n".join(outs)
    assert text.count("float baseline trained here") == 1 and text.count("float baseline downloaded") == 1
    assert all(f"search finished: {budget} trials counted" in o for o in outs)
    # every ok trial: its model from the artifact store, exported through --storage/--study
    for t in done:
        if t.user_attrs["status"] != "ok":
            continue
        assert t.user_attrs[MODEL_ATTR]["store"] == str((tmp_path / "artifacts").resolve())
        out = tmp_path / f"export{t.number}"
        _export(["--storage", postgres, "--study", "two", "--trial", str(t.number), "--out", str(out), "--no-c",
                 "--force"])
        assert (out / "model.keras").read_bytes() == Path(keras_model).read_bytes()
        assert json.loads((out / "manifest.json").read_text())["trial"] == t.number
    print(f"two postgres workers, budget {budget}: {seconds:.1f} s")


def test_a_killed_worker_leaves_its_trial_to_the_other(tmp_path, postgres, keras_model, space_file):
    budget = 6
    common = ["--space", space_file, "--budget", str(budget), "--storage", postgres, "--study", "kill",
              "--artifacts", str(tmp_path / "artifacts"), "--heartbeat", "1", "--sampler", "random"]
    slow = worker(keras_model, tmp_path / "slow" / "run", *common, sleep=30)
    deadline = time.time() + 60
    victim = None
    while time.time() < deadline and victim is None:
        time.sleep(0.3)
        try:
            running = [t for t in trials_of(postgres, "kill") if t.state == TS.RUNNING and
                       t.user_attrs.get("pid") == slow.pid and "config_hash" in t.user_attrs]
        except KeyError:      # the study is not created yet
            continue
        victim = running[0] if running else None
    assert victim is not None, "the slow worker never started a trial"
    os.kill(slow.pid, signal.SIGKILL)
    slow.wait()
    out = finish(worker(keras_model, tmp_path / "fast" / "run", *common, sleep=0.1))
    trials = trials_of(postgres, "kill")
    assert sum(counted(t) for t in trials) == budget, out
    dead = trials[victim.number]
    assert dead.state == TS.FAIL and dead.user_attrs["status"] == "interrupted"
    assert f"worker {dead.user_attrs['worker']} stopped" in dead.user_attrs["fail_reason"]
    retry = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retry) == 1 and retry[0].params == dead.params and counted(retry[0])


def test_force_on_a_study_with_a_live_worker_is_refused(tmp_path, postgres, keras_model, space_file):
    common = ["--space", space_file, "--budget", "4", "--storage", postgres, "--study", "live",
              "--heartbeat", "1", "--sampler", "random"]
    busy = worker(keras_model, tmp_path / "a" / "run", *common, sleep=2)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not any(t.state == TS.RUNNING for t in _safe_trials(postgres, "live")):
            time.sleep(0.3)
        o = SearchOptions(space=make_space(), budget=Budget(trials=4), out_dir=tmp_path / "b" / "run",
                          storage=postgres, study="live", force=True, sampler="random")
        with pytest.raises(UserError, match=rf"--force: study 'live' .* in use by 1 live worker.*pid {busy.pid} "):
            run_search(o, steps_factory=lambda _: SharedFakeSteps(keras_model, str(tmp_path / "cache")))
    finally:
        out = finish(busy)
    assert "search finished: 4 trials counted" in out       # the live worker was not disturbed


def _safe_trials(url, name):
    try:
        return trials_of(url, name)
    except KeyError:
        return []


# --- other storages, bad URLs ----------------------------------------------------------------------


def test_journal_storage_and_pareto_from_storage(tmp_path, keras_model):
    url = f"journal://{tmp_path / 'shared' / 'study.log'}"       # journal:///tmp/...
    o = SearchOptions(space=make_space(), budget=Budget(trials=3), out_dir=tmp_path / "run", storage=url,
                      study="j", sampler="random")
    res = run_search(o, steps_factory=lambda _: SharedFakeSteps(keras_model, str(tmp_path / "cache")))
    assert res.done == 3 and res.mine == 3 and res.baseline.startswith("trained here (first worker)")
    from autoq.pareto import pareto_front

    pf = pareto_front(None, storage=url, study_name="j")
    assert len(pf.points) == 3 and pf.study_name == "j"
    with pytest.raises(UserError, match="no study 'nope'.*studies there: j"):
        pareto_front(None, storage=url, study_name="nope")
    from typer.testing import CliRunner

    from autoq.cli import app

    res = CliRunner().invoke(app, ["pareto", "--storage", url, "--study", "j", "--json"])
    got = json.loads(res.output)
    assert res.exit_code == 0 and got["n_trials"] == 3 and got["study_name"] == "j" and got["points"], res.output
    res = CliRunner().invoke(app, ["pareto", str(tmp_path / "run"), "--storage", url, "--study", "j"])
    assert isinstance(res.exception, UserError) and "not both" in str(res.exception)


@pytest.mark.parametrize("url", ["redis://localhost", "postgres-ish", "journal:///", "/tmp/x.log"])
def test_bad_storage_url_names_the_option_and_what_is_allowed(url):
    with pytest.raises(UserError, match=r"--storage: got .*allowed: postgresql://.*journal:///ABS/PATH.log"):
        check_url(url)


def test_study_without_storage_and_storage_with_ray_are_refused(tmp_path):
    with pytest.raises(UserError, match="--study names a study in --storage"):
        SearchOptions(space=make_space(), budget=Budget(trials=2), out_dir=tmp_path, study="x").resolved()
    with pytest.raises(UserError, match="--storage: shared-storage workers run the local backend"):
        SearchOptions(space=make_space(), budget=Budget(trials=2), out_dir=tmp_path, backend="ray",
                      storage=f"sqlite:///{tmp_path}/s.db").resolved()


# --- the run lock ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", [{}, {"resume": True}, {"force": True}])
def test_a_second_process_on_a_live_run_folder_is_refused_naming_the_holder(tmp_path, keras_model, space_file,
                                                                              flag):
    first = worker(keras_model, tmp_path / "run", "--space", space_file, "--budget", "5", "--sampler", "random",
                   sleep=0.5)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not list((tmp_path / "run").glob("trials/*/model.keras")):
            time.sleep(0.2)
        o = SearchOptions(space=make_space(name="shared"), budget=Budget(trials=5), out_dir=tmp_path / "run",
                          sampler="random", **flag)
        with pytest.raises(UserError, match=rf"in use by pid {first.pid} on host .* since 20"):
            run_search(o, steps_factory=lambda _: FakeSteps())
    finally:
        out = finish(first)
    assert "search finished: 5 trials counted" in out         # never deleted nor interrupted
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    assert count_done(study) == 5 and all(t.state == TS.COMPLETE for t in study.get_trials())


def test_cli_refuses_a_live_run_with_one_line(tmp_path, keras_model, space_file):
    first = worker(keras_model, tmp_path / "run", "--space", space_file, "--budget", "4", sleep=0.5)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not list((tmp_path / "run").glob("trials/*/model.keras")):
            time.sleep(0.2)
        proc = subprocess.run([sys.executable, "-m", "autoq.cli", "search", "--space", space_file, "--budget", "4",
                               "--out", str(tmp_path / "run"), "--force"], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
    finally:
        finish(first)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: --out: the run folder") and f"pid {first.pid}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- artifacts -------------------------------------------------------------------------------------


def test_local_run_uploads_models_and_export_falls_back_to_weights_path(tmp_path, keras_model):
    o = SearchOptions(space=make_space(), budget=Budget(trials=3), out_dir=tmp_path / "run", sampler="random")
    run_search(o, steps_factory=lambda _: SharedFakeSteps(keras_model, str(tmp_path / "cache")))
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    for t in study.get_trials():
        a = t.user_attrs
        assert a["host"] and a["pid"] == os.getpid()
        ref = a[MODEL_ATTR]
        assert Path(ref["store"]) == (tmp_path / "run" / "artifacts").resolve() and ref["bytes"] > 0
        got = model_file(a, tmp_path / f"dl{t.number}")
        assert Path(got).read_bytes() == Path(keras_model).read_bytes() and "dl" in got
        old = {k: v for k, v in a.items() if k != MODEL_ATTR}        # a run from before the artifact store
        assert model_file(old, tmp_path) == a["weights_path"]
    Path(a["weights_path"]).unlink()
    (tmp_path / "run" / "artifacts" / ref["id"]).unlink()
    with pytest.raises(UserError, match="the trained model is not available: artifact .* --artifacts DIR"):
        model_file(a, tmp_path / "dl-missing")


class FakeS3:
    """The three calls Optuna's Boto3ArtifactStore makes, on a dict (NoSuchKey as boto3 raises it)."""

    def __init__(self):
        self.objects: dict[tuple[str, str], bytes] = {}

    def upload_fileobj(self, fileobj, bucket, key):
        self.objects[bucket, key] = fileobj.read()

    def get_object(self, Bucket, Key):  # noqa: N803 - boto3's argument names
        from botocore.exceptions import ClientError

        if (Bucket, Key) not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Bucket, Key])}

    def delete_object(self, Bucket, Key):  # noqa: N803
        self.objects.pop((Bucket, Key), None)


def test_models_go_to_an_s3_bucket_and_export_fetches_them(tmp_path, keras_model, monkeypatch):
    from autoq.search import artifacts

    s3 = FakeS3()
    monkeypatch.setattr(artifacts, "s3_client", lambda: s3)
    o = SearchOptions(space=make_space(), budget=Budget(trials=2), out_dir=tmp_path / "run", sampler="random",
                      artifacts="s3://models")
    run_search(o, steps_factory=lambda _: SharedFakeSteps(keras_model, str(tmp_path / "cache")))
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    trials = study.get_trials()
    assert {k[0] for k in s3.objects} == {"models"} and len(s3.objects) == len(trials) == 2
    for t in trials:
        ref = t.user_attrs[MODEL_ATTR]
        assert ref["store"] == "s3://models" and s3.objects["models", ref["id"]] == Path(keras_model).read_bytes()
        Path(t.user_attrs["weights_path"]).unlink()          # only the bucket has it now
        got = model_file(t.user_attrs, tmp_path / f"dl{t.number}")
        assert Path(got).read_bytes() == Path(keras_model).read_bytes()
    s3.objects.clear()
    with pytest.raises(UserError, match=r"artifact .* in 's3://models' \(ArtifactNotFound\)"):
        model_file(trials[0].user_attrs, tmp_path / "dl-missing")
    with pytest.raises(UserError, match=r"--artifacts: got 's3://models/some/prefix'; allowed: s3://BUCKET"):
        artifacts.open_store("s3://models/some/prefix")


# --- the worker rules, one process playing several workers (deterministic) ------------------------


def _shared_study(tmp_path, budget=2):
    from autoq.search.runner import run_info
    from autoq.search.workers import open_shared

    o = SearchOptions(space=make_space(), budget=Budget(trials=budget), out_dir=tmp_path / "run",
                      storage=f"sqlite:///{tmp_path / 's.db'}", study="rules", heartbeat=0.2).resolved()
    study, created, _ = open_shared(o, run_info(o), lambda seed: optuna.samplers.RandomSampler(seed=seed))
    study.set_user_attr("ready", True)
    return study


def _as_worker(study, name, beat_age=0.0):
    """A worker record as another process would write it (a 30 s heartbeat: live for 120 s)."""
    from autoq.search.workers import Worker

    w = Worker(study, 30.0, seed=0)
    w.id = name
    w.record["since"] = time.time() - beat_age
    study.set_user_attr("worker:" + name, {**w.record, "beat": time.time() - beat_age})
    return w


def test_workers_asking_at_once_never_pass_the_budget_and_give_back_enqueued_params(tmp_path):
    study = _shared_study(tmp_path, budget=2)
    a, b = _as_worker(study, "h:1"), _as_worker(study, "h:2")
    first = study.ask()
    a.claim(first)
    first.set_user_attr("status", "ok")
    study.tell(first, [0.5, 1.0, 1.0])
    assert a.next_step(2) == "run" and b.next_step(2) == "run"   # both see one slot free
    ta = study.ask()
    study.enqueue_trial({"rule0.weight": "twn"}, user_attrs={"preset": "twn"})
    tb = study.ask()                           # takes the enqueued preset
    a.claim(ta)
    b.claim(tb)
    assert not a.surplus(ta, 2)                # the lower number keeps the slot
    assert b.surplus(tb, 2)                    # the higher one is closed, not counted
    trials = study.get_trials()
    assert trials[tb.number].state == TS.FAIL and trials[tb.number].user_attrs["status"] == "unused"
    assert sum(counted(t) for t in trials) == 1
    assert a.next_step(2) == "wait"            # 1 counted + 1 live running = the budget
    waiting = [t for t in trials if t.state == TS.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs["preset"] == "twn"      # given back
    assert waiting[0].system_attrs["fixed_params"] == {"rule0.weight": "twn"}
    ta.set_user_attr("status", "ok")
    study.tell(ta, [0.5, 1.0, 1.0])
    assert b.next_step(2) == "stop"


def test_a_stale_workers_trial_is_interrupted_and_enqueued_once(tmp_path):
    study = _shared_study(tmp_path, budget=3)
    dead, alive = _as_worker(study, "h:dead", beat_age=600), _as_worker(study, "h:alive")
    t = study.ask()
    dead.claim(t)
    t.suggest_categorical("rule0.weight", [None, "bc", "twn"])
    assert alive.repair_stale() == [t.number]
    assert alive.repair_stale() == []          # repaired once: one retry
    frozen = study.get_trials()[t.number]
    assert frozen.state == TS.FAIL and frozen.user_attrs["status"] == "interrupted"
    retry = [w for w in study.get_trials() if w.state == TS.WAITING]
    assert len(retry) == 1 and retry[0].user_attrs["retry_of"] == t.number


def test_the_same_config_waits_for_the_lower_numbered_trial(tmp_path):
    import threading

    study = _shared_study(tmp_path)
    a, b = _as_worker(study, "h:1"), _as_worker(study, "h:2")
    ta, tb = study.ask(), study.ask()
    a.claim(ta)
    b.claim(tb)
    ta.set_user_attr("config_hash", "same")
    tb.set_user_attr("config_hash", "same")
    assert a.wait_same_config(ta, "same") is None            # never waits for a higher number
    threading.Timer(0.5, lambda: study.tell(ta, [0.5, 1.0, 1.0])).start()
    t0 = time.monotonic()
    assert b.wait_same_config(tb, "same") == ta.number
    assert time.monotonic() - t0 >= 0.4


def test_the_real_float_baseline_is_trained_once_and_downloaded_by_the_next_worker(tmp_path):
    """autoq.train.train_baseline with a BaselineShare: the first trains and uploads, a second
    worker with an empty cache installs that very model (cache hit, no training)."""
    from autoq.data import load_dataset
    from autoq.search.artifacts import BaselineShare
    from autoq.train import train_baseline

    study = _shared_study(tmp_path)
    data = load_dataset("synthetic", seed=0)
    first = BaselineShare(study, tmp_path / "artifacts", "h:1", live=lambda: {"h:1"})
    a = train_baseline("tiny", data, seed=0, cache_dir=tmp_path / "cache-a", epochs=1, share=first)
    assert a.status == "ok" and not a.cached and first.event.startswith("trained here (first worker)")
    second = BaselineShare(study, tmp_path / "artifacts", "h:2", live=lambda: {"h:1", "h:2"})
    b = train_baseline("tiny", data, seed=0, cache_dir=tmp_path / "cache-b", epochs=1, share=second)
    assert b.cached and b.key == a.key and second.event == "downloaded from the artifact store (trained by worker h:1)"
    assert Path(b.model_path).parent.parent == tmp_path / "cache-b"
    assert Path(b.model_path).read_bytes() == Path(a.model_path).read_bytes()
    assert b.val_acc == a.val_acc


def test_a_baseline_claimed_by_a_stopped_worker_is_trained_here(tmp_path):
    from autoq.search.artifacts import BaselineShare

    study = _shared_study(tmp_path)
    assert BaselineShare(study, tmp_path / "art", "h:dead", live=set).fetch(BASELINE_KEY, tmp_path / "a") is False
    other = BaselineShare(study, tmp_path / "art", "h:2", live=lambda: {"h:2"})
    assert other.fetch(BASELINE_KEY, tmp_path / "b") is False               # trains, never waits forever
    assert other.event == "trained here: worker h:dead claimed it and stopped"


def test_resume_of_a_missing_shared_study_is_refused(tmp_path):
    o = SearchOptions(space=make_space(), budget=Budget(trials=2), out_dir=tmp_path / "run", resume=True,
                      storage=f"sqlite:///{tmp_path / 's.db'}", study="none-yet")
    with pytest.raises(UserError, match="--resume: no study 'none-yet' in sqlite:///"):
        run_search(o, steps_factory=lambda _: FakeSteps())
