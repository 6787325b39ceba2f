"""Head layers whose dropout rate and L1/L2 strengths are variables, not constants.

Every head of Table 10 (L1, L2, dropout 0.1-0.7, none) is then one graph: a model traced once is
reused for all of them by assigning the variables (see ``model.ModelCache``). At rate 0 dropout
multiplies by exactly 1 and a zero penalty adds exactly 0, so a case computes the same values as
with Keras' own ``Dropout`` and ``L1``/``L2`` layers left out.
"""

from __future__ import annotations

import keras
from keras import ops


class VariableDropout(keras.layers.Layer):
    """``keras.layers.Dropout`` whose rate is a non-trainable variable."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.rate = self.add_weight(shape=(), initializer="zeros", trainable=False, name="rate")

    def call(self, inputs, training=False):
        if not training:
            return inputs
        # The formula of tf.nn.experimental.stateless_dropout, with a tensor rate (Keras'
        # backend dropout compares the rate in Python, which a variable cannot do in a graph).
        noise = keras.random.uniform(ops.shape(inputs), dtype=inputs.dtype,
                                     seed=self.seed_generator)
        return ops.where(noise >= self.rate, inputs / (1.0 - self.rate), ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape


class KernelPenalty(keras.regularizers.Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w**2)`` with ``l1`` and ``l2`` read from variables, the formulas
    of ``keras.regularizers.L1`` and ``L2``."""

    def __init__(self, l1, l2):
        self.l1, self.l2 = l1, l2

    def __call__(self, x):
        return self.l1 * ops.sum(ops.absolute(x)) + self.l2 * ops.sum(ops.square(x))

    def get_config(self):
        return {"l1": float(self.l1.numpy()), "l2": float(self.l2.numpy())}


class PenalizedDense(keras.layers.Dense):
    """A ``Dense`` layer whose kernel carries a :class:`KernelPenalty` with variable strengths."""

    def __init__(self, units: int, **kwargs):
        super().__init__(units, **kwargs)
        self.l1 = keras.Variable(0.0, trainable=False, name="l1", dtype="float32")
        self.l2 = keras.Variable(0.0, trainable=False, name="l2", dtype="float32")
        self.kernel_regularizer = KernelPenalty(self.l1, self.l2)
