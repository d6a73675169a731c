"""Per-layer sensitivity: how much worse the network gets with only one layer quantized.

For every layer and every quantizer choice the space gives it (weights and input activations
separately, everything else float): start from the float baseline, fine-tune ``steps``
batches (``default_steps``: 4 for small networks, 0 = zero-shot above ZERO_SHOT_MACS), measure the validation loss with batch statistics in the BatchNorm layers (the
baseline's moving statistics belong to the float weights); the sensitivity is that loss
minus the float network's after the same steps. It runs on the search's switch model
(:mod:`autoq.search.switch`), so it costs one short train call + one forward per entry and
no new graph, and it is cached on disk per (model, data set, baseline, choices, steps).

The table (plain data, JSON)::

    {"model": "lenet5", "steps": 4, "base_loss": 0.11, "num_classes": 10, "seconds": 3.2,
     "layers": {"conv1": {"weight": {"bc": 1.93, "twn": 0.21, ...},
                          "activation": {"sign": 2.4, ...}}, ...}}

Labels are the space's parameter values (autoq.config.quantizer_label, compact). This module imports
TensorFlow (it trains); :mod:`autoq.search.ilp` reads the table without it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SENSITIVITY_VERSION = 2  # 2: the table records num_classes (the ILP caps predicted loss at ln(classes))
DEFAULT_STEPS = 4
ZERO_SHOT_MACS = 5_000_000  # a bigger network gets 0 steps (one forward per entry): 4 steps x
                            # ~100 entries would cost more than the trials it guides


def default_steps(float_macs: int) -> int:
    return DEFAULT_STEPS if float_macs <= ZERO_SHOT_MACS else 0
EVAL_SAMPLES = 512   # validation images per loss (one forward)


def table_key(model: str, data_fingerprint: str, baseline_key: str, choices: dict, steps: int) -> str:
    payload = {"v": SENSITIVITY_VERSION, "model": model, "data": data_fingerprint,
               "baseline": baseline_key, "choices": choices, "steps": steps}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def layer_choices(space) -> dict[str, dict[str, dict[str, dict | None]]]:
    """layer -> dim -> {label: spec} of every non-float choice the space gives it."""
    out: dict[str, dict[str, dict]] = {}
    for rule in space.rules:
        for dim in ("weight", "activation"):
            for name in rule.owned.get(dim, []):
                out.setdefault(name, {"weight": {}, "activation": {}})[dim] = {
                    c.label: c.spec for c in (getattr(rule, dim) or []) if c.spec is not None}
    return out


def compute(trainer, space, steps: int = DEFAULT_STEPS, cache_dir: str | Path | None = None,
            baseline_key: str = "") -> dict:
    """The sensitivity table (module docstring) of ``space`` on ``trainer``'s data/baseline."""
    choices = layer_choices(space)
    key = table_key(space.model, trainer.data.fingerprint(), baseline_key, choices, steps)
    path = Path(cache_dir) / "sensitivity" / f"{space.model}-{key}.json" if cache_dir else None
    if path is not None and path.is_file():
        return json.loads(path.read_text())
    start = time.perf_counter()
    from autoq.config import QuantConfig

    float_cfg = QuantConfig(model=space.model, first_last_float=False)
    base_loss = _loss_after(trainer, float_cfg, steps)
    layers: dict[str, dict] = {}
    for name, dims in choices.items():
        for dim, labelled in dims.items():
            for label, spec in labelled.items():
                cfg = QuantConfig.from_dict({"model": space.model, "first_last_float": False,
                                             "layers": {name: {dim: spec}}})
                loss = _loss_after(trainer, cfg, steps)
                layers.setdefault(name, {"weight": {}, "activation": {}})[dim][label] = \
                    float(min(loss - base_loss, 1e3))
    table = {"model": space.model, "steps": steps, "base_loss": base_loss,
             "num_classes": int(trainer.data.num_classes),
             "seconds": time.perf_counter() - start, "layers": layers}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table, indent=1))
    log.info("sensitivity of %d layers in %.1f s", len(layers), table["seconds"])
    return table


def _loss_after(trainer, config, steps: int) -> float:
    """Validation loss (batch-statistics BatchNorm) after ``steps`` fine-tuning batches."""
    import tensorflow as tf

    sm = trainer._switch(config)
    sm.load()
    bs = trainer.recipe.batch_size
    n = len(trainer.data.y_train)
    if steps > 0:
        perm = np.random.default_rng(0).permutation(n)[:steps * bs].astype(np.int32)
        sm.optimizer.learning_rate = trainer.recipe.lr
        sm._train_epoch(trainer.x_train, trainer.y_train, perm, np.int32(bs))
    x, y = trainer.data.x_val[:EVAL_SAMPLES], trainer.data.y_val[:EVAL_SAMPLES]
    logits = sm.batch_stat_logits(tf.constant(x, tf.float32)).numpy()
    if not np.all(np.isfinite(logits)):
        return 1e3
    return float(sm.loss_fn(y, logits))


def format_rows(table: dict) -> list[list[str]]:
    """Rows (layer, dim, choice, delta loss) sorted by layer order then sensitivity."""
    rows = []
    for layer, dims in table["layers"].items():
        for dim in ("weight", "activation"):
            for label, value in sorted(dims.get(dim, {}).items(), key=lambda kv: kv[1]):
                rows.append([layer, dim, label, f"{value:+.4f}"])
    return rows
