"""The local backends: trials one after another in this process, Optuna's ask-and-tell.

- :class:`LocalBackend`: the run folder's own study (``runs/NAME/study.db``), the folder locked
  by the dispatcher (``autoq.search.runner``).
- :class:`SharedWorkerBackend`: one worker on a shared study (``--storage URL --study NAME``),
  the budget shared with the other workers by the rules of ``autoq.search.workers``.

Both evaluate a trial with :func:`evaluate_trial` and record it with ``autoq.search.recording``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from autoq.search.objective import TrialOutcome, TrialSteps, run_trial
from autoq.search.options import SearchOptions
from autoq.search.recording import ConfigCache, budget_left, record, trial_context
from autoq.search.workers import Worker, retry, worker_attrs
from autoq.space import config_hash

log = logging.getLogger(__name__)


def evaluate_trial(study, trial, opts: SearchOptions, steps: TrialSteps, cache: ConfigCache,
                   peers: Worker | None = None) -> TrialOutcome:
    """Sample (or take the enqueued) parameters, reuse a cached result or run the trial.
    peers (shared study): first wait for a lower-numbered trial running the same config."""
    params = opts.space.suggest(trial)
    config = opts.space.config_from_params(params)
    h = config_hash(config)
    if peers is not None and h not in cache:
        trial.set_user_attr("config_hash", h)   # seen by the others before it runs
        if peers.wait_same_config(trial, h) is not None:
            cache = ConfigCache(study)
    ctx = trial_context(opts, trial.number, study)
    hit = cache.hit(h)
    if hit is not None:
        cached_from, stored = hit
        outcome = TrialOutcome.from_dict(stored)
        log.info("trial %d: same config as trial %d, result reused", trial.number, cached_from)
        record(study, trial, outcome, ctx, h, cached_from)
        return outcome
    trial.set_user_attr("config", config)
    trial.set_user_attr("config_hash", h)
    outcome = run_trial(config, ctx, steps)
    record(study, trial, outcome, ctx, h)
    cache.add(h, outcome, trial.number)
    return outcome


class LocalBackend:
    """The run folder's study, one trial at a time, until the budget is met."""

    def check(self, opts: SearchOptions) -> None:
        """Nothing to refuse before the run folder is touched."""

    def run(self, study, opts: SearchOptions, steps: TrialSteps, start: float, on_trial) -> bool:
        """Trials until the budget is met; Ctrl-C propagates (the trial left is not counted)."""
        import optuna

        cache = ConfigCache(study)
        while budget_left(study, opts.budget, start) != 0:
            trial = study.ask()
            for key, value in worker_attrs().items():
                trial.set_user_attr(key, value)
            try:
                evaluate_trial(study, trial, opts, steps, cache)
            except KeyboardInterrupt:
                # not counted; --resume retries the same parameters first
                trial.set_user_attr("status", "interrupted")
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            if on_trial is not None:
                on_trial(study)
        return False


@dataclass
class SharedWorkerBackend:
    """This process as ``worker`` of a shared study: trials until the budget is met overall."""

    worker: Worker

    def check(self, opts: SearchOptions) -> None:
        """Nothing to refuse before the run folder is touched."""

    def run(self, study, opts: SearchOptions, steps: TrialSteps, start: float, on_trial) -> bool:
        while opts.budget.seconds is None or time.monotonic() - start < opts.budget.seconds:
            step = self.worker.next_step(opts.budget.trials)
            if step == "stop":
                break
            if step == "wait":   # the rest of the budget is running elsewhere; it may yet need a retry
                time.sleep(min(self.worker.interval, 2.0))
                continue
            trial = study.ask()
            self.worker.claim(trial)
            if self.worker.surplus(trial, opts.budget.trials):
                continue
            self._evaluate(study, trial, opts, steps)
            if on_trial is not None:
                on_trial(study)
        return False

    def _evaluate(self, study, trial, opts: SearchOptions, steps: TrialSteps) -> None:
        """One trial; its result dropped if another worker closed it meanwhile."""
        import optuna

        from autoq.search.trials import close_trial

        try:
            evaluate_trial(study, trial, opts, steps, ConfigCache(study), peers=self.worker)
        except KeyboardInterrupt:
            if close_trial(study, trial.number, "interrupted", "interrupted (Ctrl-C)"):
                retry(study, trial)   # another worker runs it; it is not counted
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning("trial %d was closed by another worker meanwhile (heartbeat late?); its result is "
                        "dropped and its retry runs it again", trial.number)
