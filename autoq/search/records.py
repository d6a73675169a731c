"""Reading a run's study (``autoq pareto``, ``autoq export``, ``autoq sensitivity RUN``): find
it, open it read-only, read its targets and objectives, turn its finished trials into
TrialPoints costed on a target. Creating and resuming a study is autoq.search.study.

Everything here needs no TensorFlow: each trial keeps its QuantConfig, LayerPlan, metrics and
per-target costs (contracts.md, "Study"), so the front for another board is computed by
re-costing the stored LayerPlans with ``autoq.cost.model.estimate`` -- accuracy does not depend
on the board.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from autoq.config import layer_rows, relu_slope_label, shortcut_label
from autoq.errors import UserError
from autoq.front import ParetoFront, TrialPoint, compute_front
from autoq.objectives import DEFAULT_OBJECTIVES, objective
from autoq.search.study import STUDY_FILE

log = logging.getLogger(__name__)

SQLITE_HEADER = b"SQLite format 3\x00"


# --- opening -------------------------------------------------------------------------------


def resolve_study_path(run: str | Path) -> Path:
    """RUN may be a run folder (holding study.db), the .db file itself or a name under runs/."""
    path = Path(run)
    candidates = [path / STUDY_FILE, path] if path.suffix != ".db" else [path]
    if not path.exists() and path.suffix != ".db":
        candidates.append(Path("runs") / path / STUDY_FILE)
    for cand in candidates:
        if cand.is_file():
            return cand
        if cand.suffix == ".db" and cand.is_dir():
            raise UserError(f"{cand}: is a folder; allowed: the study.db file that `autoq search` wrote")
    raise UserError(f"{run}: no study found (looked for {', '.join(str(c) for c in candidates)}); "
                    "pass the folder `autoq search` wrote (runs/NAME) or its study.db")


def _check_sqlite_header(study_path: Path) -> None:
    """A 0-byte or foreign file is refused before SQLite could turn it into an empty database."""
    try:
        with open(study_path, "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise UserError(f"{study_path}: cannot read the study: {exc.strerror or exc}") from None
    if head != SQLITE_HEADER:
        raise UserError(f"{study_path}: not an SQLite database ({'empty file' if not head else 'wrong header'}); "
                        "allowed: the study.db that `autoq search` wrote")


def load_study_readonly(study_path: Path):
    """Open the run's study READ-ONLY (pareto and export never change a study): the file must
    start with the SQLite header, and any database error is a UserError naming the file."""
    import urllib.parse

    import optuna  # lazy: optuna pulls in sqlalchemy
    import sqlalchemy.exc

    optuna_quiet()
    _check_sqlite_header(study_path)
    uri = urllib.parse.quote(str(study_path.resolve()), safe="/")
    storage_url = f"sqlite:///file:{uri}?mode=ro&uri=true"
    try:
        storage = optuna.storages.RDBStorage(storage_url)
        names = optuna.study.get_all_study_names(storage)
        if not names:
            raise UserError(f"{study_path}: the database holds no Optuna study")
        if len(names) > 1:
            log.warning("%s holds %d studies %s; using the first", study_path, len(names), names)
        study = optuna.load_study(study_name=names[0], storage=storage)
        study.trials  # noqa: B018 - read the trials now, so a damaged table fails here
        return study
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.OptunaError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, UserError):
            raise
        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
        raise UserError(f"{study_path}: not a readable autoq study ({type(exc).__name__}: {detail})") from None


def open_run(run: str | Path | None = None, storage: str | None = None, study_name: str | None = None):
    """(study, label): a run folder / study.db (read-only), or ``--storage URL --study NAME``
    (a shared study, autoq.search.storage). Never written to."""
    if storage is not None:
        if run is not None:
            raise UserError("give a run folder (RUN) or --storage/--study, not both")
        if not study_name:
            raise UserError("--storage needs --study NAME (the study the search workers used)")
        from autoq.search.storage import label, load_shared_study

        optuna_quiet()
        return load_shared_study(storage, study_name), f"{label(storage)} study {study_name}"
    if study_name is not None:
        raise UserError("--study names a study in --storage; give --storage URL too")
    if run is None:
        raise UserError("give a run folder (RUN, written by `autoq search`) or --storage URL --study NAME")
    study_path = resolve_study_path(run)
    return load_study_readonly(study_path), str(study_path)


def optuna_quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- what the run recorded -----------------------------------------------------------------


def study_objectives(study) -> list[str]:
    """The objective kinds the search used (``objectives`` user attr), e.g. accuracy, latency, flash."""
    names = study.user_attrs.get("objectives") or list(DEFAULT_OBJECTIVES)
    return [n["name"] if isinstance(n, dict) else n for n in names]


def targets_of(study, where) -> list[str]:
    """The targets the search ran for; UserError naming ``where`` when it recorded none."""
    targets = study.user_attrs.get("targets") or []
    if not targets:
        raise UserError(f"{where}: the study records no targets; pass --target")
    return list(targets)


def run_targets(run: str | Path | None, storage: str | None = None, study_name: str | None = None) -> list[str]:
    """The targets a search ran for (the default --target of pareto and export)."""
    study, where = open_run(run, storage, study_name)
    return targets_of(study, where)


# --- trials as points ----------------------------------------------------------------------


def cost_dict(report: Any) -> dict:
    """A CostReport (dataclass or dict) as a plain dict."""
    if isinstance(report, dict):
        return report
    if dataclasses.is_dataclass(report):
        return dataclasses.asdict(report)
    to_dict = getattr(report, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"cannot read cost report of type {type(report).__name__}")


def default_estimator(target: str) -> Callable[[dict], dict]:
    """Re-cost a stored LayerPlan dict on ``target`` with autoq's cost model (no TensorFlow)."""
    from autoq.cost.profile import load_profile
    from autoq.cost.model import estimate
    from autoq.plan import LayerPlan

    profile = load_profile(target)
    return lambda plan_dict: cost_dict(estimate(LayerPlan.from_dict(plan_dict), profile))


