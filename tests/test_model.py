"""build_model's heads, compilation and errors, and ModelCache's reset, on a tiny backbone (no
ResNet50 is ever built here)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import tiny_backbone
from resnet_harness.studies.paper import CASES
from resnet_harness.training.model import Head
from resnet_harness.training.model import (ModelCache, ModelError, build_model, predict, resnet50_backbone,
                                  seed_everything)

keras = pytest.importorskip("keras")


def build(head: Head, seed: int = 0, **kwargs):
    return build_model(head, weights="none", seed=seed, backbone=tiny_backbone, **kwargs)


def head_layers(model):
    """The layers after the backbone's output, by type name."""
    names = [layer.name for layer in model.layers]
    return model.layers[names.index("tiny_conv") + 1:]


@pytest.mark.parametrize("head", [
    Head(), Head(dense_units=1024, freeze_base=True), Head(dropout=0.3), Head(regularizer="l1"),
    Head(regularizer="l2"), Head(dense_units=1024, dropout=0.5, regularizer="l2"),
], ids=["plain", "table6", "dropout0.3", "l1", "l2", "all"])
def test_head_layers(head):
    from resnet_harness.training.head import KernelPenalty, PenalizedDense, VariableDropout

    model = build(head)
    layers = head_layers(model)
    expected = [keras.layers.GlobalAveragePooling2D]
    if head.dense_units:
        expected.append(keras.layers.Dense)
    expected += [VariableDropout, PenalizedDense]
    assert [type(layer) for layer in layers] == expected
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    by_name = {layer.name: layer for layer in layers}
    if head.dense_units:
        hidden = by_name["hidden"]
        assert hidden.units == 1024 and hidden.activation is keras.activations.relu
        assert hidden.kernel_regularizer is None
    assert float(by_name["dropout"].rate.numpy()) == pytest.approx(head.dropout)
    out = layers[-1]
    assert out.name == "predictions" and out.units == 10
    assert out.activation is keras.activations.softmax
    assert isinstance(out.kernel_regularizer, KernelPenalty)
    l1, l2 = float(out.l1.numpy()), float(out.l2.numpy())
    assert (l1, l2) == pytest.approx({"l1": (0.01, 0.0), "l2": (0.0, 0.01)}.get(
        head.regularizer, (0.0, 0.0)))
    assert out.bias_regularizer is None and out.activity_regularizer is None


def _train(model, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = rng.random((64, 32, 32, 3), np.float32)
    y = rng.integers(0, 10, 64)
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=2, verbose=0,
              shuffle=False)
    return model.predict(x[:16], verbose=0)


