"""The Ray Tune backend: the same trial pipeline, run by Ray workers, told to the same study.

- Sampling: a Ray Tune ``Searcher`` that asks the run's own study (``runs/NAME/study.db``, the
  run's sampler) for each trial, through Optuna's ask and tell, with the space's define-by-run
  function; at most ``--workers`` trials at once (``ConcurrencyLimiter``), one CPU each,
  ``reuse_actors`` on (a worker keeps its data set and float baseline between trials).
- The driver (this process) decides parameters, checks the config cache and writes results:
  the workers only build, cost and train, and return the outcome as JSON plus the trial's
  files (``autoq.search.ray_files``): no disk is shared. So the stored user_attrs,
  constraints, model files and budget accounting are exactly the local backend's; each trial
  also records the Ray ``worker`` that ran it (node id, hostname, pid).
- A lost node or worker: Tune retries the trial (``FailureConfig(max_failures=MAX_FAILURES)``,
  same parameters, same trial number); the searcher hears of it only when it finishes, so it
  counts once. Failing every retry is a real failure (counted ``failed``); a trial stopped by
  Tune (time budget, Ctrl-C) is ``interrupted``: not counted, retried on ``--resume``.
- ``--address`` joins a running cluster (its nodes need autoq installed and the data files at
  the same absolute paths). Without it a private local Ray with ``--workers`` CPUs is started,
  its session (logs) in ``<out>/ray/session``; a cluster already running on the machine (``ray
  start``, RAY_ADDRESS) is refused rather than joined by surprise. Ray's log lines and the
  node-failure reports it prints on the driver go to ``<out>/ray/driver.log``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from autoq.errors import UserError
from autoq.search.objective import TrialContext, TrialOutcome, run_trial
from autoq.search.options import SearchOptions
from autoq.search.ray_files import (FILES_KEY, NAME_KEY, WEIGHTS_KEY, baseline_files, install_baseline,
                                    pack_trial, unpack_trial, worker_cache_dir)
from autoq.search.recording import ConfigCache, budget_left, record, trial_context
from autoq.space import config_hash

log = logging.getLogger(__name__)

MAX_FAILURES = 3          # retries of a trial whose worker or node was lost
WORKER_KEY = "autoq_worker"
NOTE_KEY = "autoq_note"   # a worker's one-time remark for the driver's log
RETRIES_KEY = "autoq_retries"
_WORKER_STEPS: dict[str, tuple] = {}   # per worker process: (steps, note) reused across trials


def runtime_env() -> dict:
    """Quiet logs in every worker; make a source checkout importable there."""
    from autoq.tf_env import QUIET_ENV

    env = dict(QUIET_ENV)
    env.update(PYTHONWARNINGS="ignore", RAY_CHDIR_TO_TRIAL_DIR="0")
    package_root = str(Path(__file__).resolve().parents[2])
    if "site-packages" not in package_root:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    return {"env_vars": env}


def worker_info() -> dict:
    """Where this trial runs: Ray node id (None outside Ray), hostname, pid."""
    node = None
    try:
        import ray

        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - only a label
        pass
    return {"node_id": node, "hostname": socket.gethostname(), "pid": os.getpid()}


def _steps_in_worker(opts: SearchOptions, factory, baseline: dict | None):
    """The worker's steps, made once: the shipped baseline goes into this node's cache first,
    so ``steps.baseline()`` is a cache hit; if it is not (other data or code here), the
    worker trains it now, outside any trial's timings, and says so once."""
    key = str(opts.out_dir)
    if key not in _WORKER_STEPS:
        note = None
        wopts = opts
        if baseline is not None:
            wopts = replace(opts, cache_dir=worker_cache_dir(opts.cache_dir))
            install_baseline(baseline, wopts.cache_dir)
        steps = factory(wopts)
        if hasattr(steps, "threads"):
            steps.threads = 1        # one CPU per trial: keep TF's pools at one thread
        if baseline is not None and hasattr(steps, "baseline"):
            t0 = time.perf_counter()
            base = steps.baseline()
            if not getattr(base, "cached", True):
                info = worker_info()
                note = (f"worker {info['hostname']} pid {info['pid']} trained the float baseline itself "
                        f"({time.perf_counter() - t0:.1f} s): the driver's did not match its data or code")
        _WORKER_STEPS[key] = (steps, note)
    return _WORKER_STEPS[key]


