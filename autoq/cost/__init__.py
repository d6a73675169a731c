"""Cost model: hardware profiles, latency/memory estimates of a LayerPlan, calibration.

Imports without TensorFlow. Public surface::

    load_profile(id_or_path) -> HardwareProfile      list_profiles() -> [ids]
    estimate(plan, profile)  -> CostReport
"""
from __future__ import annotations

from autoq.cost.model import CostReport, LayerCost, estimate
from autoq.cost.profile import HardwareProfile, KernelCost, list_profiles, load_profile

__all__ = ["CostReport", "HardwareProfile", "KernelCost", "LayerCost", "estimate", "list_profiles", "load_profile"]
