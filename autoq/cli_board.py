"""The board commands of `autoq`: targets, cost, calibrate, bench-kernels (registered in cli.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from autoq.errors import UserError
from autoq.limits import MAX_CLASSES

from autoq.cli_common import _check_range, _parse_shape, _print_json


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

    from autoq.cost.counts import priced_by_cycles, shipped_validation

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
    from autoq.export.planning import plan_from_model
    from autoq.models.zoo import build_model

    return plan_from_model(build_model(model, shape, num_classes, qconfig))


def _read_text(path: str, what: str = "file") -> str:
    from autoq.fileio import read_text

    return read_text(path, what)


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
    from autoq.cost.bench import parse_shape, run_bench
    from autoq.cost.measurements import CSV_FIELDS
    from autoq.kernels import VARIANTS

    known = sorted({v for _, v in VARIANTS})
    for v in variants.split(","):
        if v not in known:
            raise UserError(f"--variants: got {v!r}; allowed: {', '.join(known)} (comma-separated)")
    shapes = [parse_shape(s) for s in shape] if shape else None
    records = run_bench(shapes, kinds.split(",") if kinds else None, tuple(variants.split(",")), reps=reps)
    rows = [{f: getattr(r, f) for f in CSV_FIELDS} for r in records]
    if as_json:
        _print_json(rows)
        return
    typer.echo(",".join(CSV_FIELDS))
    for r in rows:
        typer.echo(",".join(f"{r[f]:.0f}" if f.startswith("ns_") else str(r[f]) for f in CSV_FIELDS))
