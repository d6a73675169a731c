"""Help-text conventions of the `autoq` command line (kept apart from the commands in cli.py).

- Commands are listed in workflow order (search, pareto, export first), each with its full
  one-line summary (the first paragraph of its docstring), never cut.
- Option values are shown with a metavar (`--target ID|FILE`, `--epochs N`), flags without
  one; positional arguments by their upper-case name (`autoq pareto [OPTIONS] RUN`).
- `-h` is accepted next to `--help` everywhere.
- Plain (non-rich) help: it renders without Rich's markdown machinery, so `autoq --help` and
  `autoq CMD --help` answer in a fraction of a second, and TensorFlow is never imported.
"""
from __future__ import annotations

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

# The order a new user runs the commands in; commands not listed follow in definition order.
WORKFLOW_ORDER = ("search", "pareto", "export", "inspect", "train", "cost", "models", "quantizers",
                  "targets", "calibrate", "bench-kernels")

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

# Metavars of options whose value is not described by its name (an explicit metavar= on an
# option wins); all others: N for integers, else the option's name in upper case.
METAVARS = {
    "--space": "NAME|FILE", "--target": "ID|FILE", "--targets": "ID,ID,...", "--budget": "N|DURATION",
    "--sampler": "nsga2|tpe|random", "--backend": "local|ray", "--address": "HOST:PORT",
    "--out": "DIR", "--csv": "FILE", "--html": "FILE", "--config": "FILE.json", "--plan": "FILE.json",
    "--data": "FILE.npz", "--data-path": "FILE", "--cache": "DIR", "--from-csv": "FILE",
    "--counts": "FILE.csv", "--save-csv": "FILE", "--base": "ID|FILE", "--input-shape": "H,W,C",
    "--c-kernels": "opt|ref", "--shape": "C_IN,C_OUT,H,W,F,STRIDE,PAD", "--kinds": "KIND,...",
    "--variants": "VARIANT,...", "--model": "NAME", "--preset": "NAME", "--dataset": "NAME",
    "--recipe": "adam|sgd", "--shortcut": "quantized|float|removed", "--variant": "ref|opt",
    "--storage": "URL", "--study": "NAME", "--artifacts": "DIR|s3://BUCKET", "--heartbeat": "SECONDS",
}


def default_metavar(param: TyperOption | TyperArgument) -> str:
    long_names = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
    if isinstance(param, TyperOption) and long_names and long_names[0] in METAVARS:
        return METAVARS[long_names[0]]
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if annotation is int:
        return "N"
    return (long_names[0][2:] if long_names else param.name or "value").upper().replace("_", "-")


class _FastHelp:
    """The help flag defaults to False, not None: Typer then skips its value coercion, whose
    first use imports pydantic (about 0.3 s) on every `autoq CMD --help`."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option


class Command(_FastHelp, TyperCommand):
    """A command whose help shows metavars instead of `<str>`/`<bool>` and `RUN`, not `{run}`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            is_flag = isinstance(param, TyperOption) and (param.is_flag or param.count)
            if param.metavar is None and not is_flag:
                param.metavar = default_metavar(param)

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.params:
            if isinstance(param, TyperArgument):
                name = param.metavar + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx, formatter) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            if getattr(param, "hidden", False):
                continue
            if isinstance(param, TyperArgument):
                arguments.append((param.metavar, param.help or ""))
            else:
                record = param.get_help_record(ctx)
                if record is not None:
                    options.append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)


class Group(_FastHelp, TyperGroup):
    """The root command: commands in workflow order, with full summaries."""

    def list_commands(self, ctx) -> list[str]:
        names = list(self.commands)
        ordered = [n for n in WORKFLOW_ORDER if n in names]
        return ordered + [n for n in names if n not in ordered]

    def format_commands(self, ctx, formatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, summary(cmd)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def summary(cmd) -> str:
    """The first paragraph of a command's help, joined into one line (wrapped, never cut)."""
    text = cmd.short_help or cmd.help or ""
    return " ".join(text.strip().split("\n\n")[0].split())


def use_conventions(app) -> None:
    """Give every command registered on `app` the Command class (call after the last command)."""
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = Command
