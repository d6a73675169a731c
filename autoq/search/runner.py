"""Run a search: presets first, then the sampler, until the budget is met; local or Ray.

This module dispatches; the backends run the trials, behind :class:`Backend`:

- local (the embedded default, ``autoq.search.local``): trials one after another in this
  process with Optuna's ask-and-tell interface on ``runs/NAME/study.db``, the run folder
  locked (``autoq.search.lock``);
- Ray (``autoq.search.ray_backend``): the same objective through Ray Tune, told to the same study;
- shared storage (``--storage URL --study NAME``): any number of local workers, on any
  machines, cooperate on one study (``autoq.search.workers``).

Every backend records its trials with ``autoq.search.recording`` (the config cache, the
budget, user_attrs, the model upload to ``autoq.search.artifacts``); what is stored and
counted is defined in ``autoq.search.study``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from autoq.errors import UserError
from autoq.objectives import split_objective
from autoq.search.artifacts import BaselineShare
from autoq.search.lock import RunLock
from autoq.search.objective import TrialSteps
from autoq.search.options import SearchOptions
from autoq.search.study import (Budget, RunInfo, abandon_run, check_run_folder, check_writable, count_done,
                                make_sampler, open_study, outcome_summary, repair_interrupted, trials_in_run)
from autoq.search.workers import Worker, live_workers, open_shared
from autoq.space import SearchSpace, config_hash

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    out_dir: str
    done: int
    budget: Budget
    interrupted: bool
    seconds: float
    presets_enqueued: list[str] = field(default_factory=list)
    presets_skipped: list[str] = field(default_factory=list)
    proposals_enqueued: int = 0
    not_ok: dict = field(default_factory=dict)   # study.outcome_summary: skipped/failed by reason
    retried: list[int] = field(default_factory=list)
    study: str = ""                              # where the study lives, for messages
    mine: int | None = None                      # shared study: counted trials this worker ran
    baseline: str = ""                           # shared study: how this worker got the baseline


StepsFactory = Callable[[SearchOptions], TrialSteps]
OnTrial = Callable[[object], None]   # called with the study after every finished trial


class Backend(Protocol):
    """How the trials of a search run (``autoq.search.local``, ``autoq.search.ray_backend``)."""

    def check(self, opts: SearchOptions) -> None:
        """Refuse what cannot run (UserError) before any folder, study or baseline is made."""

    def run(self, study, opts: SearchOptions, steps: TrialSteps, start: float, on_trial: OnTrial | None) -> bool:
        """Trials until the budget is met (``recording.budget_left``); True if stopped before it.
        ``steps``: the prepared steps of this process (Ray ships their float baseline)."""


def make_backend(opts: SearchOptions, factory: StepsFactory) -> Backend:
    """The backend ``--backend`` names, for the run folder's own study."""
    if opts.backend == "ray":
        from autoq.search.ray_backend import RayBackend

        return RayBackend(factory)
    from autoq.search.local import LocalBackend

    return LocalBackend()


def default_steps(opts: SearchOptions) -> TrialSteps:
    """The real steps (TensorFlow): build, cost and fine-tune zoo models."""
    from autoq.search.objective import KerasSteps, layer_candidates

    sp = opts.space
    return KerasSteps(sp.model, sp.dataset, sp.data_path, sp.recipe, opts.seed, str(opts.cache_dir),
                      sp.input_shape, baseline_epochs=sp.baseline_epochs,
                      candidates=layer_candidates(sp))


def run_info(opts: SearchOptions) -> RunInfo:
    sp = opts.space
    names = sp.objective_names(opts.targets)
    kinds = list(dict.fromkeys(split_objective(n)[0] for n in names))
    return RunInfo(name=opts.study or opts.out_dir.name, space_raw=sp.raw, targets=list(opts.targets),
                   objectives=kinds, objective_names=names,
                   training={"epochs": opts.epochs, "seed": opts.seed,      # effective values: export reads them
                             "dataset": sp.dataset, "data_path": sp.data_path})


def enqueue_presets(study, space: SearchSpace, limit: int | None = None) -> tuple[list[str], list[str]]:
    """Enqueue the thesis presets the space can express (in the space's order), at most
    ``limit`` (a trial budget smaller than the preset list runs only the first ones)."""
    from autoq.config import PRESETS, preset

    shortcut = (space.model_choices.get("shortcut") or ["quantized"])[0]
    flf = (space.model_choices.get("first_last_float") or [True])[0]
    done, skipped, seen = [], [], set()
    for name in space.presets if space.presets is not None else list(PRESETS):
        cfg = preset(name, space.model, shortcut=shortcut, first_last_float=flf).to_dict()
        params = space.params_for_config(cfg)
        if params is None:
            skipped.append(name)
            continue
        h = config_hash(space.config_from_params(params))
        if h in seen:
            continue
        seen.add(h)
        if limit is not None and len(done) >= limit:
            break
        study.enqueue_trial(params, user_attrs={"preset": name})
        done.append(name)
    if skipped:
        log.info("presets the space cannot express (not enqueued): %s", ", ".join(skipped))
    return done, skipped


def proposal_count(opts: SearchOptions, presets: int) -> int:
    """Auto: half the trials left after the presets (none for random search, whose point is
    to be random, and none for a time budget's unknown count unless asked)."""
    if opts.proposals is not None:
        return max(0, opts.proposals)
    if opts.sampler == "random" or opts.budget.trials is None:
        return 0
    rest = opts.budget.trials - presets
    return rest // 2 if rest >= 2 else 0


