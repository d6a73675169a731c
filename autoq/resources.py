"""Locate the resource folders (search_spaces/, hw_models/, kernels/).

They live at the top of the source tree and are mapped into the package by pyproject.toml
(``autoq.search_spaces``, ``autoq.hw_models``, ``autoq.kernels_src``), so the same lookup works
from a checkout, an editable install and a plain wheel install.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

_PACKAGES = {
    "search_spaces": "autoq.search_spaces",
    "hw_models": "autoq.hw_models",
    "kernels": "autoq.kernels_src",
}


def resource_dir(name: str) -> Path:
    """Return the folder of resource ``name`` (one of search_spaces, hw_models, kernels)."""
    if name not in _PACKAGES:
        raise ValueError(f"unknown resource folder {name!r}; known: {sorted(_PACKAGES)}")
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    try:
        found = Path(str(resources.files(_PACKAGES[name])))
    except ModuleNotFoundError:
        found = None
    if found is None or not found.is_dir():
        raise FileNotFoundError(
            f"autoq resource folder {name!r} not found: the installation is incomplete "
            f"(reinstall with `pip install .`)")
    return found
