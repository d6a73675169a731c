"""A real 2-node Ray cluster on this machine (``ray start --head`` + ``ray start --address``),
shared by the tests of this module and always torn down (by pid: only its own processes).

The worker node runs in a private mount namespace (``unshare -m``, root) where the test's
run and cache folders are an empty tmpfs: what it writes there the driver never sees, as
on a cluster without a shared disk. Tests: every trial of a real search exports from the
driver's run folder; a node killed (kill -9 of its raylet) in mid-trial means a retry, not
a counted failure, and its state dump stays out of autoq's output; a running cluster without
--address is refused with one line.
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from autoq.errors import UserError
from autoq.search import Budget, SearchOptions, run_search
from autoq.search.study import count_done

from test_search import load, make_space

REPO = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).with_name("ray"))
TS = optuna.trial.TrialState


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _port_block(size: int = 120) -> int:
    for _ in range(50):
        base = random.randrange(30000, 60000 - size, 10)
        if all(_free(base + i) for i in range(0, size, 7)) and _free(base) and _free(base + 1):
            return base
    raise RuntimeError("no free port block")


def _run(cmd: list[str], env: dict) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{cmd[:3]}: {proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"


@dataclass
class Cluster:
    root: Path        # short folder: the nodes' --temp-dir (socket paths < 108 bytes)
    base: Path        # hidden from the worker node (its own empty tmpfs there)
    markers: Path     # MarkedSteps' trial markers
    tag: str          # AUTOQ_TEST_CLUSTER=<tag> is in the environment of every process of the cluster
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict:
        env = dict(os.environ, AUTOQ_TEST_CLUSTER=self.tag, AUTOQ_TEST_MARKERS=str(self.markers),
                   RAY_USAGE_STATS_ENABLED="0", AUTOQ_CACHE=str(self.root / "worker-cache"),
                   RAY_AUTH_MODE="disabled",   # else it depends on a token in ~/.ray from an earlier ray.init
                   TMPDIR=str(self.root / "tmp"),   # trial scratch of a killed worker: removed with the cluster
                   # the head marks a killed node dead in ~1.5 s (default ~15 s): its report then reaches
                   # the driver while the search still runs, as it would in a long search
                   RAY_health_check_period_ms="500", RAY_health_check_failure_threshold="3")
        env.pop("RAY_ADDRESS", None)
        return env

    def start_head(self) -> None:
        p = self.port
        _run([RAY, "start", "--head", "--port", str(p), "--num-cpus", "1",
                        "--temp-dir", str(self.root / "h"), "--include-dashboard", "false",
                        "--dashboard-port", str(p + 1), "--ray-client-server-port", str(p + 2),
                        "--dashboard-agent-listen-port", str(p + 3), "--min-worker-port", str(p + 10),
                        "--max-worker-port", str(p + 59), "--disable-usage-stats"], self.env())

    def start_worker(self) -> None:
        p = self.port
        ray_start = [RAY, "start", "--address", self.address, "--num-cpus", "1",
                     "--temp-dir", str(self.root / "w"), "--dashboard-agent-listen-port", str(p + 4),
                     "--min-worker-port", str(p + 60), "--max-worker-port", str(p + 109),
                     "--disable-usage-stats"]
        script = f'mount -t tmpfs tmpfs "{self.base}" && exec "$@"'
        _run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *ray_start], self.env())

    def pids(self) -> list[int]:
        """Every live process started for this cluster (found by its environment tag)."""
        out, needle = [], f"AUTOQ_TEST_CLUSTER={self.tag}".encode()
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if needle in (d / "environ").read_bytes().split(b"\0"):
                        out.append(int(d.name))
                except OSError:
                    continue
        return out

    def raylet(self, node: str) -> int | None:
        """pid of the raylet of node "h" or "w"."""
        for pid in self.pids():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd[0].endswith(b"/raylet") and any(str(self.root / node).encode() in a for a in cmd):
                return pid
        return None

    def stop(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = Path(tempfile.mkdtemp(prefix="aqc-", dir="/tmp"))
    base = tmp_path_factory.mktemp("shared")
    c = Cluster(root=root, base=base, markers=root / "markers", tag=root.name, port=_port_block())
    c.markers.mkdir()
    (root / "tmp").mkdir()
    try:
        c.start_head()
        c.start_worker()
        yield c
    finally:
        c.stop()
        for _ in range(50):
            if not c.pids():
                break
            time.sleep(0.1)
        subprocess.run(["rm", "-rf", str(root)], check=False)


@pytest.fixture
def driver_env(monkeypatch):
    """Workers import this folder's modules (ray_cluster_steps); runtime_env passes PYTHONPATH.
    The driver joins with the cluster's auth mode."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), str(REPO / "tests")]))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")


def _opts(cluster, name, space, budget, **kw):
    return SearchOptions(space=space, budget=Budget(trials=budget), out_dir=cluster.base / name,
                         backend="ray", workers=2, address=cluster.address, **kw)


