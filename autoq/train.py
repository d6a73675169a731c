"""Training: cached float baselines and quantization-aware fine-tuning (QAT).

- :func:`train_baseline` trains the float model once per (model, data set content, seed,
  recipe, input shape, classes) and stores it in a content-addressed folder
  ``<cache>/<model>-<dataset>-<key16>/`` (``model.keras``, ``model.weights.h5``,
  ``result.json``). The cache root is ``$AUTOQ_CACHE/baselines`` or
  ``~/.cache/autoq/baselines``. A second call with the same inputs reads the folder back.
- :func:`finetune` builds the model for a QuantConfig, copies the baseline's weights into it
  by layer and variable name (the thesis trains every quantized model from scratch for 200
  epochs; starting from the baseline is what makes a search affordable on 2 CPU cores) and
  trains it with the straight-through quantizers in the loop; ``from_scratch=True`` skips
  the copy.
- Validation accuracy is what a search should use; test accuracy is for reports only.
- A loss that becomes NaN/inf or exceeds ``DIVERGED_LOSS`` stops the run: the result has
  ``status == "failed"`` and a ``reason``, it is never an exception.
- Deterministic for a seed (``keras.utils.set_random_seed`` + TF op determinism); thread
  pools configurable (``threads``) before the first TF op.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from autoq.config import QuantConfig
from autoq.data import Dataset, load_dataset
from autoq.errors import UserError

log = logging.getLogger(__name__)

DIVERGED_LOSS = 1e4  # cross-entropy this large means the run has blown up
CACHE_VERSION = 1  # bump when the training code changes what a cached baseline means


# --- recipes ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    """How to train: optimizer, learning rate and its step schedule, epochs, batch size.

    Learning rate at epoch e (0-based): step decay
    ``lr * gamma ** #{m in schedule : e >= round(m * epochs)}`` (``schedule`` lists milestones
    as fractions of the epochs); or, when ``final_lr`` is set, exponential decay
    ``lr * (final_lr / lr) ** (e / (epochs - 1))`` reaching ``final_lr`` at the last epoch.
    """

    name: str
    optimizer: str  # "adam" | "sgd"
    lr: float
    epochs: int
    batch_size: int
    schedule: tuple[float, ...] = ()
    gamma: float = 0.1
    momentum: float = 0.9
    final_lr: float | None = None

    def lr_at(self, epoch: int) -> float:
        if self.final_lr is not None:
            frac = epoch / (self.epochs - 1) if self.epochs > 1 else 0.0
            return float(self.lr * (self.final_lr / self.lr) ** frac)
        drops = sum(1 for m in self.schedule if epoch >= round(m * self.epochs))
        return float(self.lr * self.gamma ** drops)

    def with_epochs(self, epochs: int | None) -> "Recipe":
        if epochs is None:
            return self
        if int(epochs) < 1:
            raise UserError(f"epochs: must be >= 1, got {epochs!r}")
        return replace(self, epochs=int(epochs))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["schedule"] = list(self.schedule)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        d = dict(d)
        d["schedule"] = tuple(d.get("schedule", ()))
        r = cls(**d)
        if r.optimizer not in ("adam", "sgd"):
            raise UserError(f"recipe.optimizer: got {r.optimizer!r}; allowed: ['adam', 'sgd']")
        return r


RECIPES: dict[str, Recipe] = {
    # LeNet-5 / MNIST in the thesis: Adam, lr 1e-3 decayed exponentially to 1e-4, 30 epochs,
    # batch 128.
    "adam": Recipe("adam", "adam", 1e-3, 30, 128, final_lr=1e-4),
    # CIFAR models in the thesis: SGD momentum 0.9, lr 0.1, x0.1 at 40/60/80 % of the epochs.
    "sgd": Recipe("sgd", "sgd", 0.1, 200, 128, (0.4, 0.6, 0.8), 0.1, 0.9),
}


def get_recipe(recipe: "Recipe | str | dict | None", model_name: str,
               epochs: int | None = None) -> Recipe:
    """Resolve a recipe (object, RECIPES name, dict or None = the model's default)."""
    if recipe is None:
        from autoq.models.zoo import MODELS

        recipe = MODELS[model_name].recipe if model_name in MODELS else "adam"
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise UserError(f"recipe: unknown recipe {recipe!r}; known: {list(RECIPES)}")
        recipe = RECIPES[recipe]
    elif isinstance(recipe, dict):
        recipe = Recipe.from_dict(recipe)
    return recipe.with_epochs(epochs)


# --- results ------------------------------------------------------------------------------

@dataclass
class _RunResult:
    """What every training run reports (a float baseline or a quantized fine-tune)."""

    status: str  # "ok" | "failed"
    reason: str | None
    val_acc: float | None
    test_acc: float | None
    weights_path: str | None
    model_path: str | None
    seconds: float


@dataclass
class BaselineResult(_RunResult):
    cached: bool = False
    key: str = ""
    folder: str | None = None
    model_name: str = ""
    dataset: str = ""
    seed: int = 0
    recipe: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult(_RunResult):
    model_name: str = ""
    dataset: str = ""
    config: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    from_scratch: bool = False
    baseline_key: str | None = None
    epochs_run: int = 0
    history: dict = field(default_factory=dict)
    packed_weight_bytes: int | None = None
    float_weight_bytes: int | None = None
    compression: float | None = None
    model: Any = field(default=None, repr=False, compare=False)  # the trained keras.Model

    def to_dict(self) -> dict:
        d = asdict(replace(self, model=None))
        d.pop("model")
        return d


# --- helpers ------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    root = os.environ.get("AUTOQ_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "autoq"
    return base / "baselines"


def _resolve_dataset(dataset: "Dataset | str") -> Dataset:
    return load_dataset(dataset) if isinstance(dataset, str) else dataset


def _setup(seed: int, threads: int | None):
    """Quiet TF, thread pools, seeds and deterministic ops; returns (tf, keras)."""
    from autoq.tf_env import import_tf, set_threads

    tf = import_tf()
    if threads:
        set_threads(threads, threads)
    import keras

    keras.utils.set_random_seed(int(seed))
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # noqa: BLE001 - older/odd builds: seeds alone still apply
        log.debug("op determinism not available")
    return tf, keras


def _optimizer(keras, recipe: Recipe):
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(recipe.lr)
    return keras.optimizers.SGD(recipe.lr, momentum=recipe.momentum)


def _guard_callback(keras):
    class LossGuard(keras.callbacks.Callback):
        """Stop on a NaN/inf or exploding loss and remember why."""

        def __init__(self):
            super().__init__()
            self.reason: str | None = None
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is None:
                return
            loss = float(loss)
            if not math.isfinite(loss):
                self.reason = f"loss became {loss} at epoch {self.epoch + 1}, batch {batch + 1}"
            elif loss > DIVERGED_LOSS:
                self.reason = (f"loss diverged ({loss:.3g} > {DIVERGED_LOSS:g}) at epoch "
                               f"{self.epoch + 1}, batch {batch + 1}")
            if self.reason:
                self.model.stop_training = True

    return LossGuard()


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float | None:
    """Top-1 accuracy in inference mode; None if the model outputs non-finite values."""
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = np.asarray(model(x[i:i + batch_size], training=False))
        if not np.all(np.isfinite(logits)):
            return None
        correct += int(np.sum(np.argmax(logits, axis=-1) == y[i:i + batch_size]))
    return correct / max(len(x), 1)


def _fit(tf, keras, model, data: Dataset, recipe: Recipe) -> tuple[str | None, dict, int]:
    """Compile and train; returns (failure reason or None, history, epochs run)."""
    model.compile(optimizer=_optimizer(keras, recipe),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    guard = _guard_callback(keras)
    schedule = keras.callbacks.LearningRateScheduler(lambda e, lr: recipe.lr_at(e))
    # Our own tf.data pipelines: Keras' array adapter adds a parallel map that op determinism
    # rewrites into a MapDataset, and TF then logs an error line per fit (harmless, but noisy).
    train_ds = (tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
                .shuffle(len(data.x_train), reshuffle_each_iteration=True)  # seeded by set_random_seed
                .batch(recipe.batch_size))
    val_ds = tf.data.Dataset.from_tensor_slices((data.x_val, data.y_val)).batch(512)
    try:
        hist = model.fit(train_ds, epochs=recipe.epochs, validation_data=val_ds,
                         callbacks=[schedule, guard], verbose=0, shuffle=False)  # shuffled above
    except (tf.errors.InvalidArgumentError, FloatingPointError, ArithmeticError) as exc:
        return f"training stopped by a numeric error: {str(exc).splitlines()[0]}", {}, 0
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    epochs_run = len(history.get("loss", []))
    if guard.reason:
        return guard.reason, history, epochs_run
    if any(not np.all(np.isfinite(w)) for w in model.get_weights()):
        return "weights became NaN/inf", history, epochs_run
    return None, history, epochs_run


def _evaluate(model, data: Dataset) -> tuple[float | None, float | None, str | None]:
    val, test = accuracy(model, data.x_val, data.y_val), accuracy(model, data.x_test, data.y_test)
    if val is None or test is None:
        return None, None, "model outputs NaN/inf"
    return val, test, None


def _save(model, folder: Path) -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    model_path, weights_path = folder / "model.keras", folder / "model.weights.h5"
    model.save(model_path)
    model.save_weights(weights_path)
    return str(model_path.resolve()), str(weights_path.resolve())


# --- baseline -----------------------------------------------------------------------------

def _code_hash() -> str:
    """Hash of the sources that define the float models (zoo + layers)."""
    import autoq.models.zoo as zoo
    import autoq.quant.layers as layers

    h = hashlib.sha256()
    for mod in (zoo, layers):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:16]


def baseline_key(model_name: str, data: Dataset, recipe: Recipe, seed: int) -> str:
    """Content address of a baseline: everything that changes what it learns (model code,
    data content, input shape, classes, seed, recipe)."""
    payload = {"v": CACHE_VERSION, "code": _code_hash(), "model": model_name, "dataset": data.name,
               "data": data.fingerprint(), "input_shape": list(data.input_shape),
               "num_classes": data.num_classes, "seed": int(seed), "recipe": recipe.to_dict()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def train_baseline(model_name: str, dataset: "Dataset | str", recipe: "Recipe | str | None" = None,
                   seed: int = 0, cache_dir: str | Path | None = None,
                   threads: int | None = None, epochs: int | None = None, share=None) -> BaselineResult:
    """Train (or fetch from the cache) the float model; see the module docstring.

    share: the baseline of a shared study (autoq.search.artifacts.BaselineShare): on a cache
    miss, ``share.fetch(key, folder)`` installs another worker's baseline into the cache
    folder, or tells this process to train it and ``share.publish(key, folder)`` it."""
    data = _resolve_dataset(dataset)
    recipe = get_recipe(recipe, model_name, epochs)
    key = baseline_key(model_name, data, recipe, seed)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = cache / f"{model_name}-{data.name}-{key[:16]}"
    result_file = folder / "result.json"
    cached = result_file.is_file() and (folder / "model.keras").is_file()
    if not cached and share is not None:
        cached = share.fetch(key, folder)
    if cached:
        res = BaselineResult(**json.loads(result_file.read_text()))
        res.cached = True  # paths of this folder, not where it was written (a copied cache, a Ray worker's)
        here = folder.resolve()
        res.folder, res.model_path = str(here), str(here / "model.keras")
        res.weights_path = str(here / "model.weights.h5")
        log.info("baseline %s: cache hit %s", model_name, folder)
        return res

    tf, keras = _setup(seed, threads)
    from autoq.models.zoo import build_model

    start = time.perf_counter()
    model = build_model(model_name, data.input_shape, data.num_classes, None)
    reason, history, _ = _fit(tf, keras, model, data, recipe)
    val = test = None
    if reason is None:
        val, test, reason = _evaluate(model, data)
    seconds = time.perf_counter() - start
    common = dict(key=key, model_name=model_name, dataset=data.name, seed=int(seed),
                  recipe=recipe.to_dict(), history=history)
    if reason is not None:  # failures are reported, not cached
        return BaselineResult("failed", reason, None, None, None, None, seconds, **common)

    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=cache))
    _save(model, tmp)
    res = BaselineResult("ok", None, val, test, None, None, seconds, folder=str(folder.resolve()),
                         **common)
    res.model_path = str((folder / "model.keras").resolve())
    res.weights_path = str((folder / "model.weights.h5").resolve())
    (tmp / "result.json").write_text(json.dumps(res.to_dict(), indent=2))
    try:
        os.rename(tmp, folder)  # atomic: concurrent trainers of the same key keep one copy
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("baseline %s trained in %.1fs: val %.4f test %.4f", model_name, seconds, val, test)
    if share is not None:
        share.publish(key, folder)
    return res


