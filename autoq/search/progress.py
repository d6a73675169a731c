"""Progress of a search. On a terminal, a live display: trials done / budget, front size, best
accuracy at each cost, elapsed time and ETA (:func:`summarize` computes plain data, tested;
:class:`LiveProgress` draws it with rich, refreshed after every trial and once a second for the
clock). Elsewhere (a log file, CI) or with --no-progress: :class:`TrialLines` prints one line per
finished trial (number, status, accuracy, costs, time), built by :func:`trial_line`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from autoq.front import non_dominated_ranks
from autoq.search.study import Budget, counted


@dataclass
class FrontPoint:
    number: int
    accuracy: float
    costs: dict[str, float]             # objective name -> value


@dataclass
class ProgressSummary:
    done: int
    budget: Budget
    elapsed: float
    eta: float | None                   # seconds; None when unknown
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    cached: int = 0
    front: list[FrontPoint] = field(default_factory=list)
    objective_names: list[str] = field(default_factory=list)


def front_of(trials, objective_names: list[str]) -> list[FrontPoint]:
    """Non-dominated feasible trained trials (accuracy up, costs down), most accurate first."""
    pts = []
    for t in trials:
        a = t.user_attrs
        if a.get("status") != "ok" or t.values is None:
            continue
        if any(c > 0 for c in (a.get("constraints") or [])):
            continue
        pts.append(t)
    if not pts:
        return []
    values = np.array([[(1 - v) if n == "accuracy" else v for n, v in zip(objective_names, t.values)]
                       for t in pts], dtype=float)
    ranks = non_dominated_ranks(values)
    front = [FrontPoint(t.number, float(t.values[0]),
                        {n: float(v) for n, v in zip(objective_names[1:], t.values[1:])})
             for t, r in zip(pts, ranks) if r == 0]
    return sorted(front, key=lambda p: (-p.accuracy, p.number))


def summarize(study, budget: Budget, start: float, now: float | None = None) -> ProgressSummary:
    now = time.monotonic() if now is None else now
    trials = study.get_trials(deepcopy=False)
    names = study.user_attrs.get("objective_names") or ["accuracy"]
    done_trials = [t for t in trials if counted(t)]
    elapsed = now - start
    done = len(done_trials)
    if budget.seconds is not None:
        eta = max(0.0, budget.seconds - elapsed)
    else:
        # trials counted in this session drive the rate (a resumed run's old trials took no time now)
        session = [t for t in done_trials if t.datetime_complete and t.datetime_complete.timestamp()
                   >= time.time() - elapsed]
        rate = elapsed / len(session) if session else None
        eta = None if rate is None else rate * max(0, budget.trials - done)
    s = ProgressSummary(done=done, budget=budget, elapsed=elapsed, eta=eta, objective_names=names)
    for t in done_trials:
        status = t.user_attrs.get("status")
        s.ok += status == "ok"
        s.failed += status == "failed"
        s.skipped += status == "skipped"
        s.cached += t.user_attrs.get("cached_from") is not None
    s.front = front_of(done_trials, names)
    return s


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def render(s: ProgressSummary, max_rows: int = 8):
    """A rich renderable of the summary."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    total = f"{s.budget.trials}" if s.budget.trials else f"{_clock(s.budget.seconds)} budget"
    head = Text(f"trials {s.done}/{total}  (ok {s.ok}, failed {s.failed}, skipped {s.skipped}, "
                f"cached {s.cached})   front {len(s.front)}   elapsed {_clock(s.elapsed)}   "
                f"ETA {_clock(s.eta)}")
    table = Table(title="best accuracy at each cost (current front)", title_justify="left")
    table.add_column("trial", justify="right")
    table.add_column("accuracy", justify="right")
    for name in s.objective_names[1:]:
        table.add_column(name, justify="right")
    for p in s.front[:max_rows]:
        table.add_row(str(p.number), f"{p.accuracy:.4f}",
                      *[f"{p.costs[n]:.4g}" for n in s.objective_names[1:]])
    if len(s.front) > max_rows:
        table.caption = f"... and {len(s.front) - max_rows} more"
    return Group(head, table)


class LiveProgress:
    """rich.Live around a search; call :meth:`update` after each trial (``on_trial``)."""

    def __init__(self, budget: Budget, console=None):
        self.budget = budget
        self.console = console
        self.start = time.monotonic()
        self._summary: ProgressSummary | None = None
        self._live = None

    def __rich__(self):
        from rich.text import Text

        if self._summary is None:
            return Text(f"search started, elapsed {_clock(time.monotonic() - self.start)}: loading the data "
                        "and the float baseline (trained once, then cached), then the first trial")
        s = self._summary
        s.elapsed = time.monotonic() - self.start  # the clock keeps running between trials
        return render(s)

    def __enter__(self):
        from rich.live import Live

        self._live = Live(self, console=self.console, refresh_per_second=1, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.__exit__(*exc)
            if exc[0] is not None:
                self._live.console.line()  # an error message must not glue to the display
        return False

    def update(self, study) -> None:
        self._summary = summarize(study, self.budget, self.start)
        if self._live is not None:
            self._live.refresh()


def _cost_text(name: str, value: float) -> str:
    return f"{name} {value:,.0f}" if value >= 1000 else f"{name} {value:.4g}"


def trial_line(trial, objective_names: list[str], done: int, budget: Budget) -> str:
    """One line for a finished trial, e.g.
    ``[3/16] trial 2 ok (preset bnn): accuracy 0.4190, latency@m4 30.68, flash@m4 7,436; 6.1 s``."""
    a = trial.user_attrs
    status = a.get("status") or trial.state.name.lower()
    total = f"{budget.trials}" if budget.trials else _clock(budget.seconds)
    head = f"[{done}/{total}] trial {trial.number} {status}"
    notes = [f"preset {a['preset']}"] if a.get("preset") else []
    if a.get("cached_from") is not None:
        notes.append(f"cached from trial {a['cached_from']}")
    if a.get("fidelity") == "screen":
        notes.append("screen epochs only")
    if notes:
        head += f" ({', '.join(notes)})"
    parts = []
    if trial.values is not None:
        parts.append(f"accuracy {trial.values[0]:.4f}")
        parts += [_cost_text(n, v) for n, v in zip(objective_names[1:], trial.values[1:])]
    if a.get("fail_reason"):
        parts.append(str(a["fail_reason"]))
    seconds = sum((a.get("timings") or {}).values()) if a.get("timings") else (
        trial.duration.total_seconds() if trial.duration else None)
    tail = "" if seconds is None else f"; {seconds:.1f} s"
    return f"{head}: {', '.join(parts)}{tail}" if parts else head + tail


class TrialLines:
    """Plain progress: one printed line per finished trial, in trial-number order
    (``on_trial`` callback, like :meth:`LiveProgress.update`). Trials finished before this
    session (a resumed run) are not repeated."""

    def __init__(self, budget: Budget, print_line):
        self.budget = budget
        self.print_line = print_line
        self.started = time.time()
        self._seen: set[int] = set()

    def update(self, study) -> None:
        names = study.user_attrs.get("objective_names") or ["accuracy"]
        finished = [t for t in study.get_trials(deepcopy=False) if counted(t)]
        new = [t for t in finished if t.number not in self._seen and not (
            t.datetime_complete and t.datetime_complete.timestamp() < self.started)]
        first = len(finished) - len(new) + 1
        for i, t in enumerate(sorted(new, key=lambda t: t.number)):
            self._seen.add(t.number)
            self.print_line(trial_line(t, names, first + i, self.budget))
