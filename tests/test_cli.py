"""Command-line conventions a new user relies on: --version, -h, metavars, workflow order, full
summaries, defaults from the shipped space / the run, messages in the right order, and one
line per finished trial when the output is not a terminal."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoq.cli import app
from autoq.cli_help import WORKFLOW_ORDER

REPO = Path(__file__).resolve().parent.parent


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def command_names() -> list[str]:
    from typer.main import get_command

    return list(get_command(app).commands)


def test_version_and_short_help_exit_0():
    from autoq import __version__

    res = invoke("--version")
    assert res.exit_code == 0 and res.output.strip() == f"autoq {__version__}"
    res = invoke("-h")
    assert res.exit_code == 0 and "Usage:" in res.output


def test_root_help_lists_every_command_in_workflow_order_with_full_summaries():
    out = invoke("--help").output
    listed = re.findall(r"^  ([a-z][a-z-]+)  ", out.split("Commands:")[1], re.M)
    assert listed[:3] == ["search", "pareto", "export"]
    assert sorted(listed) == sorted(command_names())
    assert [n for n in WORKFLOW_ORDER if n in listed] == [n for n in listed if n in WORKFLOW_ORDER]
    commands = out.split("Commands:")[1]
    assert "…" not in commands and "..." not in commands  # summaries are wrapped, never cut
    assert "ns_median,ns_min" not in out                 # second paragraphs stay in `CMD --help`


@pytest.mark.parametrize("name", sorted(WORKFLOW_ORDER))
def test_command_help_shows_metavars_not_types(name):
    res = invoke(name, "-h")
    assert res.exit_code == 0, res.output
    for bad in ("<bool>", "<str>", "<int>", "{run}", "{path}"):
        assert bad not in res.output, (bad, res.output)
    assert re.search(r"^  -h, --help", res.output, re.M)


def test_positional_argument_is_shown_upper_case():
    out = invoke("pareto", "--help").output
    assert re.search(r"Usage: .* pareto \[OPTIONS\] \[RUN\]$", out, re.M)   # RUN or --storage/--study
    assert "--target ID|FILE" in out and "--csv FILE" in out and "--json " in out


def test_help_does_not_import_tensorflow_or_pydantic():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom autoq.cli import app\n"
            "for args in (['--help'], ['search', '-h'], ['export', '--help']):\n"
            "    assert CliRunner().invoke(app, args).exit_code == 0\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'optuna', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_cost_defaults_to_the_shipped_spaces_input():
    from autoq.space import shipped_input_shape

    assert shipped_input_shape("lenet5") == (8, 8, 1)      # search_spaces/lenet5.yaml: digits
    assert shipped_input_shape("resnet20") == (32, 32, 3)
    assert shipped_input_shape("resnet32") == (32, 32, 3)  # no shipped space: the reference input
    res = invoke("cost", "--model", "lenet5", "--preset", "base", "--target", "m4", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["plan"]["input_shape"] == [8, 8, 1]


def test_models_lists_each_model_at_its_reference_input():
    res = invoke("models", "--json")
    rows = {r["name"]: r for r in json.loads(res.output)["models"]}
    assert rows["lenet5"]["input_shape"] == [32, 32, 1] and rows["lenet5"]["params"] == 61_706
    assert rows["lenet5"]["published_params"] == 61_706
    assert rows["resnet20"]["input_shape"] == [32, 32, 3]
    assert rows["resnet20"]["params"] == rows["resnet20"]["published_params"]


# --- search: messages in order, one line per trial ---------------------------------------------


def test_search_refuses_an_existing_run_before_announcing_it(tmp_path):
    from test_search import FakeSteps, opts

    from autoq.search import run_search

    run_search(opts(tmp_path, budget=1), steps_factory=lambda o: FakeSteps())
    res = invoke("search", "--space", "lenet5", "--budget", "2", "--out", str(tmp_path / "run"))
    assert "already holds a search" in str(res.exception)
    assert res.output == ""                   # nothing announced ("search lenet5: ..."), nothing loaded


def test_trial_lines_print_one_line_per_finished_trial(tmp_path):
    from test_search import FakeSteps, make_space, opts

    from autoq.search import Budget, run_search
    from autoq.search.progress import TrialLines

    printed: list[str] = []
    lines = TrialLines(Budget(trials=6), printed.append)
    space = make_space(presets=["base", "bc"])
    run_search(opts(tmp_path, budget=6, space=space), steps_factory=lambda o: FakeSteps(), on_trial=lines.update)
    assert len(printed) == 6
    assert printed[0].startswith("[1/6] trial 0 ok (preset base): accuracy ")
    assert printed[1].startswith("[2/6] trial 1 ok (preset bc): accuracy ")
    for i, line in enumerate(printed):
        assert line.startswith(f"[{i + 1}/6] trial {i} "), line
        assert re.search(r"latency@m4 [\d.]+, flash@m4 [\d,]+; [\d.]+ s$", line), line


def test_trial_lines_do_not_repeat_an_earlier_sessions_trials(tmp_path):
    from test_search import FakeSteps, opts

    from autoq.search import Budget, run_search
    from autoq.search.progress import TrialLines

    run_search(opts(tmp_path, budget=2), steps_factory=lambda o: FakeSteps())
    printed: list[str] = []
    lines = TrialLines(Budget(trials=4), printed.append)
    run_search(opts(tmp_path, budget=4, resume=True), steps_factory=lambda o: FakeSteps(), on_trial=lines.update)
    assert [line.split(" trial ")[0] for line in printed] == ["[3/4]", "[4/4]"]
    assert " trial 2 " in printed[0] and " trial 3 " in printed[1]


def test_study_names_its_objectives_with_units(tmp_path):
    import optuna
    from test_search import FakeSteps, load, opts

    from autoq.search import run_search
    from autoq.search.study import metric_names

    assert metric_names(["accuracy", "latency@m4", "flash@m4", "ram@a53"]) == [
        "accuracy", "latency@m4 ms", "flash@m4 B", "ram@a53 B"]
    run_search(opts(tmp_path, budget=1), steps_factory=lambda o: FakeSteps())
    study = load(tmp_path)
    assert study.metric_names == ["accuracy", "latency@m4 ms", "flash@m4 B"]
    assert isinstance(study, optuna.Study)


def test_search_with_a_data_file_stores_its_resolved_path_once_and_labels_by_it(tmp_path, monkeypatch):
    import numpy as np
    from test_search import FakeSteps, load, make_space, opts

    from autoq.search import run_search

    np.savez(tmp_path / "scans.npz", x_train=np.zeros((4, 8, 8)), y_train=np.arange(4) % 2,
             x_test=np.zeros((2, 8, 8)), y_test=np.arange(2) % 2)
    monkeypatch.chdir(tmp_path)
    space = make_space(dataset="cifar10", data_path="scans.npz")
    run_search(opts(tmp_path, budget=1, space=space), steps_factory=lambda o: FakeSteps())
    stored = load(tmp_path).user_attrs["space"]
    assert stored["data_path"] == str(tmp_path / "scans.npz")        # absolute: export finds it anywhere


@pytest.mark.parametrize("space", ["vgg7", "resnet20", "squeezenet"])
def test_epochs_1_on_the_shipped_screened_spaces_turns_the_screen_off(space, tmp_path):
    from autoq.search.command import options_from_cli

    assert options_from_cli(space, "4", out=str(tmp_path / "a")).space.screen is not None
    opts = options_from_cli(space, "4", out=str(tmp_path / "b"), epochs=1)
    assert opts.epochs == 1 and opts.space.screen is None


@pytest.mark.parametrize("argv,where,detail", [
    (["search", "--bogus"], "autoq search", "No such option: --bogus"),
    (["inspect"], "autoq inspect", "Missing argument 'PATH'"),
    (["nosuch"], "autoq", "No such command 'nosuch'"),
    (["search", "--workers", "abc"], "autoq search", "Invalid value for '--workers'"),
])
def test_usage_errors_are_one_line_exit_2(capsys, argv, where, detail):
    """A mistyped command line gets the same one-line `error:` as bad input, and the help's name."""
    from autoq import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert err.startswith(f"error: {where}: ") and detail in err and err.count("\n") == 1, err
    assert err.rstrip().endswith(f"see '{where} -h'"), err
