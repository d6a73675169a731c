"""Quantizer test cases generated from the registry (``autoq.quant.names()``), so that a quantizer
registered later is tested by every suite that uses these cases, without editing a list.

A case is (config, role). Each registered quantizer gets, for every role it serves, every
combination of the values below for the parameters its constructor has (with its own default
added to each), other parameters at their defaults; a combination its constructor rejects
(``bits=1`` for ``uniform``) is left out. Hand-picked parameter sets a suite wants besides
(a scale that is not a power of two, a fixed activation range) are added with ``with_extras``.
"""
from __future__ import annotations

import itertools

import autoq.quant as Q

VARIANTS = {"bits": (1, 2, 3, 4, 8), "per_channel": (False, True)}
FIXED = {"seed": 1}   # a stochastic quantizer draws the same noise on every run


def roles(name: str) -> tuple[str, ...]:
    role = Q.get(name).role
    return ("weight", "activation") if role == "both" else (role,)


def _combinations(name: str, variants: dict) -> list[dict]:
    params = Q.get(name).parameters()
    fixed = {k: v for k, v in FIXED.items() if k in params}
    axes = {k: list(dict.fromkeys((params[k], *values))) for k, values in variants.items() if k in params}
    # bits always written out (readable case ids), other parameters only where not the default
    return [{"name": name, **fixed, **{k: v for k, v in zip(axes, values) if k == "bits" or v != params[k]}}
            for values in itertools.product(*axes.values())]


def registry_cases(role: str | None = None, variants: dict = VARIANTS) -> list[tuple[dict, str]]:
    """(config, role) for every registered quantizer (only those serving ``role`` if given)."""
    cases = []
    for name in Q.names(role):
        for r in ((role,) if role else roles(name)):
            for config in _combinations(name, variants):
                try:
                    Q.for_role(config, r)
                except ValueError:
                    continue
                cases.append((config, r))
    return cases


def resolved(config, role: str):
    """A case's quantizer as its full config (defaults filled in): equal cases compare equal."""
    q = Q.for_role(config, role)
    return None if q is None else tuple(sorted(q.get_config().items(), key=str))


def with_extras(cases: list[tuple], extras: list[tuple]) -> list[tuple]:
    """``cases`` then each extra (config, role) not already among them."""
    seen = {resolved(c, r) + (r,) if c is not None else (None, r) for c, r in cases}
    out = list(cases)
    for c, r in extras:
        key = resolved(c, r) + (r,) if c is not None else (None, r)
        if key not in seen:
            seen.add(key)
            out.append((c, r))
    return out


def case_id(config, role: str | None = None) -> str:
    if config is None:
        return "float"
    config = {"name": config} if isinstance(config, str) else config
    params = "-".join(f"{k}{v}" for k, v in config.items() if k != "name")
    return "-".join(p for p in (config["name"], role, params) if p)
