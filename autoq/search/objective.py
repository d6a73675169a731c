"""One trial: QuantConfig -> model -> costs on every target -> (maybe) training -> outcome.

The pipeline logic here is TensorFlow-free; the TF work sits behind three steps
(:class:`TrialSteps`: ``plan``, ``cost``, ``train``) so the runner and its tests can use a
fake. :class:`KerasSteps` is the real implementation.

Multi-fidelity without pruners (Optuna's pruners do not support multi-objective studies):

1. **Cost first, skip the infeasible.** The LayerPlan comes from the built (untrained) model,
   so latency / flash / RAM are known before any training. Constraints apply per target (each
   target's own front): a config that breaks a constraint on *every* target is recorded with
   ``status: skipped`` (its real costs, accuracy 0) and not trained; one that is feasible on
   some target is trained and counts for those targets' fronts (``costs[target].fits``).
2. **Short-epoch screen with promotion** (optional, ``training.screen``). The config is first
   trained for ``screen.epochs``; it is promoted to the full ``training.epochs`` unless an
   earlier screened trial is at least as cheap on every cost objective and more accurate by
   more than ``screen.margin``:

       promote  <=>  not exists j: acc_j >= acc + margin  and  cost_j,k <= cost_k for all k

   A trial that is not promoted keeps its screen accuracy (``fidelity: screen``), a lower
   bound of what full training would give, so it can only be dominated, never wrongly win.
"""
from __future__ import annotations

import logging
import math
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from autoq.objectives import ACCURACY, active_constraints, cost_value

log = logging.getLogger(__name__)

STATUSES = ("ok", "failed", "skipped")


@dataclass
class TrainOutcome:
    """What a training step returns (mirrors autoq.train.TrainResult)."""

    status: str                      # ok | failed
    val_acc: float | None = None
    test_acc: float | None = None
    weights_path: str | None = None
    reason: str | None = None
    seconds: float = 0.0
    epochs_run: int | None = None    # a "did not learn" trial stops after its first epoch


@dataclass
class TrialOutcome:
    """Everything one trial stores on the study (contracts.md, "Study")."""

    status: str                                  # ok | failed | skipped
    config: dict
    plan: dict | None = None
    costs: dict[str, dict] = field(default_factory=dict)   # target -> CostReport dict
    metrics: dict = field(default_factory=dict)   # val_acc, test_acc, train_seconds, screen_acc
    weights_path: str | None = None
    fail_reason: str | None = None
    fidelity: str = "full"                        # full | screen | none (not trained)
    timings: dict = field(default_factory=dict)   # build, cost, train seconds

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrialOutcome":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class TrialContext:
    """What a trial needs besides its config; every path absolute (Ray workers chdir)."""

    number: int
    out_dir: str                                  # the run folder
    targets: list[str]
    objective_names: list[str]                    # ["accuracy", "latency@m4", ...]
    constraints: dict
    epochs: int
    seed: int
    skip_infeasible: bool = True
    screen_epochs: int | None = None
    screen_margin: float = 0.02
    screen_reference: list[tuple[float, list[float]]] = field(default_factory=list)
    artifacts: str | None = None                  # artifact store folder (autoq.search.artifacts)

    @property
    def trial_dir(self) -> Path:
        return Path(self.out_dir) / "trials" / f"{self.number:05d}"


class TrialSteps(Protocol):
    """The three expensive steps of a trial; :class:`KerasSteps` is the real one."""

    def plan(self, config: dict) -> dict: ...                          # LayerPlan dict

    def cost(self, plan: dict, target: str) -> dict: ...               # CostReport dict

    def train(self, config: dict, epochs: int, ctx: TrialContext) -> TrainOutcome: ...


# --- objectives and constraints (pure; the tables are autoq.objectives) ------------------------


def objective_values(outcome: TrialOutcome, objective_names: list[str]) -> list[float]:
    """Values in study order; accuracy of an untrained (skipped) trial is 0."""
    values = []
    for name in objective_names:
        if name == ACCURACY:
            acc = outcome.metrics.get("val_acc")
            values.append(0.0 if acc is None else float(acc))
        else:
            values.append(cost_value(outcome.costs, name))
    return values


def constraint_items(costs: dict[str, dict], constraints: dict) -> list[tuple[str, float]]:
    """Optuna's convention (feasible iff every value <= 0), per target's own front: a trial
    that breaks a constraint on one target still counts for the others. The values are those
    of one target: the first feasible one, else the one breaking the fewest constraints
    (autoq.objectives.CONSTRAINTS says what each value is).
    """
    per_target = [target_items(costs, constraints, t) for t in sorted(costs)]
    if not per_target:
        return []
    return min(per_target, key=lambda items: sum(v > 0 for _, v in items))


