"""Cheap trials: one traced train/eval step per architecture, quantizer choices as run-time state.

A search trains many configs of the *same* network. Building a Keras model and tracing its
train step per config cost 5-7x the training itself (LeNet-5/digits). Here one
:class:`SwitchModel` is built per architecture (model + shortcut policy) with, in every
conv/dense layer, a :class:`SwitchQuantizer` holding *all* the candidate quantizers the
space can give that layer and an integer variable that ``tf.switch_case`` reads; the ReLU
slope and the ReLU on/off of every activation are variables too. :meth:`SwitchModel.select`
assigns them for a QuantConfig, so the traced step is reused across trials.

What a trial ships is unchanged: after training, the weights (kernels, biases, BatchNorm,
the selected quantizers' learned state) are copied into the ordinary zoo model of the config
(``autoq.models.zoo.build_model``), whose accuracy is measured and which is saved as
``model.keras``: the same model, weights and accuracy the exporter reads.

A trial that does not learn stops after its first epoch and is failed (``did not learn``):
validation accuracy at chance (<= the majority-class share + ``CHANCE_MARGIN``), a loss
that is not finite, or a loss stuck at the uniform-prediction value ln(classes).

This module imports TensorFlow (it trains).
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autoq.config import QuantConfig
from autoq.models.zoo import MODELS, _Builder, build_model
from autoq.quant import quantizers as Q
from autoq.tf_env import import_tf
from autoq.train import DIVERGED_LOSS, Recipe, accuracy, get_recipe

tf = import_tf()
import keras  # noqa: E402  (after the quiet TF import)

log = logging.getLogger(__name__)

CHANCE_MARGIN = 0.05        # accuracy this close to chance after epoch 1 = did not learn
STUCK_LOSS_FRACTION = 0.98  # mean loss >= this * ln(classes) after epoch 1 = did not learn
LEARNED_STATE = ("step", "pos", "neg")  # variables of learned quantizers (LSQ, TTQ)
SAME_CHECK = 16             # inputs on which the shipped model must equal the switch model


def normalise(spec, role: str) -> dict | None:
    """The complete config dict of a quantizer spec (what QuantConfig stores), None = float."""
    q = Q.for_role(spec, role)
    return None if q is None else q.get_config()


class SwitchQuantizer(Q.Quantizer):
    """Every candidate quantizer of one tensor; ``index`` (a variable) picks the one applied."""

    name = "switch"
    role = "both"
    summary = "run-time choice among candidate quantizers (search only, never exported)"

    def __init__(self, specs: list, role: str):
        self.specs = [normalise(s, role) for s in specs]
        self.candidates = [Q.for_role(s, role) for s in self.specs]
        self.index = tf.Variable(0, trainable=False, dtype=tf.int32)

    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other

    def position(self, spec: dict | None) -> int:
        return self.specs.index(spec)  # ValueError: not a candidate (caller rebuilds)

    @property
    def selected(self):
        return self.candidates[int(self.index.numpy())]

    def build(self, layer, shape, init_values=None) -> None:
        for c in self.candidates:
            if c is not None:
                c.build(layer, shape, init_values=init_values) if init_values is not None \
                    else c.build(layer, shape)

    def init_from(self, values) -> None:
        q = self.selected
        if q is not None:
            q.init_from(values)

    def _tf_forward(self, tf_, x, training):
        branches = [(lambda: tf.identity(x)) if c is None else (lambda c=c: c(x, training=training))
                    for c in self.candidates]
        return tf.switch_case(tf.convert_to_tensor(self.index), branches)


class SwitchActivation(keras.layers.Layer):
    """QActivation with its slope and ReLU on/off as variables: y = slope * (relu(x) | x)."""

    def build(self, input_shape):
        self.slope = self.add_weight(name="slope", shape=(), trainable=False,
                                     initializer=keras.initializers.Constant(1.0))
        self.relu_on = self.add_weight(name="relu_on", shape=(), trainable=False,
                                       initializer=keras.initializers.Constant(1.0))

    def call(self, inputs):
        return tf.where(self.relu_on > 0.5, tf.nn.relu(inputs), inputs) * self.slope

    def compute_output_shape(self, input_shape):
        return input_shape


class _SwitchBuilder(_Builder):
    """The zoo's builder with switch quantizers and activations in place of fixed ones."""

    def __init__(self, model: str, shortcut: str, candidates: dict[str, dict[str, list]]):
        super().__init__(model, QuantConfig(model=model, shortcut=shortcut))
        self.candidates = candidates
        self.switches: dict[str, tuple] = {}      # layer -> (weight switch, input switch | None)
        self.acts: dict[str, tuple] = {}          # act layer name -> (after, consumer, layer)

    def _kwargs(self, name: str) -> dict:
        c = self.candidates.get(name, {})
        wq = SwitchQuantizer([None] + [s for s in c.get("weight", []) if s is not None], "weight")
        acts = [s for s in c.get("activation", []) if s is not None]
        iq = SwitchQuantizer([None] + acts, "activation") if acts else None
        self.switches[name] = (wq, iq)
        return {"kernel_quantizer": wq, "input_quantizer": iq, "name": name}

    def act(self, x, after: str, consumer: str | None, name: str | None = None):
        layer = SwitchActivation(name=name or f"{after}_act")
        self.acts[layer.name] = (after, consumer, layer)
        return layer(x)