def run_job(job_json: str, steps, note: str | None = None) -> dict:
    """One trial from the driver's job JSON -> the result dict reported to Tune. The trial's
    folder is written into a private scratch folder and shipped in the result."""
    from autoq.search.objective import objective_values

    job = json.loads(job_json)
    extra: dict = {WORKER_KEY: json.dumps(worker_info())}
    if note:
        extra[NOTE_KEY] = note
    if job.get("cached") is not None:
        outcome = TrialOutcome.from_dict(job["cached"])   # weights_path: the earlier trial's, on the driver
    else:
        ctx = TrialContext(**job["ctx"])
        with tempfile.TemporaryDirectory(prefix="autoq-trial-") as scratch:
            ctx.out_dir = scratch   # never the driver's run folder: it may not exist on this node
            outcome = run_trial(job["config"], ctx, steps)
            files, name = pack_trial(ctx.trial_dir, outcome.weights_path)
        outcome.weights_path = None   # the driver sets its own copy's path
        if files is not None:
            extra.update({FILES_KEY: files, NAME_KEY: name})
    names = job["objective_names"]
    values = [float("nan")] * len(names) if outcome.status == "failed" else objective_values(outcome, names)
    return {"autoq_outcome": json.dumps(outcome.to_dict(), default=str), **extra, **dict(zip(names, values))}


def _trainable(config: dict, opts: SearchOptions = None, factory=None, baseline=None):
    """Runs in a Ray worker: one trial, reported back as JSON (+ its files)."""
    from ray import tune

    job = json.loads(config["autoq"])
    steps, note = None, None
    if job.get("cached") is None:
        steps, note = _steps_in_worker(opts, factory, baseline)
        _WORKER_STEPS[str(opts.out_dir)] = (steps, None)   # the note is told once
    tune.report(run_job(config["autoq"], steps, note))


def _driver_trial_dir(config: dict) -> Path | None:
    job = json.loads(config["autoq"])
    return TrialContext(**job["ctx"]).trial_dir if job.get("ctx") else None


def files_callback():
    """Tune callback (driver): unpack a result's trial files into the run folder as soon as
    it arrives and drop the bytes from it, so Tune keeps no copy (trial state, loggers)."""
    from ray.tune import Callback

    class TrialFiles(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if FILES_KEY in result:
                unpack_trial(result, _driver_trial_dir(trial.config))
            result[RETRIES_KEY] = trial.run_metadata.num_failures   # attempts lost before this one

    return TrialFiles()


class DriverJobs:
    """The driver's half of a Ray trial: its parameters -> the job a worker runs (or the
    result of an earlier trial with the same config), its result -> the recorded trial."""

    def __init__(self, study, opts: SearchOptions):
        self.study, self.opts = study, opts
        self.names = opts.space.objective_names(opts.targets)
        self.cache = ConfigCache(study)

    def define_by_run(self, trial) -> dict:
        """The define-by-run space: the parameters, then the job as JSON."""
        params = self.opts.space.suggest(trial)
        config = self.opts.space.config_from_params(params)
        h = config_hash(config)
        job = {"config": config, "objective_names": self.names}
        hit = self.cache.hit(h)
        if hit is not None:
            trial.set_user_attr("cached_from", hit[0])
            job["cached"] = hit[1]
        else:
            ctx = trial_context(self.opts, trial.number, self.study)
            job["ctx"] = {k: getattr(ctx, k) for k in TrialContext.__dataclass_fields__}
        trial.set_user_attr("config", config)
        trial.set_user_attr("config_hash", h)
        return {"autoq": json.dumps(job, default=str)}

    def record_result(self, study, ot_trial, result: dict) -> None:
        """A worker's outcome (and trial files) into the run folder and the study."""
        outcome = TrialOutcome.from_dict(json.loads(result["autoq_outcome"]))
        ctx = trial_context(self.opts, ot_trial.number, study)
        if FILES_KEY in result:       # driven without the files callback (tests)
            result = dict(result)
            unpack_trial(result, ctx.trial_dir)
        if WEIGHTS_KEY in result:     # the model, now in this run folder
            outcome.weights_path = result[WEIGHTS_KEY]
        if result.get(NOTE_KEY):
            log.warning("%s", result[NOTE_KEY])
        if result.get(WORKER_KEY):
            ot_trial.set_user_attr("worker", json.loads(result[WORKER_KEY]))
        if result.get(RETRIES_KEY):
            ot_trial.set_user_attr("ray_retries", int(result[RETRIES_KEY]))
        h = ot_trial.user_attrs.get("config_hash") or config_hash(outcome.config)
        record(study, ot_trial, outcome, ctx, h, ot_trial.user_attrs.get("cached_from"))
        self.cache.add(h, outcome, ot_trial.number)

    @staticmethod
    def record_lost(study, ot_trial, error: bool) -> None:
        """A trial that came back without an outcome: failed on every retry, or stopped."""
        import optuna

        if error:  # failed on every retry (MAX_FAILURES): counted, so no endless retries
            ot_trial.set_user_attr("status", "failed")
            ot_trial.set_user_attr("fail_reason", "ray trial error (see the run's ray/ folder)")
        else:      # stopped by Tune (time budget, Ctrl-C): retried on --resume
            ot_trial.set_user_attr("status", "interrupted")
            ot_trial.set_user_attr("fail_reason", "stopped by Ray Tune before it finished")
        study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)


