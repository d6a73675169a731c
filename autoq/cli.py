"""The `autoq` command line. Thin: parse options, call the library, print.

Heavy modules (TensorFlow, Optuna, ONNX) are imported inside the commands that need them so
that `autoq --help` and the inspection commands answer quickly.
"""
from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from pathlib import Path

from autoq import cli_help
from autoq.errors import UserError
from autoq.limits import MAX_CLASSES, MAX_EPOCHS, MAX_INPUT_SIDE, MAX_SEED, MAX_THREADS, MAX_WORKERS
from autoq.tf_env import set_quiet_env

set_quiet_env()

app = typer.Typer(
    help="autoq: search per-layer quantization of a CNN for accuracy and board cost, "
    "inspect the Pareto front, export the chosen model as ONNX + packed weights + C.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,          # plain help: fast, no Rich markdown import (autoq/cli_help.py)
    cls=cli_help.Group,
    context_settings=cli_help.CONTEXT_SETTINGS,
)


def _print_version(value: bool) -> None:
    if value:
        from autoq import __version__

        typer.echo(f"autoq {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_print_version, expose_value=False),
) -> None:
    """autoq: mixed-precision quantization search for CNNs on embedded boards."""


def _wide_console():
    """A console at least 160 columns wide: the front tables (11 columns, VGG-7's 8-digit flash)
    must not be cut to a narrow terminal or to a pipe's default 80 columns."""
    from rich.console import Console

    return Console(width=max(Console().width, 160))


def _print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


def _parse_shape(text: str) -> tuple[int, int, int]:
    """--input-shape H,W,C (or HxWxC), integers 1..4096."""
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1 or max(shape) > MAX_INPUT_SIDE:
        raise UserError(f"--input-shape: got {text!r}; allowed: H,W,C, integers 1..{MAX_INPUT_SIDE}, such as "
                        "32,32,3")
    return shape  # type: ignore[return-value]


def _check_range(option: str, value: int | None, low: int, high: int) -> None:
    """A numeric option in [low, high] (None = not given)."""
    if value is not None and not low <= value <= high:
        raise UserError(f"{option}: got {value}; allowed: an integer {low}..{high}")


def _check_output(option: str, path: str | None) -> None:
    """An output file path whose folder exists (checked before any work, so nothing is half-written)."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{option}: {path!r} is a folder; allowed: a file path in an existing folder")
    if not (p.parent if str(p.parent) else Path(".")).is_dir():
        raise UserError(f"{option}: {path!r}: the folder {str(p.parent)!r} does not exist; allowed: a file path in "
                        "an existing folder")


# --- quantizers (foundation) -------------------------------------------------------------


@app.command("quantizers")
def quantizers_cmd(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List every registered quantizer: parameters, defaults, bits, kind, role."""
    from autoq.quant import describe_all

    rows = describe_all()
    if as_json:
        _print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="autoq quantizers")
    for col in ("name", "role", "bits", "kind (w/a)", "parameters", "summary"):
        table.add_column(col)
    for r in rows:
        params = ", ".join(f"{k}={v!r}" for k, v in r["parameters"].items())
        kinds = " ".join(f"{role[0]}:{kind}" for role, kind in r["kind_by_role"].items())
        table.add_row(r["name"], r["role"], str(r["bits"]), kinds, params, r["summary"])
    Console().print(table)


# --- commands of the other parts are added below, one section each ------------------------



# --- cost model ---------------------------------------------------------------------------


