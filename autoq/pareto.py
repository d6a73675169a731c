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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoq.errors import UserError
from autoq.front import (FRONT_HEADERS, LEFT_COLUMNS, ParetoFront, TrialPoint, front_cells, hypervolume,
                         non_dominated_ranks)
from autoq.search.records import load_points, pareto_front, resolve_study_path, run_targets

__all__ = [
    "OBJECTIVES", "Objective", "TrialPoint", "ParetoFront", "resolve_study_path", "load_points",
    "pareto_front", "non_dominated_ranks", "hypervolume", "front_to_dict", "write_csv",
    "render_table", "write_html", "DEFAULT_OBJECTIVES", "run_targets", "front_tables", "dumps",
    "FRONT_HEADERS", "front_cells",
]


# --- objectives ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """One axis of the front: the TrialPoint field it reads and whether larger is better."""

    name: str
    field: str
    maximize: bool
    label: str

    def minimised(self, point: "TrialPoint") -> float:
        """The value in minimisation form (accuracy becomes error = 1 - accuracy)."""
        value = float(getattr(point, self.field))
        return 1.0 - value if self.maximize else value


OBJECTIVES: dict[str, Objective] = {
    "accuracy": Objective("accuracy", "val_acc", True, "val accuracy"),
    "latency": Objective("latency", "latency_ms", False, "latency (ms)"),
    "flash": Objective("flash", "flash_bytes", False, "flash (bytes)"),
    "ram": Objective("ram", "peak_ram_bytes", False, "peak RAM (bytes)"),
}
# Spellings the search space or the study may use for the same objectives.
_ALIASES = {"acc": "accuracy", "val_acc": "accuracy", "latency_ms": "latency", "size": "flash",
            "flash_bytes": "flash", "weight_bytes": "flash", "sram": "ram", "peak_ram": "ram",
            "peak_ram_bytes": "ram", "memory": "ram"}
DEFAULT_OBJECTIVES = ("accuracy", "latency", "flash")


def objective(name: str) -> Objective:
    """Resolve an objective name (or alias); UserError lists the allowed names."""
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in OBJECTIVES:
        raise UserError(f"unknown objective {name!r}; allowed: {sorted(OBJECTIVES)} "
                        f"(aliases {sorted(_ALIASES)})")
    return OBJECTIVES[key]


def _quantizer_label(q: Any) -> str:
    """'dorefa(bits=2)' for {"name": "dorefa", "bits": 2}; 'float' for None."""
    if q is None:
        return "float"
    if isinstance(q, str):
        return q
    if isinstance(q, dict):
        args = ", ".join(f"{k}={v}" for k, v in q.items() if k != "name")
        return f"{q.get('name', '?')}({args})" if args else str(q.get("name", "?"))
    get_config = getattr(q, "get_config", None)
    return _quantizer_label(get_config()) if callable(get_config) else str(q)


def _layer_quant(config: dict, layer_name: str) -> tuple[Any, Any]:
    """(weight, activation) quantizer specs of one layer, through QuantConfig when available."""
    try:
        from autoq.config import QuantConfig

        lq = QuantConfig.from_dict(config).for_layer(layer_name)
        return getattr(lq, "weight", None), getattr(lq, "activation", None)
    except ImportError:
        pass
    # QuantConfig not importable: read the plain dict (override, else default).
    spec = {**(config.get("default") or {}), **((config.get("layers") or {}).get(layer_name) or {})}
    return spec.get("weight"), spec.get("activation")


def _layer_rows(config: dict, plan: dict) -> list[dict]:
    rows = []
    for entry in plan.get("layers", []):
        try:
            weight, act = _layer_quant(config, entry["name"])
            wl, al = _quantizer_label(weight), _quantizer_label(act)
        except Exception as exc:  # noqa: BLE001 -- a stale config must not hide the whole front
            wl = al = f"? ({exc})"
        rows.append({"name": entry.get("name"), "op": entry.get("op"), "kind": entry.get("kind"),
                     "weight_bits": entry.get("weight_bits"), "act_bits": entry.get("act_bits"),
                     "weight": wl, "activation": al, "macs": entry.get("macs")})
    return rows


def _slope_label(config: dict, plan: dict) -> str:
    """The ReLU slope after every hidden compute layer: one value, or 'mixed a/b' when they differ."""
    names = [e["name"] for e in plan.get("layers", [])][:-1]      # the last layer gives logits, no ReLU
    try:
        from autoq.config import QuantConfig

        qc = QuantConfig.from_dict(config)
        slopes = [float(qc.for_layer(n).relu_slope) for n in names]
    except Exception:  # noqa: BLE001 -- a stale config must not hide the whole front
        slopes = [float((config.get("default") or {}).get("relu_slope", 1.0))]
    distinct = sorted(set(slopes), reverse=True) or [1.0]
    text = "/".join(f"{v:g}" for v in distinct)
    return text if len(distinct) == 1 else f"mixed {text}"


def _shortcut_label(config: dict) -> str:
    from autoq.models.names import quant_layer_names

    try:
        has_shortcuts = any(n.endswith("_shortcut") for n in quant_layer_names(config.get("model", "")))
    except Exception:  # noqa: BLE001 -- unknown model name in an old study
        has_shortcuts = False
    return str(config.get("shortcut", "-")) if has_shortcuts else "-"


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
