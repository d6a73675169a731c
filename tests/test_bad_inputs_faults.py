"""Faults and untrusted files beyond the one-line-error suite (test_bad_inputs.py): a crafted
CIFAR-10 pickle does not run, atomic writes keep the old file on failure, a kill -9 during the
float baseline can be resumed, model_host refuses NaN/inf and partial samples, rich markup in
user strings is printed literally."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from autoq.errors import UserError

REPO = Path(__file__).resolve().parent.parent


# --- CIFAR-10: no pickle can run code --------------------------------------------------------


class _Touch:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_cifar(root: Path, batch_bytes) -> Path:
    folder = root / "datasets" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(batch_bytes(name))
    return folder


def _batch(labels=range(10), protocol=2) -> bytes:
    data = np.random.default_rng(0).integers(0, 256, (len(list(labels)), 3072), dtype=np.uint8)
    return pickle.dumps({b"data": data, b"labels": list(labels), b"filenames": [b"f"] * len(data),
                         b"batch_label": b"batch"}, protocol=protocol)


@pytest.mark.parametrize("payload", ["data", "labels", "top"])
def test_crafted_cifar_pickle_does_not_execute(tmp_path, monkeypatch, payload):
    from autoq.data import load_cifar10

    marker = tmp_path / "PWNED"

    def batch(name):
        if name != "test_batch":
            return _batch()
        evil = _Touch(marker)
        return pickle.dumps(evil if payload == "top" else {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0],
                                                           payload.encode(): evil}, protocol=2)

    _write_cifar(tmp_path, batch)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(UserError, match="test_batch.*refused global posix.system"):
        load_cifar10()
    assert not marker.exists()
    # the marker WOULD be created by a plain pickle.load: the payload is live
    with open(tmp_path / "datasets" / "cifar-10-batches-py" / "test_batch", "rb") as fh:
        pickle.load(fh)
    assert marker.exists()


def test_crafted_cifar_pickle_through_the_cli_exits_2(tmp_path):
    marker = tmp_path / "PWNED"
    _write_cifar(tmp_path, lambda name: pickle.dumps({b"data": _Touch(marker)}, protocol=2))
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "PYTHONPATH": str(REPO), "AUTOQ_CACHE": str(tmp_path / "c")}
    proc = subprocess.run([sys.executable, "-m", "autoq.cli", "train", "--model", "tiny", "--dataset", "cifar10",
                           "--preset", "base", "--epochs", "1", "--out", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "refused global" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_genuine_cifar_batches_load(tmp_path, monkeypatch, protocol):
    from autoq.data import load_cifar10

    _write_cifar(tmp_path, lambda name: _batch(protocol=protocol))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    ds = load_cifar10()
    assert ds.input_shape == (32, 32, 3) and ds.num_classes == 10


def test_python2_style_cifar_batch_loads(tmp_path, monkeypatch):
    """The official files were pickled by Python 2 + NumPy 1 (module numpy.core.multiarray)."""
    from autoq.data import load_cifar10

    def batch(name):
        data = _batch()
        return data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")

    assert b"numpy._core.multiarray" in _batch()
    _write_cifar(tmp_path, batch)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert load_cifar10().num_classes == 10


def test_cifar_binary_version_is_preferred(tmp_path, monkeypatch):
    from autoq.data import load_cifar10

    folder = tmp_path / "datasets" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = rng.integers(0, 256, (10, 3073), dtype=np.uint8)
        rec[:, 0] = np.arange(10)
        rec.tofile(folder / name)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    ds = load_cifar10()
    assert ds.x_test.shape == (10, 32, 32, 3) and list(ds.y_test) == list(range(10))
    expected = rec[3, 1:].reshape(3, 32, 32).transpose(1, 2, 0) / 255.0  # CHW -> HWC
    assert np.allclose(ds.x_test[3], expected)


def test_no_pickle_load_in_the_package():
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "autoq").rglob("*.py")
                 if "pickle.load(" in p.read_text() or "allow_pickle=True" in p.read_text()]
    assert offenders == []


# --- atomic writes: a failed write keeps the old file ------------------------------------------


def test_atomic_write_keeps_the_old_file_when_replace_fails(tmp_path, monkeypatch):
    from autoq import fileio

    target = tmp_path / "profile.yaml"
    target.write_text("old\n")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", boom)
    with pytest.raises(UserError, match="profile.yaml: cannot write: No space left"):
        fileio.atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.yaml"]  # no temp file left


def test_atomic_write_into_a_missing_folder_is_a_user_error(tmp_path):
    from autoq.fileio import atomic_write_text

    with pytest.raises(UserError, match="does not exist"):
        atomic_write_text(tmp_path / "nope" / "x.txt", "x")
    assert not (tmp_path / "nope").exists()


def test_invalid_profile_never_replaces_a_good_one(tmp_path):
    from autoq.cost.profile import dump_profile, load_profile

    good = REPO / "hw_models" / "m4.yaml"
    path = tmp_path / "m4.yaml"
    shutil.copy(good, path)
    profile = load_profile(path)
    profile.overhead_ns = -1.0
    with pytest.raises(UserError, match="overhead_ns"):
        dump_profile(profile, path)
    assert path.read_bytes() == good.read_bytes()


# --- kill -9 during the float baseline, then --resume -----------------------------------------

KILL_IN_PREPARE = textwrap.dedent("""
    import sys, time, importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("ts", {test!r})
    ts = importlib.util.module_from_spec(spec); spec.loader.exec_module(ts)
    from autoq.search import run_search

    class Slow(ts.FakeSteps):
        def prepare(self):  # stands in for the float-baseline training
            Path({flag!r}).write_text("training the baseline")
            time.sleep(120)

    run_search(ts.opts(Path({tmp!r}), budget=4), steps_factory=lambda _: Slow())
