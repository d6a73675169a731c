"""The kernels' compiler flags, read from kernels/flags.mk (the one source of truth).

setup.py loads this file by path (no autoq import at build time); the exporter and the
benchmarks import it. ``host_cflags()`` is what the extension, the export's host build and its
Makefile use on this machine: AQ_CFLAGS plus AQ_X86_64_CFLAGS on x86-64.
"""
from __future__ import annotations

import platform
import re
from pathlib import Path

FLAGS_FILE = "flags.mk"


def read_flags(path: str | Path) -> dict[str, list[str]]:
    """``NAME = words`` assignments of a Make fragment (comments, ``\\`` continuations)."""
    text = re.sub(r"\\\n", " ", Path(path).read_text())
    flags = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        name, sep, value = line.partition("=")
        name = name.rstrip(":?").strip()
        if sep and re.fullmatch(r"[A-Z0-9_]+", name):
            flags[name] = value.split()
    return flags


def is_x86_64(machine: str | None = None) -> bool:
    return (machine or platform.machine()).lower() in ("x86_64", "amd64")


def host_cflags(flags: dict[str, list[str]], machine: str | None = None) -> list[str]:
    return flags["AQ_CFLAGS"] + (flags["AQ_X86_64_CFLAGS"] if is_x86_64(machine) else [])


def m4_cflags(flags: dict[str, list[str]]) -> list[str]:
    return flags["AQ_CFLAGS"] + flags["AQ_M4_CFLAGS"]


def kernel_flags() -> dict[str, list[str]]:
    """The flags of the kernels shipped with autoq (resource folder ``kernels``)."""
    from autoq.resources import resource_dir

    return read_flags(resource_dir("kernels") / FLAGS_FILE)