def load_points(study, target: str, estimator: Callable[[dict], dict] | None = None,
                recost: bool = False) -> tuple[list[TrialPoint], list[tuple[int, str]]]:
    """Turn the study's finished trials into TrialPoints costed on ``target``.

    Stored costs for ``target`` are used when present (they are what the search optimised),
    unless ``recost``; otherwise the stored LayerPlan is re-costed with ``estimator``.
    Returns (points, skipped) where skipped lists (trial number, reason).
    """
    import optuna

    points, skipped = [], []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        if trial.state != optuna.trial.TrialState.COMPLETE:
            reason = attrs.get("fail_reason")
            skipped.append((trial.number, trial.state.name.lower() + (f" ({reason})" if reason else "")))
            continue
        if attrs.get("status", "ok") != "ok":
            skipped.append((trial.number, f"status {attrs.get('status')}: {attrs.get('fail_reason', '')}"))
            continue
        metrics, plan, config = attrs.get("metrics") or {}, attrs.get("plan"), attrs.get("config") or {}
        if metrics.get("val_acc") is None:
            skipped.append((trial.number, "no metrics.val_acc"))
            continue
        stored = (attrs.get("costs") or {}).get(target)
        if stored is not None and not recost:
            cost, source = stored, "stored"
        elif plan is None:
            skipped.append((trial.number, f"no costs for {target!r} and no plan to re-cost"))
            continue
        else:
            if estimator is None:
                estimator = default_estimator(target)
            cost, source = cost_dict(estimator(plan)), "estimated"
        points.append(TrialPoint(
            number=trial.number, val_acc=float(metrics["val_acc"]),
            test_acc=None if metrics.get("test_acc") is None else float(metrics["test_acc"]),
            latency_ms=float(cost["latency_ms"]), flash_bytes=int(cost["flash_bytes"]),
            peak_ram_bytes=int(cost["peak_ram_bytes"]), fits=bool(cost["fits"]), cost_source=source,
            config=config, layers=layer_rows(config, plan or {}),
            weights_path=attrs.get("weights_path"), preset=attrs.get("preset"),
            relu_slope=relu_slope_label(config, plan or {}), shortcut=shortcut_label(config)))
    return points, skipped


def pareto_front(run: str | Path | None, target: str | None = None, objectives: Sequence[str] | None = None,
                 only_fitting: bool = False, recost: bool = False,
                 estimator: Callable[[dict], dict] | None = None, storage: str | None = None,
                 study_name: str | None = None) -> ParetoFront:
    """Load a run, cost every finished trial on ``target`` and compute ranks and hypervolume.

    target: a profile id or path; default the first target the search used.
    objectives: names from OBJECTIVES; default the study's ``objectives`` user attr.
    only_fitting: rank only the trials that fit the target's memory.
    recost: ignore stored costs and re-estimate every trial from its LayerPlan.
    estimator: plan dict -> CostReport dict (default: autoq.cost with the target profile).
    storage, study_name: a shared study instead of ``run`` (:func:`open_run`).
    """
    study, study_path = open_run(run, storage, study_name)
    target = target or targets_of(study, study_path)[0]
    objs = [objective(n) for n in (objectives or study_objectives(study))]
    points, skipped = load_points(study, target, estimator=estimator, recost=recost)
    if only_fitting:
        skipped += [(p.number, f"does not fit {target}") for p in points if not p.fits]
        points = [p for p in points if p.fits]
    return compute_front(points, objs, study_path=str(study_path), study_name=study.study_name,
                         target=str(target), skipped=skipped)
