"""Hardware profiles: the schema of ``hw_models/<id>.yaml``, validated on load.

Schema (every key required unless marked optional; unknown keys are errors)::

    id: m4                          # file stem and target name
    board: TI Tiva C TM4C123G
    cpu: ARM Cortex-M4F
    clock_hz: 80000000
    word_bits: 32
    memory: {sram_bytes: 32768, flash_bytes: 262144}   # or {ram_bytes: ..., storage_bytes: ...}
    overhead_ns: 0                  # fixed cost per inference, added once
    notes: "..."                    # optional free text
    kernels:                        # one entry per kernel kind (f32 lut shift xnor and int8)
      f32:
        coefficients: {ns_per_mac: 4.1, ns_per_output: 40.0}   # any of COEFFICIENTS, >= 0
        provenance: measured-board  # measured-board | measured-host | derived
        source: "methods.md 5, default optimisation, 3 filter sizes"
        fit: {points: 3, mape: 0.01, loo_mape: 0.02}           # loo_mape optional
        c_out_block: 16             # optional (default 1): the kernel computes output channels
                                    # in blocks of this size; a partial block costs a full one
    ops:                            # optional: the non-kernel ops of the exported C (autoq.plan.OP_KINDS)
      act:
        coefficients: {ns_per_element: 0.3, ns_fixed: 20}      # any of OP_COEFFICIENTS, >= 0
        provenance: measured-host
        source: "..."
        fit: {points: 40, mape: 0.05, loo_mape: 0.07}

Layer latency (ns) = sum over coefficients c of value(c) * feature(c) (autoq.cost.model);
op latency likewise with the op features of autoq.cost.ops (an op kind without coefficients is
not priced).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autoq.cost.deploy import DeployCost
from autoq.errors import UserError, where
from autoq.fileio import atomic_write_text, free_text, load_yaml, read_text
from autoq.kinds import KINDS
from autoq.plan import OP_KINDS

PROVENANCES = ("measured-board", "measured-host", "derived")
# Coefficient name -> the LayerEntry feature it multiplies (see autoq.cost.model.features).
COEFFICIENTS = ("ns_per_mac", "ns_per_word_op", "ns_per_row", "ns_per_output", "ns_per_input", "ns_per_weight",
                "ns_per_weight_byte", "ns_per_tail_weight", "ns_fixed")
# Op coefficient -> what it multiplies (autoq.cost.ops.op_features): out_elements, in_elements,
# out_elements * window (pooling taps), 1.
OP_COEFFICIENTS = ("ns_per_element", "ns_per_input", "ns_per_tap", "ns_fixed")
# Priced op kinds: OP_KINDS, and the input quantizer of an xnor layer (sign: one compare per
# value) apart from the k-level ones (clip, scale, round): their costs differ 5x.
PRICED_OPS = OP_KINDS + ("quantize_sign",)
MEMORY_LAYOUTS = ({"sram_bytes", "flash_bytes"}, {"ram_bytes", "storage_bytes"})

_TOP_REQUIRED = {"id", "board", "cpu", "clock_hz", "word_bits", "memory", "overhead_ns", "kernels"}
_TOP_OPTIONAL = {"notes", "deploy", "ops"}   # deploy: autoq/cost/deploy.py; ops: autoq/cost/ops.py
_KERNEL_REQUIRED = {"coefficients", "provenance", "source", "fit"}
_KERNEL_OPTIONAL = {"c_out_block"}
_FIT_REQUIRED = {"points", "mape"}
_FIT_OPTIONAL = {"loo_mape"}
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
WORD_BITS = (8, 16, 32, 64)
MAX_CLOCK_HZ = 10**11           # 100 GHz
MAX_MEMORY_BYTES = 1 << 50      # 1 PiB
MAX_C_OUT_BLOCK = 4096
MAX_LABEL = 200                 # characters of board / cpu


@dataclass
class KernelCost:
    """Latency coefficients of one kernel kind on one target, with where they came from."""

    coefficients: dict[str, float]
    provenance: str
    source: str
    points: int
    mape: float | None
    loo_mape: float | None = None
    c_out_block: int = 1

    def to_dict(self) -> dict[str, Any]:
        fit: dict[str, Any] = {"points": self.points, "mape": self.mape}
        if self.loo_mape is not None:
            fit["loo_mape"] = self.loo_mape
        data = {"coefficients": dict(self.coefficients), "provenance": self.provenance,
                "source": self.source, "fit": fit}
        if self.c_out_block != 1:
            data["c_out_block"] = self.c_out_block
        return data


@dataclass
class HardwareProfile:
    id: str
    board: str
    cpu: str
    clock_hz: int
    word_bits: int
    memory: dict[str, int]
    overhead_ns: float
    kernels: dict[str, KernelCost]
    notes: str | None = None
    path: str | None = field(default=None, compare=False)
    deploy: DeployCost = field(default_factory=DeployCost)   # code, scratch rule, stack, library RAM
    ops: dict[str, KernelCost] = field(default_factory=dict)   # non-kernel op kind -> coefficients

    @property
    def ram_limit_bytes(self) -> int:
        """Working memory for activations: SRAM on a microcontroller, RAM otherwise."""
        return self.memory.get("sram_bytes", self.memory.get("ram_bytes", 0))

    @property
    def flash_limit_bytes(self) -> int:
        """Storage for the weights: flash on a microcontroller, disk/SD otherwise."""
        return self.memory.get("flash_bytes", self.memory.get("storage_bytes", 0))

    def kernel(self, kind: str) -> KernelCost:
        if kind not in self.kernels:
            raise UserError(f"{where(self.path, f'kernels.{kind}')}profile {self.id!r} has no coefficients for "
                            f"kernel kind {kind!r}; it has: {', '.join(self.kernels)}")
        return self.kernels[kind]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "board": self.board, "cpu": self.cpu, "clock_hz": self.clock_hz,
            "word_bits": self.word_bits, "memory": dict(self.memory), "overhead_ns": self.overhead_ns}
        if self.notes:
            data["notes"] = self.notes
        data["kernels"] = {kind: k.to_dict() for kind, k in self.kernels.items()}
        if self.deploy != DeployCost():
            data["deploy"] = self.deploy.to_dict()
        if self.ops:
            data["ops"] = {kind: k.to_dict() for kind, k in self.ops.items()}
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> "HardwareProfile":
        """Validate ``data`` against the schema; errors name ``source`` and the key path."""
        _require_mapping(data, source, None)
        _check_keys(data, _TOP_REQUIRED, _TOP_OPTIONAL, source, "")
        if not isinstance(data["id"], str) or not ID_PATTERN.match(data["id"]):
            raise UserError(f"{where(source, 'id')}got {data['id']!r}; expected 1-64 characters: letters, "
                            "digits, '.', '_', '-' (the target name and file name)")
        for key in ("board", "cpu"):
            free_text(data[key], source, key, MAX_LABEL)
        if "notes" in data:
            free_text(data["notes"], source, "notes")
        _require_number(data["clock_hz"], source, "clock_hz", integer=True, positive=True, maximum=MAX_CLOCK_HZ)
        if data["word_bits"] not in WORD_BITS or isinstance(data["word_bits"], bool):
            raise UserError(f"{where(source, 'word_bits')}got {data['word_bits']!r}; expected one of "
                            f"{', '.join(map(str, WORD_BITS))}")
        _require_number(data["overhead_ns"], source, "overhead_ns", non_negative=True)
        memory = data["memory"]
        _require_mapping(memory, source, "memory")
        if set(memory) not in MEMORY_LAYOUTS:
            allowed = " or ".join("{" + ", ".join(sorted(s)) + "}" for s in MEMORY_LAYOUTS)
            raise UserError(f"{where(source, 'memory')}got keys {sorted(memory)}; expected exactly {allowed}")
        for key, value in memory.items():
            _require_number(value, source, f"memory.{key}", integer=True, positive=True, maximum=MAX_MEMORY_BYTES)
        kernels = data["kernels"]
        _require_mapping(kernels, source, "kernels")
        parsed = {}
        for kind, raw in kernels.items():
            path = f"kernels.{kind}"
            if kind not in KINDS:
                raise UserError(f"{where(source, path)}unknown kernel kind; allowed: {', '.join(KINDS)}")
            parsed[kind] = _kernel_from_dict(raw, source, path)
        ops = _ops_from_dict(data.get("ops", {}), source)
        return cls(ops=ops, id=data["id"], board=data["board"], cpu=data["cpu"], clock_hz=int(data["clock_hz"]),
                   word_bits=int(data["word_bits"]), memory={k: int(v) for k, v in memory.items()},
                   overhead_ns=float(data["overhead_ns"]), kernels=parsed, notes=data.get("notes"),
                   path=source, deploy=DeployCost.from_dict(data["deploy"], source) if "deploy" in data
                   else DeployCost())


def _ops_from_dict(ops: Any, source: str | None) -> dict[str, KernelCost]:
    _require_mapping(ops, source, "ops")
    for kind in ops:
        if kind not in PRICED_OPS:
            raise UserError(f"{where(source, f'ops.{kind}')}unknown op kind; allowed: {', '.join(PRICED_OPS)}")
    return {kind: _kernel_from_dict(raw, source, f"ops.{kind}", OP_COEFFICIENTS) for kind, raw in ops.items()}


def _kernel_from_dict(raw: Any, source: str | None, path: str,
                      allowed: tuple[str, ...] = COEFFICIENTS) -> KernelCost:
    _require_mapping(raw, source, path)
    _check_keys(raw, _KERNEL_REQUIRED, _KERNEL_OPTIONAL if allowed is COEFFICIENTS else set(), source, path)
    if "c_out_block" in raw:
        _require_number(raw["c_out_block"], source, f"{path}.c_out_block", integer=True, positive=True,
                        maximum=MAX_C_OUT_BLOCK)
    coeffs = raw["coefficients"]
    _require_mapping(coeffs, source, f"{path}.coefficients")
    for name, value in coeffs.items():
        if name not in allowed:
            raise UserError(f"{where(source, f'{path}.coefficients.{name}')}unknown coefficient; "
                            f"allowed: {', '.join(allowed)}")
        _require_number(value, source, f"{path}.coefficients.{name}", non_negative=True)
    if not coeffs:
        raise UserError(f"{where(source, f'{path}.coefficients')}empty; give at least one of {', '.join(allowed)}")
    if not isinstance(raw["provenance"], str) or raw["provenance"] not in PROVENANCES:
        raise UserError(f"{where(source, f'{path}.provenance')}got {raw['provenance']!r}; "
                        f"allowed: {', '.join(PROVENANCES)}")
    free_text(raw["source"], source, f"{path}.source")
    fit = raw["fit"]
    _require_mapping(fit, source, f"{path}.fit")
    _check_keys(fit, _FIT_REQUIRED, _FIT_OPTIONAL, source, f"{path}.fit")
    _require_number(fit["points"], source, f"{path}.fit.points", integer=True, non_negative=True)
    for key in ("mape", "loo_mape"):
        if fit.get(key) is not None:
            _require_number(fit[key], source, f"{path}.fit.{key}", non_negative=True)
    return KernelCost(coefficients={k: float(v) for k, v in coeffs.items()}, provenance=raw["provenance"],
                      source=raw["source"], points=int(fit["points"]),
                      mape=None if fit["mape"] is None else float(fit["mape"]),
                      loo_mape=None if fit.get("loo_mape") is None else float(fit["loo_mape"]),
                      c_out_block=int(raw.get("c_out_block", 1)))


def _check_keys(data: dict, required: set[str], optional: set[str], source: str | None, path: str) -> None:
    prefix = f"{path}." if path else ""
    unknown = sorted(str(k) for k in set(data) - required - optional)
    if unknown:
        raise UserError(f"{where(source, prefix + unknown[0])}unknown key; allowed: "
                        f"{', '.join(sorted(required | optional))}")
    missing = sorted(required - set(data))
    if missing:
        raise UserError(f"{where(source, prefix + missing[0])}missing required key")


def _require_mapping(value: Any, source: str | None, path: str | None) -> None:
    if not isinstance(value, dict):
        raise UserError(f"{where(source, path)}expected a mapping, got {type(value).__name__} {value!r}")


def _require_type(value: Any, typ: type, source: str | None, path: str, what: str) -> None:
    if not isinstance(value, typ):
        raise UserError(f"{where(source, path)}got {value!r}; expected {what}")


def _require_number(value: Any, source: str | None, path: str, integer: bool = False,
                    positive: bool = False, non_negative: bool = False, maximum: float | None = None) -> None:
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (not positive or value > 0) and (not non_negative or value >= 0)
    ok = ok and (maximum is None or value <= maximum)
    if not ok:
        what = "an integer" if integer else "a finite number"
        what += " > 0" if positive else " >= 0" if non_negative else ""
        what += f" and <= {maximum:g}" if maximum is not None else ""
        raise UserError(f"{where(source, path)}got {value!r}; expected {what}")


# --- files --------------------------------------------------------------------------------


def profiles_dir() -> Path:
    from autoq.resources import resource_dir

    return resource_dir("hw_models")


def list_profiles() -> list[str]:
    """Ids of the shipped (and calibrated) profiles, sorted."""
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def resolve_profile_path(id_or_path: str | Path) -> Path:
    """A path to an existing .yaml file, or the id of a profile in hw_models/."""
    candidate = Path(id_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_dir():
        if candidate.is_dir():
            raise UserError(f"profile {str(candidate)!r}: is a folder; allowed: a profile .yaml file or a "
                            f"target id ({', '.join(list_profiles())})")
        if not candidate.is_file():
            raise UserError(f"profile file {str(candidate)!r} does not exist")
        return candidate
    path = profiles_dir() / f"{id_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(list_profiles()) or "(none)"
        hint = " (run `autoq calibrate --target host` to make it)" if str(id_or_path) == "host" else ""
        raise UserError(f"unknown target {str(id_or_path)!r}{hint}; known targets: {known}")
    return path


def load_profile(id_or_path: str | Path | HardwareProfile) -> HardwareProfile:
    """Load and validate a profile by id (``m4``) or by path (``my_board.yaml``)."""
    if isinstance(id_or_path, HardwareProfile):
        return id_or_path
    path = resolve_profile_path(id_or_path)
    data = load_yaml(read_text(path, "profile YAML file"), str(path))
    profile = HardwareProfile.from_dict(data, source=str(path))
    if path.parent == profiles_dir() and profile.id != path.stem:
        raise UserError(f"{where(str(path), 'id')}got {profile.id!r}; must equal the file name {path.stem!r}")
    return profile


def dump_profile(profile: HardwareProfile, path: str | Path) -> Path:
    """Write ``profile`` as YAML (key order as in the schema): validated first (what is written
    loads back), then written atomically, so a bad profile never replaces a good one."""
    path = Path(path)
    text = yaml.safe_dump(profile.to_dict(), sort_keys=False, width=100)
    HardwareProfile.from_dict(yaml.safe_load(text), source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path
