"""The long-tail study's literature recipe against its reference code: each loss checked on
fixed logits (large ones included, where the study recipe's clip at 1e-7 used to bite) against
a small independent NumPy implementation of the reference formula; the learning-rate schedule,
the re-sampler and DRW's fixed beta against LDAM-DRW's code."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_harness.studies import longtail
from resnet_harness.studies import longtail_losses as losses

LOGITS = np.array([[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4], [-3.0, 4.0, 1.0, -2.0],
                   [60.0, -40.0, 5.0, 0.0], [-50.0, 30.0, 80.0, -80.0]], np.float32)
LABELS = np.array([0, 3, 1, 2, 3])  # the last two: confidently wrong, by 55 and 160 logits
WEIGHTS = np.array([0.4, 1.0, 1.7, 0.9])
PRIOR_SHIFT = np.log(np.array([0.5, 0.3, 0.15, 0.05]))


def _log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def _ce(z, y):
    return -_log_softmax(z)[np.arange(len(y)), y]


def ref_weighted_ce(z, y, w):
    """PyTorch ``F.cross_entropy(z, y, weight=w)`` (reduction mean): sum(w_y ce) / sum(w_y)."""
    return float((w[y] * _ce(z, y)).sum() / w[y].sum())


def ref_ldam_focal(z, y, gamma, w=None):
    """LDAM-DRW ``losses.FocalLoss``: ce = F.cross_entropy(reduction='none', weight=w);
    p = exp(-ce); mean((1 - p) ** gamma * ce)."""
    ce = _ce(z, y) * (1.0 if w is None else w[y])
    return float(((1.0 - np.exp(-ce)) ** gamma * ce).mean())


def ref_cb_sigmoid_focal(z, y, w, gamma):
    """Cui et al.'s ``focal_loss`` (class-balanced-loss repository): BCE-with-logits times
    exp(-gamma y z - gamma log(1 + exp(-z))), weighted by each sample's class weight, summed,
    divided by the number of labels (the batch size)."""
    z = np.asarray(z, np.float64)
    labels = np.eye(z.shape[1])[y]
    bce = np.maximum(z, 0) - z * labels + np.log1p(np.exp(-np.abs(z)))
    modulator = np.exp(-gamma * labels * z - gamma * np.logaddexp(0.0, -z))
    alpha = w[y][:, None] * np.ones_like(z)
    return float((alpha * modulator * bce).sum() / labels.sum())


def _keras_loss(kind, **configure):
    loss = losses.reference_loss(kind, num_classes=4)
    loss.configure(**configure)
    return float(loss(LABELS, LOGITS))


def test_cross_entropy_on_logits_has_no_clip():
    ours = _keras_loss("softmax")
    assert ours == pytest.approx(float(_ce(LOGITS, LABELS).mean()), rel=1e-5)
    # the confidently wrong samples: 55 and 160 nats, where clipped probabilities gave 16.1
    assert _ce(LOGITS, LABELS)[-1] == pytest.approx(160.0, rel=1e-6)
    assert ours > 40


def test_weighted_cross_entropy_is_normalised_by_the_weights():
    ours = _keras_loss("softmax", alpha=WEIGHTS, normalize=True)
    assert ours == pytest.approx(ref_weighted_ce(LOGITS, LABELS, WEIGHTS), rel=1e-5)
    # dividing by the batch size instead (fit(class_weight)) gives another figure
    assert ours != pytest.approx(float((WEIGHTS[LABELS] * _ce(LOGITS, LABELS)).mean()), rel=1e-3)


@pytest.mark.parametrize("gamma", [1.0, 2.0])
def test_focal_is_ldam_drws(gamma):
    assert _keras_loss("softmax", gamma=gamma) == pytest.approx(
        ref_ldam_focal(LOGITS, LABELS, gamma), rel=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
def test_class_balanced_focal_is_cuis_sigmoid_focal(gamma):
    ours = _keras_loss("sigmoid", gamma=gamma, alpha=WEIGHTS)
    assert ours == pytest.approx(ref_cb_sigmoid_focal(LOGITS, LABELS, WEIGHTS, gamma), rel=1e-5)


def test_logit_adjusted_loss_is_cross_entropy_of_shifted_logits():
    ours = _keras_loss("softmax", shift=PRIOR_SHIFT)
    assert ours == pytest.approx(float(_ce(LOGITS + PRIOR_SHIFT, LABELS).mean()), rel=1e-5)


def test_gradients_stay_finite_where_a_sample_is_certain():
    import tensorflow as tf

    loss = losses.reference_loss("softmax", num_classes=4)
    loss.configure(gamma=1.0)
    logits = tf.Variable([[200.0, -200.0, 0.0, 0.0]])
    with tf.GradientTape() as tape:
        value = loss(np.array([0]), logits)
    assert np.all(np.isfinite(tape.gradient(value, logits).numpy()))


def test_learning_rate_schedule_is_ldam_drws():
    def reference(epoch):  # cifar_train.py adjust_learning_rate, lr 0.1
        epoch = epoch + 1
        if epoch <= 5:
            return 0.1 * epoch / 5
        if epoch > 180:
            return 0.1 * 0.0001
        if epoch > 160:
            return 0.1 * 0.01
        return 0.1
    assert [losses.literature_lr(e, 200) for e in range(200)] == pytest.approx(
        [reference(e) for e in range(200)])
    # compressed in proportion for a 20-epoch run: warm-up 0.5 epochs, steps after 16 and 18
    assert [losses.literature_lr(e, 20) for e in (0, 15, 16, 18, 19)] == pytest.approx(
        [0.1, 0.1, 0.001, 1e-5, 1e-5])


def test_a_shorter_run_is_the_first_epochs_of_the_published_schedule():
    case = longtail.CASES_BY_ID["longtail-cifar10-exp100-ce-lit"]
    cfg = type("Cfg", (), {"study_options": {}, "epochs": 10, "case": case, "seed": 0})()

    class Model:
        loss = type("Loss", (), {"configure": lambda self, **kw: None})()

    hooks = case.hooks().bind(cfg)
    hooks.train_counts = [100] * 10
    (schedule,) = hooks.on_fit_start(Model())["callbacks"]
    assert [schedule.schedule(e, None) for e in range(10)] == pytest.approx(
        [0.02, 0.04, 0.06, 0.08, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])


def test_resampler_draws_classes_as_ldam_drws_sampler():
    counts = np.array([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])
    beta = 0.9999
    per_sample = (1 - beta) / (1 - beta ** counts)  # ImbalancedDatasetSampler's weights
    expected = counts * per_sample / (counts * per_sample).sum()
    assert losses.resampling_weights(counts) == pytest.approx(expected)
    assert expected[0] / expected[-1] == pytest.approx(1.27, abs=0.01)  # near uniform


def test_drw_keeps_the_reference_beta_and_weights_normalise(monkeypatch):
    case = longtail.CASES_BY_ID["longtail-cifar10-exp100-drw-lit"]

    class Loss:
        def configure(self, **kwargs):
            self.kwargs = kwargs

    class Model:
        loss = Loss()

    counts = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]

    def bound(case):
        cfg = type("Cfg", (), {"study_options": {"cb_beta": 0.99}, "epochs": 200,
                               "case": case, "seed": 0})()
        hooks = case.hooks().bind(cfg)
        hooks.train_counts = counts
        return hooks

    hooks = bound(case)
    extras = hooks.on_fit_start(Model())
    assert Model.loss.kwargs["normalize"] is True and Model.loss.kwargs["alpha"] is None
    drw = extras["callbacks"][1]
    assert drw.__class__.__name__ == "DeferredReweighting"
    model_options = hooks.on_build_model()
    assert model_options == {"logits": True, "optimizer": "sgd", "momentum": 0.9,
                             "weight_decay": 2e-4, "head_init": "torch"}
    assert hooks.on_batches()["augmentation_kind"] == "crop_flip"
    assert hooks.loss_name.endswith("softmax")
    cb = bound(longtail.CASES_BY_ID["longtail-cifar10-exp100-cb_focal-lit"])
    assert cb.on_build_model()["output_bias"] == pytest.approx(-np.log(9))
    assert cb.on_build_model()["decay_output_bias"] is False  # Cui et al. exclude it
    cb.on_fit_start(Model())
    assert Model.loss.kwargs["gamma"] == 1.0
    assert Model.loss.kwargs["alpha"] == pytest.approx(
        losses.effective_number_weights(counts, 0.99))  # --cb-beta moves CB focal's beta only


def test_literature_cases_are_resnet32_with_the_published_schedule():
    lit = [c for c in longtail.CASES if c.recipe == "literature"]
    assert len(lit) == 4 * len(longtail.METHODS)
    assert {(c.dataset, c.backbone, c.epochs, c.batch_size, c.learning_rate, c.weights)
            for c in lit} == {("cifar10", "resnet32", 200, 128, 0.1, "none")}
    assert all(c.id.endswith("-lit") and "literature" in c.markers for c in lit)


def test_the_literature_head_is_initialised_and_decayed_as_each_reference():
    """LDAM-DRW: nn.Linear(64, 10) after _weights_init: kaiming_normal_ (untruncated, std
    sqrt(2 / 64) = 0.1768) and PyTorch's uniform(+-1/8) bias; Cui et al.: bias -log(9), not
    decayed. The standard deviation over 640 weights is known to ~3% (1 / sqrt(2 * 640))."""
    from resnet_harness.training.model import BACKBONES, Head, build_model

    def head(**options):
        model = build_model(Head(), weights="none", seed=0, backbone=BACKBONES["resnet32"],
                            logits=True, optimizer="sgd", weight_decay=2e-4, **options)
        layer = model.get_layer("predictions")
        return layer, np.asarray(layer.kernel), np.asarray(layer.bias)

    layer, kernel, bias = head(head_init="torch")
    assert kernel.shape == (64, 10)
    assert np.std(kernel) == pytest.approx(np.sqrt(2 / 64), rel=0.1)
    # untruncated: Keras' HeNormal (truncated at 2 sd, rescaled) never passes 2.27 sd
    assert np.abs(kernel).max() > 2.35 * np.sqrt(2 / 64)
    assert np.all(np.abs(bias) <= 1 / 8) and np.std(bias) > 0.02
    assert layer.bias_regularizer is not None  # LDAM-DRW's SGD decays every parameter
    layer, _, bias = head(head_init="torch", output_bias=-float(np.log(9)),
                          decay_output_bias=False)
    np.testing.assert_allclose(bias, -np.log(9), rtol=1e-6)
    assert layer.bias_regularizer is None


def test_the_committed_side_by_side_table_regenerates_from_its_rows(tmp_path):
    """docs/longtail-reference/summary.md is what bench/longtail_reference.py summarise makes
    of the committed epochs.csv (no PyTorch needed to check it)."""
    import importlib.util
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "longtail_reference", root / "bench" / "longtail_reference.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    committed = root / "docs" / "longtail-reference"
    copy = tmp_path / "docs" / "longtail-reference"
    shutil.copytree(committed, copy)
    (copy / "summary.md").unlink()
    text = bench.summarise(copy)
    assert text.replace(str(copy), "docs/longtail-reference") == \
        (committed / "summary.md").read_text()
    # Every figure of every epoch, both sides, three seeds each.
    assert text.count("| balanced test accuracy |") == 3 and text.count("of 3 |") == 15
