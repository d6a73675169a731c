"""The run folder and its Optuna study: create / refuse / force / resume, budget, cache.

Run folder ``runs/NAME/``: ``study.db`` (Optuna, SQLite: the single store of results),
``trials/NNNNN/`` (each trial's trained model), ``ray/`` (Ray Tune's own logs, ray backend).

Budget accounting (documented in README "Search"): a trial *counts* once the objective has
finished it, whatever the outcome -- ``status`` ok, failed (e.g. diverged: re-running the
same seed would diverge again; with Ray, a trial whose worker failed on every retry: a lost node is retried first) or skipped (infeasible,
not trained) -- and also when its result came from the config cache. A trial that was
*interrupted* (Ctrl-C, kill -9, stopped by Ray Tune) does not count: on ``--resume`` trials
left RUNNING are marked FAIL with
``status: interrupted`` and their parameters are enqueued again, so the same config is
retried first. Hence ``--budget N`` ends with exactly N counted trials.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from autoq.errors import UserError
from autoq.objectives import direction
from autoq.search.objective import STATUSES, TrialOutcome

log = logging.getLogger(__name__)

STUDY_FILE = "study.db"
RUN_MARKER = ".autoq-run"  # written when a run starts, before the data and the baseline load
SAMPLERS = ("nsga2", "tpe", "random")


# --- budget ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Either a number of counted trials or a wall-clock time (trials then unlimited)."""

    trials: int | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        return f"{self.trials} trials" if self.trials else f"{self.seconds:g} s"


_TIME_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_budget(text: str | int) -> Budget:
    """``40`` -> 40 trials; ``20m`` / ``90s`` / ``1h30m`` -> wall-clock seconds."""
    raw = str(text).strip().lower()
    if re.fullmatch(r"[+-]?\d+", raw):
        n = int(raw)
        if n <= 0:
            raise UserError(f"--budget: got {text!r}; allowed: a positive number of trials (e.g. 40) "
                            "or a time such as 20m, 90s, 1h30m")
        return Budget(trials=n)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smh])", raw)
    if parts and "".join(a + b for a, b in parts) == raw:
        seconds = sum(float(a) * _TIME_UNITS[u] for a, u in parts)
        if seconds > 0:
            return Budget(seconds=seconds)
    raise UserError(f"--budget: got {text!r}; allowed: a positive number of trials (e.g. 40) "
                    "or a time such as 20m, 90s, 1h30m")


# --- run folder ------------------------------------------------------------------------------


def check_writable(out_dir: Path) -> None:
    """Create the run folder and prove it is writable (clear error instead of a late crash)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"--out: cannot write the run folder {str(out_dir)!r}: {exc.strerror or exc}; "
                        "choose a writable folder") from None


def clear_run(out_dir: Path) -> None:
    """--force: delete what a previous search wrote (only autoq's own files)."""
    for name in (STUDY_FILE, STUDY_FILE + "-journal", STUDY_FILE + "-wal", STUDY_FILE + "-shm", "search.json",
                 RUN_MARKER):
        p = out_dir / name
        if p.exists():
            p.unlink()
    for sub in ("trials", "ray", "artifacts"):
        if (out_dir / sub).is_dir():
            shutil.rmtree(out_dir / sub)


def abandon_run(out_dir: Path) -> None:
    """Undo check_run_folder on a fresh folder (the run failed before its study existed)."""
    from autoq.search.lock import LOCK_FILE

    (out_dir / RUN_MARKER).unlink(missing_ok=True)
    (out_dir / LOCK_FILE).unlink(missing_ok=True)   # this process holds it: nobody waits on it
    try:
        out_dir.rmdir()
    except OSError:
        pass


def storage_url(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / STUDY_FILE).resolve()}"


