"""The HTML report of a Pareto front: self-contained (plotly.js embedded, works offline).

Data first (:func:`pair_panels`, tested), drawing after (:func:`write_html`):

- one 2-D panel per pair of objectives (accuracy on the y axis when it is in the pair), each
  with *that pair's own* non-dominated staircase: with three objectives the full front is not
  a curve in any one projection (a point can be on the 3-D front only because it is small), so
  each panel shows what is best for its two objectives alone;
- a parallel-coordinates view of the (full) front: one polyline per front point across every
  objective;
- trials at the same coordinates in a panel get distinct markers (symbol and size), so that
  none hides another; hovering shows each trial's metrics and per-layer configuration.
Below: the front table and each front point's per-layer configuration.
"""
from __future__ import annotations

import html
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from autoq.front import FRONT_HEADERS, LEFT_COLUMNS, ParetoFront, TrialPoint, front_cells, non_dominated_ranks

if TYPE_CHECKING:
    from autoq.objectives import Objective

FRONT_COLOUR = "#d62728"      # on this panel's 2-D front
FULL_FRONT_COLOUR = "#ff9f1c"  # on the full front, not on this panel's
OTHER_COLOUR = "#9aa5b1"
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "star", "triangle-down", "pentagon")


@dataclass
class Panel:
    """One pair of objectives: x is minimised, y is accuracy (maximised) or a second cost."""

    x: Objective
    y: Objective
    front: list[TrialPoint]              # this pair's non-dominated trials, by increasing x
    markers: dict[int, tuple[str, int]]  # trial number -> (symbol, size): distinct where points overlap
    labels: dict[int, str]               # trial number -> its text label ("1, 5" on the first of a group)

    def value(self, p: TrialPoint, axis: str) -> float:
        return float(getattr(p, (self.x if axis == "x" else self.y).field))


def _pairs(objectives: Sequence[Objective]) -> list[tuple[Objective, Objective]]:
    """Every pair, accuracy (a maximised objective) on the y axis."""
    return [(b, a) if a.maximize else (a, b) for a, b in itertools.combinations(objectives, 2)]


def _overlap_markers(points: Sequence[TrialPoint], x: Objective, y: Objective):
    """(markers, labels): trials at the same point get another symbol and a smaller size each
    (the first is largest, so every one stays visible) and one shared label."""
    groups: dict[tuple, list[TrialPoint]] = {}
    for p in sorted(points, key=lambda p: p.number):
        key = (round(float(getattr(p, x.field)), 9), round(float(getattr(p, y.field)), 9))
        groups.setdefault(key, []).append(p)
    markers, labels = {}, {}
    for group in groups.values():
        for i, p in enumerate(group):
            markers[p.number] = (SYMBOLS[i % len(SYMBOLS)], max(16 - 3 * i, 6) if len(group) > 1 else 11)
            labels[p.number] = ", ".join(str(q.number) for q in group) if i == 0 else ""
    return markers, labels


def pair_panels(pf: ParetoFront) -> list[Panel]:
    """The 2-D panels of the report: per pair of objectives its own front and the markers."""
    panels = []
    for x, y in _pairs(pf.objectives):
        values = np.array([[x.minimised(p), y.minimised(p)] for p in pf.points]).reshape(len(pf.points), 2)
        ranks = non_dominated_ranks(values) if len(pf.points) else []
        front = sorted((p for p, r in zip(pf.points, ranks) if r == 0),
                       key=lambda p: (float(getattr(p, x.field)), p.number))
        panels.append(Panel(x, y, front, *_overlap_markers(pf.points, x, y)))
    return panels


def staircase(panel: Panel) -> tuple[list[float], list[float]]:
    """The attainment line of a panel's front: from each point horizontally to the next one's x,
    then vertically to its y (plotly's line shape 'hv' through the sorted front)."""
    return [panel.value(p, "x") for p in panel.front], [panel.value(p, "y") for p in panel.front]


def _hover(p: TrialPoint) -> str:
    layers = "<br>".join(f"{r['name']}: {r['kind']} w={r['weight']} a={r['activation']}" for r in p.layers)
    preset = f" (preset {p.preset})" if p.preset else ""
    return (f"trial {p.number}{preset}<br>val acc {p.val_acc:.4f}<br>latency {p.latency_ms:.3f} ms<br>"
            f"flash {p.flash_bytes:,} B, peak RAM {p.peak_ram_bytes:,} B, fits: {p.fits}<br>"
            f"ReLU slope {p.relu_slope}, shortcut {p.shortcut}<br>{layers}")