def target_items(costs: dict[str, dict], constraints: dict, target: str) -> list[tuple[str, float]]:
    """One ``("<target>:<key>", value)`` per constraint on, for one target (constraint_items)."""
    return [(f"{target}:{c.key}", c.value(costs[target], constraints)) for c in active_constraints(constraints)]


def constraint_values(costs: dict[str, dict], constraints: dict) -> list[float]:
    return [v for _, v in constraint_items(costs, constraints)]


def violated(costs: dict[str, dict], constraints: dict) -> list[str]:
    """Readable list of broken constraints (empty when feasible)."""
    on = active_constraints(constraints)
    return [f"{target}: {c.message(costs[target], constraints)}"
            for target in sorted(costs) for c in on if c.value(costs[target], constraints) > 0]


def should_promote(acc: float, costs: list[float], reference: list[tuple[float, list[float]]],
                   margin: float) -> bool:
    """True unless an earlier screened trial is as cheap everywhere and > margin more accurate."""
    for ref_acc, ref_costs in reference:
        if ref_acc >= acc + margin and all(rc <= c for rc, c in zip(ref_costs, costs)):
            return False
    return True


def cost_vector(costs: dict[str, dict], objective_names: list[str]) -> list[float]:
    return [cost_value(costs, name) for name in objective_names if name != ACCURACY]


# --- the trial pipeline ----------------------------------------------------------------------


def run_trial(config: dict, ctx: TrialContext, steps: TrialSteps) -> TrialOutcome:
    """Build -> cost -> (skip | screen -> promote? -> train) -> outcome; never raises on a
    failing trial (the reason is recorded), only on KeyboardInterrupt."""
    out = TrialOutcome(status="ok", config=config, fidelity="none")
    stage = "build"
    try:
        t0 = time.perf_counter()
        out.plan = steps.plan(config)
        t1 = time.perf_counter()
        stage = "cost"
        out.costs = {t: steps.cost(out.plan, t) for t in ctx.targets}
        t2 = time.perf_counter()
        out.timings.update(build=t1 - t0, cost=t2 - t1, train=0.0)
        broken = violated(out.costs, ctx.constraints)
        feasible = [t for t in ctx.targets if not violated({t: out.costs[t]}, ctx.constraints)]
        if broken and not feasible and ctx.skip_infeasible:  # per target: skip only if none is met
            out.status, out.fail_reason = "skipped", "infeasible: " + "; ".join(broken)
            return out
        stage = "train"
        costs = cost_vector(out.costs, ctx.objective_names)
        result = None
        if ctx.screen_epochs:
            result = steps.train(config, ctx.screen_epochs, ctx)
            out.timings["train"] += result.seconds
            if result.status == "ok":
                out.metrics["screen_acc"] = result.val_acc
                promote = should_promote(result.val_acc, costs, ctx.screen_reference, ctx.screen_margin)
                out.fidelity = "screen"
                if promote:
                    result = steps.train(config, ctx.epochs, ctx)
                    out.timings["train"] += result.seconds
                    out.fidelity = "full"
        else:
            result = steps.train(config, ctx.epochs, ctx)
            out.timings["train"] += result.seconds
            out.fidelity = "full"
        if result.epochs_run is not None:
            out.metrics["epochs_run"] = result.epochs_run
        if result.status != "ok" or result.val_acc is None or not math.isfinite(result.val_acc):
            out.status = "failed"
            out.fail_reason = result.reason or f"training returned val_acc={result.val_acc!r}"
            return out
        out.metrics.update(val_acc=float(result.val_acc), test_acc=result.test_acc,
                           train_seconds=out.timings["train"])
        out.weights_path = result.weights_path
        return out
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one broken trial must not end the search
        log.warning("trial %d failed in %s: %s: %s", ctx.number, stage, type(exc).__name__, exc)
        log.debug("trial %d traceback:\n%s", ctx.number, traceback.format_exc())
        out.status, out.fail_reason = "failed", f"{stage}: {type(exc).__name__}: {exc}"
        return out


# --- the real steps (TensorFlow) -------------------------------------------------------------


