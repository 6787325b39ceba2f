"""Every use of a private Keras or TensorFlow API, each behind one function.

Keras 3 has no public way to reseed without clearing TensorFlow's kernel cache, to list nested
layers, or to reach the random-generator states of its layers. If an upgrade moves one of these,
:func:`missing` names it and ``tests/test_keras_internals.py`` fails; the functions themselves
fall back where they can (``reseed`` then reports that it did nothing).
"""

from __future__ import annotations

import random

import numpy as np


def _global_seed_api():
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils
    from tensorflow.python.eager import context

    return global_state, seed_generator, rng_utils, context


def reseed(seed: int) -> bool:
    """Do what ``keras.utils.set_random_seed(seed)`` does except ``tf.random.set_seed``, when
    TensorFlow's global seed already is ``seed``. Returns False (and changes nothing) when it is
    not, or when the internals moved: the caller then uses the public call."""
    try:
        global_state, seed_generator, rng_utils, context = _global_seed_api()
        if context.global_seed() != seed:
            return False
        # What set_random_seed does besides tf.random.set_seed (keras/src/utils/rng_utils.py).
        global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
        global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    except (ImportError, AttributeError):
        return False
    random.seed(seed)
    np.random.seed(seed)
    return True


def nested_layers(model) -> list:
    """Every layer inside ``model``, at any depth (Keras' ``_flatten_layers``)."""
    return list(model._flatten_layers(include_self=False))  # noqa: SLF001


def generator_states(layer) -> list:
    """The state variables of the ``SeedGenerator``s a layer draws its randomness from."""
    return [generator.state for generator in getattr(layer, "_seed_generators", []) or []]


def missing() -> list[str]:
    """Names of the internals above that this Keras/TensorFlow no longer has (empty: all fine)."""
    import keras

    gone = []
    try:
        global_state, seed_generator, rng_utils, context = _global_seed_api()
        for owner, name in ((global_state, "set_global_attribute"),
                            (rng_utils, "GLOBAL_RANDOM_SEED"),
                            (seed_generator, "GLOBAL_SEED_GENERATOR"), (context, "global_seed")):
            if not hasattr(owner, name):
                gone.append(f"{owner.__name__}.{name}")
    except ImportError as exc:
        gone.append(f"import: {exc}")
    if not hasattr(keras.layers.Layer, "_flatten_layers"):
        gone.append("keras.layers.Layer._flatten_layers")
    probe = keras.layers.RandomFlip(seed=0)
    if not any(isinstance(g, keras.random.SeedGenerator)
               for g in getattr(probe, "_seed_generators", []) or []):
        gone.append("keras.layers.Layer._seed_generators")
    return gone
