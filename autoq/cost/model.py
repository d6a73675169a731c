"""Latency and memory of a LayerPlan on a target.

Per layer (kernel kind k, coefficients c_k from the profile)::

    t_layer = c_k.ns_per_mac * macs_B + c_k.ns_per_word_op * word_ops_B
            + c_k.ns_per_row * rows_B + c_k.ns_per_output * (h_out*w_out*c_out)
            + c_k.ns_per_input * (h_in*w_in*c_in) + c_k.ns_per_weight * weight_count
            + c_k.ns_per_weight_byte * weight_bytes + c_k.ns_per_tail_weight * tail_weights_B
            + c_k.ns_fixed
    (weight_bytes: the packed weights, so a kind's cost can grow with its bit width: memory traffic;
    tail_weights_B = kh*kw*c_in*B if B does not divide c_out, else 0: the kernels repack the
    weights of each c_out block per call, a full block with vector transposes, the partial last
    block with a scalar copy that zero-fills the missing channels, several times slower per
    weight; on x86 f32 that made a 10-channel dense layer cost 4x its fit)
    with c_B = B * ceil(c_out / B), B = the kind's c_out_block (the kernels compute output
    channels in blocks; a partial block costs a full one; B = 1: no blocking). An f32 layer whose
    one output pixel sees the whole input (dense) has B = 4 and no weight_count or tail term:
    its kernel reads the weight rows in place, 4 at a time (no block copy).
    macs_B     = h_out*w_out*c_B * kh*kw*c_in
    word_ops_B = h_out*w_out*c_B * kh*kw * ceil(c_in / word_bits)  (popcount words: xnor, and)
    rows_B     = h_out*w_out*c_B * kh       (filter rows applied: one contiguous run of kw*c_in
                                             taps each, i.e. the inner loop's start-up cost)

    latency   = (sum_layers t_layer + sum_ops t_op + overhead_ns) / 1e6      [ms]
                (t_op: the non-kernel ops of the plan, autoq/cost/ops.py)
    flash     = plan.const_bytes (every const array of the emitted C) + code    [bytes]
    RAM       = plan.arena_bytes (the emitted C's static buffers) + scratch
                + stack + the C library's static RAM                           [bytes]
    fits      = flash <= flash limit and RAM <= RAM limit of the profile

code, scratch (the target build's aq_scratch_bytes), stack and library RAM come from the
profile's ``deploy`` section (autoq/cost/deploy.py), measured from links of the exported C.
A plan built from shapes alone (arena_bytes 0) bounds RAM by the largest layer's
in_bytes + out_bytes + live_bytes instead.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from autoq.cost.deploy import code_bytes, f32_whole_window, library_ram_bytes, scratch_bytes, stack_bytes
from autoq.cost.ops import ops_latency_ns
from autoq.cost.profile import COEFFICIENTS, HardwareProfile, load_profile
from autoq.plan import LayerEntry, LayerPlan


F32_WHOLE_WINDOW_ROWS = 4   # conv_f32_opt.c: dot products of 4 weight rows per input load


def features(entry: LayerEntry, word_bits: int, c_out_block: int = 1) -> dict[str, float]:
    """The quantity each coefficient multiplies, for one layer (module docstring). An f32
    whole-window layer computes rows of 4 channels and copies no weights (no weight or tail
    term), whatever the kind's c_out_block."""
    whole = f32_whole_window(entry)
    block = F32_WHOLE_WINDOW_ROWS if whole else c_out_block
    c_b = block * math.ceil(entry.c_out / block)
    pixels = entry.h_out * entry.w_out
    copies = not whole and entry.c_out % block
    return {"ns_per_mac": pixels * c_b * entry.kh * entry.kw * entry.c_in,
            "ns_per_word_op": pixels * c_b * entry.kh * entry.kw * math.ceil(entry.c_in / word_bits),
            "ns_per_row": pixels * c_b * entry.kh, "ns_per_output": entry.outputs,
            "ns_per_input": entry.inputs, "ns_per_weight": 0 if whole else entry.weight_count,
            "ns_per_weight_byte": entry.weight_bytes,
            "ns_per_tail_weight": entry.kh * entry.kw * entry.c_in * block if copies else 0,
            "ns_fixed": 1.0}


