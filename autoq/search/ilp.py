"""Sensitivity-guided proposals: an integer program over the cost model (HAWQ-V3 style).

Each layer takes one (weight, input-activation) pair of the choices the space gives it.
Its predicted damage is the sum of the two choices' sensitivities
(:mod:`autoq.search.sensitivity`); its cost on every target comes from the cost model:
``estimate(plan, profile).per_layer`` of plans in which every layer takes its k-th pair
(k = 0, 1, ...: as many plans as the longest pair list), plus the network's fixed part
(total minus the searched layers). Then, for budgets spread between the cheapest and the
float network (log scale; with one or two cost objectives a grid of every pair of positions,
else all bound at one fraction), ``scipy.optimize.milp`` (HiGHS) picks the pairs that minimise
the summed sensitivity under the budgets and the space's constraints (per-layer RAM when
``fits: sram``, flash when ``fits: flash``, ``max_*``). Shared rules (one parameter, many
layers) are linked by equality rows. Of the distinct solutions, the ``n`` enqueued are picked
greedily by the hypervolume they add in predicted (loss, costs) space to what the presets
already cover (their predicted points from the same table and costs): a budget whose solution
a preset predictably matches at no more cost is not spent. Each trial is then costed exactly
and trained like any other. TensorFlow-free: the plans and costs come from the search's steps
(``plan``, ``cost``).
"""
from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np

from autoq.objectives import CONSTRAINTS, COST_FIELDS, split_objective

log = logging.getLogger(__name__)


@dataclass
class LayerOptions:
    name: str
    pairs: list[tuple[str, str]]           # (weight label, activation label)
    params: dict[str, str | None]          # dim -> parameter name (None: fixed)


def _model_choice(space, key: str, prefer):
    values = space.model_choices.get(key)
    if isinstance(values, list):
        return prefer if prefer in values else values[0]
    return values


def _dim_options(space, layer: str, dim: str) -> tuple[str | None, list[str]]:
    """(parameter name or None, labels) of one layer's weight or activation."""
    varying = space.param_choices()
    for rule in reversed(space.rules):
        if layer in rule.owned.get(dim, []):
            labels = [c.label for c in getattr(rule, dim)]
            owner = f"rule{rule.index}" if rule.share else layer
            name = f"{owner}.{dim}"
            return (name if name in varying else None), labels
    from autoq.space import FLOAT_LABEL

    return None, [FLOAT_LABEL]


def layer_options(space, flf: bool) -> list[LayerOptions]:
    from autoq.models.names import first_last

    dead = set(first_last(space.model)) if flf else set()
    out = []
    for name in space.layer_names:
        if name in dead:
            continue
        (wp, wl), (ap, al) = _dim_options(space, name, "weight"), _dim_options(space, name, "activation")
        out.append(LayerOptions(name, list(itertools.product(wl, al)), {"weight": wp, "activation": ap}))
    return out


def base_params(space, flf: bool) -> dict:
    """Every varying parameter at its neutral value (float, slope 1, chosen model options)."""
    from autoq.space import FLOAT_LABEL

    params = {}
    for name, values in space.param_choices().items():
        if name == "first_last_float":
            params[name] = flf
        elif name == "shortcut":
            params[name] = values[0]
        elif name.endswith(".relu_slope"):
            params[name] = 1.0 if 1.0 in values else values[0]
        else:
            params[name] = FLOAT_LABEL if FLOAT_LABEL in values else values[0]
    return params


def pair_params(space, options: list[LayerOptions], flf: bool, k: int) -> dict:
    """Parameters giving every layer its k-th pair (cyclically)."""
    params = base_params(space, flf)
    for opt in options:
        w, a = opt.pairs[k % len(opt.pairs)]
        for dim, label in (("weight", w), ("activation", a)):
            if opt.params[dim] is not None:
                params[opt.params[dim]] = label
    return params