class KerasSteps:
    """Builds zoo models, costs their LayerPlan, fine-tunes from the cached float baseline.

    One instance per process; the data set and the baseline are loaded once and reused
    (Ray's reuse_actors keeps the worker, hence the instance, alive between trials).
    """

    def __init__(self, model: str, dataset: str, data_path: str | None, recipe: str, seed: int,
                 cache_dir: str, input_shape=None, baseline_epochs: int = 10,
                 threads: int | None = None, candidates: dict | None = None):
        self.model_name, self.dataset_name, self.data_path = model, dataset, data_path
        self.recipe_name, self.seed, self.cache_dir = recipe, seed, cache_dir
        self.expected_input = tuple(input_shape) if input_shape else None
        self.baseline_epochs, self.threads = baseline_epochs, threads
        self.candidates = candidates           # layer -> role -> specs (layer_candidates)
        self._data = None
        self._baseline = None
        self._trainer = None
        self._built: tuple[str, Any] | None = None   # (config JSON, model) of the last plan()
        self._profiles: dict[str, Any] = {}
        self.baseline_share = None   # a shared study's BaselineShare (autoq.search.artifacts)

    def prepare(self) -> None:
        """Load the data (a missing file is a UserError now, not a failed trial) and the
        float baseline (trained once, before any trial)."""
        from autoq.errors import UserError

        base = self.baseline()
        if base.status != "ok":
            raise UserError(f"the float baseline of {self.model_name} on {self.dataset_name} failed: "
                            f"{base.reason}")

    @property
    def data(self):
        if self._data is None:
            from autoq.data import load_dataset
            from autoq.errors import UserError

            name, path = self.dataset_name, self.data_path
            if path is None and name.endswith(".npz"):  # dataset given as a file
                name, path = Path(name).stem, name
            self._data = load_dataset(name, data_path=path, seed=self.seed)
            if self.expected_input and tuple(self._data.input_shape) != self.expected_input:
                raise UserError(f"search space input {list(self.expected_input)} does not match data set "
                                f"{self.dataset_name!r} shape {list(self._data.input_shape)}")
        return self._data

    def baseline(self):
        """The float baseline (trained once per model + data set + seed, cached on disk)."""
        if self._baseline is None:
            from autoq.train import train_baseline

            self._baseline = train_baseline(self.model_name, self.data, self.recipe_name, self.seed,
                                            self.cache_dir, threads=self.threads,
                                            epochs=self.baseline_epochs, share=self.baseline_share)
        return self._baseline

    def plan(self, config: dict) -> dict:
        from autoq.config import QuantConfig
        from autoq.export.planning import plan_from_model
        from autoq.models.zoo import build_model

        data = self.data
        model = build_model(self.model_name, data.input_shape, data.num_classes, QuantConfig.from_dict(config))
        self._built = (_key(config), model)  # train() ships this very model
        return plan_from_model(model).to_dict()

    def cost(self, plan: dict, target: str) -> dict:
        from autoq.cost.model import estimate
        from autoq.cost.profile import load_profile
        from autoq.plan import LayerPlan

        if target not in self._profiles:
            self._profiles[target] = load_profile(target)
        return estimate(LayerPlan.from_dict(plan), self._profiles[target]).to_dict()

    def trainer(self):
        """The switch-model trainer (autoq.search.switch): one traced step per architecture."""
        if self._trainer is None:
            from autoq.search.switch import FastTrainer
            from autoq.train import _setup

            _setup(self.seed, self.threads)
            self._trainer = FastTrainer(self.model_name, self.data, self.baseline().model_path,
                                        self.recipe_name, self.candidates)
        return self._trainer

    def sensitivity(self, space, steps: int | None = None) -> dict:
        """The space's per-layer sensitivity table (autoq.search.sensitivity), cached."""
        from autoq.config import QuantConfig
        from autoq.search import sensitivity

        if steps is None:
            macs = sum(e["macs"] for e in self.plan(QuantConfig(model=self.model_name).to_dict())["layers"])
            steps = sensitivity.default_steps(macs)
        return sensitivity.compute(self.trainer(), space, steps, cache_dir=self.cache_dir,
                                   baseline_key=self.baseline().key)

    def train(self, config: dict, epochs: int, ctx: TrialContext) -> TrainOutcome:
        from autoq.config import QuantConfig

        built = self._built[1] if self._built and self._built[0] == _key(config) else None
        self._built = None  # a model is trained once
        r = self.trainer().train(QuantConfig.from_dict(config), int(epochs), self.seed, ctx.trial_dir,
                                 model=built)
        return TrainOutcome(status=r.status, val_acc=r.val_acc, test_acc=r.test_acc,
                            weights_path=r.model_path, reason=r.reason, seconds=float(r.seconds),
                            epochs_run=r.epochs_run)


def _key(config: dict) -> str:
    import json

    return json.dumps(config, sort_keys=True)


def layer_candidates(space) -> dict[str, dict[str, list]]:
    """Per layer and role, every quantizer spec a space's rules can give it (TF-free): the
    switch model holds them all, so no config of the space needs a new graph."""
    out: dict[str, dict[str, list]] = {}
    for rule in space.rules:
        for role in ("weight", "activation"):
            choices = getattr(rule, role) or []
            for name in rule.layers:
                specs = out.setdefault(name, {"weight": [], "activation": []})[role]
                for c in choices:
                    if c.spec is not None and c.spec not in specs:
                        specs.append(c.spec)
    return out
