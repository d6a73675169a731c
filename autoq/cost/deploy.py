"""What a deployed model needs beyond its plan's arrays: kernel code, scratch, stack, C library RAM.

A profile's optional ``deploy`` section (measured once per target from links of the exported
C, ``benchmarks/measure_deploy.py``)::

    deploy:
      arch: m4                     # the kernel build whose scratch rule applies: m4 | aarch64 | x86_64
      code_bytes: {base: 3800, per_layer: 64, per_op: 24,
                   kinds: {f32: 1100, lut: 1300, ...}, ops: {act: 40, maxpool: 260, ...}}
      static_ram_bytes: {base: 8, kinds: {shift: 1056}}   # RAM outside the plan's buffers (C library data)
      stack_bytes: {base: 96, kinds: {f32: 120, ...}}
      provenance: measured-host
      source: "..."
      fit: {points: 24, max_error_bytes: 180}

    code   = base + per_layer * layers + per_op * ops + sum(kinds used) + sum(op kinds used)
    stack  = base + max(kinds used);  library RAM = base + max(kinds used)
    scratch (the opt kernels' buffer) = max over layers of scratch_bytes(layer, arch),
             the kernels' own aq_scratch_bytes (kernels/src/aq_common.c) for that build,
             rounded as the emitted C declares it: 8 * (ceil(S / 8) + 1)

A profile without the section prices code, stack and library RAM at 0 (x86_64 scratch).
Pure Python; no TensorFlow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from autoq.errors import UserError, where
from autoq.kinds import KINDS

ARCHES = ("m4", "aarch64", "x86_64")
PROVENANCES = ("measured-board", "measured-host", "derived")
# Output channels per block of the opt kernels' weight copies (kernels/src/aq_internal.h).
_F32_COB = {"m4": 8, "aarch64": 16, "x86_64": 32}   # AQ_F32_COB of each build (aq_internal.h)
_I8_COB = {"m4": 4, "aarch64": 16, "x86_64": 16}
_I8W_BYTES = {"m4": 2, "aarch64": 4, "x86_64": 4}
_BIN_COB = 8


@dataclass
class DeployCost:
    arch: str = "x86_64"
    code_base: int = 0
    code_per_layer: int = 0
    code_per_op: int = 0
    code_kinds: dict[str, int] = field(default_factory=dict)
    code_ops: dict[str, int] = field(default_factory=dict)
    static_ram_bytes: int = 0
    ram_kinds: dict[str, int] = field(default_factory=dict)
    stack_base: int = 0
    stack_kinds: dict[str, int] = field(default_factory=dict)
    provenance: str = "derived"
    source: str = "not measured: code, stack and library RAM priced at 0"
    points: int = 0
    max_error_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch,
                "code_bytes": {"base": self.code_base, "per_layer": self.code_per_layer,
                               "per_op": self.code_per_op, "kinds": dict(self.code_kinds),
                               "ops": dict(self.code_ops)},
                "static_ram_bytes": {"base": self.static_ram_bytes, "kinds": dict(self.ram_kinds)},
                "stack_bytes": {"base": self.stack_base, "kinds": dict(self.stack_kinds)},
                "provenance": self.provenance, "source": self.source,
                "fit": {"points": self.points, "max_error_bytes": self.max_error_bytes}}

    @classmethod
    def from_dict(cls, raw: Any, source: str | None, path: str = "deploy") -> "DeployCost":
        from autoq.plan import OP_KINDS

        _mapping(raw, source, path, {"arch", "code_bytes", "static_ram_bytes", "stack_bytes", "provenance",
                                     "source", "fit"})
        if raw["arch"] not in ARCHES:
            raise UserError(f"{where(source, path + '.arch')}got {raw['arch']!r}; allowed: {', '.join(ARCHES)}")
        if raw["provenance"] not in PROVENANCES:
            raise UserError(f"{where(source, path + '.provenance')}got {raw['provenance']!r}; "
                            f"allowed: {', '.join(PROVENANCES)}")
        if not isinstance(raw["source"], str):
            raise UserError(f"{where(source, path + '.source')}got {raw['source']!r}; expected a string")
        code, stack, fit, ram = raw["code_bytes"], raw["stack_bytes"], raw["fit"], raw["static_ram_bytes"]
        _mapping(code, source, f"{path}.code_bytes", {"base", "per_layer", "per_op", "kinds", "ops"})
        _mapping(stack, source, f"{path}.stack_bytes", {"base", "kinds"})
        _mapping(ram, source, f"{path}.static_ram_bytes", {"base", "kinds"})
        _mapping(fit, source, f"{path}.fit", {"points", "max_error_bytes"})
        numbers = {f"{path}.code_bytes.{k}": code[k] for k in ("base", "per_layer", "per_op")}
        numbers[f"{path}.static_ram_bytes.base"] = ram["base"]
        numbers[f"{path}.stack_bytes.base"] = stack["base"]
        numbers[f"{path}.fit.points"] = fit["points"]
        if fit["max_error_bytes"] is not None:
            numbers[f"{path}.fit.max_error_bytes"] = fit["max_error_bytes"]
        for key, value in numbers.items():
            _byte_count(value, source, key)
        tables = {}
        for key, table, names in (("code_bytes.kinds", code["kinds"], KINDS), ("code_bytes.ops", code["ops"], OP_KINDS),
                                  ("stack_bytes.kinds", stack["kinds"], KINDS),
                                  ("static_ram_bytes.kinds", ram["kinds"], KINDS)):
            if not isinstance(table, dict):
                raise UserError(f"{where(source, f'{path}.{key}')}expected a mapping, got {type(table).__name__}")
            for name, value in table.items():
                if name not in names:
                    raise UserError(f"{where(source, f'{path}.{key}.{name}')}unknown name; allowed: {', '.join(names)}")
                _byte_count(value, source, f"{path}.{key}.{name}")
            tables[key] = {str(k): int(v) for k, v in table.items()}
        return cls(arch=raw["arch"], code_base=int(code["base"]), code_per_layer=int(code["per_layer"]),
                   code_per_op=int(code["per_op"]), code_kinds=tables["code_bytes.kinds"],
                   code_ops=tables["code_bytes.ops"], static_ram_bytes=int(ram["base"]),
                   ram_kinds=tables["static_ram_bytes.kinds"],
                   stack_base=int(stack["base"]), stack_kinds=tables["stack_bytes.kinds"],
                   provenance=raw["provenance"], source=raw["source"], points=int(fit["points"]),
                   max_error_bytes=None if fit["max_error_bytes"] is None else int(fit["max_error_bytes"]))


def _mapping(value: Any, source: str | None, path: str, keys: set[str]) -> None:
    if not isinstance(value, dict):
        raise UserError(f"{where(source, path)}expected a mapping, got {type(value).__name__}")
    unknown = sorted(str(k) for k in set(value) - keys)
    if unknown:
        raise UserError(f"{where(source, f'{path}.{unknown[0]}')}unknown key; allowed: {', '.join(sorted(keys))}")
    missing = sorted(keys - set(value))
    if missing:
        raise UserError(f"{where(source, f'{path}.{missing[0]}')}missing required key")


def _byte_count(value: Any, source: str | None, path: str) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 40):
        raise UserError(f"{where(source, path)}got {value!r}; expected an integer number of bytes >= 0")


# --- per-plan quantities -------------------------------------------------------------------


def code_bytes(plan, deploy: DeployCost) -> int:
    kinds = {e.kind for e in plan.layers}
    ops = {o.op for o in plan.ops}
    return (deploy.code_base + deploy.code_per_layer * len(plan.layers) + deploy.code_per_op * len(plan.ops)
            + sum(deploy.code_kinds.get(k, 0) for k in kinds) + sum(deploy.code_ops.get(o, 0) for o in ops))


def _base_plus_max(base: int, table: dict[str, int], plan) -> int:
    return base + max((table.get(e.kind, 0) for e in plan.layers), default=0)


def stack_bytes(plan, deploy: DeployCost) -> int:
    return _base_plus_max(deploy.stack_base, deploy.stack_kinds, plan)


def library_ram_bytes(plan, deploy: DeployCost) -> int:
    return _base_plus_max(deploy.static_ram_bytes, deploy.ram_kinds, plan)


def _words(c: int) -> int:
    return (c + 63) // 64


def f32_whole_window(entry) -> bool:
    """aq_f32_whole_window: an f32 layer whose one output pixel sees the whole input (dense layers);
    its opt kernel takes dot products over the weight rows in place: no blocks, no copy, no scratch."""
    return entry.kind == "f32" and (entry.h_out, entry.w_out, entry.kh, entry.kw) == (1, 1, entry.h_in, entry.w_in)


def layer_scratch_bytes(entry, arch: str) -> int:
    """aq_scratch_bytes(kind, "opt", geom) of the kernels built for ``arch`` (kernels/src/aq_common.c)."""
    k = entry.kh * entry.kw * entry.c_in
    if f32_whole_window(entry):
        return 0
    if entry.kind in ("f32", "lut", "shift"):
        return k * _F32_COB[arch] * 4
    if entry.kind in ("xnor", "and"):
        blocks = math.ceil(entry.c_out / _BIN_COB) * entry.kh * entry.kw * _words(entry.c_in) * _BIN_COB * 8
        if entry.kind == "and":
            blocks += entry.h_in * entry.w_in * 4
        narrow = 0
        if entry.c_in * entry.kw <= 64 and entry.kh <= 64:   # aq_bin_narrow_fits
            row_words = (entry.w_in * entry.c_in + 63) // 64 + 1
            narrow = (entry.h_in * row_words + entry.kh * math.ceil(entry.c_out / 8) * 8) * 8
        return max(blocks, narrow)
    if entry.kind == "int8":
        c4 = 4 * math.ceil(entry.c_in / 4)          # aq_i8p_c4: the packed channel count
        if arch == "m4":                            # the DSP path (conv_int8_dsp.c)
            return entry.h_in * entry.w_in * c4 * 2
        if arch == "aarch64":                       # the NEON path (conv_int8_neon.c)
            return ((entry.h_in * entry.w_in * c4 * 2 + 15) & ~15) + entry.kh * entry.kw * c4 * 16
        one = ((entry.h_in * entry.w_in * entry.c_in + 7) & ~7) * 2 + k * _I8_COB[arch] * _I8W_BYTES[arch]
        # the dispatched pair path: int16 pairs of input channels as int32
        c2 = (entry.c_in + 1) // 2
        hp = (entry.h_out - 1) * entry.stride + entry.kh
        wp = (entry.w_out - 1) * entry.stride + entry.kw
        pairs = ((hp * wp * c2 + 7) & ~7) * 4 + entry.kh * entry.kw * c2 * _I8_COB[arch] * 4
        return max(one, pairs)
    raise UserError(f"layer {entry.name}: kind {entry.kind!r} unknown; allowed: {', '.join(KINDS)}")


def scratch_need(plan, arch: str) -> int:
    """The largest scratch any layer's opt kernel needs on ``arch`` (emit_c's scratch_bytes)."""
    return max((layer_scratch_bytes(e, arch) for e in plan.layers), default=0)


def scratch_bytes(plan, arch: str) -> int:
    """The emitted C's scratch array for ``arch``: 8 * (ceil(S / 8) + 1), S = scratch_need."""
    return 8 * ((scratch_need(plan, arch) + 7) // 8 + 1)


def emit_for_target(graph, arch: str, model_name: str = "model", comment: str = "", variant: str = "opt"):
    """(plan, CEmission) of an ExportGraph as ``autoq export`` ships it for ``arch``: the plan of
    the emitted C, and the C with the opt kernels' scratch sized for that build (variant "ref":
    no scratch). The one place the exporter, the deploy and op calibrations get their C from."""
    from autoq.export.c_emit import emit_c
    from autoq.export.planning import plan_from_emission

    plan = plan_from_emission(graph, emit_c(graph, model_name))
    scratch = scratch_need(plan, arch) if variant == "opt" else 0
    return plan, emit_c(graph, model_name, comment=comment, variant=variant, scratch_bytes=scratch)


__all__ = ["ARCHES", "DeployCost", "emit_for_target", "code_bytes", "layer_scratch_bytes", "library_ram_bytes", "scratch_bytes",
           "scratch_need", "stack_bytes"]