def cost_tables(space, steps, targets: list[str], options: list[LayerOptions], flf: bool):
    """Per (layer, pair): {target: per-layer cost dict}; and the fixed part per target."""
    tables: dict[tuple[str, int], dict] = {}
    longest = max(len(o.pairs) for o in options)
    float_reports = None
    for k in range(longest):
        config = space.config_from_params(pair_params(space, options, flf, k))
        plan = steps.plan(config)
        reports = {t: steps.cost(plan, t) for t in targets}
        if k == 0:
            float_reports = reports
        for opt in options:
            p = k % len(opt.pairs)
            if (opt.name, p) not in tables:
                tables[(opt.name, p)] = {t: _layer_entry(reports[t], opt.name) for t in targets}
    fixed = {}
    for t in targets:  # the network minus its searched layers, from the k = 0 plan
        report = float_reports[t]
        layers = {o.name for o in options}
        fixed[t] = {"latency_ms": report["latency_ms"] - sum(
                        e["latency_ms"] for e in report["per_layer"] if e["name"] in layers),
                    "flash_bytes": report["flash_bytes"] - sum(
                        e["flash_bytes"] for e in report["per_layer"] if e["name"] in layers),
                    "ram_limit_bytes": report["ram_limit_bytes"],
                    "flash_limit_bytes": report["flash_limit_bytes"]}
    return tables, fixed


def _layer_entry(report: dict, name: str) -> dict:
    for e in report["per_layer"]:
        if e["name"] == name:
            return e
    return {"latency_ms": 0.0, "flash_bytes": 0, "ram_bytes": 0}


def predicted_damage(table: dict, layer: str, pair: tuple[str, str]) -> float:
    dims = table["layers"].get(layer, {})
    return sum(float(dims.get(dim, {}).get(label, 0.0)) for dim, label in zip(("weight", "activation"), pair))


def propose(space, table: dict, steps, targets: list[str], objective_names: list[str],
            constraints: dict, n: int, taken: list[dict] | tuple = ()) -> list[dict]:
    """Up to ``n`` distinct proposals: {"params", "budget", "predicted_loss", "predicted"}.

    ``taken``: parameters already enqueued (the presets); their predicted points count as
    covered, so no proposal is spent where the sensitivity model says a preset already does
    as well at no more cost."""
    if n <= 0:
        return []
    from scipy.optimize import Bounds, LinearConstraint, milp

    flf = bool(_model_choice(space, "first_last_float", False))
    options = layer_options(space, flf)
    if not options:
        return []
    tables, fixed = cost_tables(space, steps, targets, options, flf)
    index = [(o, p) for o in options for p in range(len(o.pairs))]
    damage = np.array([predicted_damage(table, o.name, o.pairs[p]) for o, p in index])
    costs = _cost_rows(index, tables, fixed, objective_names)
    a_eq, b_eq = _one_hot_rows(index, options)
    fits = constraints.get("fits") or []
    upper = _allowed(index, tables, fixed, targets, fits)
    limits = _limits(objective_names, constraints, fixed, targets)
    hard = [LinearConstraint(row[None, :], -np.inf, limit)
            for row, limit in _hard_rows(index, tables, fixed, targets, fits).values()]
    found, seen = [], set()
    grid = budget_grid(len(costs), n)
    for u in grid:
        rows = [LinearConstraint(a_eq, b_eq, b_eq), *hard]
        budget = {}
        for (name, (row, lo, hi, base)), ui in zip(costs.items(), u):
            bound = lo * (hi / lo) ** ui if lo > 0 else hi * ui
            bound = min(bound, limits.get(name, np.inf))
            budget[name] = bound + base
            rows.append(LinearConstraint(row[None, :], -np.inf, bound))
        res = milp(damage, constraints=rows, integrality=np.ones(len(index)), bounds=Bounds(0, upper))
        if res.x is None:
            continue
        chosen = {o.name: o.pairs[p] for (o, p), v in zip(index, res.x) if v > 0.5}
        params = _params_of(space, options, chosen, flf)
        key = tuple(sorted(params.items(), key=lambda kv: kv[0]))
        if key in seen:
            continue
        seen.add(key)
        found.append(_proposal(params, budget, (res.x > 0.5).astype(float), damage, costs))
    covered = [_predicted_point(params, index, options, damage, costs, space.model) for params in taken]
    cap = _damage_cap(table)
    picked = select(found, [c for c in covered if c is not None], n, cap)
    # a proposal predicted more than half-way (in loss) to a uniform guess is not worth a trial
    # of a short budget: dropped after the selection, so it changes none of the others
    out = [p for p in picked if p["predicted_loss"] <= cap / 2]
    log.info("ILP proposals: %d of %d distinct solutions over %d budgets (%d presets covered; %d predicted "
             "to lose more than ln(classes)/2 dropped)", len(out), len(found), len(grid), len(covered),
             len(picked) - len(out))
    return out


