"""The objectives and constraints of a search, in one table each (no TensorFlow, no Optuna).

An objective name is ``accuracy`` or ``<kind>@<target>`` (``latency@m4``): a cost kind of
:data:`COST_KINDS` on one hardware target. Accuracy is maximised, every cost minimised. The
search space validates names against this table, the trial pipeline reads the values from the
CostReport fields named here, the study takes its directions from it and the Pareto front its
axes and labels.

Constraints hold per target. ``max_*`` bound a cost (in the unit of the key: ms, KB);
``fits: [sram, flash]`` bound a cost by the board's own limit (bytes, from the CostReport).
Each constraint gives one value in Optuna's convention (feasible iff every value <= 0) and, when
broken, one readable message.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autoq.errors import UserError

__all__ = ["ACCURACY", "COST_FIELDS", "COST_KINDS", "CONSTRAINTS", "CONSTRAINT_KEYS", "Constraint",
           "DEFAULT_OBJECTIVES", "FIT_KINDS", "OBJECTIVES", "Objective", "active_constraints", "cost_value",
           "direction", "expand_objectives", "objective", "split_objective"]


# --- objectives ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """One axis of the front: the field it reads (a TrialPoint's, and for a cost the
    CostReport's), whether larger is better and its axis label."""

    name: str
    field: str
    maximize: bool
    label: str

    def minimised(self, point: Any) -> float:
        """The value in minimisation form (accuracy becomes error = 1 - accuracy)."""
        value = float(getattr(point, self.field))
        return 1.0 - value if self.maximize else value


ACCURACY = "accuracy"
OBJECTIVES: dict[str, Objective] = {
    ACCURACY: Objective(ACCURACY, "val_acc", True, "val accuracy"),
    "latency": Objective("latency", "latency_ms", False, "latency (ms)"),
    "flash": Objective("flash", "flash_bytes", False, "flash (bytes)"),
    "ram": Objective("ram", "peak_ram_bytes", False, "peak RAM (bytes)"),
}
COST_KINDS = tuple(name for name, o in OBJECTIVES.items() if not o.maximize)   # latency, flash, ram
COST_FIELDS = {kind: OBJECTIVES[kind].field for kind in COST_KINDS}           # CostReport fields
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


def split_objective(name: str) -> tuple[str, str]:
    """``"latency@m4"`` -> ``("latency", "m4")``; ``"latency"`` -> ``("latency", "")``."""
    kind, _, target = str(name).partition("@")
    return kind, target


def direction(name: str) -> str:
    """Optuna's direction of a study objective name (``accuracy``, ``latency@m4``, ...)."""
    return "maximize" if OBJECTIVES[split_objective(name)[0]].maximize else "minimize"


def expand_objectives(objectives: list[str], targets: list[str]) -> list[str]:
    """Study order: ``accuracy``, then each cost as ``<kind>@<target>`` (a cost without a
    target is one objective per target), duplicates dropped."""
    names = [ACCURACY]
    for obj in objectives:
        if obj == ACCURACY:
            continue
        kind, target = split_objective(obj)
        for t in ([target] if target else targets):
            name = f"{kind}@{t}"
            if name not in names:
                names.append(name)
    return names


def cost_value(costs: dict[str, dict], name: str) -> float:
    """The value of cost objective ``name`` (``latency@m4``) in per-target CostReport dicts."""
    kind, target = split_objective(name)
    return float(costs[target][COST_FIELDS[kind]])


# --- constraints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Constraint:
    """One constraint of a search space on one target's CostReport.

    A ``max_*`` constraint compares ``field / scale`` with the space's limit under ``key``;
    a fit constraint (``fit`` set: on when the space's ``fits`` lists it) compares ``field``
    with the board's limit in ``limit_field``.
    """

    key: str                      # the Optuna constraint name after "<target>:"
    field: str                    # the CostReport field it bounds
    what: str                     # how a violation message names the value
    scale: float = 1.0
    fit: str | None = None
    limit_field: str | None = None

    def value(self, cost: dict, constraints: dict) -> float:
        """Optuna's convention: <= 0 when met."""
        if self.fit is not None:
            return float(cost[self.field]) - float(cost[self.limit_field])
        return float(cost[self.field]) / self.scale - constraints[self.key]

    def message(self, cost: dict, constraints: dict) -> str:
        """What is broken, without the target: ``latency ms 80.1 > 50``."""
        if self.fit is not None:
            return f"{self.what} {cost[self.field]} B > {cost[self.limit_field]} B"
        return f"{self.what} {cost[self.field] / self.scale:.4g} > {constraints[self.key]:g}"


CONSTRAINTS = (
    Constraint("max_latency_ms", "latency_ms", "latency ms"),
    Constraint("max_flash_kb", "flash_bytes", "flash KB", scale=1024),
    Constraint("max_ram_kb", "peak_ram_bytes", "peak RAM KB", scale=1024),
    Constraint("fits_ram", "peak_ram_bytes", "peak RAM", fit="sram", limit_field="ram_limit_bytes"),
    Constraint("fits_flash", "flash_bytes", "flash", fit="flash", limit_field="flash_limit_bytes"),
)
FIT_KINDS = tuple(c.fit for c in CONSTRAINTS if c.fit is not None)                 # sram, flash
CONSTRAINT_KEYS = (*(c.key for c in CONSTRAINTS if c.fit is None), "fits")       # the space's keys


def active_constraints(constraints: dict) -> list[Constraint]:
    """The constraints a space's ``constraints`` mapping turns on, in table order."""
    fits = constraints.get("fits") or []
    return [c for c in CONSTRAINTS if (c.fit in fits if c.fit is not None else c.key in constraints)]
