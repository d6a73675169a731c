"""Where a study lives: the run folder's SQLite file, or a shared storage given by ``--storage``.

``--storage`` takes an SQLAlchemy database URL that Optuna's ``RDBStorage`` opens
(``postgresql://user:pw@host:5432/db``, ``mysql+pymysql://...``, ``sqlite:///abs/path.db``) or
``journal:///abs/path/file.log`` (always an absolute path, extra slashes ignored): Optuna's
``JournalStorage`` on a file (append-only log, one
file on a shared disk, locked with ``JournalFileOpenLock`` so that NFS works too). Every
process started with the same ``--storage`` and ``--study`` works on one study (README "Run on
many machines"). TensorFlow-free: ``autoq pareto`` / ``export`` open storages through here.
"""
from __future__ import annotations

import time
from pathlib import Path

from autoq.errors import UserError

JOURNAL = "journal:///"
RDB_SCHEMES = ("postgresql", "mysql", "sqlite")
ALLOWED = ("postgresql://USER:PASSWORD@HOST:PORT/DB, mysql+pymysql://..., sqlite:///PATH.db "
           "(any SQLAlchemy URL Optuna's RDBStorage opens) or journal:///ABS/PATH.log (Optuna "
           "JournalStorage on a shared file)")


def check_url(url: str) -> str:
    """The URL's kind ("journal" or the database scheme); a UserError naming --storage else."""
    text = (url or "").strip()
    if text.startswith(JOURNAL):
        if len(text) == len(JOURNAL):
            raise UserError(f"--storage: got {url!r}: no file after journal:///; allowed: {ALLOWED}")
        return "journal"
    scheme = text.partition("://")[0].split("+")[0].lower()
    if "://" not in text or scheme not in RDB_SCHEMES:
        raise UserError(f"--storage: got {label(url)!r}; allowed: {ALLOWED}")
    try:
        import sqlalchemy.engine

        sqlalchemy.engine.make_url(text)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's ArgumentError and ValueError alike
        raise UserError(f"--storage: got {label(url)!r}: {exc}; allowed: {ALLOWED}") from None
    return scheme


def label(url: str) -> str:
    """The URL for messages and files: the password replaced by ***."""
    if not url or url.startswith(JOURNAL) or "://" not in url:
        return url
    try:
        import sqlalchemy.engine

        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL holds no password we could find
        return url


def open_storage(url: str):
    """An Optuna storage for ``url`` (see the module docstring); errors name --storage."""
    import optuna

    kind = check_url(url)
    if kind == "journal":
        path = Path("/" + url.strip()[len(JOURNAL):].lstrip("/"))  # journal:///abs/x.log -> /abs/x.log
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = optuna.storages.journal.JournalFileOpenLock(str(path))
            return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path), lock))
        except OSError as exc:
            raise UserError(f"--storage: cannot open the journal file {str(path)!r}: {exc.strerror or exc}") from None
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(kind))
        except ImportError as exc:  # the database driver (psycopg, pymysql) is not installed
            raise UserError(f"--storage {label(url)}: the database driver is missing ({exc}); for PostgreSQL: "
                            "pip install 'autoq[postgres]'") from None
        except Exception as exc:  # noqa: BLE001 - connection refused, bad password, unknown database
            if attempt < 2:  # workers started together on a fresh database race to create Optuna's tables
                time.sleep(1.0 + attempt)
                continue
            detail = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
            raise UserError(f"--storage {label(url)}: cannot open the database: {detail}") from None


def _engine_kwargs(kind: str) -> dict:
    # pool_pre_ping: a worker idle through a long trial must not fail on a connection the
    # server closed meanwhile
    return {} if kind == "sqlite" else {"pool_pre_ping": True}


def load_shared_study(url: str, name: str, sampler=None):
    """Load study ``name`` from ``url`` (UserError listing the studies there if it is missing)."""
    import optuna

    storage = open_storage(url)
    names = optuna.study.get_all_study_names(storage)
    if name not in names:
        raise UserError(f"--study: no study {name!r} in {label(url)}; studies there: "
                        f"{', '.join(sorted(names)) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)
