"""A plain (non-editable) wheel install finds the resource folders and answers --help without TF."""
from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-w", str(tmp / "dist"), "-q"], check=True, cwd=tmp)
    wheels = list((tmp / "dist").glob("autoq-*.whl"))
    assert len(wheels) == 1, wheels
    env_dir = tmp / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                    str(wheels[0])], check=True, cwd=tmp)
    return python, tmp


def run_outside_checkout(python, tmp, code):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(python), "-c", code], check=True, cwd=tmp, env=env, capture_output=True,
                          text=True).stdout


def test_wheel_ships_resource_folders(installed_venv):
    python, tmp = installed_venv
    out = run_outside_checkout(python, tmp, (
        "import autoq, autoq.resources as r\n"
        "print(autoq.__file__)\n"
        "for name in ('search_spaces', 'hw_models', 'kernels'):\n"
        "    d = r.resource_dir(name)\n"
        "    print(name, d, sorted(p.name for p in d.iterdir())[:50])\n"))
    lines = out.splitlines()
    assert "site-packages" in lines[0], f"imported from the checkout, not the wheel: {lines[0]}"
    for line in lines[1:]:
        assert "site-packages" in line, line
    hw = next(line for line in lines if line.startswith("hw_models"))
    for expected in ("m4.yaml", "a53.yaml", "i5.yaml"):
        assert expected in hw, f"{expected} missing from the installed hw_models: {hw}"
    assert ".yaml" in next(line for line in lines if line.startswith("search_spaces"))
    assert "include" in next(line for line in lines if line.startswith("kernels"))


def test_cli_help_is_fast_and_tf_free(installed_venv):
    python, tmp = installed_venv
    out = run_outside_checkout(python, tmp, (
        "import sys\nfrom typer.testing import CliRunner\nfrom autoq.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['quantizers', '--json'])\nassert r.exit_code == 0, r.output\n"
        "print('tensorflow' in sys.modules)\n"))
    assert out.strip() == "False"
