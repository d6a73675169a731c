"""The `autoq` command line. Thin: parse options, call the library, print.

Heavy modules (TensorFlow, Optuna, ONNX) are imported inside the commands that need them so
that `autoq --help` and the inspection commands answer quickly.
"""
from __future__ import annotations

import json
import sys
from typing import Optional

import typer


from autoq import cli_board, cli_help
from autoq.cli_common import _check_output, _check_range, _parse_shape, _print_json, _wide_console
from autoq.errors import UserError
from autoq.limits import MAX_CLASSES, MAX_EPOCHS, MAX_SEED, MAX_THREADS, MAX_WORKERS
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
    artifacts: Optional[str] = typer.Option(None, "--artifacts", help="Artifact store holding the trained models: "
                                            "a folder or s3://BUCKET (default: the one the search recorded on the trial)."),
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
    from autoq.search.records import run_targets

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
    artifacts: Optional[str] = typer.Option(None, "--artifacts", help="Artifact store for trained models and the float "
                                            "baseline: a folder (default OUT/artifacts; with --storage on several machines "
                                            "one they all share) or s3://BUCKET (S3, MinIO: pip install 'autoq[s3]')."),
    heartbeat: float = typer.Option(10.0, "--heartbeat", help="--storage: seconds between a worker's heartbeats; a "
                                    "worker silent for 4 of them is taken as stopped and its trial retried."),
) -> None:
    """Search per-layer quantization: Optuna study in OUT/study.db, thesis presets first, Pareto front at the end."""
    _check_range("--workers", workers, 1, MAX_WORKERS)
    _check_range("--seed", seed, 0, MAX_SEED)
    _check_range("--epochs", epochs, 1, MAX_EPOCHS)
    from rich.console import Console

    from autoq.search.command import options_from_cli
    from autoq.search.lock import RunLock
    from autoq.search.study import check_run_folder

    opts = options_from_cli(space, budget, target, targets, sampler, backend, workers, address, out,
                            resume, force, seed, epochs, data, storage, study, artifacts, heartbeat)
    RunLock(opts.out_dir, shared=bool(opts.storage)).probe()     # refuse before announcing anything
    if not opts.storage:
        check_run_folder(opts.out_dir, opts.resume, opts.force, create=False)
    console = Console(soft_wrap=True)   # a log line stays one line in a pipe's 80 columns
    console.print(_search_heading(opts))
    result = _search_with_display(opts, console, plain=no_progress or not console.is_terminal)
    _print_search_end(console, opts, result, f"--space {space} --budget {budget}")


def _search_heading(opts) -> str:
    """One line: what is searched, on what, for which targets, where it is stored."""
    from rich.markup import escape

    from autoq.data import dataset_label
    from autoq.search.storage import label as storage_label

    data = dataset_label(opts.space.dataset, opts.space.data_path)
    screen = f"screen {opts.space.screen.epochs}" if opts.space.screen else "no screen"
    return escape(f"search {opts.space.name}: {opts.space.model} on {data}, targets "
                  f"{', '.join(opts.targets)}, budget {opts.budget}, {opts.epochs} epochs ({screen}), sampler "
                  f"{opts.sampler}, backend {opts.backend}, run folder {opts.out_dir}"
                  + (f", study {opts.study} in {storage_label(opts.storage)}" if opts.storage else ""))


def _search_with_display(opts, console, plain: bool):
    """Run the search with the live display, or (plain: a log file, CI) one line per finished trial."""
    from autoq.search import run_search
    from autoq.search.progress import LiveProgress, TrialLines

    if plain:
        console.print("loading the data and the float baseline (trained once, then cached), then the trials")
        lines = TrialLines(opts.budget, lambda line: console.print(line, highlight=False, markup=False))
        return run_search(opts, on_trial=lines.update)
    with LiveProgress(opts.budget, console) as live:
        return run_search(opts, on_trial=live.update)


def _print_search_end(console, opts, result, space_and_budget: str) -> None:
    """The result line, the fronts, where to look next; exit 130 with the --resume command if stopped."""
    from rich.markup import escape

    from autoq.pareto import front_tables
    from autoq.search.command import result_line
    from autoq.search.storage import label as storage_label

    console.print()
    console.print(result_line(result))
    if result.done:
        for table in front_tables(opts.out_dir, opts.targets, opts.storage, opts.study):
            _wide_console().print(table)
        where = f"--storage '{storage_label(opts.storage)}' --study {opts.study}" if opts.storage else opts.out_dir
        console.print(escape(f"per-layer configs, CSV, HTML: autoq pareto {where}"))
    if result.interrupted:
        shared = f" --storage '{storage_label(opts.storage)}' --study {opts.study}" if opts.storage else ""
        console.print(escape(f"continue with: autoq search {space_and_budget} --out {opts.out_dir}"
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


# the board commands live in cli_board.py (help lists commands in WORKFLOW_ORDER, not this order)
app.command("targets")(cli_board.targets_cmd)
app.command("cost")(cli_board.cost_cmd)
app.command("calibrate")(cli_board.calibrate_cmd)
app.command("bench-kernels")(cli_board.bench_kernels_cmd)
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
