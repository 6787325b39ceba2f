"""BatchNorm re-estimation ("precise BN") and the learning diagnostics, on a two-BatchNorm stand-in
backbone (no ResNet50 is built here)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import bn_backbone, find_case
from resnet_harness.training import diagnostics as diag
from resnet_harness.training.calibration import (batchnorm_layers, calibration_indices,
                                                recalibrate_batchnorm, recalibrated_validation)
from resnet_harness.training.config import RunConfig
from resnet_harness.training.model import Head
from resnet_harness.training.model import ModelCache, build_model

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

EPS = 1e-3  # keras.layers.BatchNormalization's default epsilon


def build(head: Head = Head(), seed: int = 0, **kwargs):
    return build_model(head, weights="none", seed=seed, backbone=bn_backbone, **kwargs)


def images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 32, 32, 3), np.float32)


def train(model, n: int = 64, seed: int = 0) -> None:
    """A few steps, so that the moving statistics lag behind the weights."""
    rng = np.random.default_rng(seed)
    x, y = images(n, seed + 5), rng.integers(0, 10, n)
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1, verbose=0,
              shuffle=False)


def stats(model) -> dict[str, np.ndarray]:
    return {f"{layer.name}/{v.name}": v.numpy().copy() for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)}


def numpy_population_stats(model, batches: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The average over batches of each BN layer's per-batch mean and biased variance, with the
    BatchNorm arithmetic done here in NumPy (training mode: normalised by the batch's own
    statistics); only the convolutions are computed by the layers themselves."""
    c1, bn1, c2 = (model.get_layer(name) for name in ("c1", "bn1", "c2"))
    sums = {"bn1": [0.0, 0.0], "bn2": [0.0, 0.0]}
    for x in batches:
        a1 = c1(x).numpy().astype(np.float64)
        m1, v1 = a1.mean(axis=(0, 1, 2)), a1.var(axis=(0, 1, 2))
        h1 = np.maximum(bn1.gamma.numpy() * (a1 - m1) / np.sqrt(v1 + EPS) + bn1.beta.numpy(), 0)
        a2 = c2(h1.astype(np.float32)).numpy().astype(np.float64)
        for name, a, m, v in (("bn1", a1, m1, v1),
                              ("bn2", a2, a2.mean(axis=(0, 1, 2)), a2.var(axis=(0, 1, 2)))):
            sums[name][0] = sums[name][0] + m
            sums[name][1] = sums[name][1] + v
    out = {}
    for name, (m, v) in sums.items():
        out[f"{name}/moving_mean"] = m / len(batches)
        out[f"{name}/moving_variance"] = v / len(batches)
    return out


def test_recalibrated_statistics_are_the_population_statistics_computed_in_numpy():
    model = build()
    train(model)
    x = images(48, seed=3)
    batches = [x[i:i + 16] for i in range(0, 48, 16)]
    expected = numpy_population_stats(model, batches)
    before = stats(model)
    info = recalibrate_batchnorm(model, tf.data.Dataset.from_tensor_slices(x).batch(16))
    after = stats(model)
    assert (info.layers, info.frozen_layers, info.batches, info.images) == (2, 0, 3, 48)
    for key, value in expected.items():
        np.testing.assert_allclose(after[key], value, rtol=2e-4, atol=1e-5, err_msg=key)
        assert not np.allclose(before[key], value, rtol=1e-2), f"{key} was already right"
    # The layers' momentum is back to what training uses.
    assert [layer.momentum for layer in batchnorm_layers(model)[0]] == [0.99, 0.99]


def test_no_weight_changes_and_the_traced_step_is_reused():
    model = build()
    train(model)
    weights = [v.numpy().copy() for v in model.trainable_variables]
    x = images(32)
    recalibrate_batchnorm(model, tf.data.Dataset.from_tensor_slices(x).batch(16))
    step = model._harness_bn_functions[1]
    recalibrate_batchnorm(model, tf.data.Dataset.from_tensor_slices((x, np.zeros(32))).batch(8))
    assert model._harness_bn_functions[1] is step
    assert step.experimental_get_tracing_count() == 1  # any batch size, one trace
    for before, variable in zip(weights, model.trainable_variables):
        np.testing.assert_array_equal(before, variable.numpy(), err_msg=variable.path)


