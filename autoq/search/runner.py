"""Run a search: presets first, then the sampler, until the budget is met; local or Ray.

Local backend (the embedded default): trials run one after another in this process with
Optuna's ask-and-tell interface on ``runs/NAME/study.db``, the run folder locked
(``autoq.search.lock``). Ray backend: the same objective through Ray Tune
(``autoq.search.ray_backend``), told to the same study. Shared storage (``--storage URL
--study NAME``): any number of such processes, on any machines, cooperate on one study
(``autoq.search.workers``). Either way, what is stored and counted is defined in
``autoq.search.study``, and every trained model is uploaded to the artifact store
(``autoq.search.artifacts``) by :func:`record`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from autoq.errors import UserError
from autoq.search.artifacts import MODEL_ATTR, BaselineShare, store_name, upload_trial_model
from autoq.search.lock import RunLock
from autoq.search.objective import (TrialContext, TrialOutcome, TrialSteps, objective_values,
                                    run_trial)
from autoq.search.study import (Budget, RunInfo, abandon_run, build_cache, check_run_folder, check_writable,
                                count_done, make_sampler, open_study, outcome_attrs, outcome_summary,
                                repair_interrupted, screen_reference, set_constraints, trials_in_run)
from autoq.search.workers import Worker, close_trial, live_workers, open_shared, retry, worker_attrs
from autoq.space import SearchSpace, check_targets, config_hash

log = logging.getLogger(__name__)

BACKENDS = ("local", "ray")


@dataclass
class SearchOptions:
    space: SearchSpace
    budget: Budget
    out_dir: Path
    targets: list[str] | None = None          # default: the space's targets
    sampler: str = "tpe"
    backend: str = "local"
    workers: int = 1
    address: str | None = None
    resume: bool = False
    force: bool = False
    seed: int | None = None                   # default: the space's training.seed
    epochs: int | None = None                 # default: the space's training.epochs
    cache_dir: Path | None = None             # float baselines; default runs/.autoq-cache
    proposals: int | None = None              # sensitivity/ILP trials after the presets;
                                              # None = auto (half the rest), 0 = off
    storage: str | None = None                # shared Optuna storage URL; None: <out>/study.db
    study: str | None = None                  # the study in --storage (default: the run folder's name)
    artifacts: str | Path | None = None       # artifact store: folder or s3://BUCKET; default <out>/artifacts
    heartbeat: float = 10.0                   # shared study: seconds between a worker's heartbeats

    def resolved(self) -> "SearchOptions":
        self.out_dir = Path(self.out_dir).expanduser().resolve()
        self.targets = check_targets(list(self.targets or self.space.targets))
        if self.backend not in BACKENDS:
            raise UserError(f"--backend: got {self.backend!r}; allowed: {', '.join(BACKENDS)}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise UserError(f"--workers: got {self.workers!r}; allowed: an integer >= 1")
        if self.backend == "local" and self.workers != 1:
            raise UserError(f"--workers {self.workers}: the local backend runs one trial at a time; "
                            "use --backend ray for parallel trials")
        if self.address and self.backend != "ray":
            raise UserError("--address is for --backend ray")
        self._resolve_storage()
        if self.epochs is not None and self.epochs < 1:
            raise UserError(f"--epochs: got {self.epochs}; allowed: an integer >= 1")
        if self.seed is None:
            self.seed = self.space.seed
        if self.epochs is None:
            self.epochs = self.space.epochs
        if self.space.screen and self.space.screen.epochs >= self.epochs:
            # only a command-line --epochs gets here (the space's own epochs are checked when it is
            # parsed): a screen as long as the training saves nothing, so --epochs 1 turns it off
            log.info("--epochs %d <= training.screen.epochs %d of %s: no screening", self.epochs,
                     self.space.screen.epochs, self.space.source)
            self.space.screen = None
        self.cache_dir = Path(self.cache_dir or self.out_dir.parent / ".autoq-cache").resolve()
        self.artifacts = store_name(self.artifacts or self.out_dir / "artifacts")   # a folder or s3://BUCKET
        sp = self.space  # absolute data paths: Ray workers may run elsewhere
        if sp.data_path:   # stored once, resolved, in the study's space (export reads it there)
            sp.data_path = str(Path(sp.data_path).expanduser().resolve())
            sp.raw = {**sp.raw, "data_path": sp.data_path}
        return self

    def _resolve_storage(self) -> None:
        from autoq.search.storage import check_url

        if self.storage is None:
            if self.study is not None:
                raise UserError("--study names a study in --storage; give --storage URL too")
            return
        check_url(self.storage)
        self.study = self.study or self.out_dir.name
        if self.backend != "local":
            raise UserError("--storage: shared-storage workers run the local backend (start one "
                            "`autoq search --storage ...` per machine); --backend ray uses the run folder")
        if not (isinstance(self.heartbeat, (int, float)) and self.heartbeat > 0):
            raise UserError(f"--heartbeat: got {self.heartbeat!r}; allowed: seconds > 0")


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
    kinds = list(dict.fromkeys(n.partition("@")[0] for n in names))
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


def trial_context(opts: SearchOptions, number: int, study) -> TrialContext:
    sp = opts.space
    names = sp.objective_names(opts.targets)
    return TrialContext(
        number=number, out_dir=str(opts.out_dir), targets=list(opts.targets), objective_names=names,
        constraints=sp.constraints, epochs=opts.epochs, seed=opts.seed,
        skip_infeasible=sp.skip_infeasible,
        screen_epochs=sp.screen.epochs if sp.screen else None,
        screen_margin=sp.screen.margin if sp.screen else 0.0,
        screen_reference=screen_reference(study, names) if sp.screen else [],
        artifacts=str(opts.artifacts) if opts.artifacts else None)


def record(study, trial, outcome: TrialOutcome, ctx: TrialContext, h: str,
           cached_from: int | None = None) -> None:
    """Store the outcome on the trial, upload its model (the file ``outcome.weights_path``
    names on this process) to the artifact store and tell Optuna (FAIL for failed trials)."""
    import optuna

    t0 = time.perf_counter()
    attrs = outcome_attrs(outcome, ctx.constraints, h, cached_from)
    if cached_from is not None:   # the source trial's model is this trial's model
        source = study.get_trials(deepcopy=False)[cached_from].user_attrs.get(MODEL_ATTR)
        if source:
            attrs[MODEL_ATTR] = source
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    set_constraints(trial, outcome, ctx.constraints)
    t1 = time.perf_counter()
    if cached_from is None:
        upload_trial_model(study, trial, outcome.weights_path, ctx.artifacts)
        outcome.timings["upload"] = time.perf_counter() - t1
    outcome.timings["store"] = t1 - t0  # writing the trial's attrs to the storage
    trial.set_user_attr("timings", outcome.timings)
    if outcome.status == "failed":
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(trial, objective_values(outcome, ctx.objective_names))


def evaluate_trial(study, trial, opts: SearchOptions, steps: TrialSteps, cache: dict,
                   peers: Worker | None = None) -> TrialOutcome:
    """Sample (or take the enqueued) parameters, reuse a cached result or run the trial.
    peers (shared study): first wait for a lower-numbered trial running the same config."""
    params = opts.space.suggest(trial)
    config = opts.space.config_from_params(params)
    h = config_hash(config)
    if peers is not None and h not in cache:
        trial.set_user_attr("config_hash", h)   # seen by the others before it runs
        if peers.wait_same_config(trial, h) is not None:
            cache = build_cache(study)
    ctx = trial_context(opts, trial.number, study)
    if h in cache:
        hit = dict(cache[h])
        cached_from = hit.pop("trial")
        outcome = TrialOutcome.from_dict(hit)
        outcome.timings = {}
        log.info("trial %d: same config as trial %d, result reused", trial.number, cached_from)
        record(study, trial, outcome, ctx, h, cached_from)
        return outcome
    trial.set_user_attr("config", config)
    trial.set_user_attr("config_hash", h)
    outcome = run_trial(config, ctx, steps)
    record(study, trial, outcome, ctx, h)
    cache.setdefault(h, {**outcome.to_dict(), "trial": trial.number})
    return outcome


def run_search(opts: SearchOptions, steps_factory: StepsFactory | None = None,
               on_trial: Callable[[object], None] | None = None) -> SearchResult:
    """Run (or resume) a search until the budget is met or Ctrl-C; returns a summary.

    on_trial(study) is called after every finished trial (the progress display).
    """
    start = time.monotonic()  # a time budget includes data loading and the float baseline
    opts = opts.resolved()
    if opts.backend == "ray":  # a Ray cluster it would not join: refused before any folder or baseline
        from autoq.search.ray_backend import check_cluster

        check_cluster(opts)
    factory = steps_factory or default_steps
    result = SearchResult(out_dir=str(opts.out_dir), done=0, budget=opts.budget, interrupted=False,
                          seconds=0.0, study=str(opts.out_dir / "study.db"))
    fresh = not opts.out_dir.exists()
    check_writable(opts.out_dir)
    if opts.storage:
        with RunLock(opts.out_dir, shared=True):
            study = _run_shared(opts, factory, start, on_trial, result)
    else:
        with RunLock(opts.out_dir):   # before anything is deleted, repaired or opened
            study = _run_folder(opts, factory, start, on_trial, result, fresh)
    result.done = count_done(study)
    result.not_ok = outcome_summary(study)
    result.seconds = time.monotonic() - start
    return result


def _run_folder(opts: SearchOptions, factory: StepsFactory, start: float, on_trial, result: SearchResult,
                fresh: bool):
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
        if opts.backend == "ray":
            from autoq.search.ray_backend import run_ray

            result.interrupted = run_ray(study, opts, factory, start, on_trial, steps)
        else:
            _run_local(study, opts, steps, start, on_trial)
    except KeyboardInterrupt:
        result.interrupted = True
    return study


def _run_shared(opts: SearchOptions, factory: StepsFactory, start: float, on_trial, result: SearchResult):
    """One worker on a shared study (autoq.search.workers): join or create, then trials."""
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
        _run_worker(study, opts, steps, start, on_trial, worker)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        worker.stop()
    result.mine = sum(t.user_attrs.get("worker") == worker.id and t.user_attrs.get("status") in ("ok", "failed", "skipped")
                      for t in study.get_trials(deepcopy=False))
    return study


def budget_left(study, budget: Budget, start: float) -> int | None:
    """Trials still to run (None = unlimited, time budget); 0 when the budget is met."""
    if budget.seconds is not None:
        return 0 if time.monotonic() - start >= budget.seconds else None
    return max(0, budget.trials - count_done(study))


def _run_local(study, opts: SearchOptions, steps: TrialSteps, start: float, on_trial) -> None:
    import optuna

    cache = build_cache(study)
    while budget_left(study, opts.budget, start) != 0:
        trial = study.ask()
        for key, value in worker_attrs().items():
            trial.set_user_attr(key, value)
        try:
            evaluate_trial(study, trial, opts, steps, cache)
        except KeyboardInterrupt:
            # not counted; --resume retries the same parameters first
            study._storage.set_trial_user_attr(trial._trial_id, "status", "interrupted")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        if on_trial is not None:
            on_trial(study)


def _run_worker(study, opts: SearchOptions, steps: TrialSteps, start: float, on_trial, worker: Worker) -> None:
    """Trials on a shared study until the budget is met overall (autoq.search.workers)."""
    import optuna

    while opts.budget.seconds is None or time.monotonic() - start < opts.budget.seconds:
        step = worker.next_step(opts.budget.trials)
        if step == "stop":
            return
        if step == "wait":   # the rest of the budget is running elsewhere; it may yet need a retry
            time.sleep(min(worker.interval, 2.0))
            continue
        trial = study.ask()
        worker.claim(trial)
        if worker.surplus(trial, opts.budget.trials):
            continue
        try:
            evaluate_trial(study, trial, opts, steps, build_cache(study), peers=worker)
        except KeyboardInterrupt:
            if close_trial(study, trial, "interrupted", "interrupted (Ctrl-C)"):
                retry(study, trial)   # another worker runs it; it is not counted
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning("trial %d was closed by another worker meanwhile (heartbeat late?); its result is "
                        "dropped and its retry runs it again", trial.number)
        if on_trial is not None:
            on_trial(study)
