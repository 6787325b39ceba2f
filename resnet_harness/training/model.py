"""ResNet50 with the study's classifier heads, and a cache that reuses a built, traced model.

Keras traces and optimises a new training graph the first time ``fit`` runs on each freshly built
model (tens of seconds for ResNet50 on a CPU). Cases with the same architecture can reuse one model
instead: :class:`ModelCache` restores every variable (weights, batch-norm statistics, optimizer
slots, random-generator states) to the values it had when built, so the reused model computes
exactly what a fresh one would.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from dataclasses import dataclass

# The backbones' registry lives below this module (config and the validators read it); its
# names stay importable from here.
from resnet_harness.training.backbones import (BACKBONES, INPUT_SHAPE, ModelError,  # noqa: F401
                                               register_backbone, resnet50_backbone,
                                               tiny_backbone)
from resnet_harness.training.data.sources import NUM_CLASSES

@dataclass(frozen=True)
class Head:
    """The classifier put on the backbone: pooling, hidden layer, dropout, output."""

    dense_units: int | None = None  # Table 6 only: Dense(1024, relu) before the output
    dropout: float = 0.0  # rate of the Dropout before the output layer
    regularizer: str | None = None  # "l1" | "l2" on the output layer's kernel (Table 10)
    reg_strength: float = 0.01  # not given by the paper: Keras' default factor
    freeze_base: bool = False  # Table 6: "Freeze Base: True"


def seed_everything(seed: int) -> None:
    """``keras.utils.set_random_seed(seed)``, without clearing TensorFlow's kernel cache when its
    global seed already is ``seed``.

    ``tf.random.set_seed`` always clears that cache, and every traced model in the process then
    pays its function instantiation again on its next step (12-15 s for ResNet50 on 2 CPU cores,
    measured). Our TensorFlow random ops all carry explicit seeds, so only the global seed's value
    matters to them, not a fresh op-seed sequence.
    """
    import keras

    from resnet_harness.training.keras_internals import reseed

    if not reseed(seed):
        keras.utils.set_random_seed(seed)


def build_model(head: Head, *, weights: str, seed: int, learning_rate: float = 1e-3,
                backbone: Callable = resnet50_backbone, jit_compile: bool = False,
                mixed_precision: bool = False, loss="sparse_categorical_crossentropy",
                logits: bool = False, optimizer: str = "adam", momentum: float = 0.9,
                weight_decay: float = 0.0, output_bias: float | None = None,
                head_init: str = "keras", decay_output_bias: bool = True):
    """The backbone plus the head of ``head``, compiled with Adam and cross-entropy (``loss``:
    another Keras loss, by name or as an object: a study's ``Hooks.on_build_loss``).

    A study's ``Hooks.on_build_model`` may ask for more: ``logits`` (the output layer gives
    logits, the loss works on them, :func:`predict` returns their softmax), ``optimizer``
    ``"sgd"`` with ``momentum``, ``weight_decay`` as PyTorch's SGD applies it (an L2 gradient
    term on every weight: the backbone's own regularisers and the output bias here; the output
    kernel's through the head's L2 penalty) and ``output_bias`` (the output layer's initial
    bias, e.g. -log(C - 1) for a sigmoid focal loss), ``head_init`` ``"torch"`` (the output
    layer as LDAM-DRW's ``nn.Linear`` after its ``_weights_init``: He-normal weights,
    ``kaiming_normal_``'s untruncated normal of variance 2 / fan_in, and PyTorch's default
    uniform(±1/sqrt(fan_in)) bias; "keras": Glorot-uniform weights, zero bias) and
    ``decay_output_bias`` (False: the output bias carries no weight decay, as in Cui et al.'s
    code).

    Sparse categorical cross-entropy on integer labels equals the paper's categorical
    cross-entropy on one-hot labels without materialising them. ``jit_compile`` compiles the
    train step with XLA; ``mixed_precision`` computes in float16 with float32 variables and a
    float32 softmax (Keras then scales the loss), for GPUs with tensor cores. Both are off by
    default: the study used neither.
    """
    import keras

    from resnet_harness.training.head import PenalizedDense, VariableDropout

    seed_everything(seed)
    previous = keras.config.dtype_policy()
    # The policy is read when layers and the model are made; set it for this build only.
    keras.config.set_dtype_policy("mixed_float16" if mixed_precision else "float32")
    try:
        base = backbone(weights, weight_decay=weight_decay) if weight_decay else backbone(weights)
        base.trainable = not head.freeze_base
        x = base.output
        if len(x.shape) == 4:  # ResNet-32 pools its own features, as in its reference code
            x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        if head.dense_units:
            x = keras.layers.Dense(head.dense_units, activation="relu", name="hidden")(x)
        x = VariableDropout(name="dropout")(x)
        extra = {}
        if weight_decay and decay_output_bias:
            extra["bias_regularizer"] = keras.regularizers.L2(weight_decay / 2)
        if head_init == "torch":
            fan_in = int(x.shape[-1])
            extra["kernel_initializer"] = keras.initializers.VarianceScaling(
                2.0, "fan_in", "untruncated_normal")
            extra["bias_initializer"] = keras.initializers.RandomUniform(
                -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        elif head_init != "keras":
            raise ModelError(f"unknown head initialisation {head_init!r}; use keras or torch")
        if output_bias is not None:
            extra["bias_initializer"] = keras.initializers.Constant(output_bias)
        outputs = PenalizedDense(NUM_CLASSES, activation=None if logits else "softmax",
                                 name="predictions", dtype="float32", **extra)(x)
        model = keras.Model(base.input, outputs, name="resnet50_harness")
        if optimizer == "sgd":
            chosen = keras.optimizers.SGD(learning_rate, momentum=momentum)
        elif optimizer == "adam":
            chosen = keras.optimizers.Adam(learning_rate)
        else:
            raise ModelError(f"unknown optimizer {optimizer!r}; use adam or sgd")
        model.compile(optimizer=chosen, loss=loss, metrics=["accuracy"],
                      jit_compile=jit_compile)
        model._harness_logits = logits  # noqa: SLF001 - read by predict()
    finally:
        keras.config.set_dtype_policy(previous)
    configure_head(model, head)
    return model


def configure_head(model, head: Head) -> None:
    """Set the dropout rate and the L1/L2 strengths of ``model``'s head to ``head``'s."""
    if head.regularizer not in (None, "l1", "l2"):
        raise ModelError(f"unknown regularizer {head.regularizer!r}; use 'l1', 'l2' or None")
    if not 0.0 <= head.dropout < 1.0:
        raise ModelError(f"dropout rate {head.dropout} must lie in [0, 1)")
    model.get_layer("dropout").rate.assign(head.dropout)
    output = model.get_layer("predictions")
    output.l1.assign(head.reg_strength if head.regularizer == "l1" else 0.0)
    output.l2.assign(head.reg_strength if head.regularizer == "l2" else 0.0)


def predict(model, dataset) -> np.ndarray:
    """``model.predict(dataset)``: the model's outputs (``training=False``) for every batch.

    Keras' ``predict`` traces its function for the exact shape of the first batch and traces
    again when a later batch (a short last batch, another case's test set) has another size, 2-5 s
    each for ResNet50 on a CPU. One function per model with an unknown batch size is traced once.
    """
    import tensorflow as tf

    forward = getattr(model, "_harness_forward", None)
    if forward is None:
        spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)
        forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        model._harness_forward = forward  # noqa: SLF001 - cached with the model it belongs to
    batches = [forward(batch[0] if isinstance(batch, tuple) else batch).numpy()
               for batch in dataset]
    if getattr(model, "_harness_logits", False):
        batches = [_softmax(batch) for batch in batches]
    return np.concatenate(batches) if batches else np.zeros((0,) + tuple(model.output_shape[1:]),
                                                            np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    out = np.exp(shifted)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def architecture(head: Head) -> tuple:
    """What of a head shapes the graph; heads that differ only in the rest share one model."""
    return (head.dense_units, head.freeze_base)


def _state_variables(model) -> list:
    """Every variable whose value a training run changes, including random-generator states."""
    seen, out = set(), []
    candidates = list(model.variables) + list(model.optimizer.variables)
    from resnet_harness.training.keras_internals import generator_states, nested_layers

    for layer in nested_layers(model):
        candidates.extend(generator_states(layer))
    for variable in candidates:
        if id(variable) not in seen:
            seen.add(id(variable))
            out.append(variable)
    return out


class _Snapshot:
    """The just-built values of a model's state variables, and a way to put them back.

    Values that are all zero (Adam's slots) are kept as "zeros", not as ~180 MB of copies. The
    first restore traces one function that assigns every variable (about 2 s for ResNet50); each
    later one takes ~20 ms, against ~0.4 s for 750 eager ``assign`` calls (measured).
    """

    def __init__(self, variables: list):
        import tensorflow as tf

        self._zeroed, self._kept, self._values = [], [], []
        for variable in variables:
            value = variable.numpy()
            if np.any(value):
                self._kept.append(variable)
                self._values.append(tf.constant(value))
            else:
                self._zeroed.append(variable)
        self._restore = None

    def restore(self) -> None:
        if self._restore is None:
            import tensorflow as tf

            @tf.function
            def restore(*values):
                for variable in self._zeroed:
                    variable.assign(tf.zeros(variable.shape, variable.dtype))
                for variable, value in zip(self._kept, values):
                    variable.assign(value)

            self._restore = restore
        self._restore(*self._values)


class ModelCache:
    """Built models keyed by everything that shapes their graph; each handed out reset to its
    just-built state and configured for the asked head (dropout rate, penalty strengths)."""

    def __init__(self, build: Callable = build_model, max_models: int = 2):
        self._build = build
        self._max_models = max_models
        self._models: dict = {}  # insertion order = least recently used first
        self.built_last = False  # whether the last get() built its model (else reused one)

    def get(self, head: Head, *, weights: str, seed: int, learning_rate: float,
            loss_name: str | None = None, make_loss: Callable | None = None, **kwargs):
        """A model for this architecture, as freshly built (reused when one exists).

        ``loss_name`` keys the cache; ``make_loss()`` builds that loss for a new model (None:
        sparse cross-entropy)."""
        key = (architecture(head), weights, seed, learning_rate, loss_name,
               tuple(sorted(kwargs.items())))
        if key not in self._models:
            if make_loss is not None:
                kwargs["loss"] = make_loss()
            while len(self._models) >= self._max_models:
                # Each ResNet50 with its optimizer state holds ~0.5-1 GB; keep only the newest.
                self._models.pop(next(iter(self._models)))
            model = self._build(head, weights=weights, seed=seed, learning_rate=learning_rate,
                                **kwargs)
            model.optimizer.build(model.trainable_variables)
            self._models[key] = (model, _Snapshot(_state_variables(model)))
            self.built_last = True
            return model
        model, snapshot = self._models.pop(key)
        self._models[key] = (model, snapshot)
        snapshot.restore()
        configure_head(model, head)
        self.built_last = False
        return model

    def clear(self) -> None:
        self._models.clear()
