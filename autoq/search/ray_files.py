"""Files that travel with Ray results: nothing assumes a disk shared by the nodes.

- A trial's folder (``model.keras``, ``config.json``, ``result.json``) is written by the worker
  into a private scratch folder, zipped into the result (:func:`pack_trial`) and written by
  the driver into its own run folder, ``<out>/trials/NNNNN/``, the local backend's layout
  (:func:`unpack_trial`); ``weights_path`` then names the driver's copy.
- The float baseline is trained once, by the driver (``steps.prepare()``); its cache folder
  travels to the workers with the trainable's parameters (:func:`baseline_files`) and a worker
  writes it into its own cache if missing (:func:`install_baseline`).
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from autoq.fileio import install_folder

FILES_KEY = "autoq_trial_files"      # result key: zip bytes of the worker's trial folder
WEIGHTS_KEY = "autoq_weights_path"   # result key set by the driver: the unpacked model's path
NAME_KEY = "autoq_weights_name"      # result key: the model's file name inside the shipped folder


def pack_trial(trial_dir: Path, weights_path: str | None) -> tuple[bytes | None, str | None]:
    """Zip of the trial folder and the model's name inside it (None, None: nothing written)."""
    trial_dir = Path(trial_dir)
    if not trial_dir.is_dir():
        return None, None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(trial_dir.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(trial_dir).as_posix())
        rel = None
        if weights_path:
            w = Path(weights_path)
            try:
                rel = w.resolve().relative_to(trial_dir.resolve()).as_posix()
            except ValueError:  # written outside the trial folder: ship it by its name
                rel = w.name
                zf.write(w, rel)
    return buf.getvalue(), rel


def unpack_trial(result: dict, trial_dir: Path) -> None:
    """Driver: write the shipped trial folder into ``trial_dir`` and replace the bytes in
    ``result`` (in place: Tune then keeps no copy of them) by the model's path there."""
    data = result.pop(FILES_KEY, None)
    if data is None:
        return
    rel = result.pop(NAME_KEY, None)
    trial_dir = Path(trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            target = (trial_dir / name).resolve()
            if trial_dir.resolve() not in target.parents:  # a zip entry must stay inside the folder
                raise ValueError(f"trial files: entry {name!r} leaves {trial_dir}")
        zf.extractall(trial_dir)
    result[WEIGHTS_KEY] = str((trial_dir / rel).resolve()) if rel else None


def baseline_files(steps) -> dict | None:
    """The driver's float-baseline cache folder as {"folder": name, "files": {name: bytes}}
    (None when the steps have no baseline, e.g. test fakes)."""
    if not hasattr(steps, "baseline"):
        return None
    base = steps.baseline()
    folder = getattr(base, "folder", None)
    if getattr(base, "status", "ok") != "ok" or not folder or not Path(folder).is_dir():
        return None
    files = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}
    return {"folder": Path(folder).name, "files": files}


def worker_cache_dir(driver_cache: str | Path | None) -> Path:
    """The driver's cache folder when this node sees it (same machine, shared disk), else this
    node's own default cache ($AUTOQ_CACHE or ~/.cache/autoq)."""
    if driver_cache and Path(driver_cache).is_dir() and os.access(driver_cache, os.W_OK):
        return Path(driver_cache)
    from autoq.train import default_cache_dir

    return default_cache_dir()


def install_baseline(shipped: dict, cache_dir: Path) -> bool:
    """Write the shipped baseline folder into ``cache_dir`` unless it is there; True if written."""
    folder = Path(cache_dir) / shipped["folder"]
    if (folder / "result.json").is_file() and (folder / "model.keras").is_file():
        return False
    install_folder(folder, shipped["files"])  # atomic, as train_baseline: concurrent workers keep one copy
    return True