def make_storage(out_dir: Path):
    import sqlite3

    import optuna

    path = str((out_dir / STUDY_FILE).resolve())

    def connect():
        # a generous timeout: Ray's driver and a progress reader may touch the file together;
        # WAL + synchronous=NORMAL: a trial's ~20 small writes no longer wait for a disk flush
        # each (about 1 s per trial on a busy machine), and a crash still loses no committed trial
        con = sqlite3.connect(path, timeout=60, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    return optuna.storages.RDBStorage(storage_url(out_dir), engine_kwargs={"creator": connect})


def space_fingerprint(raw: dict) -> str:
    return json.dumps(raw, sort_keys=True, default=str)


def make_sampler(name: str, seed: int, budget: Budget):
    """nsga2 | tpe | random, seeded. Constraints reach NSGA-II and TPE through the trials
    (``trial.set_constraint``, Optuna 5): constrained domination, feasible first.

    NSGA-II's population is budget/4 clamped to [4, 20] (the default 50 would make a
    40-trial search pure random sampling); TPE starts after min(10, budget/4) random trials.
    """
    import optuna

    n = budget.trials or 80
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=max(4, min(20, n // 4)), seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(n_startup_trials=max(2, min(10, n // 4)), seed=seed,
                                          multivariate=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise UserError(f"--sampler: got {name!r}; allowed: {', '.join(SAMPLERS)}")


@dataclass
class RunInfo:
    """What identifies a run (stored as study user_attrs; checked on --resume)."""

    name: str
    space_raw: dict
    targets: list[str]
    objectives: list[str]          # kinds, e.g. ["accuracy", "latency", "flash"] (autoq.objectives)
    objective_names: list[str]     # study value order, e.g. ["accuracy", "latency@m4", ...]
    training: dict | None = None   # {"epochs", "seed"}: must not change on --resume


def trials_in_run(out_dir: Path) -> int:
    """Number of trials already in the run's study (0 if there is none)."""
    import optuna

    if not (out_dir / STUDY_FILE).exists():
        return 0
    storage = make_storage(out_dir)
    names = optuna.study.get_all_study_names(storage)
    return len(optuna.load_study(study_name=names[0], storage=storage).trials) if names else 0


def check_run_folder(out_dir: Path, resume: bool, force: bool, create: bool = True) -> bool:
    """Refuse to overwrite a run silently; prove the folder writable (create=False: only the
    refusals, nothing created -- the CLI's check before it announces the run). Returns: run exists."""
    exists = (out_dir / STUDY_FILE).exists()
    if resume and force:
        raise UserError("--resume and --force contradict each other: choose one")
    if exists and not (resume or force):
        raise UserError(f"--out: {str(out_dir)!r} already holds a search ({STUDY_FILE}); pass --resume to "
                        "continue it or --force to delete it and start over")
    if resume and not exists and not (out_dir / RUN_MARKER).is_file():
        raise UserError(f"--resume: {str(out_dir)!r} holds no search to resume (no {STUDY_FILE})")
    if not create:
        return exists
    check_writable(out_dir)
    if not exists:  # a kill before the study exists (data, float baseline) leaves this: --resume starts it
        (out_dir / RUN_MARKER).write_text("autoq search run folder\n")
    return exists


def open_study(out_dir: Path, info: RunInfo, sampler, resume: bool, force: bool):
    """Create the study, or load it for --resume (after :func:`check_run_folder`)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exists = check_run_folder(out_dir, resume, force)
    if force and exists:
        clear_run(out_dir)
    from autoq.search.trials import StoredStudy

    storage = make_storage(out_dir)
    if resume and exists:
        names = optuna.study.get_all_study_names(storage)
        study = StoredStudy(names[0], storage, sampler)
        check_same_run(out_dir, study, info)
        return study
    study = optuna.create_study(storage=storage, study_name=info.name, sampler=sampler,
                                directions=directions(info))
    init_study(study, info)
    return StoredStudy.of(study, storage)


def directions(info: RunInfo) -> list[str]:
    return [direction(n) for n in info.objective_names]


def init_study(study, info: RunInfo) -> None:
    """The study user_attrs of a new run (contracts.md "Study")."""
    import optuna

    # names optuna-dashboard (and study.trials_dataframe) show: "accuracy", "latency@m4 ms", "flash@m4 B"
    with warnings.catch_warnings():   # experimental in Optuna since 3.2, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(metric_names(info.objective_names))
    study.set_user_attr("space", info.space_raw)
    study.set_user_attr("targets", info.targets)
    study.set_user_attr("objectives", info.objectives)
    study.set_user_attr("objective_names", info.objective_names)
    study.set_user_attr("training", info.training)
    study.set_user_attr("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


_UNITS = {"accuracy": "", "latency": " ms", "flash": " B", "ram": " B"}


def metric_names(objective_names: list[str]) -> list[str]:
    """Objective names with their unit, for Optuna's metric names: latency@m4 -> 'latency@m4 ms'."""
    return [n + _UNITS.get(n.split("@")[0], "") for n in objective_names]


def check_same_run(out_dir: Path | str, study, info: RunInfo) -> None:
    attrs = study.user_attrs
    if space_fingerprint(attrs.get("space") or {}) != space_fingerprint(info.space_raw):
        raise UserError(f"--resume: {str(out_dir)!r} was started with a different search space; "
                        "resume with the same --space (or use --force to start over)")
    if info.training and attrs.get("training") and attrs["training"] != info.training:
        raise UserError(f"--resume: {str(out_dir)!r} was started with training {attrs['training']}, now "
                        f"{info.training}; resume with the same --epochs/--seed (results would mix)")
    if attrs.get("objective_names") != info.objective_names:
        raise UserError(f"--resume: {str(out_dir)!r} was started with objectives "
                        f"{attrs.get('objective_names')}, now {info.objective_names}; use the same "
                        "--target/--targets")


# --- trials: counting, repair, cache, recording ---------------------------------------------


def counted(trial) -> bool:
    """Does this trial count against the budget? (module docstring)"""
    import optuna

    return (trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
            and trial.user_attrs.get("status") in STATUSES)


def count_done(study) -> int:
    return sum(counted(t) for t in study.get_trials(deepcopy=False))


def repair_interrupted(study) -> list[int]:
    """Mark RUNNING leftovers FAIL (status interrupted) and re-enqueue the parameters of every
    interrupted trial not yet retried (no trial has ``retry_of`` = its number). Returns the
    numbers re-enqueued. ``study``: a :class:`autoq.search.trials.StoredStudy` (open_study)."""
    import optuna

    from autoq.search.trials import close_trial

    TS = optuna.trial.TrialState
    for t in study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
        close_trial(study, t.number, "interrupted", "interrupted (process stopped mid-trial)")
    trials = study.get_trials(deepcopy=False)
    already = {t.user_attrs.get("retry_of") for t in trials}
    retried = []
    for t in trials:
        if (t.state != TS.FAIL or t.user_attrs.get("status") in (*STATUSES, "unused") or t.number in already
                or not t.params):
            continue
        study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
        retried.append(t.number)
    if retried:
        log.info("re-enqueued interrupted trials %s", retried)
    return retried


def build_cache(study) -> dict[str, dict]:
    """config_hash -> the stored outcome dict of the first counted trial with that config."""
    cache: dict[str, dict] = {}
    for t in study.get_trials(deepcopy=False):
        h = t.user_attrs.get("config_hash")
        if h and counted(t) and h not in cache:
            cache[h] = outcome_from_attrs(t.user_attrs, t.number)
    return cache


def outcome_from_attrs(attrs: dict, number: int) -> dict:
    keys = ("status", "config", "plan", "costs", "metrics", "weights_path", "fail_reason",
            "fidelity", "timings")
    d = {k: attrs.get(k) for k in keys}
    d["metrics"] = d["metrics"] or {}
    d["costs"] = d["costs"] or {}
    d["timings"] = d["timings"] or {}
    d["trial"] = number
    return d


def screen_reference(study, objective_names: list[str]) -> list[tuple[float, list[float]]]:
    """(screen accuracy, cost vector) of every earlier screened trial, for promotion."""
    from autoq.search.objective import cost_vector

    ref = []
    for t in study.get_trials(deepcopy=False):
        m = t.user_attrs.get("metrics") or {}
        costs = t.user_attrs.get("costs")
        if m.get("screen_acc") is not None and costs:
            try:
                ref.append((float(m["screen_acc"]), cost_vector(costs, objective_names)))
            except KeyError:
                continue
    return ref


def outcome_attrs(outcome: TrialOutcome, constraints: dict, config_hash: str,
                  cached_from: int | None = None) -> dict:
    """The user_attrs of a finished trial (contracts.md "Study" + autoq's bookkeeping)."""
    from autoq.search.objective import constraint_values

    attrs = {"config": outcome.config, "plan": outcome.plan, "metrics": outcome.metrics,
             "costs": outcome.costs, "weights_path": outcome.weights_path, "status": outcome.status,
             "fail_reason": outcome.fail_reason, "fidelity": outcome.fidelity,
             "timings": outcome.timings, "config_hash": config_hash,
             "constraints": constraint_values(outcome.costs, constraints) if outcome.costs else None}
    if cached_from is not None:
        attrs["cached_from"] = cached_from
    return attrs


def set_constraints(trial, outcome: TrialOutcome, constraints: dict) -> None:
    """Optuna's constraint values (feasible iff all <= 0) for the samplers and best_trials."""
    from autoq.search.objective import constraint_items

    if outcome.costs and outcome.status != "failed":
        for key, value in constraint_items(outcome.costs, constraints):
            trial.set_constraint(key, value)


def outcome_summary(study) -> dict[str, dict[str, int]]:
    """Counted trials not ok, by status and reason kind (numbers dropped), e.g.
    {"skipped": {"m4: peak RAM": 3}, "failed": {"did not learn": 2},
    "trials": {"skipped": 3, "failed": 2}} (a skipped trial may break several constraints)."""
    out: dict[str, dict[str, int]] = {"skipped": {}, "failed": {}, "trials": {"skipped": 0, "failed": 0}}
    for t in study.get_trials(deepcopy=False):
        status = t.user_attrs.get("status")
        if not counted(t) or status not in ("skipped", "failed"):
            continue
        out["trials"][status] += 1
        reason = t.user_attrs.get("fail_reason") or "unknown"
        if status == "skipped":
            kinds = set()
            for part in reason.removeprefix("infeasible: ").split("; "):
                target, _, what = part.partition(": ")  # "m4: flash 12850 B > 9000 B"
                kinds.add(f"{target}: {re.split(r'[0-9(]', what, maxsplit=1)[0].strip()}")
        else:
            kinds = {reason.split(":")[0].strip()}
        for kind in kinds:
            out[status][kind] = out[status].get(kind, 0) + 1
    return out