@pytest.mark.parametrize("regularizer", [None, "l1", "l2"])
def test_variable_head_computes_what_keras_own_layers_compute(regularizer):
    """Rate-0 dropout and the variable penalty equal a head built from Keras' Dropout-free Dense
    with keras.regularizers.L1/L2: same weights, same training, identical results."""
    ours = build(Head(regularizer=regularizer))
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(tiny_backbone("none")(inputs))
    kernel_reg = {None: None, "l1": keras.regularizers.L1(0.01),
                  "l2": keras.regularizers.L2(0.01)}[regularizer]
    outputs = keras.layers.Dense(10, activation="softmax", kernel_regularizer=kernel_reg)(x)
    reference = keras.Model(inputs, outputs)
    reference.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    weights = [w for w in ours.get_weights() if w.ndim > 0]  # skip rate, l1, l2 scalars
    reference.set_weights(weights)
    np.testing.assert_array_equal(_train(ours), _train(reference))
    trained = [w for w in ours.get_weights() if w.ndim > 0]
    for a, b in zip(trained, reference.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_dropout_rate_drops_the_configured_share():
    model = build(Head(dropout=0.7))
    layer = model.get_layer("dropout")
    out = layer(np.ones((200, 500), np.float32), training=True).numpy()
    assert (out == 0).mean() == pytest.approx(0.7, abs=0.01)
    assert np.unique(out[out != 0]) == pytest.approx([1 / 0.3])
    assert np.array_equal(layer(np.ones((2, 3), np.float32), training=False), np.ones((2, 3)))


def test_one_model_serves_every_table10_head():
    cache = ModelCache(build=lambda head, **kw: build_model(head, backbone=tiny_backbone, **kw))
    models = {id(cache.get(head, weights="none", seed=0, learning_rate=1e-3))
              for head in (Head(), Head(regularizer="l1"), Head(dropout=0.7))}
    assert len(models) == 1
    model = cache.get(Head(dropout=0.3), weights="none", seed=0, learning_rate=1e-3)
    assert float(model.get_layer("dropout").rate.numpy()) == pytest.approx(0.3)
    assert cache.get(Head(dense_units=1024, freeze_base=True), weights="none", seed=0,
                     learning_rate=1e-3) is not model


def test_matrix_heads_build():
    """Every distinct head of the study builds on the tiny backbone."""
    for head in {case.head for case in CASES}:
        model = build(head)
        assert model.output_shape == (None, 10)


def test_regularizer_strength_is_used():
    model = build(Head(regularizer="l2", reg_strength=0.5))
    assert float(model.get_layer("predictions").kernel_regularizer.l2) == pytest.approx(0.5)
    # the penalty shows up in the model's losses
    model(np.zeros((1, 32, 32, 3), np.float32))
    assert len(model.losses) == 1 and float(model.losses[0]) > 0


def test_softmax_outputs_sum_to_one():
    model = build(Head(dropout=0.5))
    out = model.predict(np.random.default_rng(0).random((3, 32, 32, 3), np.float32), verbose=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def test_freeze_base():
    frozen = build(Head(dense_units=1024, freeze_base=True))
    backbone_layers = [layer for layer in frozen.layers if layer.name.startswith("tiny")]
    assert backbone_layers and not any(layer.trainable for layer in backbone_layers)
    # hidden (4*1024 + 1024) + predictions (1024*10 + 10) train; the conv (3*3*3*4 + 4) does not
    assert len(frozen.trainable_weights) == 4
    assert count(frozen.trainable_weights) == 4 * 1024 + 1024 + 1024 * 10 + 10
    # plus the three scalar head settings: dropout rate, L1 and L2 strength
    assert count(frozen.non_trainable_weights) == 3 * 3 * 3 * 4 + 4 + 3
    assert frozen.get_layer("hidden").trainable and frozen.get_layer("predictions").trainable
    unfrozen = build(Head(dense_units=1024))
    assert len(unfrozen.trainable_weights) == 6 and count(unfrozen.non_trainable_weights) == 3
    assert all(layer.trainable for layer in unfrozen.layers)


def test_compiled_with_adam_and_sparse_crossentropy():
    model = build(Head())
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert model.loss == "sparse_categorical_crossentropy"
    model = build(Head(), learning_rate=0.05)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)


def test_same_seed_same_initial_weights():
    a, b, c = build(Head(dropout=0.3), seed=4), build(Head(dropout=0.3), seed=4), build(
        Head(dropout=0.3), seed=5)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not all(np.array_equal(wa, wc) for wa, wc in zip(a.get_weights(), c.get_weights()))


@pytest.mark.parametrize("name", ["l3", "L2", "dropout"])
def test_unknown_regularizer(name):
    with pytest.raises(ModelError, match=f"unknown regularizer '{name}'") as exc:
        build(Head(regularizer=name))
    assert "\n" not in str(exc.value)


def test_resnet50_imagenet_offline(monkeypatch):
    calls = []

    def offline(**kwargs):
        calls.append(kwargs)
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.applications, "ResNet50", offline)
    with pytest.raises(ModelError) as exc:
        resnet50_backbone("imagenet")
    message = str(exc.value)
    assert "--weights none" in message and "ImageNet" in message and "\n" not in message
    assert calls == [{"include_top": False, "weights": "imagenet", "input_shape": (32, 32, 3)}]


def test_resnet50_bad_weights_file(monkeypatch, tmp_path):
    def bad(**kwargs):
        raise ValueError("shape mismatch")

    monkeypatch.setattr(keras.applications, "ResNet50", bad)
    path = str(tmp_path / "x.h5")
    with pytest.raises(ModelError, match="cannot load ResNet50 weights from") as exc:
        resnet50_backbone(path)
    assert path in str(exc.value)