def enqueue_proposals(study, opts: SearchOptions, steps: TrialSteps, presets: int) -> int:
    """Sensitivity-guided ILP proposals (autoq.search.ilp), enqueued after the presets."""
    n = proposal_count(opts, presets)
    if n == 0 or not hasattr(steps, "sensitivity"):
        return 0
    from autoq.search.ilp import propose

    sp = opts.space
    table = steps.sensitivity(sp)
    found = propose(sp, table, steps, list(opts.targets), sp.objective_names(opts.targets),
                    sp.constraints, n, taken=waiting_params(study))
    for p in found:
        study.enqueue_trial(p["params"], user_attrs={"proposal": "ilp",
                                                      "predicted_loss": p["predicted_loss"]})
    return len(found)


def waiting_params(study) -> list[dict]:
    """Parameters of the trials enqueued so far (the presets), not yet run."""
    import optuna

    return [dict(t.system_attrs.get("fixed_params") or {})
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))]


def run_search(opts: SearchOptions, steps_factory: StepsFactory | None = None,
               on_trial: OnTrial | None = None) -> SearchResult:
    """Run (or resume) a search until the budget is met or Ctrl-C; returns a summary.

    on_trial(study) is called after every finished trial (the progress display).
    """
    start = time.monotonic()  # a time budget includes data loading and the float baseline
    opts = opts.resolved()
    factory = steps_factory or default_steps
    backend = make_backend(opts, factory)
    backend.check(opts)   # e.g. a Ray cluster it would not join: refused before any folder or baseline
    result = SearchResult(out_dir=str(opts.out_dir), done=0, budget=opts.budget, interrupted=False,
                          seconds=0.0, study=str(opts.out_dir / "study.db"))
    fresh = not opts.out_dir.exists()
    check_writable(opts.out_dir)
    if opts.storage:
        with RunLock(opts.out_dir, shared=True):
            study = _run_shared(opts, factory, start, on_trial, result)
    else:
        with RunLock(opts.out_dir):   # before anything is deleted, repaired or opened
            study = _run_folder(opts, factory, backend, start, on_trial, result, fresh)
    result.done = count_done(study)
    result.not_ok = outcome_summary(study)
    result.seconds = time.monotonic() - start
    return result


def _run_folder(opts: SearchOptions, factory: StepsFactory, backend: Backend, start: float, on_trial,
                result: SearchResult, fresh: bool):
    """The run folder's own study (study.db): local or Ray backend."""
    info = run_info(opts)
    resuming = check_run_folder(opts.out_dir, opts.resume, opts.force) and opts.resume  # refuse before heavy work
    steps = factory(opts)
    if hasattr(steps, "prepare"):
        try:
            steps.prepare()  # data + float baseline, once, here (Ray workers then hit the cache)
        except UserError:
            if fresh:  # bad data: leave no run folder behind
                abandon_run(opts.out_dir)
            raise
    # a resumed sampler must not replay the first run's random proposals: offset its seed
    offset = trials_in_run(opts.out_dir) if opts.resume else 0
    sampler = make_sampler(opts.sampler, opts.seed + offset, opts.budget)
    study = open_study(opts.out_dir, info, sampler, opts.resume, opts.force)
    if resuming:  # (a --resume of a run killed before its study existed starts it afresh)
        result.retried = repair_interrupted(study)
    else:
        result.presets_enqueued, result.presets_skipped = enqueue_presets(study, opts.space, opts.budget.trials)
        result.proposals_enqueued = enqueue_proposals(study, opts, steps, len(result.presets_enqueued))
    try:
        result.interrupted = backend.run(study, opts, steps, start, on_trial)
    except KeyboardInterrupt:
        result.interrupted = True
    return study


def _run_shared(opts: SearchOptions, factory: StepsFactory, start: float, on_trial, result: SearchResult):
    """One worker on a shared study (autoq.search.workers): join or create, then trials."""
    from autoq.search.local import SharedWorkerBackend
    from autoq.search.storage import label

    steps = factory(opts)
    study, created, seed = open_shared(opts, run_info(opts), lambda s: make_sampler(opts.sampler, s, opts.budget))
    result.study = f"{opts.study} in {label(opts.storage)}"
    worker = Worker(study, opts.heartbeat, seed).start()
    try:
        if created:   # the creator enqueues the presets, once per study
            result.presets_enqueued, result.presets_skipped = enqueue_presets(study, opts.space, opts.budget.trials)
            study.set_user_attr("ready", True)
        if hasattr(steps, "baseline_share"):
            steps.baseline_share = BaselineShare(study, opts.artifacts, worker.id, lambda: live_workers(study))
        if hasattr(steps, "prepare"):
            steps.prepare()
            result.baseline = getattr(steps.baseline_share, "event", "")
        if created:
            result.proposals_enqueued = enqueue_proposals(study, opts, steps, len(result.presets_enqueued))
        SharedWorkerBackend(worker).run(study, opts, steps, start, on_trial)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        worker.stop()
    result.mine = sum(t.user_attrs.get("worker") == worker.id and t.user_attrs.get("status") in ("ok", "failed", "skipped")
                      for t in study.get_trials(deepcopy=False))
    return study