def _allowed(index: list, tables: dict, fixed: dict, targets: list[str], fits: list[str]) -> np.ndarray:
    """Upper bound 1 for each (layer, pair) choice, 0 where it breaks ``fits: [sram]`` by itself."""
    upper = np.ones(len(index))
    for i, (o, p) in enumerate(index):
        for t in targets:
            if "sram" in fits and tables[(o.name, p)][t]["ram_bytes"] > fixed[t]["ram_limit_bytes"]:
                upper[i] = 0
    return upper


def _proposal(params: dict, budget: dict, x: np.ndarray, damage: np.ndarray, costs: dict) -> dict:
    """One ILP solution ``x`` (0/1 per choice) as a proposal: its parameters, budget and predictions."""
    return {"params": params, "budget": {k: round(v, 6) for k, v in budget.items()},
            "predicted_loss": float(damage @ x),
            "predicted": {name: float(row @ x + base) for name, (row, _, _, base) in costs.items()}}


def budget_grid(k: int, n: int) -> list[tuple[float, ...]]:
    """Budget positions (0 = cheapest, 1 = float, log scale) per cost objective. With one or
    two cost objectives every pair of positions (a flash-tight but latency-loose network is a
    different front point than the reverse); with more, the diagonal (all at one fraction)."""
    if k == 0:
        return [()]
    levels = min(12, max(6, 2 * n)) if k <= 2 else max(n, 2 * n)
    u = [(i + 0.5) / levels for i in range(levels)]
    return list(itertools.product(u, repeat=k)) if k <= 2 else [(v,) * k for v in u]


MAX_SELECT_DIMS = 4   # autoq.front.hypervolume is exact but O(n^d): greedy HV only up to 4-D


def select(found: list[dict], covered: list[np.ndarray], n: int, cap: float) -> list[dict]:
    """Greedy: the proposal adding the most predicted hypervolume (predicted loss capped at
    ``cap``, the cost objectives; min-max normalised over all points) to what is already
    covered, until ``n`` are picked or none adds any. Returned cheapest first."""
    from autoq.front import hypervolume

    if not found:
        return []
    pts = np.array([[min(f["predicted_loss"], cap), *f["predicted"].values()] for f in found])
    if pts.shape[1] > MAX_SELECT_DIMS:
        return found[:n]
    covered = [np.array([min(c[0], cap), *c[1:]]) for c in covered]
    allp = np.vstack([pts, *covered]) if covered else pts
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    norm = (pts - lo) / span
    have = [(c - lo) / span for c in covered]
    ref = [1.1] * pts.shape[1]
    picked: list[int] = []
    base = hypervolume(np.array(have), ref) if have else 0.0
    while len(picked) < n:
        gains = [(-1.0 if i in picked else hypervolume(np.array(have + [norm[i]]), ref) - base, i)
                 for i in range(len(found))]
        gain, best = max(gains)
        if gain <= 1e-12:
            break
        picked.append(best)
        have.append(norm[best])
        base += gain
    return [found[i] for i in sorted(picked, key=lambda i: tuple(pts[i, 1:]))]


def _damage_cap(table: dict) -> float:
    """Predicted loss beyond ln(classes) (a uniform guess) is as bad as chance: capped there."""
    classes = table.get("num_classes")
    return math.log(classes) if classes and classes > 1 else math.inf


