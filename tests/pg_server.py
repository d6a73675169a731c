"""A throw-away PostgreSQL server for tests: initdb + pg_ctl in a temporary folder on a free
local port, as the ``postgres`` user when run as root (initdb refuses root). Needs the Debian
package ``postgresql`` (.ci/run installs it); a missing server fails the test, never skips it."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self):
        self.bindir = _bindir()
        # /tmp, not $TMPDIR: the postgres user must reach the folder
        self.root = Path(tempfile.mkdtemp(prefix="autoq-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_user = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args) -> None:
        proc = subprocess.run([*self.as_user, *map(str, args)], capture_output=True, text=True, timeout=120)
        if proc.returncode:
            log = (self.root / "log").read_text() if (self.root / "log").is_file() else ""
            pytest.fail(f"{args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}\n{log[-2000:]}")

    def start(self) -> "PostgresServer":
        self._run(self.bindir / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-o", opts, "-l", self.root / "log", "-w", "start")
        return self

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                        "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)