def architecture(config: QuantConfig) -> str:
    """What changes the graph: only removing the projection shortcuts."""
    return "removed" if config.shortcut == "removed" else "kept"


class SwitchModel:
    """One architecture's model with run-time quantizer choices, its optimizer and steps."""

    def __init__(self, model_name: str, input_shape, num_classes: int, shortcut: str,
                 candidates: dict[str, dict[str, list]], recipe: Recipe):
        self.model_name, self.candidates = model_name, candidates
        b = _SwitchBuilder(model_name, shortcut, candidates)
        inputs = keras.Input(tuple(input_shape), name="input")
        self.model = keras.Model(inputs, MODELS[model_name].builder(b, inputs, int(num_classes)))
        self.switches, self.acts = b.switches, b.acts
        self.layers = {layer.name: layer for layer in self.model.layers}
        self.clip = {name: tf.Variable(False, trainable=False) for name in self.switches}
        self.recipe = recipe
        self.optimizer = (keras.optimizers.Adam(recipe.lr) if recipe.optimizer == "adam"
                          else keras.optimizers.SGD(recipe.lr, momentum=recipe.momentum))
        self.train_vars = list(self.model.trainable_variables)
        self.optimizer.build(self.train_vars)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        # one trace each: any batch size (the last batch is smaller)
        x_spec = tf.TensorSpec([None, *tuple(input_shape)], tf.float32)
        self._train_epoch = tf.function(self._epoch, input_signature=[
            tf.TensorSpec([None, *tuple(input_shape)], tf.float32), tf.TensorSpec([None], tf.int64),
            tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)])
        self._logits = tf.function(lambda x: self.model(x, training=False), input_signature=[x_spec])
        self.batch_stat_logits = tf.function(lambda x: self.model(x, training=True),
                                             input_signature=[x_spec])  # sensitivity

    # --- selecting a config ----------------------------------------------------------------
    def select(self, config: QuantConfig) -> None:
        """Point every switch at ``config``'s choice; ValueError if one is not a candidate."""
        for name, (wq, iq) in self.switches.items():
            lq = config.for_layer(name)
            wq.index.assign(wq.position(lq.weight))
            if iq is not None:
                iq.index.assign(iq.position(lq.activation))
            elif lq.activation is not None:
                raise ValueError(f"{name}: input quantizer {lq.activation} is not a candidate")
            self.clip[name].assign(bool(wq.selected is not None and wq.selected.clip_weights))
        signs = _Builder(self.model_name, config)
        for after, consumer, layer in self.acts.values():
            layer.slope.assign(config.for_layer(after).relu_slope)
            layer.relu_on.assign(0.0 if signs.signed_input(consumer) else 1.0)

    def set_start(self, values: list[tuple]) -> None:
        """What every trial starts from; one traced call assigns it all (``load``)."""
        consts = [(var, tf.constant(value)) for var, value in values]
        opt_vars = list(self.optimizer.variables)

        def reset():
            for var, value in consts:
                var.assign(value)
            for v in opt_vars:
                v.assign(tf.zeros_like(v))

        self._reset = tf.function(reset)

    def load(self) -> None:
        """Start a trial: baseline weights, fresh optimizer state, learned quantizer state.

        No keras.utils.set_random_seed here: a new global seed retraces every tf.function
        (seconds per trial); the trial's shuffling has its own seeded generator."""
        self._reset()
        for name, (wq, iq) in self.switches.items():
            wq.init_from(self.layers[name].kernel.numpy())

    # --- steps -----------------------------------------------------------------------------
    def _epoch(self, x_all, y_all, perm, batch_size):
        """One epoch in one call (no per-step Python): the per-batch losses."""
        n = tf.shape(perm)[0]
        steps = (n + batch_size - 1) // batch_size
        losses = tf.TensorArray(tf.float32, size=steps)
        for i in tf.range(steps):
            idx = perm[i * batch_size:tf.minimum((i + 1) * batch_size, n)]
            losses = losses.write(i, self._step(tf.gather(x_all, idx), tf.gather(y_all, idx)))
        return losses.stack()

    def _step(self, x, y):
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = self.loss_fn(y, logits)
            if self.model.losses:
                loss = loss + tf.add_n(self.model.losses)
        grads = tape.gradient(loss, self.train_vars)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, self.train_vars)]
        self.optimizer.apply_gradients(zip(grads, self.train_vars))
        for name, flag in self.clip.items():  # BinaryConnect's [-1, 1] clip, when selected
            k = self.layers[name].kernel
            k.assign(tf.where(flag, tf.clip_by_value(k, -1.0, 1.0), k))
        return loss

    def evaluate(self, x, y, batch: int = 512) -> tuple[float | None, float]:
        """(accuracy, mean loss) in inference mode; accuracy None if outputs are not finite."""
        correct, total_loss = 0, 0.0
        for i in range(0, len(y), batch):
            logits = self._logits(tf.constant(x[i:i + batch], tf.float32)).numpy()
            if not np.all(np.isfinite(logits)):
                return None, math.inf
            correct += int(np.sum(np.argmax(logits, -1) == y[i:i + batch]))
            total_loss += float(self.loss_fn(y[i:i + batch], logits)) * len(logits)
        return correct / max(len(y), 1), total_loss / max(len(y), 1)

    def same_function(self, model, x: np.ndarray) -> bool:
        """Does ``model`` (the config's own) give this model's logits on ``x``?"""
        mine = self._logits(tf.constant(x, tf.float32)).numpy()
        theirs = np.asarray(model(x, training=False))
        return bool(np.allclose(mine, theirs, rtol=1e-4, atol=1e-5))

    def copy_into(self, model) -> None:
        """Trained state into the ordinary model of the selected config (same layer names)."""
        for layer in model.layers:
            src = self.layers.get(layer.name)
            if src is None or isinstance(src, SwitchActivation):
                continue
            by_name = {v.name: v for v in src.weights}
            for var in layer.weights:
                s = by_name.get(var.name)
                if s is not None and tuple(s.shape) == tuple(var.shape):
                    var.assign(s.numpy())
            switch = self.switches.get(layer.name)
            if switch is not None:
                _copy_learned(switch[0].selected, layer.kernel_quantizer)
                if switch[1] is not None:
                    _copy_learned(switch[1].selected, layer.input_quantizer)


