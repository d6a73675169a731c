"""A plain (non-editable) wheel install finds the resource folders and answers --help without TF.

The nested environment sees the packages of the environment running the tests (a venv, or a
global install as in some CI images): its site-packages folders are listed in a .pth file. A
venv with ``system_site_packages=True`` would instead inherit the *base* interpreter's
packages, which lack autoq's dependencies when the tests run in a venv.
"""
from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run that fails the test with the command's stdout and stderr shown."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {' '.join(map(str, cmd))}\n"
                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def running_site_dirs() -> list[str]:
    """The site-packages folders of the interpreter running the tests (never the checkout)."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dirs if Path(d).is_dir() and Path(d).resolve() != ROOT]


def nested_venv(env_dir: Path, wheel: Path | None = None) -> Path:
    """A venv without pip, with `wheel` installed, that imports the running environment's
    packages after its own."""
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    if wheel is not None:   # before the .pth: pip must not see the outer environment's autoq
        run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel],
            env=env_without_checkout())
    own_site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # Plain path lines, not site.addsitedir: the outer environment's own .pth files (an
    # editable install of autoq pointing at the checkout) stay inactive.
    (Path(own_site) / "_outer_environment.pth").write_text("".join(d + "\n" for d in running_site_dirs()))
    return python


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation",
         "-w", tmp / "dist", "-q"], cwd=tmp)
    wheels = list((tmp / "dist").glob("autoq-*.whl"))
    assert len(wheels) == 1, wheels
    python = nested_venv(tmp / "venv", wheels[0])
    return python, tmp


def env_without_checkout() -> dict[str, str]:
    """The environment minus PYTHONPATH (which may point at the checkout, or its egg-info)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run_outside_checkout(python, tmp, code):
    return run([python, "-c", code], cwd=tmp, env=env_without_checkout()).stdout


def test_nested_venv_sees_the_running_environment(tmp_path):
    python = nested_venv(tmp_path / "venv")
    out = run_outside_checkout(python, tmp_path, "import typer, numpy, sys; print(sys.prefix)")
    assert out.strip() == str(tmp_path / "venv")


def test_failing_subprocess_shows_its_stderr():
    with pytest.raises(AssertionError, match="(?s)stderr.*ZeroDivisionError"):
        run([sys.executable, "-c", "1/0"])


def test_wheel_ships_resource_folders(installed_venv):
    python, tmp = installed_venv
    out = run_outside_checkout(python, tmp, (
        "import autoq, autoq.resources as r\n"
        "print(autoq.__file__)\n"
        "for name in ('search_spaces', 'hw_models', 'kernels'):\n"
        "    d = r.resource_dir(name)\n"
        "    print(name, d, sorted(p.name for p in d.iterdir())[:50])\n"))
    lines = out.splitlines()
    venv_dir = str(tmp / "venv")
    assert lines[0].startswith(venv_dir), f"imported from elsewhere, not the wheel: {lines[0]}"
    for line in lines[1:]:
        assert venv_dir in line, line
    hw = next(line for line in lines if line.startswith("hw_models"))
    for expected in ("m4.yaml", "a53.yaml", "i5.yaml"):
        assert expected in hw, f"{expected} missing from the installed hw_models: {hw}"
    assert ".yaml" in next(line for line in lines if line.startswith("search_spaces"))
    assert "include" in next(line for line in lines if line.startswith("kernels"))


def test_cli_help_is_fast_and_tf_free(installed_venv):
    python, tmp = installed_venv
    out = run_outside_checkout(python, tmp, (
        "import sys\nfrom typer.testing import CliRunner\nfrom autoq.cli import app\n"
        "for args in (['--help'], ['-h'], ['--version'], ['search', '--help'], ['export', '-h'],\n"
        "             ['quantizers', '--json']):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    assert r.exit_code == 0, (args, r.output)\n"
        "print('tensorflow' in sys.modules)\n"))
    assert out.strip() == "False"