def test_frozen_batchnorm_is_left_alone():
    """Table 6: a frozen base's BatchNorm runs in inference mode during training (Keras 3), so its
    statistics are what training used; re-estimation must not touch them."""
    model = build(Head(dense_units=16, freeze_base=True))
    trainable, frozen = batchnorm_layers(model)
    assert not trainable and len(frozen) == 2
    train(model)
    before = stats(model)
    info = recalibrate_batchnorm(model, tf.data.Dataset.from_tensor_slices(images(32)).batch(16))
    assert (info.layers, info.frozen_layers, info.batches) == (0, 2, 0)
    for key, value in stats(model).items():
        np.testing.assert_array_equal(before[key], value, err_msg=key)


def test_an_empty_data_set_is_an_error_and_leaves_momentum_alone():
    model = build()
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_batchnorm(model, [])
    assert [layer.momentum for layer in batchnorm_layers(model)[0]] == [0.99, 0.99]


def test_calibration_indices_are_seeded_whole_batches():
    a = calibration_indices(3000, 32, 32, seed=0)
    assert len(a) == 1024 and len(set(a)) == 1024 and a.max() < 3000
    np.testing.assert_array_equal(a, calibration_indices(3000, 32, 32, seed=0))
    assert not np.array_equal(a, calibration_indices(3000, 32, 32, seed=1))
    assert len(calibration_indices(320, 32, 32, seed=0)) == 320  # smoke: all 10 batches
    assert len(calibration_indices(330, 32, 32, seed=0)) == 320  # whole batches only
    assert len(calibration_indices(20, 32, 32, seed=0)) == 20  # fewer than one batch: all


def test_model_cache_restores_the_just_built_statistics_after_recalibration():
    cache = ModelCache(build=lambda head, **kw: build_model(head, backbone=bn_backbone, **kw))
    kwargs = dict(weights="none", seed=0, learning_rate=1e-3)
    model = cache.get(Head(), **kwargs)
    built = stats(model)
    train(model)
    recalibrate_batchnorm(model, tf.data.Dataset.from_tensor_slices(images(32)).batch(16))
    assert any(not np.array_equal(built[k], v) for k, v in stats(model).items())
    again = cache.get(Head(), **kwargs)
    assert again is model and not cache.built_last
    for key, value in stats(again).items():
        np.testing.assert_array_equal(built[key], value, err_msg=key)
    assert [layer.momentum for layer in batchnorm_layers(again)[0]] == [0.99, 0.99]


# ---------------------------------------------------------------------------------------------
# evaluate(): both sets of metrics, the option's effect, the diagnostics in the row


