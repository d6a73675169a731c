"""The Pareto front of a finished search: data first, renderers (table, CSV, JSON, HTML) after.

Everything here reads the Optuna study (``runs/<name>/study.db``) and needs no TensorFlow:
each trial keeps its QuantConfig, LayerPlan, metrics and per-target costs (contracts.md,
"Study"), so the front for another board is computed by re-costing the stored LayerPlans with
``autoq.cost.model.estimate`` -- accuracy does not depend on the board.

Objectives are turned into minimisation form before any comparison:
``accuracy -> 1 - val_acc``, ``latency -> latency_ms``, ``flash -> flash_bytes``,
``ram -> peak_ram_bytes``.

Dominance: a dominates b  <=>  a_i <= b_i for every objective i and a_j < b_j for some j.
The front is the set of trials no other trial dominates (rank 0 of the non-dominated sort).

Hypervolume (Zitzler & Thiele 1998): the Lebesgue measure of the region dominated by the front
and bounded by a reference point r,  HV = vol( U_{p in front} [p_1, r_1] x ... x [p_d, r_d] ),
computed exactly by slicing along the first objective. Costs are normalised by their largest
value over the considered trials so that HV is unit-free: the point is
``(1 - acc, latency / max latency, flash / max flash, ...)`` and r = ``(1, 1.1, 1.1, ...)``
(the 1.1 margin lets the cheapest-extreme points contribute). HV values are comparable between
runs only for the same target and normalisation; the reference is reported with it.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from autoq.config import layer_rows, relu_slope_label, shortcut_label
from autoq.errors import UserError
from autoq.objectives import DEFAULT_OBJECTIVES, OBJECTIVES, Objective, objective  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

__all__ = [
    "OBJECTIVES", "Objective", "TrialPoint", "ParetoFront", "resolve_study_path", "load_points",
    "pareto_front", "non_dominated_ranks", "hypervolume", "front_to_dict", "write_csv",
    "render_table", "write_html", "DEFAULT_OBJECTIVES",
]


# --- data ------------------------------------------------------------------------------------


@dataclass
class TrialPoint:
    """One finished trial, costed on one target."""

    number: int
    val_acc: float
    test_acc: float | None
    latency_ms: float
    flash_bytes: int
    peak_ram_bytes: int
    fits: bool
    cost_source: str                 # "stored" (costed during the search) or "estimated" (re-costed)
    config: dict
    layers: list[dict]               # per compute layer: name, op, kind, bits, quantizer labels
    weights_path: str | None = None
    rank: int = -1                   # non-dominated sorting rank; 0 = on the front
    preset: str | None = None        # the thesis preset the trial evaluated, if any
    relu_slope: str = "1"            # ReLU slope(s) after the hidden layers (BC-2.x fix): "1", "0.125", "mixed ..."
    shortcut: str = "-"              # residual shortcut policy (quantized | float | removed); "-": no shortcuts

    @property
    def on_front(self) -> bool:
        return self.rank == 0


@dataclass
class ParetoFront:
    """The computed front of one run for one target (plain data; renderers read only this)."""

    study_path: str
    study_name: str
    target: str
    objectives: list[Objective]
    points: list[TrialPoint]                     # every considered trial, with its rank
    hypervolume: float
    reference_point: list[float]                 # in normalised minimisation space
    normalisers: list[float]                     # divisor per objective (1 for accuracy)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    @property
    def front(self) -> list[TrialPoint]:
        """Front points, most accurate first."""
        return sorted((p for p in self.points if p.on_front), key=lambda p: (-p.val_acc, p.number))


def resolve_study_path(run: str | Path) -> Path:
    """RUN may be a run folder (holding study.db), the .db file itself or a name under runs/."""
    path = Path(run)
    candidates = [path / "study.db", path] if path.suffix != ".db" else [path]
    if not path.exists() and path.suffix != ".db":
        candidates.append(Path("runs") / path / "study.db")
    for cand in candidates:
        if cand.is_file():
            return cand
        if cand.suffix == ".db" and cand.is_dir():
            raise UserError(f"{cand}: is a folder; allowed: the study.db file that `autoq search` wrote")
    raise UserError(f"{run}: no study found (looked for {', '.join(str(c) for c in candidates)}); "
                    "pass the folder `autoq search` wrote (runs/NAME) or its study.db")


SQLITE_HEADER = b"SQLite format 3\x00"


def _load_study(study_path: Path):
    """Open the run's study READ-ONLY (pareto and export never change a study): the file must
    start with the SQLite header (a 0-byte or foreign file is refused before SQLite could turn
    it into an empty database), and any database error is a UserError naming the file."""
    import urllib.parse

    import optuna  # lazy: optuna pulls in sqlalchemy
    import sqlalchemy.exc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with open(study_path, "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise UserError(f"{study_path}: cannot read the study: {exc.strerror or exc}") from None
    if head != SQLITE_HEADER:
        raise UserError(f"{study_path}: not an SQLite database ({'empty file' if not head else 'wrong header'}); "
                        "allowed: the study.db that `autoq search` wrote")
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
    return _load_study(study_path), str(study_path)


def optuna_quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _cost_dict(report: Any) -> dict:
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
    return lambda plan_dict: _cost_dict(estimate(LayerPlan.from_dict(plan_dict), profile))


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
            cost, source = _cost_dict(estimator(plan)), "estimated"
        points.append(TrialPoint(
            number=trial.number, val_acc=float(metrics["val_acc"]),
            test_acc=None if metrics.get("test_acc") is None else float(metrics["test_acc"]),
            latency_ms=float(cost["latency_ms"]), flash_bytes=int(cost["flash_bytes"]),
            peak_ram_bytes=int(cost["peak_ram_bytes"]), fits=bool(cost["fits"]), cost_source=source,
            config=config, layers=layer_rows(config, plan or {}),
            weights_path=attrs.get("weights_path"), preset=attrs.get("preset"),
            relu_slope=relu_slope_label(config, plan or {}), shortcut=shortcut_label(config)))
    return points, skipped


def non_dominated_ranks(values: np.ndarray) -> np.ndarray:
    """Non-dominated sorting ranks of rows of ``values`` (all objectives minimised); 0 = front.

    Duplicated rows share a rank (neither dominates the other).
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    ranks = np.full(n, -1, dtype=int)
    if n == 0:
        return ranks
    le = np.all(values[:, None, :] <= values[None, :, :], axis=2)
    lt = np.any(values[:, None, :] < values[None, :, :], axis=2)
    dominates = le & lt                       # dominates[i, j]: i dominates j
    remaining = np.ones(n, dtype=bool)
    rank = 0
    while remaining.any():
        dominated = (dominates & remaining[:, None]).any(axis=0)
        layer = remaining & ~dominated
        ranks[layer] = rank
        remaining &= ~layer
        rank += 1
    return ranks