def test_no_shared_disk_every_trial_of_a_real_search_exports(cluster, driver_env, tmp_path):
    """Real (tiny) trials on both nodes; the worker node cannot see the run folder."""
    from autoq.export.exporter import export_trial

    space = make_space(training={"epochs": 2, "baseline_epochs": 30}, presets=["base", "twn"])
    res = run_search(_opts(cluster, "real", space, 2))
    assert res.done == 2 and not res.interrupted
    study = load(cluster.base, "real")
    trials = study.get_trials()
    assert len(trials) == 2
    nodes = set()
    for t in trials:
        a = t.user_attrs
        assert t.state == TS.COMPLETE and a["status"] == "ok", a.get("fail_reason")
        assert a["weights_path"] == str(cluster.base / "real" / "trials" / f"{t.number:05d}" / "model.keras")
        assert {"node_id", "hostname", "pid"} <= set(a["worker"])
        nodes.add(a["worker"]["node_id"])
        out = tmp_path / f"export-{t.number}"   # what `autoq export RUN --trial N` runs (TF already loaded here)
        export_trial(str(cluster.base / "real"), t.number, "m4", str(out), force=True, emit_c=False)
        assert (out / "model.qbin").is_file() and (out / "model.keras").is_file()
    assert len(nodes) == 2                      # one trial on each node (2 workers, 1 CPU per node)
    # the worker node got the driver's baseline in its own cache; a retrained one would differ
    driver = list((cluster.base / ".autoq-cache").glob("tiny-*/result.json"))
    shipped = list((cluster.root / "worker-cache" / "baselines").glob("tiny-*/result.json"))
    assert len(driver) == len(shipped) == 1 and driver[0].read_bytes() == shipped[0].read_bytes()


def test_a_node_killed_mid_trial_is_retried_not_counted(cluster, driver_env, capfd):
    if cluster.raylet("w") is None:
        cluster.start_worker()
    worker_raylet = cluster.raylet("w")
    killed: list[dict] = []

    def kill_when_the_worker_node_trains():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for m in cluster.markers.glob("*.json"):
                info = json.loads(m.read_text() or "{}")
                if info.get("raylet") == worker_raylet:
                    os.kill(worker_raylet, signal.SIGKILL)
                    killed.append(info)
                    return
            time.sleep(0.1)

    for m in cluster.markers.glob("*"):
        m.unlink()
    watcher = threading.Thread(target=kill_when_the_worker_node_trains, daemon=True)
    watcher.start()
    from ray_cluster_steps import marked_steps

    space = make_space()                          # four presets: four distinct trained configs
    res = run_search(_opts(cluster, "kill", space, 4), steps_factory=marked_steps)
    watcher.join(timeout=1)
    assert killed, "no trial ran on the worker node"
    assert res.done == 4 and not res.interrupted
    study = load(cluster.base, "kill")
    trials = study.get_trials()
    assert len(trials) == 4 and count_done(study) == 4   # no failed or extra trial for the lost one
    for t in trials:
        a = t.user_attrs
        assert t.state == TS.COMPLETE and a["status"] == "ok", a.get("fail_reason")
        assert Path(a["weights_path"]).read_text() == "fake"    # the model reached the driver's folder
        assert a["weights_path"].startswith(str(cluster.base / "kill" / "trials"))
    lost = killed[0]["trial"]
    runs = [json.loads(m.read_text()) for m in cluster.markers.glob(f"{lost:05d}-*.json")]
    assert len(runs) == 2 and {r["raylet"] for r in runs} == {worker_raylet, cluster.raylet("h")}
    assert study.trials[lost].user_attrs["worker"]["pid"] != killed[0]["pid"]   # the retry's worker
    assert [t.user_attrs.get("ray_retries") for t in trials] == [1 if t.number == lost else None for t in trials]
    out, err = capfd.readouterr()
    report = "Raylet is terminated"   # Ray's report of the node's death, with the raylet's last log lines
    assert report not in out + err and "(raylet)" not in out + err and "Traceback" not in out + err
    assert report in (cluster.base / "kill" / "ray" / "driver.log").read_text()


def test_a_running_cluster_without_address_is_refused_in_one_line(cluster, monkeypatch, tmp_path):
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)   # what `ray start` on this machine also tells Ray
    opts = SearchOptions(space=make_space(), budget=Budget(trials=1), out_dir=tmp_path / "run", backend="ray")
    with pytest.raises(UserError, match=r"a Ray cluster is running on this machine .*--address") as exc:
        run_search(opts)
    assert "\n" not in str(exc.value) and not (tmp_path / "run").exists()


def test_a_worker_that_must_train_the_baseline_says_so_once(tmp_path):
    """No cluster: the worker side of the baseline shipping, with a fake baseline."""
    from types import SimpleNamespace

    from autoq.search import ray_backend
    from autoq.search.ray_files import install_baseline

    shipped = {"folder": "tiny-synthetic-0123", "files": {"model.keras": b"m", "result.json": b"{}"}}
    assert install_baseline(shipped, tmp_path) and not install_baseline(shipped, tmp_path)
    assert (tmp_path / "tiny-synthetic-0123" / "model.keras").read_bytes() == b"m"

    class Steps:
        def __init__(self, cached):
            self.cached = cached

        def baseline(self):
            return SimpleNamespace(status="ok", cached=self.cached)

    opts = SearchOptions(space=make_space(), budget=Budget(trials=1), out_dir=tmp_path / "run",
                         cache_dir=tmp_path)
    ray_backend._WORKER_STEPS.clear()
    _, note = ray_backend._steps_in_worker(opts, lambda o: Steps(cached=True), shipped)
    assert note is None
    ray_backend._WORKER_STEPS.clear()
    _, note = ray_backend._steps_in_worker(opts, lambda o: Steps(cached=False), shipped)
    assert "trained the float baseline itself" in note
    ray_backend._WORKER_STEPS.clear()
