"""The Pareto front of a finished search, rendered: a rich table, CSV, JSON and the HTML report
(autoq/pareto_html.py). Renderers read only the plain data of autoq.front (ParetoFront,
TrialPoint); reading the run is autoq.search.records (re-exported here, the public entry:
``pareto_front(run, target=...)``). No TensorFlow.

Objectives are turned into minimisation form before any comparison:
``accuracy -> 1 - val_acc``, ``latency -> latency_ms``, ``flash -> flash_bytes``,
``ram -> peak_ram_bytes``.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from autoq.front import (FRONT_HEADERS, LEFT_COLUMNS, ParetoFront, TrialPoint, front_cells, hypervolume,
                         non_dominated_ranks)
from autoq.search.records import load_points, pareto_front, resolve_study_path, run_targets
from autoq.objectives import DEFAULT_OBJECTIVES, OBJECTIVES, Objective, objective  # noqa: F401 - re-exported

__all__ = [
    "OBJECTIVES", "Objective", "TrialPoint", "ParetoFront", "resolve_study_path", "load_points",
    "pareto_front", "non_dominated_ranks", "hypervolume", "front_to_dict", "write_csv",
    "render_table", "write_html", "DEFAULT_OBJECTIVES", "run_targets", "front_tables", "dumps",
    "FRONT_HEADERS", "front_cells",
]




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


def render_table(pf: ParetoFront):
    """Rich renderables: the front table and one per-layer table per front point."""
    from rich.markup import escape
    from rich.table import Table

    title = (f"Pareto front of {escape(pf.study_name)} on {escape(pf.target)}: {len(pf.front)} of {len(pf.points)} "
             f"trials, hypervolume {pf.hypervolume:.4f}")
    table = Table(title=title)
    for col in FRONT_HEADERS:
        table.add_column(col, justify="right" if col not in LEFT_COLUMNS else "left", no_wrap=True)
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


def front_tables(run_dir: str | Path, targets: list[str], storage: str | None = None,
                 study: str | None = None) -> list:
    """The end of ``autoq search``: one front table per target (of the run folder, or of the
    shared study in ``storage``)."""
    return [render_table(pareto_front(None if storage else run_dir, target=t, storage=storage,
                                      study_name=study))[0] for t in targets]