def _copy_learned(src, dst) -> None:
    for attr in LEARNED_STATE:
        s, d = getattr(src, attr, None), getattr(dst, attr, None)
        if s is not None and d is not None:
            d.assign(s.numpy())


@dataclass
class FastResult:
    status: str                      # ok | failed
    val_acc: float | None = None
    test_acc: float | None = None
    model_path: str | None = None
    reason: str | None = None
    seconds: float = 0.0
    epochs_run: int = 0
    history: dict = field(default_factory=dict)


class FastTrainer:
    """QAT fine-tuning of many configs of one zoo model from one float baseline."""

    def __init__(self, model_name: str, data, baseline_path: str, recipe: str | Recipe | None,
                 candidates: dict[str, dict[str, list]] | None = None):
        self.model_name, self.data = model_name, data
        self.recipe = get_recipe(recipe, model_name)
        self.candidates = {k: {r: list(v) for r, v in d.items()} for k, d in (candidates or {}).items()}
        self.baseline_path = baseline_path
        self.baseline = keras.models.load_model(baseline_path, compile=False)
        self.x_train = tf.constant(data.x_train)   # the data pipeline, built once
        self.y_train = tf.constant(data.y_train.astype(np.int64))
        self._models: dict[str, SwitchModel] = {}
        self.chance = chance_accuracy(data.y_val, data.num_classes)

    def _switch(self, config: QuantConfig) -> SwitchModel:
        """The architecture's switch model; rebuilt (once) if config needs a new candidate."""
        key = architecture(config)
        sm = self._models.get(key)
        if sm is not None:
            try:
                sm.select(config)
                return sm
            except ValueError:
                log.info("config outside the switch model's candidates: rebuilding it")
        self._add_candidates(config)
        sm = SwitchModel(self.model_name, self.data.input_shape, self.data.num_classes,
                         config.shortcut, self.candidates, self.recipe)
        sm.set_start(_start_values(self.baseline, sm.model))
        self._models[key] = sm
        sm.select(config)
        return sm

    def _add_candidates(self, config: QuantConfig) -> None:
        for name in self._layer_names():
            lq = config.for_layer(name)
            entry = self.candidates.setdefault(name, {"weight": [], "activation": []})
            for role, spec in (("weight", lq.weight), ("activation", lq.activation)):
                specs = [normalise(s, role) for s in entry.setdefault(role, [])]
                if spec is not None and spec not in specs:
                    entry[role].append(spec)

    def _layer_names(self) -> list[str]:
        from autoq.models.names import quant_layer_names

        return quant_layer_names(self.model_name)

    def train(self, config: QuantConfig, epochs: int, seed: int, out_dir: str | Path,
              model=None) -> FastResult:
        """Fine-tune ``config``; ``model``: its zoo model if already built (the plan's)."""
        start = time.perf_counter()
        sm = self._switch(config)
        sm.load()
        recipe = self.recipe.with_epochs(epochs)
        reason, history = self._fit(sm, recipe, seed)
        res = FastResult("failed", reason=reason, epochs_run=len(history.get("loss", [])), history=history)
        if reason is None:
            model = model if model is not None else build_model(
                self.model_name, self.data.input_shape, self.data.num_classes, config)
            sm.copy_into(model)
            res = self._finish(sm, model, config, res, Path(out_dir))
        res.seconds = time.perf_counter() - start
        return res

    def _fit(self, sm: SwitchModel, recipe: Recipe, seed: int) -> tuple[str | None, dict]:
        rng = np.random.default_rng(seed)
        n, bs = len(self.data.y_train), np.int32(recipe.batch_size)
        history: dict[str, list] = {"loss": [], "val_acc": []}
        uniform_loss = math.log(self.data.num_classes)
        for epoch in range(recipe.epochs):
            sm.optimizer.learning_rate = recipe.lr_at(epoch)
            perm = rng.permutation(n).astype(np.int32)
            losses = sm._train_epoch(self.x_train, self.y_train, perm, bs).numpy()
            bad = np.flatnonzero(~np.isfinite(losses) | (losses > DIVERGED_LOSS))
            if len(bad):
                return (f"did not learn: loss {losses[bad[0]]:.4g} at epoch {epoch + 1}, batch {bad[0] + 1}",
                        history)
            val_acc, _ = sm.evaluate(self.data.x_val, self.data.y_val)
            history["loss"].append(float(np.mean(losses)))
            history["val_acc"].append(val_acc)
            if epoch == 0:
                dead = self.dead_reason(val_acc, history["loss"][0], uniform_loss)
                if dead:
                    return dead, history
        return None, history

    def dead_reason(self, val_acc: float | None, loss: float, uniform_loss: float) -> str | None:
        if val_acc is None:
            return "did not learn: outputs NaN/inf after epoch 1"
        if val_acc <= self.chance + CHANCE_MARGIN:
            return (f"did not learn: validation accuracy {val_acc:.3f} after epoch 1 is at chance "
                    f"({self.chance:.3f})")
        if loss >= STUCK_LOSS_FRACTION * uniform_loss:
            return f"did not learn: loss {loss:.3f} stuck at ln(classes) = {uniform_loss:.3f} after epoch 1"
        return None

    def _finish(self, sm: SwitchModel, model, config: QuantConfig, res: FastResult,
                folder: Path) -> FastResult:
        d = self.data
        if sm.same_function(model, d.x_val[:SAME_CHECK]):  # the traced graph measures it
            val, test = sm.evaluate(d.x_val, d.y_val)[0], sm.evaluate(d.x_test, d.y_test)[0]
        else:
            log.warning("switch model and the config's model disagree: measuring the latter")
            val, test = accuracy(model, d.x_val, d.y_val), accuracy(model, d.x_test, d.y_test)
        if val is None or test is None:
            res.reason = "model outputs NaN/inf"
            return res
        if val <= self.chance + CHANCE_MARGIN:
            res.reason = f"did not learn: validation accuracy {val:.3f} is at chance ({self.chance:.3f})"
            return res
        folder.mkdir(parents=True, exist_ok=True)
        model.save(folder / "model.keras")  # what export reads (weights_path)
        config.save(folder / "config.json")
        res.status, res.val_acc, res.test_acc = "ok", val, test
        res.model_path = str((folder / "model.keras").resolve())
        (folder / "result.json").write_text(json.dumps(
            {"status": "ok", "val_acc": val, "test_acc": test, "config": config.to_dict(),
             "recipe": self.recipe.to_dict(), "epochs_run": res.epochs_run, "history": res.history,
             "trainer": "switch"}, indent=2))
        return res


def chance_accuracy(y: np.ndarray, num_classes: int) -> float:
    """Accuracy of always answering the most frequent class (>= 1 / classes)."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=num_classes)
    return float(max(counts.max() / max(len(y), 1), 1.0 / num_classes))


def _start_values(baseline, model) -> list[tuple]:
    """(variable, value at a trial's start) for every variable of ``model`` but the switch
    activations' (select sets those): the baseline's value by layer/variable name, else the
    value it was built with (learned quantizer state: a trial must not inherit another's)."""
    src_layers = {layer.name: layer for layer in baseline.layers}
    pairs = []
    for layer in model.layers:
        if isinstance(layer, SwitchActivation):
            continue
        src = src_layers.get(layer.name)
        src_vars = {v.name: v for v in src.weights} if src is not None else {}
        for var in layer.weights:
            s = src_vars.get(var.name)
            same = s is not None and tuple(s.shape) == tuple(var.shape)
            pairs.append((var, s.numpy() if same else var.numpy()))
    return pairs