def test_resnet50_none_means_random_init(monkeypatch):
    calls = []
    monkeypatch.setattr(keras.applications, "ResNet50", lambda **kw: calls.append(kw) or "model")
    assert resnet50_backbone("none") == "model"
    assert calls[0]["weights"] is None and calls[0]["include_top"] is False


# ---------------------------------------------------------------------------------------------
# ModelCache

def dataset():
    """A fresh, seeded, shuffled tiny dataset (each fit gets its own, so both see one order)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.random((24, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, size=24)
    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(24, seed=1).batch(8)


PROBE = np.random.default_rng(9).random((5, 32, 32, 3), dtype=np.float32)


def train(model):
    # shuffle=False as in the runner: the dataset shuffles itself (Keras warns otherwise)
    model.fit(dataset(), epochs=2, verbose=0, shuffle=False)
    return model.get_weights(), model.predict(PROBE, verbose=0)


def assert_same(a, b):
    weights_a, pred_a = a
    weights_b, pred_b = b
    assert len(weights_a) == len(weights_b)
    for wa, wb in zip(weights_a, weights_b):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(pred_a, pred_b)


def test_cache_reuse_matches_fresh_model():
    head = Head(dense_units=16, dropout=0.5)
    cache = ModelCache()
    kwargs = dict(weights="none", seed=3, learning_rate=1e-3, backbone=tiny_backbone)
    model = cache.get(head, **kwargs)
    initial = [w.copy() for w in model.get_weights()]
    first = train(model)
    assert not np.array_equal(first[0][0], initial[0])  # training moved the weights

    again = cache.get(head, **kwargs)
    assert again is model
    for w, w0 in zip(again.get_weights(), initial):  # reset to the just-built state
        np.testing.assert_array_equal(w, w0)
    assert int(again.optimizer.iterations.numpy()) == 0
    second = train(again)

    fresh = build_model(head, weights="none", seed=3, learning_rate=1e-3, backbone=tiny_backbone)
    for w, w0 in zip(fresh.get_weights(), initial):
        np.testing.assert_array_equal(w, w0)
    reference = train(fresh)
    assert_same(second, reference)
    assert_same(first, reference)


def test_cache_keys():
    built = []

    def counting_build(head, **kwargs):
        built.append(head)
        return build_model(head, backbone=tiny_backbone, **kwargs)

    cache = ModelCache(build=counting_build)
    kwargs = dict(weights="none", seed=0, learning_rate=1e-3)
    a = cache.get(Head(), **kwargs)
    assert cache.get(Head(), **kwargs) is a
    assert cache.get(Head(dropout=0.3), **kwargs) is a  # same graph, other rate
    b = cache.get(Head(dense_units=1024), **kwargs)
    assert b is not a
    assert cache.get(Head(), weights="none", seed=1, learning_rate=1e-3) is not a
    assert cache.get(Head(), weights="none", seed=0, learning_rate=1e-2) is not a
    assert len(built) == 4
    cache.clear()
    assert cache.get(Head(), **kwargs) is not a and len(built) == 5


def test_cache_keeps_only_the_most_recently_used_models():
    cache = ModelCache(build=lambda head, **kw: build_model(head, backbone=tiny_backbone, **kw),
                       max_models=2)
    kwargs = dict(weights="none", seed=0, learning_rate=1e-3)
    plain = cache.get(Head(), **kwargs)
    hidden = cache.get(Head(dense_units=8), **kwargs)
    assert cache.get(Head(), **kwargs) is plain  # plain is now the most recent
    cache.get(Head(dense_units=8, freeze_base=True), **kwargs)  # evicts `hidden`
    assert cache.get(Head(), **kwargs) is plain
    assert cache.get(Head(dense_units=8), **kwargs) is not hidden


def test_reseeding_with_the_same_seed_keeps_tensorflow_caches(monkeypatch):
    import random

    import tensorflow as tf

    seed_everything(11)  # sets TensorFlow's global seed if it differs
    calls = []
    monkeypatch.setattr(tf.random, "set_seed", lambda seed: calls.append(seed))
    first = (random.random(), np.random.random())
    seed_everything(11)
    assert (random.random(), np.random.random()) == first  # Python and NumPy reseeded
    assert calls == []  # tf.random.set_seed clears TensorFlow's kernel cache: not called
    seed_everything(12)
    assert calls == [12]


def test_predict_matches_keras_and_traces_once_for_any_batch_size():
    import tensorflow as tf

    model = build_model(Head(), weights="none", seed=0, backbone=tiny_backbone)
    x = np.random.default_rng(1).random((21, 32, 32, 3), dtype=np.float32)
    for size in (21, 8):  # 21 = 2 full batches of 8 and a short one
        data = tf.data.Dataset.from_tensor_slices((x[:size], np.zeros(size))).batch(8)
        np.testing.assert_allclose(predict(model, data), model.predict(x[:size], batch_size=8,
                                                                       verbose=0), rtol=1e-6)
    assert model._harness_forward.experimental_get_tracing_count() == 1
    empty = tf.data.Dataset.from_tensor_slices((x[:0], np.zeros(0))).batch(8)
    assert predict(model, empty).shape == (0, 10)


def test_cache_reuse_after_another_model_matches_fresh_model():
    cache = ModelCache()
    kwargs = dict(weights="none", seed=3, learning_rate=1e-3, backbone=tiny_backbone)
    model = cache.get(Head(), **kwargs)
    train(model)
    train(cache.get(Head(dense_units=8, freeze_base=True), **kwargs))
    again = train(cache.get(Head(), **kwargs))
    assert_same(again, train(build_model(Head(), weights="none", seed=3, learning_rate=1e-3,
                                         backbone=tiny_backbone)))


def test_mixed_precision_computes_in_float16_with_a_float32_softmax():
    import keras

    before = keras.config.dtype_policy().name
    model = build_model(Head(dense_units=8, dropout=0.3, regularizer="l2"), weights="none",
                        seed=0, backbone=tiny_backbone, mixed_precision=True)
    assert keras.config.dtype_policy().name == before  # the global policy is left as it was
    assert model.get_layer("hidden").compute_dtype == "float16"
    assert model.get_layer("hidden").kernel.dtype == "float32"
    assert model.get_layer("predictions").compute_dtype == "float32"
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    weights, proba = train(model)
    assert proba.dtype == np.float32 and np.allclose(proba.sum(axis=1), 1.0, atol=1e-3)
    assert all(np.isfinite(w).all() for w in weights)


def test_cache_reuse_matches_fresh_model_with_mixed_precision_and_xla():
    kwargs = dict(weights="none", seed=3, learning_rate=1e-3, backbone=tiny_backbone,
                  mixed_precision=True, jit_compile=True)
    cache = ModelCache()
    model = cache.get(Head(), **kwargs)
    assert model.jit_compile
    train(model)
    again = train(cache.get(Head(), **kwargs))
    kwargs.pop("backbone")
    assert_same(again, train(build_model(Head(), backbone=tiny_backbone, **kwargs)))


def test_a_case_computes_the_same_whatever_ran_before_it_in_the_process():
    """The runner, end to end: a case's predictions depend on its seed only -- not on whether
    it runs first in a fresh process, after a case of another seed, or on a reused model.

    The shuffle's op seed combines with TensorFlow's global seed, which a previous case's build
    leaves behind; before the fix the same case and seed gave 0.526 run first and 0.477 after
    another case (ResNet50, Fashion-MNIST, 640 images).
    """
    import tensorflow as tf

    from resnet_harness.training.config import RunConfig
    from resnet_harness.training.data import load_raw
    from resnet_harness.studies.paper import CASES_BY_ID
    from resnet_harness.training.runner import run_case

    case = CASES_BY_ID["table7-cifar10-imbalanced-split_orig-reg_none"]
    other = CASES_BY_ID["table7-cifar10-balanced-split_orig-reg_none"]
    raw = load_raw("cifar10", data_source="synthetic", synthetic_size=(12, 4))

    def run(c, seed, models):
        cfg = RunConfig(scale="smoke", backbone="tiny", seed=seed, max_train_samples=96,
                        max_test_samples=40).for_case(c)
        return run_case(cfg, raw, models).arrays["proba"]

    tf.random.set_seed(1234)  # whatever an earlier case or test left behind
    alone = run(case, 1, ModelCache())
    models = ModelCache()
    run(other, 0, models)
    after_another_seed = run(case, 1, models)
    reused = run(case, 1, models)
    np.testing.assert_array_equal(alone, after_another_seed)
    np.testing.assert_array_equal(alone, reused)