def _predicted_point(params: dict, index, options, damage, costs, model: str) -> np.ndarray | None:
    """(predicted loss, predicted costs) of enqueued parameters; None if some layer takes a
    pair the program does not model (e.g. float first/last layers the space cannot make float)."""
    from autoq.models.names import first_last
    from autoq.space import FLOAT_LABEL

    dead = set(first_last(model)) if params.get("first_last_float") else set()
    x = np.zeros(len(index))
    for o in options:
        if o.name in dead:
            pair = (FLOAT_LABEL, FLOAT_LABEL)
        else:
            pair = tuple(params.get(o.params[d], o.pairs[0][i]) if o.params[d] else o.pairs[0][i]
                         for i, d in enumerate(("weight", "activation")))
        if pair not in o.pairs:
            return None
        x[index.index((o, o.pairs.index(pair)))] = 1.0
    return np.array([float(damage @ x), *(float(row @ x + base) for row, _, _, base in costs.values())])


SUMMED_KINDS = ("latency", "flash")   # layer sums; peak RAM is a max over layers: handled per layer


def _cost_rows(index, tables, fixed, objective_names):
    """objective -> (coefficients, cheapest layer sum, float layer sum, fixed part)."""
    rows = {}
    for name in objective_names:
        kind, target = split_objective(name)
        if kind not in SUMMED_KINDS:
            continue
        field = COST_FIELDS[kind]
        row = np.array([float(tables[(o.name, p)][target][field]) for o, p in index])
        per_layer: dict[str, list[float]] = {}
        for value, (o, _) in zip(row, index):
            per_layer.setdefault(o.name, []).append(value)
        lo = sum(min(v) for v in per_layer.values())
        hi = sum(max(v) for v in per_layer.values())
        rows[name] = (row, lo, hi, float(fixed[target][field]))
    return rows


def _limits(objective_names, constraints, fixed, targets) -> dict:
    """The space's max_* constraints (autoq.objectives.CONSTRAINTS) as bounds on the layer sums
    of the matching objectives, in the CostReport field's unit."""
    out = {}
    for name in objective_names:
        kind, target = split_objective(name)
        if kind not in SUMMED_KINDS:
            continue
        for c in CONSTRAINTS:
            if c.fit is None and c.field == COST_FIELDS[kind] and c.key in constraints:
                out[name] = constraints[c.key] * c.scale - fixed[target][c.field]
    return out


def _hard_rows(index, tables, fixed, targets, fits) -> dict:
    rows = {}
    if "flash" in fits:
        for t in targets:
            row = np.array([float(tables[(o.name, p)][t]["flash_bytes"]) for o, p in index])
            rows[f"fits_flash@{t}"] = (row, fixed[t]["flash_limit_bytes"] - fixed[t]["flash_bytes"])
    return rows


def _one_hot_rows(index, options):
    """Each layer one pair; a parameter's layers agree (shared rules)."""
    rows, rhs = [], []
    for o in options:
        rows.append(np.array([1.0 if o2 is o else 0.0 for o2, _ in index]))
        rhs.append(1.0)
    owners: dict[str, list] = {}
    for o in options:
        for d, dim in enumerate(("weight", "activation")):
            if o.params[dim] is not None:
                owners.setdefault(o.params[dim], []).append((o, d))
    for members in owners.values():
        first, d0 = members[0]
        for o, d in members[1:]:
            for label in {pair[d0] for pair in first.pairs}:
                row = np.zeros(len(index))
                for i, (o2, p) in enumerate(index):
                    if o2 is first and first.pairs[p][d0] == label:
                        row[i] += 1.0
                    if o2 is o and o.pairs[p][d] == label:
                        row[i] -= 1.0
                rows.append(row)
                rhs.append(0.0)
    return np.array(rows), np.array(rhs)


def _params_of(space, options, chosen: dict, flf: bool) -> dict:
    params = base_params(space, flf)
    for o in options:
        w, a = chosen[o.name]
        for dim, label in (("weight", w), ("activation", a)):
            if o.params[dim] is not None:
                params[o.params[dim]] = label
    return params