def _variant(n_train: int = 96, n_test: int = 40):
    from resnet_harness.training.data.variants import Variant

    rng = np.random.default_rng(0)
    y_train, y_test = np.arange(n_train) % 10, np.arange(n_test) % 10
    x_train = rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    return Variant(x_train, y_train, x_test, y_test, [n_train // 10] * 10, (), 0.0, "test")


def _evaluate(recalibrate: bool, head: Head = Head()):
    from resnet_harness.training.data.pipeline import make_dataset
    from resnet_harness.training.evaluation import evaluate

    case = find_case("table7", "cifar10", "balanced")
    cfg = RunConfig(scale="smoke", bn_recalibrate="on" if recalibrate else "off").for_case(case)
    variant = _variant()
    model = build(head)
    train_set = make_dataset(variant.x_train, variant.y_train, batch_size=32, training=True,
                             seed=0)
    history = model.fit(train_set, epochs=1, verbose=0, shuffle=False)
    test = make_dataset(variant.x_test, variant.y_test, batch_size=32, training=False, seed=0)
    before = stats(model)
    fields, arrays = evaluate(model, variant, cfg, test, history)
    return model, before, fields, arrays


def test_off_leaves_the_model_unchanged_and_reports_it_as_trained():
    model, before, fields, arrays = _evaluate(recalibrate=False)
    for key, value in stats(model).items():
        np.testing.assert_array_equal(before[key], value, err_msg=key)
    assert fields["bn_recalibrated"] is False and fields["bn_recalibration"] is None
    assert fields["metrics"] == fields["metrics_as_trained"]
    np.testing.assert_array_equal(arrays["proba"], arrays["proba_as_trained"])
    assert fields["train_inference_accuracy"] == fields["train_inference_accuracy_as_trained"]


def test_on_keeps_both_sets_of_metrics_and_probabilities():
    model, before, fields, arrays = _evaluate(recalibrate=True)
    assert fields["bn_recalibrated"] is True
    assert fields["bn_recalibration"]["layers"] == 2
    assert fields["bn_recalibration"]["images"] == 96  # 3 whole batches of 32
    assert fields["bn_recalibration_s"] >= fields["bn_recalibration"]["first_batch_s"] > 0
    assert any(not np.array_equal(before[k], v) for k, v in stats(model).items())
    assert not np.allclose(arrays["proba"], arrays["proba_as_trained"])
    np.testing.assert_array_equal(arrays["y_pred"], arrays["proba"].argmax(axis=1))
    assert fields["metrics"]["accuracy"] == pytest.approx(
        float(np.mean(arrays["y_pred"] == arrays["y_true"])))
    assert fields["metrics_as_trained"]["accuracy"] == pytest.approx(
        float(np.mean(arrays["proba_as_trained"].argmax(axis=1) == arrays["y_true"])))
    # The diagnostics: what fit saw, and inference-mode accuracy on training images.
    assert fields["train_loss"] > 0 and 0 <= fields["train_accuracy"] <= 1
    assert fields["train_inference_samples"] == 40  # no more than the test images
    assert 0 <= fields["train_inference_accuracy"] <= 1
    assert isinstance(fields["warnings"], list)
    assert fields["evaluation_s"] > fields["test_time_s"] + fields["bn_recalibration_s"]


def test_on_with_a_frozen_base_changes_nothing():
    model, before, fields, arrays = _evaluate(recalibrate=True,
                                              head=Head(dense_units=16, freeze_base=True))
    for key, value in stats(model).items():
        np.testing.assert_array_equal(before[key], value, err_msg=key)
    assert fields["bn_recalibrated"] is False
    assert fields["bn_recalibration"]["frozen_layers"] == 2
    np.testing.assert_array_equal(arrays["proba"], arrays["proba_as_trained"])


# ---------------------------------------------------------------------------------------------
# Diagnostics (pure functions)


def test_warning_only_beyond_the_margin():
    assert diag.GAP_MARGIN == 0.10
    assert diag.learning_warnings(0.788, 0.375)  # issue 10's Fashion-MNIST figures
    (text,) = diag.learning_warnings(0.240, 0.101)  # measured here: CIFAR-10, reduced, as trained
    assert "0.101" in text and "0.240" in text and "0.139" in text and "> 0.1" in text
    assert diag.learning_warnings(0.50, 0.41) == []  # 0.09: within the margin
    assert diag.learning_warnings(0.562, 0.636) == []  # inference better: healthy
    assert diag.learning_warnings(0.50, 0.30, margin=0.25) == []
    assert diag.learning_warnings(None, 0.1) == [] and diag.learning_warnings(0.9, None) == []
    assert diag.learning_warnings(float("nan"), 0.1) == []


def test_sample_is_seeded_stratified_and_capped():
    y = np.repeat(np.arange(10), 300)
    a = diag.sample_indices(y, 1000, seed=0)
    assert len(a) == 1000 and np.all(np.bincount(y[a]) == 100)
    np.testing.assert_array_equal(a, diag.sample_indices(y, 1000, seed=0))
    assert not np.array_equal(a, diag.sample_indices(y, 1000, seed=1))
    assert len(diag.sample_indices(y[:320], 1000, seed=0)) == 320


def test_history_last_and_accuracy():
    class History:
        history = {"loss": [2.0, 1.5], "accuracy": [0.2, float("nan")]}

    assert diag.history_last(History(), "loss") == 1.5
    assert diag.history_last(History(), "accuracy") is None
    assert diag.history_last(History(), "val_loss") is None
    assert diag.accuracy(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]])) == 0.5
    assert diag.accuracy(np.array([]), np.zeros((0, 2))) is None


def test_validation_sees_the_re_estimated_statistics_that_the_test_will_use():
    # Inputs far from BatchNorm's initial moving mean (0): after a few steps the moving
    # statistics still lag, so Keras' own validation pass normalises with the wrong mean.
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(256, 4)) + 50).astype(np.float32)
    y = (x[:, 0] > 50).astype(np.int64)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)

    def model():
        keras.utils.set_random_seed(0)
        net = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(),
                                keras.layers.Dense(2, activation="softmax")])
        net.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy",
                    metrics=["accuracy"])
        return net

    theirs = model().fit(data, epochs=2, validation_data=data, verbose=0, shuffle=False).history
    ours_model = model()
    ours = ours_model.fit(data, epochs=2, verbose=0, shuffle=False,
                          callbacks=[recalibrated_validation(data, data)]).history
    assert set(ours) == set(theirs) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-5)  # training is unchanged
    # The last epoch's figure is the model's as fit left it, statistics re-estimated.
    after = ours_model.evaluate(data, verbose=0, return_dict=True)
    assert ours["val_loss"][-1] == pytest.approx(after["loss"], rel=1e-5)
    assert max(ours["val_loss"]) < min(theirs["val_loss"]) / 5
    assert ours["val_accuracy"][-1] > 0.8 > max(theirs["val_accuracy"])