@app.command("targets")
def targets_cmd(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the hardware profiles: board, memory, and per kernel kind the provenance and fit error."""
    from autoq.cost.profile import list_profiles, load_profile

    profiles = [load_profile(t) for t in list_profiles()]
    if as_json:
        _print_json([p.to_dict() for p in profiles])
        return
    from rich.console import Console
    from rich.table import Table

    from rich.markup import escape

    console = Console()
    for p in profiles:
        console.print(f"[bold]{escape(p.id)}[/bold]: {escape(p.board)}, {escape(p.cpu)}, {p.clock_hz / 1e6:g} MHz, "
                      f"RAM {_kib(p.ram_limit_bytes)}, flash/storage {_kib(p.flash_limit_bytes)}")
    table = Table(title="latency coefficients per kernel kind (MAPE of the fit; LOO: leave out one shape, "
                        "for count-derived kinds + one filter size of the board scale)")
    for col in ("target", "kind", "provenance", "points", "MAPE", "LOO"):
        table.add_column(col)
    for p in profiles:
        for i, (kind, k) in enumerate(p.kernels.items()):
            table.add_row(p.id if i == 0 else "", kind, k.provenance, str(k.points), _pct(k.mape), _pct(k.loo_mape))
    console.print(table)
    _print_count_validation(console, profiles)


def _print_count_validation(console, profiles) -> None:
    """Per count-derived board: published thesis-kernel times, the scale's prediction for our ref
    kernel (validation) and the profile's for our opt kernel (what autoq prices)."""
    from rich.table import Table

    from autoq.cost.calibrate import priced_by_cycles, shipped_validation

    for p in profiles:
        checked = shipped_validation(p)
        if checked is None:
            continue
        scale, rows = checked
        loo = "n/a" if scale.loo_mape is None else f"{scale.loo_mape:.1%}"
        unit = "cycle" if priced_by_cycles(p) else "instruction"
        table = Table(title=f"{p.id}: {scale.ns_per_instruction:.4g} ns/{unit} fitted on {scale.rows} published "
                            f"times vs our ref kernels' {unit}s (MAPE {scale.mape:.1%}, leave one filter size out "
                            f"{loo}); ms")
        for col in ("layer", "kind", "published (thesis kernel)", "predicted ref", "predicted opt (priced)"):
            table.add_column(col, justify="left" if col in ("layer", "kind") else "right")
        for r in rows:
            kind = r.kind if r.kind == "f32" else f"{r.kind}{r.bits}"
            table.add_row(f"3x16x16->8 {r.f}x{r.f}", kind, f"{r.published_ms:.4g}", f"{r.ref_ms:.4g}",
                          f"{r.opt_ms:.4g}")
        console.print(table)


def _kib(n: int) -> str:
    return f"{n / 1024:,.0f} KiB" if n < 1 << 30 else f"{n / (1 << 30):,.1f} GiB"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


@app.command("cost")
def cost_cmd(
    target: str = typer.Option(..., "--target", "-t", help="Profile id (see `autoq targets`) or a .yaml path."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Zoo model name (default: the config's model)."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Named quantization preset."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="QuantConfig JSON file."),
    plan: Optional[str] = typer.Option(None, "--plan", help="Cost a stored LayerPlan JSON instead (no TensorFlow)."),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="H,W,C (default: the input of the model's shipped search space, "
                                                 "e.g. 8,8,1 for lenet5; else the model's reference input)."),
    num_classes: int = typer.Option(10, "--num-classes"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (plan + cost report)."),
) -> None:
    """Predict latency, flash and peak RAM of a model + quantization on a target, per layer."""
    _check_range("--num-classes", num_classes, 1, MAX_CLASSES)
    from autoq.cost.model import estimate
    from autoq.cost.profile import load_profile
    from autoq.plan import LayerPlan

    profile = load_profile(target)  # unknown target fails before TensorFlow loads
    if plan is not None:
        layer_plan = LayerPlan.from_dict(_read_json(plan), source=plan)
    else:
        layer_plan = _plan_for(model, preset, config, input_shape, num_classes)
    report = estimate(layer_plan, profile)
    if as_json:
        _print_json({"plan": layer_plan.to_dict(), "cost": report.to_dict()})
        return
    from rich.console import Console
    from rich.table import Table

    from rich.markup import escape

    table = Table(title=escape(f"cost on {profile.id} ({profile.board}, {profile.cpu})"))
    for col in ("layer", "kind", "w bits", "MACs", "latency ms", "flash B", "RAM B", "provenance"):
        table.add_column(col, justify="left" if col in ("layer", "kind", "provenance") else "right")
    for entry, lc in zip(layer_plan.layers, report.per_layer):
        table.add_row(escape(lc.name), escape(lc.kind), str(entry.weight_bits), f"{lc.macs:,}", f"{lc.latency_ms:.4g}",
                      f"{lc.flash_bytes:,}", f"{lc.ram_bytes:,}", lc.provenance)
    console = Console()
    console.print(table)
    console.print(
        f"total: latency {report.latency_ms:.4g} ms, flash {report.flash_bytes:,} B "
        f"(limit {report.flash_limit_bytes:,}), peak RAM {report.peak_ram_bytes:,} B "
        f"(limit {report.ram_limit_bytes:,}), fits: {'yes' if report.fits else 'NO'}")
    derived = sorted({lc.kind for lc in report.per_layer if lc.provenance == "derived"})
    if derived:
        console.print(f"note: latency of kind(s) {', '.join(derived)} on {profile.id} is an estimate (derived)")


def _read_json(path: str):
    from autoq.fileio import read_json

    return read_json(path, "LayerPlan JSON file")


def _plan_for(model, preset, config, input_shape, num_classes):
    """Build the zoo model with the chosen quantization and return its LayerPlan."""
    from autoq.config import QuantConfig, preset as make_preset

    if (preset is None) == (config is None):
        raise UserError("cost: give exactly one of --preset NAME or --config FILE (or --plan FILE)")
    if config is not None:
        qconfig = QuantConfig.from_json(_read_text(config, "QuantConfig JSON file"), source=config)
        model = model or getattr(qconfig, "model", None)
    if not model:
        raise UserError("cost: --model is required (the config names no model)")
    if preset is not None:
        qconfig = make_preset(preset, model)
    from autoq.space import shipped_input_shape

    shape = _parse_shape(input_shape) if input_shape else shipped_input_shape(model)
    from autoq.models.zoo import build_model
    from autoq.plan import plan_from_model

    return plan_from_model(build_model(model, shape, num_classes, qconfig))


def _read_text(path: str, what: str = "file") -> str:
    from autoq.fileio import read_text

    return read_text(path, what)


@app.command("calibrate")
def calibrate_cmd(
    target: str = typer.Option("host", "--target", "-t", help="Profile id to write (host: measure this machine)."),
    from_csv: Optional[str] = typer.Option(None, "--from-csv", help="Fit from a measurement CSV instead of running the bench."),
    base: Optional[str] = typer.Option(None, "--base", help="Profile (id, .yaml, or host measurement .csv) to derive the kinds the CSV lacks from."),
    counts: Optional[str] = typer.Option(None, "--counts", help="Instruction counts CSV (kernels/bench/results/icount_qemu.csv): the CSV's rows then only fit the board's ns/instruction against our ref kernels, and every kind is priced from our opt kernels' counts (the shipped boards)."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Kernel variant rows to fit (default: host bench 'opt'; CSV: first row's)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="FILE.yaml",
                                      help="Output .yaml (default hw_models/<target>.yaml)."),
    quick: bool = typer.Option(False, "--quick", help="Small grid and few repetitions (a smoke test, not a calibration)."),
    save_csv: Optional[str] = typer.Option(None, "--save-csv", help="Also write the host measurements to this CSV."),
    ops: bool = typer.Option(True, "--ops/--no-ops", help="Host: also time the non-kernel ops (BatchNorm, ReLU, pooling, adds, input quantize/pack) in exported C programs (needs gcc and TensorFlow)."),
) -> None:
    """Measure the kernels here (or read a board's CSV), fit the cost model, write a profile."""
    for option, value in (("--out", out), ("--save-csv", save_csv)):
        if value is not None and Path(value).is_dir():
            raise UserError(f"{option}: {value!r} is a folder; allowed: a file path")
    import os

    from autoq.cost import calibrate as cal
    from autoq.cost.profile import dump_profile, profiles_dir

    if from_csv is not None:
        profile = cal.calibrate_from_csv(from_csv, target, base=base, variant=variant, counts=counts)
    elif target != "host":
        raise UserError(f"calibrate: --target {target!r} needs --from-csv FILE (only 'host' is measured here)")
    else:
        from rich.progress import Progress

        with Progress() as progress:
            task = progress.add_task("benchmarking kernels", total=None)
            profile = cal.calibrate_host(
                variant=variant or "opt", quick=quick, save_csv=save_csv, base=base, ops=ops,
                progress=lambda done, total: progress.update(task, completed=done, total=total))
    path = Path(out) if out else profiles_dir() / f"{target}.yaml"
    if not out and not os.access(path.parent, os.W_OK):
        raise UserError(f"calibrate: cannot write {path}; give --out FILE")
    dump_profile(profile, path)
    from rich.console import Console
    from rich.table import Table

    from rich.markup import escape

    table = Table(title=escape(f"fit quality of {profile.id} ({profile.cpu})"))
    for col in ("kind", "provenance", "points", "MAPE", "LOO", "coefficients"):
        table.add_column(col)
    for kind, k in profile.kernels.items():
        coeffs = ", ".join(f"{n}={v:.4g}" for n, v in k.coefficients.items())
        table.add_row(kind, k.provenance, str(k.points), _pct(k.mape), _pct(k.loo_mape), coeffs)
    for kind, k in profile.ops.items():
        coeffs = ", ".join(f"{n}={v:.4g}" for n, v in k.coefficients.items())
        table.add_row(f"op {kind}", k.provenance, str(k.points), _pct(k.mape), _pct(k.loo_mape), coeffs)
    Console().print(table)
    typer.echo(f"wrote {path}")

# --- pareto and export ---------------------------------------------------------------------


@app.command("pareto")
def pareto_cmd(
    run: Optional[str] = typer.Argument(None, help="Run folder written by `autoq search` (runs/NAME) or its study.db "
                                        "(or give --storage/--study)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Shared study storage URL the search used "
                                          "(postgresql://..., journal:///ABS/PATH.log, ...) instead of RUN."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name in --storage."),
    target: Optional[str] = typer.Option(None, "--target", "-t",
                                         help="Profile id or YAML: re-cost every trial for it (default: the search's first target)."),
    as_json: bool = typer.Option(False, "--json", help="Print the front as JSON."),
    csv_path: Optional[str] = typer.Option(None, "--csv", help="Write every trial (rank, costs, config) to this CSV."),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write a self-contained HTML report (plotly embedded)."),
    only_fitting: bool = typer.Option(False, "--only-fitting", help="Rank only trials that fit the target's memory."),
    recost: bool = typer.Option(False, "--recost", help="Ignore stored costs; re-estimate every trial from its LayerPlan."),
) -> None:
    """The Pareto front (accuracy, latency, flash, peak RAM, fits) with per-layer configs and hypervolume."""
    _check_output("--csv", csv_path)
    _check_output("--html", html_path)
    from autoq import pareto

    pf = pareto.pareto_front(run, target=target, only_fitting=only_fitting, recost=recost, storage=storage,
                             study_name=study)
    if csv_path:
        typer.echo(f"wrote {pareto.write_csv(pf, csv_path)}", err=as_json)
    if html_path:
        typer.echo(f"wrote {pareto.write_html(pf, html_path)}", err=as_json)
    if as_json:
        typer.echo(pareto.dumps(pf))
        return

    console = _wide_console()
    for table in pareto.render_table(pf):
        console.print(table)
    if pf.skipped:
        console.print(f"skipped {len(pf.skipped)} trials: " + "; ".join(f"#{n} {r}" for n, r in pf.skipped))


@app.command("export")
def export_cmd(
    run: Optional[str] = typer.Argument(None, help="Run folder written by `autoq search` (runs/NAME) or its study.db "
                                        "(or give --storage/--study)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Shared study storage URL the search used, instead of RUN."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name in --storage."),
    artifacts: Optional[str] = typer.Option(None, "--artifacts", help="Artifact folder holding the trained models "
                                            "(default: the one the search recorded on the trial)."),
    trial: int = typer.Option(..., "--trial", "-n", help="Trial number (see `autoq pareto`)."),
    target: Optional[str] = typer.Option(None, "--target", "-t",
                                         help="Profile id or YAML of the board (default: the search's first target)."),
    out: str = typer.Option(..., "--out", "-o", help="Output folder."),
    force: bool = typer.Option(False, "--force",
                               help="Export even if the model does not fit the target, or into a non-empty folder."),
    data_path: Optional[str] = typer.Option(None, "--data-path", help="Dataset location if the search used one."),
    skip_c: bool = typer.Option(False, "--no-c", help="Skip the C source (ONNX, .qbin and manifest only)."),
    c_kernels: str = typer.Option("opt", "--c-kernels",
                                  help="opt: optimised kernels + static scratch; ref: reference kernels, no scratch (least RAM)."),
) -> None:
    """Write model.onnx, model.qbin, model.h/model.c, manifest.json and the .keras model, verified against Keras."""
    _check_range("--trial", trial, 0, 10**9)
    from autoq.export.exporter import export_trial
    from autoq.pareto import run_targets

    target = target or run_targets(run, storage, study)[0]
    result = export_trial(run, trial, target, out, force=force, data_path=data_path, emit_c=not skip_c,
                          c_variant=c_kernels, storage=storage, study_name=study, artifacts=artifacts)
    for line in result.summary_lines():
        typer.echo(line)


@app.command("inspect")
def inspect_cmd(
    path: str = typer.Argument(..., help="A .qbin file written by `autoq export`."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Validate a .qbin file (CRCs, lengths, shapes) and list its layers; exit code 2 if it is damaged."""
    from autoq.export import qbin

    qf = qbin.read_qbin(path)
    rows = qbin.describe(qf)
    if as_json:
        _print_json({"path": qf.path, "version": qf.version, "bytes": qf.size, "meta": qf.meta, "layers": rows})
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # names and the path are user strings: escaped so that "[/x]" is printed, not parsed as markup
    table = Table(title=escape(f"{qf.path}: .qbin v{qf.version}, {qf.size:,} bytes, {len(rows)} layers, CRCs ok"))
    for col in ("layer", "op", "kind", "bits w/a", "shape OHWI", "stride pad", "codebook", "bias scale"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        book = r["codebook"] if r["codebook"] == "float" else f"{r['codebook']} ({r['levels']})"
        table.add_row(escape(str(r["name"])), r["op"], r["kind"], f"{r['weight_bits']}/{r['act_bits']}",
                      "x".join(map(str, r["shape_ohwi"])), f"{r['stride']} {r['padding']}", book,
                      f"{'yes' if r['bias'] else '-'} {'yes' if r['scale'] else '-'}")
    Console(width=max(Console().width, 120)).print(table)   # piped output: do not truncate the columns
    if qf.meta:
        typer.echo("meta: " + json.dumps(qf.meta))


# --- search ---------------------------------------------------------------------------------


@app.command("search")
def search_cmd(
    space: str = typer.Option(..., "--space", "-s",
                              help="Search-space YAML, or a shipped one: lenet5, vgg7, resnet20, squeezenet."),
    budget: str = typer.Option(..., "--budget", "-b",
                               help="Counted trials (40) or wall-clock time (20m, 90s, 1h30m)."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Target profile id or YAML (default: the space's)."),
    targets: Optional[str] = typer.Option(None, "--targets", help="Several targets, comma-separated: m4,a53,i5."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe (default) | nsga2 | random."),
    backend: str = typer.Option("local", "--backend", help="local (trials in this process) | ray (Ray Tune)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Parallel trials (ray backend)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Run folder (default runs/<space>-<targets>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out (after Ctrl-C or a crash)."),
    force: bool = typer.Option(False, "--force", help="Delete the run in --out and start over."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Sampler and training seed (default: the space's)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Fine-tuning epochs per trial (overrides the space)."),
    data: Optional[str] = typer.Option(None, "--data", help="A .npz (x_train, y_train, x_test, y_test) replacing the space's data source."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No live display: one line per finished "
                                     "trial (also when stdout is not a terminal)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Shared Optuna storage: postgresql://USER:PW@HOST/DB, "
                                          "mysql+pymysql://..., sqlite:///PATH.db or journal:///ABS/PATH.log; every "
                                          "process started with the same --storage and --study works on one study."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name in --storage (default: the run folder's name)."),
    artifacts: Optional[str] = typer.Option(None, "--artifacts", help="Folder of the artifact store for trained models "
                                            "and the float baseline (default OUT/artifacts; with --storage on several "
                                            "machines: a folder they all share)."),
    heartbeat: float = typer.Option(10.0, "--heartbeat", help="--storage: seconds between a worker's heartbeats; a "
                                    "worker silent for 4 of them is taken as stopped and its trial retried."),
) -> None:
    """Search per-layer quantization: Optuna study in OUT/study.db, thesis presets first, Pareto front at the end."""
    _check_range("--workers", workers, 1, MAX_WORKERS)
    _check_range("--seed", seed, 0, MAX_SEED)
    _check_range("--epochs", epochs, 1, MAX_EPOCHS)
    from rich.console import Console

    from autoq.search import run_search
    from autoq.search.command import front_tables, options_from_cli, result_line
    from autoq.search.progress import LiveProgress, TrialLines

    from autoq.search.lock import RunLock
    from autoq.search.storage import label as storage_label
    from autoq.search.study import check_run_folder

    opts = options_from_cli(space, budget, target, targets, sampler, backend, workers, address, out,
                            resume, force, seed, epochs, data, storage, study, artifacts, heartbeat)
    RunLock(opts.out_dir, shared=bool(opts.storage)).probe()     # refuse before announcing anything
    if not opts.storage:
        check_run_folder(opts.out_dir, opts.resume, opts.force, create=False)
    console = Console(soft_wrap=True)   # a log line stays one line in a pipe's 80 columns
    from rich.markup import escape

    from autoq.data import dataset_label

    data = dataset_label(opts.space.dataset, opts.space.data_path)
    screen = f"screen {opts.space.screen.epochs}" if opts.space.screen else "no screen"
    console.print(escape(f"search {opts.space.name}: {opts.space.model} on {data}, targets "
                         f"{', '.join(opts.targets)}, budget {opts.budget}, {opts.epochs} epochs ({screen}), sampler "
                         f"{opts.sampler}, backend {opts.backend}, run folder {opts.out_dir}"
                         + (f", study {opts.study} in {storage_label(opts.storage)}" if opts.storage else "")))
    if no_progress or not console.is_terminal:   # a log file, CI: one line per finished trial
        console.print("loading the data and the float baseline (trained once, then cached), then the trials")
        lines = TrialLines(opts.budget, lambda line: console.print(line, highlight=False, markup=False))
        result = run_search(opts, on_trial=lines.update)
    else:
        with LiveProgress(opts.budget, console) as live:
            result = run_search(opts, on_trial=live.update)
    console.print()
    console.print(result_line(result))
    if result.done:
        for table in front_tables(opts.out_dir, opts.targets, opts.storage, opts.study):
            _wide_console().print(table)
        where = f"--storage '{storage_label(opts.storage)}' --study {opts.study}" if opts.storage else opts.out_dir
        console.print(escape(f"per-layer configs, CSV, HTML: autoq pareto {where}"))
    if result.interrupted:
        shared = f" --storage '{storage_label(opts.storage)}' --study {opts.study}" if opts.storage else ""
        console.print(escape(f"continue with: autoq search --space {space} --budget {budget} --out {opts.out_dir}"
                             f"{shared} --resume"))
        raise typer.Exit(130)


@app.command("sensitivity")
def sensitivity_cmd(
    run: Optional[str] = typer.Argument(None, help="Run folder of `autoq search` (its space, seed and cache)."),
    space: Optional[str] = typer.Option(None, "--space", "-s", help="Search-space YAML or shipped name instead of RUN."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Training seed (default: the run's or the space's)."),
    data: Optional[str] = typer.Option(None, "--data", help="A .npz replacing the space's data source."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Per-layer sensitivity: validation-loss increase with only that layer quantized by each choice."""
    from rich.console import Console
    from rich.table import Table

    from autoq.search.command import sensitivity_table
    from autoq.search.sensitivity import format_rows

    result = sensitivity_table(run, space, seed, data)
    if as_json:
        _print_json(result)
        return
    table = Table(title=f"sensitivity of {result['model']} (float val loss {result['base_loss']:.4f}, "
                        f"{result['steps']} fine-tune steps per entry)", title_justify="left")
    for col in ("layer", "quantizes", "choice", "delta loss"):
        table.add_column(col, justify="right" if col == "delta loss" else "left")
    for row in format_rows(result):
        table.add_row(*row)
    Console(width=max(Console().width, 100)).print(table)


# --- models and training --------------------------------------------------------------------


@app.command("models")
def models_cmd(
    input_shape: Optional[str] = typer.Option(
        None, "--input-shape", help="H,W,C of the input (default: each model's reference input, where its "
                                    "published parameter count holds: 32,32,1 for lenet5, else 32,32,3)."),
    classes: int = typer.Option(10, "--classes", help="Number of classes."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the model zoo: parameters (conv/dense weights + biases), MACs, compute layers."""
    _check_range("--classes", classes, 1, MAX_CLASSES)
    from autoq.models import MODELS, PUBLISHED_PARAMS, REFERENCE_INPUT, build_model, model_stats

    given = _parse_shape(input_shape) if input_shape else None
    rows = []
    for name, info in MODELS.items():
        shape = given or REFERENCE_INPUT.get(name, (32, 32, 3))
        stats = model_stats(build_model(name, shape, classes))
        at_reference = shape == REFERENCE_INPUT.get(name, (32, 32, 3)) and classes == 10
        published = PUBLISHED_PARAMS.get(name) if at_reference else None
        rows.append({"name": name, "input_shape": list(shape), "params": stats["params"], "macs": stats["macs"],
                     "layers": stats["layers"], "published_params": published,
                     "recipe": info.recipe, "summary": info.summary})
    if as_json:
        _print_json({"input_shape": list(given) if given else None, "classes": classes, "models": rows})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"autoq models ({classes} classes)")
    for col in ("name", "input", "params", "MACs", "layers", "published", "recipe"):
        table.add_column(col, justify="left" if col in ("name", "recipe") else "right", no_wrap=True)
    for r in rows:
        table.add_row(r["name"], "x".join(map(str, r["input_shape"])), f"{r['params']:,}", f"{r['macs']:,}",
                      str(r["layers"]),
                      f"{r['published_params']:,}" if r["published_params"] else "-", r["recipe"])
    Console().print(table)


@app.command("train")
def train_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Zoo model (autoq models)."),
    dataset: str = typer.Option("digits", "--dataset", "-d",
                                help="digits | mnist | fashion_mnist | cifar10 | synthetic."),
    data: Optional[str] = typer.Option(None, "--data", help="Your own .npz (x_train, y_train, x_test, y_test)."),
    preset_name: Optional[str] = typer.Option(None, "--preset", "-p",
                                              help="base, bc, bc-stoch, bnn, drf-w, drf, drf-a2, drf-a4, twn, "
                                                   "bc-1.1, bc-1.2, bc-2.1, bc-2.2, hybrid, int8."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="QuantConfig JSON file."),
    shortcut: Optional[str] = typer.Option(None, "--shortcut", help="Residual shortcuts: quantized | float | removed."),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Epochs (baseline and fine-tune)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="adam | sgd (default: the model's)."),
    from_scratch: bool = typer.Option(False, "--from-scratch", help="Do not start from the float baseline."),
    seed: int = typer.Option(0, "--seed", help="Training seed."),
    threads: Optional[int] = typer.Option(None, "--threads", help="TensorFlow intra/inter-op threads."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Folder for model.keras, weights, result.json."),
    cache: Optional[str] = typer.Option(None, "--cache", help="Baseline cache (default $AUTOQ_CACHE/baselines "
                                                             "or ~/.cache/autoq/baselines)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Fine-tune a quantized model from its cached float baseline; report accuracy and size."""
    _check_range("--threads", threads, 1, MAX_THREADS)
    _check_range("--epochs", epochs, 1, MAX_EPOCHS)
    _check_range("--seed", seed, 0, MAX_SEED)
    from autoq.config import QuantConfig, preset
    from autoq.data import load_dataset
    from autoq.train import finetune

    if (preset_name is None) == (config is None):
        raise UserError("train: give exactly one of --preset NAME or --config FILE.json")
    cfg = preset(preset_name, model) if preset_name else QuantConfig.load(config)
    if shortcut is not None:
        cfg.shortcut = shortcut
        cfg.validate("--shortcut")
    ds = load_dataset(dataset, data_path=data, seed=0)
    res = finetune(model, ds, cfg, recipe, seed=seed, from_scratch=from_scratch, out_dir=out,
                   epochs=epochs, threads=threads, cache_dir=cache)
    summary = res.to_dict()
    if as_json:
        _print_json(summary)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"autoq train {model} on {ds.name} ({preset_name or config})")
        table.add_column("")
        table.add_column("value", justify="right")
        pct = lambda v: "-" if v is None else f"{100 * v:.2f} %"  # noqa: E731
        rows = [("status", res.status + (f": {res.reason}" if res.reason else "")),
                ("validation accuracy", pct(res.val_acc)), ("test accuracy", pct(res.test_acc)),
                ("packed weight bytes", f"{res.packed_weight_bytes:,}" if res.packed_weight_bytes else "-"),
                ("float32 weight bytes", f"{res.float_weight_bytes:,}" if res.float_weight_bytes else "-"),
                ("compression vs float", f"{res.compression:.2f}x" if res.compression else "-"),
                ("epochs", str(res.epochs_run)), ("start", "from scratch" if from_scratch else "float baseline"),
                ("seconds", f"{res.seconds:.1f}"), ("model", res.model_path or "-")]
        for k, v in rows:
            table.add_row(k, v)
        Console().print(table)
    if res.status != "ok":
        raise typer.Exit(1)

# --- kernels ------------------------------------------------------------------------------


@app.command("bench-kernels")
def bench_kernels_cmd(
    shape: Optional[list[str]] = typer.Option(
        None, "--shape", help="c_in,c_out,h,w,f,stride,pad (pad valid|same); repeatable. "
        "Default: 64,64,16,16,3,1,same and the thesis setting 3,8,16,16,{3,4,5},1,valid."),
    kinds: Optional[str] = typer.Option(None, "--kinds", help="Comma-separated kinds (f32,lut,shift,xnor,and,int8)."),
    variants: str = typer.Option("ref,opt", "--variants", help="Comma-separated variants."),
    reps: int = typer.Option(20, "--reps", help="Timed calls per record (after 3 warm-up calls)."),
    as_json: bool = typer.Option(False, "--json", help="JSON records instead of CSV."),
) -> None:
    """Time the compiled C kernels here (single thread); prints the measurements CSV.

    Columns: kind,bits,variant,c_in,c_out,h,w,f,stride,pad,macs,ns_median,ns_min."""
    _check_range("--reps", reps, 1, 100_000)
    from autoq import kernels

    known = sorted({v for _, v in kernels.VARIANTS})
    for v in variants.split(","):
        if v not in known:
            raise UserError(f"--variants: got {v!r}; allowed: {', '.join(known)} (comma-separated)")
    shapes = [kernels.parse_shape(s) for s in shape] if shape else None
    records = kernels.run_bench(shapes, kinds.split(",") if kinds else None,
                                tuple(variants.split(",")), reps=reps)
    rows = [{f: getattr(r, f) for f in kernels.BenchRecord.FIELDS} for r in records]
    if as_json:
        _print_json(rows)
        return
    typer.echo(",".join(kernels.BenchRecord.FIELDS))
    for r in rows:
        typer.echo(",".join(f"{r[f]:.0f}" if f.startswith("ns_") else str(r[f]) for f in kernels.BenchRecord.FIELDS))


cli_help.use_conventions(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: every expected failure (bad input, a missing or unreadable
    file, input nested too deeply, out of memory) prints one line ``error: ...`` and exits
    with code 2; anything else is a bug and keeps its traceback."""
    try:  # not standalone: typer's (vendored Click) usage errors come here and print as one line
        code = app(args=argv, prog_name="autoq", standalone_mode=False)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except typer.TyperException as exc:  # bad command line: say where the help is
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "autoq"
        typer.echo(f"error: {where}: {_error_line(exc)}; see '{where} -h'", err=True)
        sys.exit(2)
    except (UserError, OSError, UnicodeError, RecursionError, MemoryError) as exc:
        typer.echo(f"error: {_error_line(exc)}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)  # typer.Exit(code) returns it when not standalone


def _error_line(exc: BaseException) -> str:
    """The one-line message of an expected failure."""
    if isinstance(exc, UserError):
        text = str(exc)
    elif isinstance(exc, typer.TyperException):
        text = exc.format_message().rstrip(".")
    elif isinstance(exc, OSError):
        text = f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    elif isinstance(exc, RecursionError):
        text = "input nested too deeply (allowed: at most 32 levels)"
    elif isinstance(exc, MemoryError):
        text = "out of memory (check the input's sizes and label range)"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


if __name__ == "__main__":
    main()