def layer_latency_ns(entry: LayerEntry, profile: HardwareProfile) -> float:
    kernel = profile.kernel(entry.kind)
    feats = features(entry, profile.word_bits, kernel.c_out_block)
    return sum(value * feats[name] for name, value in kernel.coefficients.items())


@dataclass
class LayerCost:
    name: str
    kind: str
    macs: int
    latency_ms: float
    flash_bytes: int
    ram_bytes: int
    provenance: str


@dataclass
class CostReport:
    target: str
    latency_ms: float
    flash_bytes: int
    peak_ram_bytes: int
    fits: bool
    fits_flash: bool
    fits_ram: bool
    flash_limit_bytes: int
    ram_limit_bytes: int
    macs: int
    per_layer: list[LayerCost] = field(default_factory=list)
    const_bytes: int = 0      # flash: the arrays of the emitted C
    code_bytes: int = 0       # flash: kernel + model code (profile deploy section)
    arena_bytes: int = 0      # RAM: the emitted C's static activation buffers
    scratch_bytes: int = 0    # RAM: the opt kernels' scratch on this target's build
    stack_bytes: int = 0      # RAM: stack + C library data (profile deploy section)
    ops_ms: float = 0.0       # latency of the non-kernel ops (included in latency_ms)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["per_layer"] = [asdict(x) for x in self.per_layer]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CostReport":
        data = dict(data)
        data["per_layer"] = [LayerCost(**x) for x in data.get("per_layer", [])]
        return cls(**data)


def estimate(plan: LayerPlan, profile: HardwareProfile | str) -> CostReport:
    """Predict latency, flash and peak RAM of ``plan`` on ``profile`` (an id, path or profile)."""
    profile = load_profile(profile)
    per_layer = [
        LayerCost(name=e.name, kind=e.kind, macs=e.macs, latency_ms=layer_latency_ns(e, profile) / 1e6,
                  flash_bytes=e.flash_bytes, ram_bytes=e.ram_bytes, provenance=profile.kernel(e.kind).provenance)
        for e in plan.layers]
    ops_ms = sum(ns for _, ns in ops_latency_ns(plan, profile)) / 1e6   # non-kernel ops (autoq/cost/ops.py)
    latency_ms = sum(x.latency_ms for x in per_layer) + ops_ms + profile.overhead_ns / 1e6
    deploy = profile.deploy
    const, code = plan.const_bytes, code_bytes(plan, deploy)
    scratch = scratch_bytes(plan, deploy.arch)
    stack = stack_bytes(plan, deploy) + library_ram_bytes(plan, deploy)
    flash = const + code
    if plan.arena_bytes:
        peak_ram = plan.arena_bytes + scratch + stack
    else:   # shapes only: no emitted buffers to count
        peak_ram = max((x.ram_bytes for x in per_layer), default=0) + scratch + stack
    fits_flash = flash <= profile.flash_limit_bytes
    fits_ram = peak_ram <= profile.ram_limit_bytes
    return CostReport(target=profile.id, latency_ms=latency_ms, flash_bytes=flash, peak_ram_bytes=peak_ram,
                      fits=fits_flash and fits_ram, fits_flash=fits_flash, fits_ram=fits_ram,
                      flash_limit_bytes=profile.flash_limit_bytes, ram_limit_bytes=profile.ram_limit_bytes,
                      macs=plan.macs, per_layer=per_layer, const_bytes=const, code_bytes=code,
                      arena_bytes=plan.arena_bytes, scratch_bytes=scratch, stack_bytes=stack, ops_ms=ops_ms)


__all__ = ["COEFFICIENTS", "CostReport", "LayerCost", "estimate", "features", "layer_latency_ns"]
