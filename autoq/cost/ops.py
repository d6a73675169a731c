"""Latency of the non-kernel ops of a plan (LayerPlan.ops: ReLU, unfolded BatchNorm, pooling,
residual add, concatenation, copies, input quantize / int8 quantize / bit packing).

Per op (kind k = OpEntry.op, or ``quantize_sign`` for the sign quantizer in front of an xnor
layer: :func:`op_keys`; coefficients c_k from the profile's ``ops`` section)::

    t_op = c_k.ns_per_element * out_elements + c_k.ns_per_input * in_elements
         + c_k.ns_per_tap * out_elements * window + c_k.ns_fixed

The coefficients are measured on the exported C itself (autoq.cost.calibrate_ops). A profile
without coefficients for a kind prices those ops at 0 (the shipped boards have no op
measurements yet; :func:`unpriced_ops` lists them).
"""
from __future__ import annotations

from autoq.cost.profile import HardwareProfile, load_profile
from autoq.plan import LayerPlan, OpEntry


def op_features(op: OpEntry) -> dict[str, float]:
    """The quantity each op coefficient multiplies (autoq.cost.profile.OP_COEFFICIENTS)."""
    return {"ns_per_element": float(op.out_elements), "ns_per_input": float(op.in_elements),
            "ns_per_tap": float(op.out_elements * op.window), "ns_fixed": 1.0}


def op_keys(plan: LayerPlan) -> list[str]:
    """The profile key pricing each op of ``plan`` (autoq.cost.profile.PRICED_OPS): its kind,
    except that the input quantizer of an xnor layer (always sign) is ``quantize_sign``."""
    kinds = {e.name: e.kind for e in plan.layers}
    return ["quantize_sign" if op.op == "quantize" and kinds.get(op.name.rsplit(":", 1)[0]) == "xnor" else op.op
            for op in plan.ops]


def op_latency_ns(op: OpEntry, profile: HardwareProfile, key: str | None = None) -> float:
    cost = profile.ops.get(key or op.op)
    if cost is None:
        return 0.0
    feats = op_features(op)
    return sum(value * feats[name] for name, value in cost.coefficients.items())


def ops_latency_ns(plan: LayerPlan, profile: HardwareProfile | str) -> list[tuple[str, float]]:
    """(op name, predicted ns) for every op of ``plan``, in execution order."""
    profile = load_profile(profile)
    return [(op.name, op_latency_ns(op, profile, key)) for op, key in zip(plan.ops, op_keys(plan))]


def unpriced_ops(plan: LayerPlan, profile: HardwareProfile | str) -> list[str]:
    """Op kinds of ``plan`` the profile has no coefficients for (priced at 0)."""
    profile = load_profile(profile)
    return sorted(set(op_keys(plan)) - set(profile.ops))


__all__ = ["op_features", "op_keys", "op_latency_ns", "ops_latency_ns", "unpriced_ops"]