# --- fine-tuning --------------------------------------------------------------------------

def copy_weights(src_model, dst_model) -> int:
    """Copy variables from ``src_model`` to ``dst_model`` by layer name and variable name.

    Layers or variables missing on either side (removed shortcuts, LSQ steps) are skipped.
    Returns the number of variables copied. Learned quantizer state (LSQ step, TTQ scales)
    is re-initialised from the copied kernel through ``Quantizer.init_from``, since it was
    set from the random initial weights.
    """
    src_layers = {layer.name: layer for layer in src_model.layers}
    copied = 0
    for layer in dst_model.layers:
        src = src_layers.get(layer.name)
        if src is None:
            continue
        src_vars = {v.name: v for v in src.weights}
        for var in layer.weights:
            s = src_vars.get(var.name)
            if s is not None and tuple(s.shape) == tuple(var.shape):
                var.assign(s.numpy())
                copied += 1
        q = getattr(layer, "kernel_quantizer", None)
        if q is not None and hasattr(q, "init_from"):  # learned state (LSQ step, TTQ scales)
            q.init_from(layer.kernel.numpy())
    return copied


def weight_bytes(model) -> tuple[int, int]:
    """(packed bytes, float32 bytes) of all conv/dense weights + biases + codebooks."""
    from autoq.quant.layers import summary

    rows = summary(model)
    return (sum(r["packed_weight_bytes"] for r in rows), sum(r["float_bytes"] for r in rows))


