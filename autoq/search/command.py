"""The library side of ``autoq search`` (cli.py stays thin): options from the command line,
the result line, the sensitivity table. Nothing here prints; cli.py does (and the front tables
at the end of a search come from autoq.pareto, the renderers)."""
from __future__ import annotations

from pathlib import Path

from autoq.errors import UserError
from autoq.search.options import SearchOptions
from autoq.search.runner import SearchResult
from autoq.search.study import SAMPLERS, parse_budget
from autoq.space import load_space


def split_targets(target: str | None, targets: str | None) -> list[str] | None:
    """--target m4 and/or --targets m4,a53,i5 -> ["m4", "a53", "i5"] (None: the space's)."""
    out: list[str] = []
    for part in [target or ""] + (targets or "").split(","):
        part = part.strip()
        if part and part not in out:
            out.append(part)
    return out or None


def options_from_cli(space: str, budget: str, target: str | None = None, targets: str | None = None,
                     sampler: str = "tpe", backend: str = "local", workers: int = 1,
                     address: str | None = None, out: str | None = None, resume: bool = False,
                     force: bool = False, seed: int | None = None,
                     epochs: int | None = None, data: str | None = None, storage: str | None = None,
                     study: str | None = None, artifacts: str | None = None,
                     heartbeat: float = 10.0) -> SearchOptions:
    """Validate the command line (cheap checks first) into SearchOptions."""
    parsed_budget = parse_budget(budget)
    if sampler not in SAMPLERS:
        raise UserError(f"--sampler: got {sampler!r}; allowed: {', '.join(SAMPLERS)}")
    sp = load_space(space)
    if data is not None:
        if not Path(data).is_file():
            raise UserError(f"--data: got {data!r}: no such file; allowed: a .npz with x_train, y_train, "
                            "x_test, y_test")
        sp.data_path = data
    chosen = split_targets(target, targets)
    out_dir = Path(out) if out else Path("runs") / f"{sp.name}-{'-'.join(chosen or sp.targets)}"
    return SearchOptions(space=sp, budget=parsed_budget, out_dir=out_dir, targets=chosen,
                         sampler=sampler, backend=backend, workers=workers, address=address,
                         resume=resume, force=force, seed=seed, epochs=epochs, storage=storage, study=study,
                         artifacts=artifacts or None, heartbeat=heartbeat).resolved()


def result_line(result: SearchResult) -> str:
    state = "stopped (Ctrl-C)" if result.interrupted else "finished"
    line = (f"search {state}: {result.done} trials counted ({result.budget} budget) in "
            f"{result.seconds:.1f} s; study {result.study or Path(result.out_dir) / 'study.db'}")
    if result.mine is not None:
        line += f"; {result.mine} of them by this worker"
    if result.baseline:
        line += f"; float baseline {result.baseline}"
    if result.presets_enqueued:
        line += f"; presets evaluated first: {', '.join(result.presets_enqueued)}"
    if result.proposals_enqueued:
        line += f"; sensitivity/ILP proposals: {result.proposals_enqueued}"
    if result.retried:
        line += f"; interrupted trials retried: {result.retried}"
    for status in ("skipped", "failed"):
        reasons = (result.not_ok or {}).get(status) or {}
        if reasons:
            parts = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
            line += f"; {status} {result.not_ok['trials'][status]} trial(s) ({parts})"
    return line


def sensitivity_table(run: str | None, space: str | None, seed: int | None = None,
                      data: str | None = None) -> dict:
    """The per-layer sensitivity table of a run's space (or of --space), computed or cached."""
    from autoq.search.runner import default_steps
    from autoq.search.study import Budget

    if (run is None) == (space is None):
        raise UserError("autoq sensitivity: give a run folder (RUN) or --space, not both / neither")
    if run is not None:
        sp, seed, out = _space_of_run(Path(run), seed)
    else:
        sp, out = load_space(space), Path("runs") / load_space(space).name
    if data is not None:
        sp.data_path = data
    opts = SearchOptions(space=sp, budget=Budget(trials=1), out_dir=out, seed=seed).resolved()
    steps = default_steps(opts)
    steps.prepare()
    return steps.sensitivity(sp)


def _space_of_run(run: Path, seed: int | None):
    from autoq.search.records import load_study_readonly, resolve_study_path
    from autoq.space import parse_space

    path = resolve_study_path(run)
    attrs = load_study_readonly(path).user_attrs
    training = attrs.get("training") or {}
    return (parse_space(attrs["space"], str(path)), training.get("seed") if seed is None else seed,
            path.parent)
