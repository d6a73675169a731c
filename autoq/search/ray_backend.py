"""The Ray Tune backend: the same trial pipeline, run by Ray workers, told to the same study.

- Sampling: Ray's ``OptunaSearch`` with the run's sampler, on the run's own storage and study
  (``runs/NAME/study.db``), with the space's define-by-run function; at most ``--workers``
  trials at once (``ConcurrencyLimiter``), one CPU each, ``reuse_actors`` on (a worker keeps
  its data set and float baseline between trials).
- The driver (this process) decides parameters, checks the config cache and writes results:
  the workers only build, cost and train, and return the outcome as JSON. So the stored
  user_attrs, constraints and budget accounting are exactly the local backend's.
- Paths given to workers are absolute (Ray may start them elsewhere); the quiet-log variables
  and PYTHONPATH (for a source checkout) are passed in ``runtime_env``.
- ``--address`` joins a running cluster (its nodes need autoq installed and the data files at
  the same absolute paths); without it a local Ray with ``--workers`` CPUs is started.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from autoq.errors import UserError
from autoq.search.objective import TrialContext, TrialOutcome, run_trial
from autoq.search.runner import SearchOptions, budget_left, record, trial_context
from autoq.space import config_hash

log = logging.getLogger(__name__)

_WORKER_STEPS: dict[str, object] = {}   # per worker process: steps reused across trials


def runtime_env() -> dict:
    """Quiet logs in every worker; make a source checkout importable there."""
    from autoq.tf_env import QUIET_ENV

    env = dict(QUIET_ENV)
    env.update(PYTHONWARNINGS="ignore", RAY_CHDIR_TO_TRIAL_DIR="0")
    package_root = str(Path(__file__).resolve().parents[2])
    if "site-packages" not in package_root:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    return {"env_vars": env}


def _steps_in_worker(opts: SearchOptions, factory):
    key = str(opts.out_dir)
    if key not in _WORKER_STEPS:
        steps = factory(opts)
        if hasattr(steps, "threads"):
            steps.threads = 1        # one CPU per trial: keep TF's pools at one thread
        _WORKER_STEPS[key] = steps
    return _WORKER_STEPS[key]


def run_job(job_json: str, steps) -> dict:
    """One trial from the driver's job JSON -> the result dict reported to Tune."""
    from autoq.search.objective import objective_values

    job = json.loads(job_json)
    if job.get("cached") is not None:
        outcome = TrialOutcome.from_dict(job["cached"])
    else:
        outcome = run_trial(job["config"], TrialContext(**job["ctx"]), steps)
    names = job["objective_names"]
    values = [float("nan")] * len(names) if outcome.status == "failed" else objective_values(outcome, names)
    return {"autoq_outcome": json.dumps(outcome.to_dict(), default=str), **dict(zip(names, values))}


def _trainable(config: dict, opts: SearchOptions = None, factory=None):
    """Runs in a Ray worker: one trial, reported back as JSON."""
    from ray import tune

    job = json.loads(config["autoq"])
    steps = None if job.get("cached") is not None else _steps_in_worker(opts, factory)
    tune.report(run_job(config["autoq"], steps))


def make_searcher(study, opts: SearchOptions, on_trial=None):
    from ray.tune.search.optuna import OptunaSearch

    names = opts.space.objective_names(opts.targets)
    cache: dict[str, dict] = {}

    from autoq.search.study import build_cache

    cache.update(build_cache(study))

    class StudySearch(OptunaSearch):
        """OptunaSearch that stores autoq's user_attrs and FAILs failed trials."""

        def on_trial_complete(self, trial_id, result=None, error=False):
            import optuna

            if trial_id in self._completed_trials:
                return
            ot_trial = self._ot_trials[trial_id]
            payload = (result or {}).get("autoq_outcome")
            if payload is None:
                if error:  # the worker itself crashed: counted, so no endless retries
                    ot_trial.set_user_attr("status", "failed")
                    ot_trial.set_user_attr("fail_reason", "ray trial error (see the run's ray/ folder)")
                else:      # stopped by Tune (time budget, Ctrl-C): retried on --resume
                    ot_trial.set_user_attr("status", "interrupted")
                    ot_trial.set_user_attr("fail_reason", "stopped by Ray Tune before it finished")
                self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
            else:
                outcome = TrialOutcome.from_dict(json.loads(payload))
                h = ot_trial.user_attrs.get("config_hash") or config_hash(outcome.config)
                cached_from = ot_trial.user_attrs.get("cached_from")
                ctx = trial_context(opts, ot_trial.number, self._ot_study)
                record(self._ot_study, ot_trial, outcome, ctx, h, cached_from)
                cache.setdefault(h, {**outcome.to_dict(), "trial": ot_trial.number})
            self._completed_trials.add(trial_id)
            if on_trial is not None:
                on_trial(self._ot_study)

        def save(self, checkpoint_path):  # the study is the persistent state
            return None

        def restore(self, checkpoint_path):
            return None

    def define_by_run(trial):
        params = opts.space.suggest(trial)
        config = opts.space.config_from_params(params)
        h = config_hash(config)
        job = {"config": config, "objective_names": names}
        if h in cache:
            hit = dict(cache[h])
            trial.set_user_attr("cached_from", hit.pop("trial"))
            hit["timings"] = {}
            job["cached"] = hit
        else:
            ctx = trial_context(opts, trial.number, study)
            job["ctx"] = {k: getattr(ctx, k) for k in TrialContext.__dataclass_fields__}
        trial.set_user_attr("config", config)
        trial.set_user_attr("config_hash", h)
        return {"autoq": json.dumps(job, default=str)}

    return StudySearch(space=define_by_run, metric=names,
                       mode=["max" if n == "accuracy" else "min" for n in names],
                       sampler=study.sampler, study_name=study.study_name, storage=study._storage)


def run_ray(study, opts: SearchOptions, factory, start: float, on_trial) -> bool:
    """Run the remaining budget through Ray Tune; True if stopped before the budget."""
    try:
        import ray
        from ray import tune
        from ray.tune.search import ConcurrencyLimiter
    except ImportError:
        raise UserError("--backend ray needs Ray Tune: pip install 'autoq[ray]'") from None

    remaining = budget_left(study, opts.budget, start)
    if remaining == 0:
        return False
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no Tune tables over our display
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=opts.address, num_cpus=None if opts.address else opts.workers,
                 include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env=runtime_env())
    try:
        searcher = ConcurrencyLimiter(make_searcher(study, opts, on_trial), max_concurrent=opts.workers)
        trainable = tune.with_resources(tune.with_parameters(_trainable, opts=opts, factory=factory),
                                        {"cpu": 1})
        time_left = None if opts.budget.seconds is None else max(1.0, opts.budget.seconds - (time.monotonic() - start))
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining if remaining else -1,
                                        reuse_actors=True, time_budget_s=time_left),
            run_config=tune.RunConfig(storage_path=str(opts.out_dir / "ray"), name="tune", verbose=0,
                                      log_to_file=True))
        tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    return budget_left(study, opts.budget, start) not in (0, None)