def hypervolume(points: np.ndarray, reference: Sequence[float]) -> float:
    """Exact hypervolume of minimisation ``points`` (n x d) with respect to ``reference``.

    Points not strictly better than the reference in every coordinate add nothing. Slicing on
    the first coordinate: sort by x_1; between consecutive x_1 values the slice's (d-1)-volume
    is the hypervolume of the points seen so far projected on the remaining coordinates:
    HV_d(P) = sum_k (x_1^(k+1) - x_1^(k)) * HV_{d-1}({p_{2..d} : p in P, p_1 <= x_1^(k)}).
    O(n^d) worst case; fronts here have tens of points and d <= 4.
    """
    ref = np.asarray(reference, dtype=float)
    pts = np.asarray(points, dtype=float).reshape(-1, len(ref))
    pts = pts[np.all(pts < ref, axis=1)]
    if len(pts) == 0:
        return 0.0
    if len(ref) == 1:
        return float(ref[0] - pts[:, 0].min())
    pts = pts[non_dominated_ranks(pts) == 0]
    pts = pts[np.argsort(pts[:, 0], kind="stable")]
    total = 0.0
    for k in range(len(pts)):
        upper = pts[k + 1, 0] if k + 1 < len(pts) else ref[0]
        width = upper - pts[k, 0]
        if width > 0:
            total += width * hypervolume(pts[: k + 1, 1:], ref[1:])
    return float(total)


def _study_objectives(study) -> list[str]:
    names = study.user_attrs.get("objectives") or list(DEFAULT_OBJECTIVES)
    return [n["name"] if isinstance(n, dict) else n for n in names]


def _targets_of(study, study_path) -> list[str]:
    targets = study.user_attrs.get("targets") or []
    if not targets:
        raise UserError(f"{study_path}: the study records no targets; pass --target")
    return list(targets)


def run_targets(run: str | Path | None, storage: str | None = None, study_name: str | None = None) -> list[str]:
    """The targets a search ran for (the default --target of pareto and export)."""
    study, where = open_run(run, storage, study_name)
    return _targets_of(study, where)


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
    target = target or _targets_of(study, study_path)[0]
    objs = [objective(n) for n in (objectives or _study_objectives(study))]
    points, skipped = load_points(study, target, estimator=estimator, recost=recost)
    if only_fitting:
        skipped += [(p.number, f"does not fit {target}") for p in points if not p.fits]
        points = [p for p in points if p.fits]
    values = np.array([[o.minimised(p) for o in objs] for p in points]).reshape(len(points), len(objs))
    for p, r in zip(points, non_dominated_ranks(values)):
        p.rank = int(r)
    normalisers = [1.0 if o.maximize else max(float(values[:, i].max()) if len(points) else 1.0, 1e-12)
                   for i, o in enumerate(objs)]
    reference = [1.0 if o.maximize else 1.1 for o in objs]
    front_values = values[[p.on_front for p in points]] / np.array(normalisers) if len(points) else values
    hv = hypervolume(front_values, reference) if len(points) else 0.0
    return ParetoFront(study_path=str(study_path), study_name=study.study_name, target=str(target),
                       objectives=objs, points=points, hypervolume=hv, reference_point=reference,
                       normalisers=normalisers, skipped=skipped)