def _panel_traces(go, panel: Panel, pf: ParetoFront, legend: set[str]) -> list:
    """The staircase and the three marker groups of one panel; ``legend`` collects the legend
    entries already shown (each appears once, on the first panel that draws it)."""
    on_pair = {p.number for p in panel.front}
    # drawn bottom to top: other trials, then the full front, this pair's front last (visible on top)
    groups = [("other trials", OTHER_COLOUR, [p for p in pf.points if not p.on_front and p.number not in on_pair]),
              ("on the full front only", FULL_FRONT_COLOUR,
               [p for p in pf.points if p.on_front and p.number not in on_pair]),
              ("this pair's front", FRONT_COLOUR, [p for p in pf.points if p.number in on_pair])]
    def first(name: str, drawn: bool) -> bool:
        show = drawn and name not in legend
        legend.update([name] if show else [])
        return show

    xs, ys = staircase(panel)
    name = "2-D front of the pair (staircase)"
    traces = [go.Scatter(x=xs, y=ys, mode="lines", line={"shape": "hv", "color": FRONT_COLOUR, "width": 1.5},
                         name=name, legendgroup=name, showlegend=first(name, True), hoverinfo="skip",
                         legendrank=1)]
    for rank, (name, colour, points) in enumerate(groups):
        traces.append(go.Scatter(legendrank=1000 - rank,
            x=[panel.value(p, "x") for p in points], y=[panel.value(p, "y") for p in points],
            mode="markers+text", name=name, legendgroup=name, showlegend=first(name, bool(points)),
            text=[panel.labels[p.number] for p in points], textposition="top center",
            textfont={"size": 10}, hovertext=[_hover(p) for p in points], hoverinfo="text",
            marker={"color": colour if points else None,
                    "symbol": [panel.markers[p.number][0] + ("" if p.fits else "-open") for p in points],
                    "size": [panel.markers[p.number][1] for p in points],
                    "line": {"width": 1, "color": "#333"}, "opacity": 0.85}))
    return traces


def _panels_figure(pf: ParetoFront, panels: list[Panel]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = min(3, max(len(panels), 1))
    rows = -(-len(panels) // cols) if panels else 1
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.08, vertical_spacing=0.16,
                        subplot_titles=[f"{pn.y.label} vs {pn.x.label}" for pn in panels])
    legend: set[str] = set()
    for i, panel in enumerate(panels):
        r, c = i // cols + 1, i % cols + 1
        for trace in _panel_traces(go, panel, pf, legend):
            fig.add_trace(trace, row=r, col=c)
        fig.update_xaxes(title_text=_axis_title(panel.x, pf.target), row=r, col=c)
        fig.update_yaxes(title_text=_axis_title(panel.y, pf.target), row=r, col=c)
    fig.update_layout(template="plotly_white", width=1200, height=430 * rows,
                      legend={"orientation": "h", "y": -0.22},
                      title=f"{pf.study_name} on {pf.target}: each pair of objectives with its own front "
                            "(open marker = does not fit the target's memory)")
    return fig


def _axis_title(o: Objective, target: str) -> str:
    return o.label if o.maximize else f"{o.label} on {target}"


def _parallel_figure(pf: ParetoFront):
    """Parallel coordinates of the full front (one line per front point, coloured by accuracy)."""
    import plotly.graph_objects as go

    front = pf.front
    dims = [{"label": "trial", "values": [p.number for p in front]}]
    for o in pf.objectives:
        dims.append({"label": o.label, "values": [float(getattr(p, o.field)) for p in front]})
    if "peak_ram_bytes" not in {o.field for o in pf.objectives}:
        dims.append({"label": "peak RAM (bytes)", "values": [p.peak_ram_bytes for p in front]})
    accs = [p.val_acc for p in front]
    fig = go.Figure(go.Parcoords(dimensions=dims, line={"color": accs, "colorscale": "Viridis", "showscale": True,
                                                        "colorbar": {"title": {"text": "val acc"}}}))
    fig.update_layout(template="plotly_white", width=1200, height=380,
                      title=f"the full front on {pf.target}: {len(front)} trials across every objective")
    return fig


_HTML_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 8px;
font-size:13px;text-align:right}th{background:#f2f2f2}td.l{text-align:left}h2{margin-top:1.5em}"""


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f"<td{' class=l' if i in left else ''}>{html.escape(str(v))}</td>" for i, v in enumerate(r)) + "</tr>"
        for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(pf: ParetoFront, path: str | Path) -> Path:
    """Write the report (module docstring) to ``path``."""
    import plotly.io as pio

    panels = pair_panels(pf)
    plots = (pio.to_html(_panels_figure(pf, panels), include_plotlyjs=True, full_html=False, div_id="pareto-pairs")
             + pio.to_html(_parallel_figure(pf), include_plotlyjs=False, full_html=False, div_id="pareto-parallel"))
    left = [i for i, h in enumerate(FRONT_HEADERS) if h in LEFT_COLUMNS]
    parts = [f"<h1>autoq Pareto front: {html.escape(pf.study_name)} on {html.escape(pf.target)}</h1>",
             f"<p>{len(pf.front)} front points of {len(pf.points)} finished trials; hypervolume "
             f"{pf.hypervolume:.4f} (objectives {', '.join(o.name for o in pf.objectives)}, reference "
             f"{pf.reference_point} after normalising costs by their maximum). Red: the front of that "
             f"panel's two objectives (its staircase); orange: on the full front only.</p>", plots,
             "<h2>Front</h2>", _html_table(FRONT_HEADERS, [front_cells(p) for p in pf.front], left=left)]
    for p in pf.front:
        parts.append(f"<h2>Trial {p.number}: per-layer configuration</h2>")
        parts.append(_html_table(["layer", "op", "kind", "w bits", "a bits", "weight quantizer", "input quantizer"],
                                 [[r["name"], r["op"], r["kind"], r["weight_bits"], r["act_bits"], r["weight"],
                                   r["activation"]] for r in p.layers], left=(0, 1, 2, 5, 6)))
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>autoq pareto {html.escape(pf.study_name)}"
           f"</title><style>{_HTML_STYLE}</style></head><body>{''.join(parts)}</body></html>")
    from autoq.fileio import atomic_write_text

    return atomic_write_text(path, doc)