def finetune(model_name: str, dataset: "Dataset | str", config: QuantConfig | None,
             recipe: "Recipe | str | None" = None, seed: int = 0,
             baseline: BaselineResult | None = None, from_scratch: bool = False,
             out_dir: str | Path | None = None, epochs: int | None = None,
             threads: int | None = None, cache_dir: str | Path | None = None) -> TrainResult:
    """QAT of ``config`` on ``model_name``, warm-started from the float baseline.

    Without ``baseline`` (and unless ``from_scratch``) the baseline is trained or fetched with
    the same recipe and seed. The trained model is saved to ``out_dir`` (a fresh temporary
    folder if None) as ``model.keras`` + ``model.weights.h5`` + ``result.json``.
    """
    data = _resolve_dataset(dataset)
    recipe = get_recipe(recipe, model_name, epochs)
    config = config if config is not None else QuantConfig(model=model_name)
    if config.model != model_name:
        config = config.with_model(model_name)
    common = dict(model_name=model_name, dataset=data.name, config=config.to_dict(),
                  recipe=recipe.to_dict(), from_scratch=bool(from_scratch))
    start = time.perf_counter()
    if not from_scratch and baseline is None:
        baseline = train_baseline(model_name, data, recipe, seed, cache_dir, threads)
    if not from_scratch and baseline.status != "ok":
        return TrainResult("failed", f"float baseline failed: {baseline.reason}", None, None,
                           None, None, time.perf_counter() - start, **common)

    tf, keras = _setup(seed, threads)
    from autoq.models.zoo import build_model

    model = build_model(model_name, data.input_shape, data.num_classes, config)
    if not from_scratch:
        src = keras.models.load_model(baseline.model_path, compile=False)
        n = copy_weights(src, model)
        log.info("copied %d variables from baseline %s", n, baseline.key[:16])
    reason, history, epochs_run = _fit(tf, keras, model, data, recipe)
    val = test = None
    if reason is None:
        val, test, reason = _evaluate(model, data)
    try:
        packed, floats = weight_bytes(model)
    except (ValueError, FloatingPointError) as exc:  # e.g. encoding NaN weights of a failed run
        log.warning("packed size unavailable: %s", exc)
        packed = floats = None
    res = TrainResult("failed" if reason else "ok", reason, val, test, None, None, 0.0,
                      baseline_key=None if from_scratch else baseline.key,
                      epochs_run=epochs_run, history=history, packed_weight_bytes=packed,
                      float_weight_bytes=floats,
                      compression=round(floats / packed, 3) if packed else None, **common)
    if reason is None:
        folder = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="autoq-train-"))
        res.model_path, res.weights_path = _save(model, folder)
        config.save(folder / "config.json")
    res.seconds = time.perf_counter() - start
    if reason is None:
        (Path(res.model_path).parent / "result.json").write_text(json.dumps(res.to_dict(), indent=2))
    res.model = model
    return res