# --- renderers -------------------------------------------------------------------------------

_COLUMNS = ("trial", "preset", "val_acc", "test_acc", "latency_ms", "flash_bytes", "peak_ram_bytes", "fits",
            "relu_slope", "shortcut", "cost_source")


def _row(p: TrialPoint) -> dict:
    return {"trial": p.number, "preset": p.preset, "val_acc": p.val_acc, "test_acc": p.test_acc,
            "latency_ms": p.latency_ms, "flash_bytes": p.flash_bytes, "peak_ram_bytes": p.peak_ram_bytes,
            "fits": p.fits, "relu_slope": p.relu_slope, "shortcut": p.shortcut, "cost_source": p.cost_source}


def _rounded(value: Any) -> Any:
    """CSV cells: floats to 4 significant digits (accuracy 0.9721: one image of digits' 179 is
    0.0056; latency 74.32 ms, 0.02871 ms), integers and text unchanged."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return "" if value is None else value


def front_to_dict(pf: ParetoFront, all_trials: bool = False) -> dict:
    """JSON-ready description: the front (or every trial) with per-layer configuration."""
    chosen = sorted(pf.points, key=lambda p: (p.rank, -p.val_acc)) if all_trials else pf.front
    return {
        "study": pf.study_path, "study_name": pf.study_name, "target": pf.target,
        "objectives": [o.name for o in pf.objectives], "hypervolume": pf.hypervolume,
        "hypervolume_reference": pf.reference_point, "hypervolume_normalisers": pf.normalisers,
        "n_trials": len(pf.points), "skipped": [{"trial": n, "reason": r} for n, r in pf.skipped],
        "points": [{**_row(p), "rank": p.rank, "config": p.config, "layers": p.layers} for p in chosen],
    }


def write_csv(pf: ParetoFront, path: str | Path) -> Path:
    """Every considered trial, one row each, with its rank (0 = front) and a config summary."""
    from autoq.fileio import atomic_write_text

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*_COLUMNS, "rank", "on_front", "layers"])
    for p in sorted(pf.points, key=lambda p: (p.rank, -p.val_acc)):
        writer.writerow([*map(_rounded, _row(p).values()), p.rank, p.on_front, _layers_summary(p)])
    return atomic_write_text(path, buf.getvalue())


def _layers_summary(p: TrialPoint) -> str:
    """'conv1=f32 w:float a:float; conv2=xnor w:bc a:sign ...' (one line per trial)."""
    return "; ".join(f"{r['name']}={r['kind']} w:{r['weight']} a:{r['activation']}" for r in p.layers)


FRONT_HEADERS = ("trial", "preset", "val acc", "test acc", "latency ms", "flash B", "peak RAM B", "fits",
                 "ReLU slope", "shortcut", "costs")
_LEFT_COLUMNS = ("preset", "fits", "ReLU slope", "shortcut", "costs")


def front_cells(p: TrialPoint) -> list[str]:
    """One front row as text, in FRONT_HEADERS order (the table and the HTML report)."""
    return [str(p.number), p.preset or "-", f"{p.val_acc:.4f}", "-" if p.test_acc is None else f"{p.test_acc:.4f}",
            f"{p.latency_ms:.3f}", f"{p.flash_bytes:,}", f"{p.peak_ram_bytes:,}", "yes" if p.fits else "NO",
            p.relu_slope, p.shortcut, p.cost_source]


def render_table(pf: ParetoFront):
    """Rich renderables: the front table and one per-layer table per front point."""
    from rich.markup import escape
    from rich.table import Table

    title = (f"Pareto front of {escape(pf.study_name)} on {escape(pf.target)}: {len(pf.front)} of {len(pf.points)} "
             f"trials, hypervolume {pf.hypervolume:.4f}")
    table = Table(title=title)
    for col in FRONT_HEADERS:
        table.add_column(col, justify="right" if col not in _LEFT_COLUMNS else "left", no_wrap=True)
    for p in pf.front:
        table.add_row(*front_cells(p))
    out = [table]
    for p in pf.front:
        lt = Table(title=f"trial {p.number}: per-layer configuration", title_justify="left")
        for col in ("layer", "op", "kind", "w bits", "a bits", "weight quantizer", "input quantizer"):
            lt.add_column(col)
        for r in p.layers:
            lt.add_row(*(escape(str(r[k])) for k in ("name", "op", "kind", "weight_bits", "act_bits", "weight",
                                                      "activation")))
        out.append(lt)
    return out


def write_html(pf: ParetoFront, path: str | Path) -> Path:
    """The self-contained HTML report (autoq/pareto_html.py)."""
    from autoq.pareto_html import write_html as write

    return write(pf, path)


def dumps(pf: ParetoFront, all_trials: bool = False) -> str:
    return json.dumps(front_to_dict(pf, all_trials=all_trials), indent=2, default=str)
