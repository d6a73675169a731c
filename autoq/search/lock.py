"""The run lock: one search process per run folder (issue 13, item 4).

``<out>/.autoq-lock`` is ``flock``-ed for the whole life of the process that runs the search
(the kernel releases it when the process dies, even by kill -9, so a stale file never blocks)
and holds a JSON body naming the holder: pid, hostname, since when, the command. A second
process on the same folder -- with or without --resume / --force -- is refused with one line
naming the holder, before it deletes, repairs or opens anything.

Workers on a shared ``--storage`` take the lock *shared*: several cooperating workers may use
one run folder on one machine (their trial folders are numbered by the shared study), while a
process that runs the folder alone (no --storage) needs it exclusively. flock works on local
disks; on NFS it depends on the server (the lock on a shared study is the worker registry of
``autoq.search.workers``).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from autoq.errors import UserError

LOCK_FILE = ".autoq-lock"


class RunLock:
    """An flock on ``<out>/.autoq-lock``; ``release()`` or process exit frees it."""

    def __init__(self, out_dir: Path, shared: bool = False):
        self.path = Path(out_dir) / LOCK_FILE
        self.shared = shared
        self._fh = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise UserError(f"--out: the run folder {str(self.path.parent)!r} is in use by {holder_text(self.path)}; "
                            "wait for it to finish or stop it (Ctrl-C) first; autoq never deletes or "
                            "resumes a run that is still running") from None
        if not self.shared:   # a shared holder leaves the first worker's body (any holder will do)
            fh.seek(0)
            fh.truncate()
        if not self.shared or not fh.tell():
            fh.write(json.dumps(holder()) + "\n")
            fh.flush()
        self._fh = fh
        return self

    def probe(self) -> None:
        """Refuse now if another process holds the lock (the CLI's check before it announces
        the run); takes nothing and creates nothing."""
        if self.path.is_file():
            self.acquire()
            self.release()

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()       # closing drops the flock
            self._fh = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder() -> dict:
    """This process, as a lock body and a worker record."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(sys.argv)[:300]}


def holder_text(path: Path) -> str:
    """'autoq pid 123 on host h since 2026-...' from a lock file's body (best effort)."""
    try:
        body = json.loads(Path(path).read_text().splitlines()[0])
        return f"pid {body['pid']} on host {body['host']} since {body['since']} ({body.get('command', '?')})"
    except (OSError, ValueError, KeyError, IndexError):
        return "another process (its lock file names no holder)"