def make_searcher(study, opts: SearchOptions, on_trial=None):
    """A Ray Tune searcher driving the run's study (a ``trials.StoredStudy``) through Optuna's
    ask and tell; on_trial(study) after every finished trial."""
    from ray.tune.search import Searcher

    jobs = DriverJobs(study, opts)

    class StudySearch(Searcher):
        """Ray Tune's public Searcher interface: ``suggest`` asks the study for a trial (enqueued
        presets and retries first) and returns its job; ``on_trial_complete`` records it (the
        record tells the study). The study is the persistent state, so nothing is saved."""

        def __init__(self):
            modes = ["max" if n == "accuracy" else "min" for n in jobs.names]
            super().__init__(metric=jobs.names, mode=modes)   # Tune checks each result reports them
            self._asked = {}          # Tune trial id -> the study's trial, until it completes
            self._on_trial = None

        def suggest(self, trial_id):
            if trial_id not in self._asked:
                self._asked[trial_id] = study.ask()
            ot_trial = self._asked[trial_id]
            job = jobs.define_by_run(ot_trial)
            return {**ot_trial.params, **job}   # the parameters too: Tune's own records show them

        def on_trial_complete(self, trial_id, result=None, error=False):
            ot_trial = self._asked.pop(trial_id, None)
            if ot_trial is None:      # completed already
                return
            if (result or {}).get("autoq_outcome") is None:
                jobs.record_lost(study, ot_trial, error)
            else:
                jobs.record_result(study, ot_trial, result)
            if self._on_trial is not None:
                self._on_trial(study)

        def __getstate__(self):  # Tune pickles the searcher (tuner.pkl); the display's console cannot be
            return {**self.__dict__, "_on_trial": None}

        def save(self, checkpoint_path):  # the study is the persistent state
            return None

        def restore(self, checkpoint_path):
            return None

    searcher = StudySearch()
    searcher._on_trial = on_trial   # an attribute, not a closure cell: __getstate__ drops it
    return searcher


def _import_ray():
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError:
        raise UserError("--backend ray needs Ray Tune: pip install 'autoq[ray]'") from None
    return ray


def running_cluster() -> str | None:
    """The address Ray itself would join without one, or None: ``RAY_ADDRESS`` (Ray's
    documented variable), else the cluster of the last ``ray start`` on this machine. Ray has
    no public call for the latter (only ``ray.init``, which would join it): that lookup is
    Ray's own private one, for the Ray version pyproject pins."""
    address = os.environ.get("RAY_ADDRESS")
    if address:
        return address
    from ray._private.services import get_ray_address_from_environment

    return get_ray_address_from_environment(None, None)


