"""Locate the resource folders (search_spaces/, hw_models/, kernels/).

They live at the top of the source tree and are mapped into the package by pyproject.toml
(``autoq/search_spaces``, ``autoq/hw_models``, ``autoq/kernels_src`` in a wheel), so the same
lookup works from a checkout, an editable install and a plain wheel install.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_INSTALLED_NAMES = {"search_spaces": "search_spaces", "hw_models": "hw_models", "kernels": "kernels_src"}


def resource_dir(name: str) -> Path:
    """Return the folder of resource ``name`` (one of search_spaces, hw_models, kernels)."""
    if name not in _INSTALLED_NAMES:
        raise ValueError(f"unknown resource folder {name!r}; known: {sorted(_INSTALLED_NAMES)}")
    checkout = _PACKAGE.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / name).is_dir():
        return checkout / name
    installed = _PACKAGE / _INSTALLED_NAMES[name]
    if not installed.is_dir():
        raise FileNotFoundError(
            f"autoq resource folder {name!r} not found at {installed}: the installation is incomplete "
            f"(reinstall with `pip install .`)")
    return installed
