"""What every backend does around a trial, written once: its context, the config cache, the
budget left, and recording the finished trial (user_attrs, constraints, model upload, tell).

The local loops (``autoq.search.local``) and the Ray driver (``autoq.search.ray_backend``)
both use these, so what is stored and counted does not depend on the backend.
"""
from __future__ import annotations

import time

from autoq.search.artifacts import MODEL_ATTR, upload_trial_model
from autoq.search.objective import TrialContext, TrialOutcome, objective_values
from autoq.search.options import SearchOptions
from autoq.search.study import (Budget, build_cache, count_done, outcome_attrs, screen_reference,
                                set_constraints)


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


def budget_left(study, budget: Budget, start: float) -> int | None:
    """Trials still to run (None = unlimited, time budget); 0 when the budget is met."""
    if budget.seconds is not None:
        return 0 if time.monotonic() - start >= budget.seconds else None
    return max(0, budget.trials - count_done(study))


class ConfigCache:
    """config_hash -> the outcome of the first counted trial with that config: read from the
    study (``study.build_cache``), then kept up to date with the trials this process records."""

    def __init__(self, study):
        self.entries = build_cache(study)

    def __contains__(self, config_hash: str) -> bool:
        return config_hash in self.entries

    def hit(self, config_hash: str) -> tuple[int, dict] | None:
        """(the source trial's number, its outcome dict without timings), or None."""
        if config_hash not in self.entries:
            return None
        outcome = dict(self.entries[config_hash])
        source = outcome.pop("trial")
        outcome["timings"] = {}   # nothing was timed for the reusing trial
        return source, outcome

    def add(self, config_hash: str, outcome: TrialOutcome, number: int) -> None:
        self.entries.setdefault(config_hash, {**outcome.to_dict(), "trial": number})


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
