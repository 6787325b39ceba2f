"""Private Keras/TensorFlow APIs the harness relies on: if an upgrade moves one, this fails and
names it (the harness itself falls back to slower public calls)."""

from __future__ import annotations

import keras

from resnet_harness.training import keras_internals


def test_every_internal_is_still_there():
    assert keras_internals.missing() == []


def test_reseed_skips_tensorflows_reset_only_when_its_seed_already_matches():
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(7)
    assert keras_internals.reseed(7) is True
    first = np.random.rand()
    keras_internals.reseed(7)
    assert np.random.rand() == first  # NumPy reseeded like set_random_seed would
    tf.random.set_seed(8)
    assert keras_internals.reseed(7) is False


def test_nested_layers_and_generator_states_reach_inner_random_layers():
    inner = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.RandomFlip(seed=1)])
    outer = keras.Sequential([keras.Input((4, 4, 1)), inner])
    layers = keras_internals.nested_layers(outer)
    flips = [layer for layer in layers if isinstance(layer, keras.layers.RandomFlip)]
    assert len(flips) == 1
    (state,) = keras_internals.generator_states(flips[0])
    assert tuple(state.shape) == (2,)