""")


def test_resume_after_kill_9_during_the_baseline_continues(tmp_path):
    from autoq.search import run_search
    from autoq.search.study import count_done

    sys.path.insert(0, str(REPO / "tests"))
    import test_search as ts

    flag = tmp_path / "preparing"
    script = KILL_IN_PREPARE.format(test=str(REPO / "tests" / "test_search.py"), flag=str(flag), tmp=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not flag.exists():
        time.sleep(0.1)
    assert flag.exists() and proc.poll() is None, "the search never reached the baseline"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "study.db").exists()       # killed before the study existed
    res = run_search(ts.opts(tmp_path, budget=4, resume=True), steps_factory=lambda _: ts.FakeSteps())
    assert res.done == 4 and res.presets_enqueued           # started as a fresh run, presets first
    assert count_done(ts.load(tmp_path)) == 4


def test_resume_of_a_folder_that_never_held_a_run_is_still_refused(tmp_path):
    from autoq.search import run_search

    sys.path.insert(0, str(REPO / "tests"))
    import test_search as ts

    (tmp_path / "run").mkdir()
    with pytest.raises(UserError, match="no search to resume"):
        run_search(ts.opts(tmp_path, budget=2, resume=True), steps_factory=lambda _: ts.FakeSteps())


# --- model_host (the exported C host program) ---------------------------------------------------


@pytest.fixture(scope="module")
def model_host(tmp_path_factory) -> Path:
    """The emitted main.c (autoq.export.c_emit.host_main) linked with a stub model: 4 inputs,
    2 outputs = (sum, -sum)."""
    from autoq.export.c_emit import HOST_CFLAGS, host_main

    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed (gcc is a build dependency)"
    work = tmp_path_factory.mktemp("host")
    (work / "model.h").write_text("#define AUTOQ_MODEL_INPUT_SIZE 4\n#define AUTOQ_MODEL_OUTPUT_SIZE 2\n"
                                  "int autoq_model_run(const float *input, float *output);\n")
    (work / "model.c").write_text('#include "model.h"\nint autoq_model_run(const float *x, float *y) {\n'
                                  "  y[0] = x[0] + x[1] + x[2] + x[3]; y[1] = -y[0]; return 0; }\n")
    (work / "main.c").write_text(host_main("model", 4, 2))
    subprocess.run([cc, *HOST_CFLAGS, "-o", str(work / "model_host"), str(work / "model.c"), str(work / "main.c")],
                   check=True, capture_output=True)
    return work / "model_host"


def _run_host(host: Path, tmp_path: Path, data: bytes):
    (tmp_path / "x.f32").write_bytes(data)
    return subprocess.run([str(host), str(tmp_path / "x.f32")], capture_output=True, text=True, timeout=30)


def test_model_host_runs_good_input(model_host, tmp_path):
    proc = _run_host(model_host, tmp_path, np.array([[1, 1, 1, 1], [-1, -1, -1, -1]], "<f4").tobytes())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "1"] and "2 samples" in proc.stderr


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_model_host_rejects_non_finite_input(model_host, tmp_path, bad):
    x = np.ones((3, 4), "<f4")
    x[1, 2] = bad
    proc = _run_host(model_host, tmp_path, x.tobytes())
    assert proc.returncode == 1
    assert "sample 1 value 2 is NaN or infinite" in proc.stderr
    assert proc.stdout.split() == ["0"]          # the good sample before it ran, nothing after


@pytest.mark.parametrize("extra", [2, 4, 12])   # bytes: half a float, one float, three floats
def test_model_host_rejects_a_partial_trailing_sample(model_host, tmp_path, extra):
    proc = _run_host(model_host, tmp_path, np.ones((2, 4), "<f4").tobytes() + b"\x00" * extra)
    assert proc.returncode == 1
    assert f"partial trailing sample 2: {extra} of 16 bytes" in proc.stderr


# --- rich markup in user strings is printed, not interpreted -------------------------------------


def test_markup_in_a_profile_board_and_cpu_is_printed_literally(tmp_path, capsys, monkeypatch):
    from autoq import cli

    data = yaml.safe_load((REPO / "hw_models" / "m4.yaml").read_text())
    data.update(board="[/x] board [bold]", cpu="cpu [/]")
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(data))
    plan = json.loads(json.dumps({"input_shape": [8, 8, 1], "layers": []}))
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as info:
        cli.main(["cost", "--target", str(tmp_path / "b.yaml"), "--plan", str(tmp_path / "plan.json")])
    out, err = capsys.readouterr()
    assert info.value.code in (0, None), err
    assert "[/x] board [bold]" in out and "cpu [/]" in out


def test_markup_in_a_plan_layer_name_is_printed_literally(tmp_path, capsys):
    from autoq import cli
    from test_bad_inputs import PLAN

    plan = json.loads(json.dumps(PLAN))
    plan["layers"][0]["name"] = "[/x]conv"
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(SystemExit) as info:
        cli.main(["cost", "--target", "m4", "--plan", str(tmp_path / "plan.json")])
    out, err = capsys.readouterr()
    assert info.value.code in (0, None), err
    assert "[/x]conv" in out
