"""Board facts of a profile: from a measurement CSV's comments, an existing profile, or this machine."""
from __future__ import annotations

import math
import os
import platform
from pathlib import Path

from autoq.cost.profile import HardwareProfile
from autoq.errors import UserError


def host_facts() -> dict:
    """Board facts of this machine (CPU model, clock from /proc/cpuinfo, RAM, 64-bit words)."""
    cpu, mhz = platform.processor() or platform.machine(), 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and cpu in ("", platform.machine(), platform.processor()):
                cpu = value.strip()
            if key.strip() == "cpu MHz" and not mhz:
                mhz = float(value)
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"board": f"this machine ({platform.node() or 'host'})", "cpu": cpu,
            "clock_hz": int(mhz * 1e6) or 1, "word_bits": 64,
            "memory": {"ram_bytes": int(ram), "storage_bytes": int(ram)}}


def board_facts(meta: dict[str, str], target: str, existing: HardwareProfile | None,
                base: HardwareProfile | None, source: str) -> dict:
    """board, cpu, clock_hz, word_bits, memory, overhead_ns of ``target`` from a CSV's ``# key:
    value`` comments (``meta``), else from the ``existing`` profile of that id, else from ``base``;
    ``deploy`` (measured from links) is kept from ``existing``."""
    fallback = existing or base
    facts: dict = {}
    for key in ("board", "cpu"):
        facts[key] = meta.get(key) or (getattr(fallback, key) if fallback else None)
    for key in ("clock_hz", "word_bits"):
        raw = meta.get(key)
        facts[key] = _int_meta(raw, key, source) if raw else (getattr(fallback, key) if fallback else None)
    memory = {k: _int_meta(meta[k], k, source) for k in ("sram_bytes", "flash_bytes", "ram_bytes", "storage_bytes")
              if k in meta}
    facts["memory"] = memory or (dict(fallback.memory) if fallback else None)
    raw = meta.get("overhead_ns")
    facts["overhead_ns"] = _float_meta(raw, "overhead_ns", source) if raw is not None else \
        (fallback.overhead_ns if fallback else 0.0)
    facts["deploy"] = existing.deploy if existing else None   # measured from links: kept across refits
    missing = [k for k, v in facts.items() if v is None and k != "deploy"]
    if missing:
        raise UserError(f"{source}: board facts {', '.join(missing)} unknown for target {target!r}: add comment "
                        f"lines like '# clock_hz: 80000000' to the CSV (keys: board, cpu, clock_hz, word_bits, "
                        f"sram_bytes + flash_bytes or ram_bytes + storage_bytes), or give --base PROFILE")
    _check_facts(facts, meta, source)
    return facts


def _check_facts(facts: dict, meta: dict[str, str], source: str) -> None:
    """The profile schema's checks (autoq.cost.profile) on the board facts, reported against the
    CSV comment they came from."""
    skeleton = {"id": "check", **{k: facts[k] for k in ("board", "cpu", "clock_hz", "word_bits", "memory",
                                                         "overhead_ns")},
                "kernels": {"f32": {"coefficients": {"ns_fixed": 0.0}, "provenance": "derived", "source": "",
                                    "fit": {"points": 0, "mape": None}}}}
    try:
        HardwareProfile.from_dict(skeleton, source=None)
    except UserError as exc:
        key = str(exc).split(":", 1)[0].strip()
        key = key.split(".")[-1]
        origin = f"comment '# {key}: {meta[key]}'" if key in meta else f"board fact {key}"
        raise UserError(f"{source}: {origin}: {str(exc).split(':', 1)[1].strip()}") from None


def _int_meta(raw: str, key: str, source: str) -> int:
    text = raw.strip().replace("_", "")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value != int(value):
        raise UserError(f"{source}: comment '# {key}: {raw}': got {raw!r}; expected an integer") from None
    return int(value)


def _float_meta(raw: str, key: str, source: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UserError(f"{source}: comment '# {key}: {raw}': got {raw!r}; expected a finite number")
    return value