def check_cluster(opts: SearchOptions) -> None:
    """Without --address autoq starts its own Ray; a cluster already running here is refused
    (joining it by surprise would put trials on machines the user did not name)."""
    ray = _import_ray()
    if opts.address or ray.is_initialized():
        return
    found = running_cluster()
    if found:
        raise UserError(f"--backend ray: a Ray cluster is running on this machine ({found}); pass "
                        f"--address {found} to run the trials on it, or stop it (ray stop) to let "
                        "autoq start its own")


@contextmanager
def ray_output_to(log_file: Path):
    """Ray's Python log lines and the reports its driver prints from the cluster (a node's
    death: a 28-line raylet state dump) go to ``log_file``, not into autoq's output."""
    import ray._private.worker as ray_worker

    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ray_log = logging.getLogger("ray")
    saved = ray_log.handlers[:], ray_log.propagate, ray_worker.print_to_stdstream

    def to_file(data, ignore_prefix=False):
        with open(log_file, "a") as f:
            ray_worker.print_worker_logs(data, f, ignore_prefix)

    ray_log.handlers, ray_log.propagate = [handler], False
    ray_worker.print_to_stdstream = to_file
    try:
        yield
    finally:
        ray_log.handlers, ray_log.propagate, ray_worker.print_to_stdstream = saved
        handler.close()


@contextmanager
def ray_session(ray, opts: SearchOptions):
    """Join ``--address``, or start a private local Ray whose session lives in
    ``<out>/ray/session`` (reached through a short link in the temp folder: Ray's socket
    paths must stay under 108 bytes); shut down what was started here."""
    if ray.is_initialized():   # a caller's own Ray (tests, notebooks): use it as it is
        yield
        return
    common = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                  runtime_env=runtime_env())
    link_dir = None
    if opts.address:
        ray.init(address=opts.address, **common)
    else:
        check_cluster(opts)
        session = opts.out_dir / "ray" / "session"
        session.mkdir(parents=True, exist_ok=True)
        link_dir = Path(tempfile.mkdtemp(prefix="autoq-ray-"))
        (link_dir / "s").symlink_to(session, target_is_directory=True)
        ray.init(address="local", num_cpus=opts.workers, _temp_dir=str(link_dir / "s"), **common)
    try:
        yield
    finally:
        ray.shutdown()
        if link_dir is not None:
            shutil.rmtree(link_dir, ignore_errors=True)
            latest = opts.out_dir / "ray" / "session" / "session_latest"
            if latest.is_symlink():   # it pointed through the link just removed
                target = Path(os.readlink(latest)).name
                latest.unlink()
                latest.symlink_to(target)


def run_ray(study, opts: SearchOptions, factory, start: float, on_trial, steps=None) -> bool:
    """Run the remaining budget through Ray Tune; True if stopped before the budget.
    ``steps``: the driver's prepared steps (their float baseline is shipped to the workers)."""
    ray = _import_ray()
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    remaining = budget_left(study, opts.budget, start)
    if remaining == 0:
        return False
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no Tune tables over our display
    with ray_output_to(opts.out_dir / "ray" / "driver.log"), ray_session(ray, opts):
        searcher = ConcurrencyLimiter(make_searcher(study, opts, on_trial), max_concurrent=opts.workers)
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, opts=opts, factory=factory, baseline=baseline_files(steps)),
            {"cpu": 1})
        time_left = None if opts.budget.seconds is None else max(1.0, opts.budget.seconds - (time.monotonic() - start))
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining if remaining else -1,
                                        reuse_actors=True, time_budget_s=time_left),
            run_config=tune.RunConfig(storage_path=str(opts.out_dir / "ray"), name="tune", verbose=0,
                                      log_to_file=True, callbacks=[files_callback()],
                                      failure_config=tune.FailureConfig(max_failures=MAX_FAILURES)))
        tuner.fit()
    return budget_left(study, opts.budget, start) not in (0, None)


class RayBackend:
    """``--backend ray`` (this module's docstring) behind the dispatcher's Backend protocol."""

    def __init__(self, factory):
        self.factory = factory   # the steps factory, run again in each worker

    def check(self, opts: SearchOptions) -> None:
        check_cluster(opts)

    def run(self, study, opts: SearchOptions, steps, start: float, on_trial) -> bool:
        return run_ray(study, opts, self.factory, start, on_trial, steps)
