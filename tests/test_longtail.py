"""The long-tail study: profiles against the formula, each method's loss and weights against an
independent computation, groups, comparisons, and the matrix's selection markers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from resnet_harness import study
from resnet_harness.studies import longtail
from resnet_harness.studies.longtail import groups
from resnet_harness.studies.profiles import PROFILES, apply_profile
from resnet_harness.studies.longtail_losses import (effective_number_weights, inverse_frequency_weights,
                                             log_prior, posthoc_adjust)

# CIFAR-10-LT as LDAM-DRW's imbalance_cifar.py makes it (5,000 per class before).
LDAM_EXP100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
LDAM_EXP10 = [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500]


def test_exponential_profile_matches_ldam_drw_on_full_cifar10():
    assert PROFILES["exp100"].counts([5000] * 10) == LDAM_EXP100
    assert sum(LDAM_EXP100) == 12406
    assert PROFILES["exp10"].counts([5000] * 10) == LDAM_EXP10
    assert sum(LDAM_EXP10) == 20431


@pytest.mark.parametrize("rho", [10, 100])
@pytest.mark.parametrize("n_max", [300, 500, 5000, 6000])
def test_profiles_follow_the_formula_and_hold_rho(rho, n_max):
    exp = PROFILES[f"exp{rho}"].counts([n_max] * 10)
    assert exp == [math.floor(n_max * rho ** (-i / 9) + 1e-9) for i in range(10)]
    assert exp[0] == n_max and exp[-1] == n_max // rho  # rho holds after capping
    step = PROFILES[f"step{rho}"].counts([n_max] * 10)
    assert step == [n_max] * 5 + [n_max // rho] * 5


def test_paper_profile_is_the_study_text_reading():
    assert PROFILES["paper"].counts([300] * 10) == [270] * 3 + [300] * 7


def test_smoke_caps_keep_one_image_per_class():
    assert PROFILES["exp100"].counts([32] * 10) == [32, 19, 11, 6, 4, 2, 1, 1, 1, 1]
    assert PROFILES["step100"].counts([32] * 10) == [32] * 5 + [1] * 5


def test_apply_profile_keeps_the_counts_and_is_seeded():
    y = np.repeat(np.arange(10), 300)
    idx = np.arange(len(y)) + 7
    kept, reduced = apply_profile(PROFILES["exp100"], idx, y, seed=0)
    assert np.bincount(y[kept - 7], minlength=10).tolist() == \
        PROFILES["exp100"].counts([300] * 10)
    assert reduced == tuple(range(1, 10))
    again, _ = apply_profile(PROFILES["exp100"], idx, y, seed=0)
    other, _ = apply_profile(PROFILES["exp100"], idx, y, seed=1)
    assert np.array_equal(kept, again) and not np.array_equal(kept, other)


def test_groups_rank_by_training_count():
    assert groups(LDAM_EXP100) == {"head": [0, 1, 2], "middle": [3, 4, 5, 6], "tail": [7, 8, 9]}
    assert groups([300] * 5 + [3] * 5) == {"head": [0, 1, 2], "middle": [3, 4, 5, 6],
                                          "tail": [7, 8, 9]}
    assert groups([270] * 3 + [300] * 7) == {"head": [3, 4, 5], "middle": [6, 7, 8, 9],
                                             "tail": [0, 1, 2]}


def test_group_accuracies_in_the_row_are_mean_recalls():
    """The row's head/middle/tail accuracy (the hooks' on_row, from the test metrics)."""
    from types import SimpleNamespace

    from resnet_harness.training.metrics import compute_metrics

    y_true = np.repeat(np.arange(10), 10)
    y_pred = y_true.copy()
    y_pred[y_true >= 7] = 0  # every tail image wrong
    y_pred[(y_true == 3) & (np.arange(100) % 10 < 5)] = 0  # half of class 3 wrong
    metrics = compute_metrics(y_true, np.eye(10)[y_pred], 10)
    case = longtail.CASES_BY_ID["longtail-cifar10-exp100-ce"]
    hooks = case.hooks().bind(SimpleNamespace(case=case, seed=0, study_options={}))
    hooks.train_counts = LDAM_EXP100
    out = hooks.on_row(metrics)
    assert out["head_accuracy"] == 1.0 and out["tail_accuracy"] == 0.0
    assert out["middle_accuracy"] == pytest.approx((0.5 + 3) / 4)
    assert metrics["balanced_accuracy"] == pytest.approx(6.5 / 10)


def test_class_weights_equal_the_closed_forms():
    from sklearn.utils.class_weight import compute_class_weight

    counts = [50, 20, 5]
    y = np.repeat(np.arange(3), counts)
    assert np.allclose(inverse_frequency_weights(counts),
                       compute_class_weight("balanced", classes=np.arange(3), y=y))
    beta = 0.99
    raw = [(1 - beta) / (1 - beta ** n) for n in counts]
    assert np.allclose(effective_number_weights(counts, beta), np.array(raw) / sum(raw) * 3)
    # beta -> 0: every class weighs the same; beta -> 1: inverse frequency (up to a factor).
    assert np.allclose(effective_number_weights(counts, 0.0), 1.0)
    near = effective_number_weights(counts, 1 - 1e-9)
    assert np.allclose(near / near[0], (1 / np.array(counts)) / (1 / counts[0]), rtol=1e-5)


def _loss(gamma=0.0, alpha=None, shift=None):
    from resnet_harness.studies.longtail_losses import longtail_loss

    loss = longtail_loss(4)
    loss.configure(gamma=gamma, alpha=alpha, shift=shift)
    return loss


_Y = np.array([0, 1, 3, 3])
_P = np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.5, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25],
               [0.05, 0.05, 0.1, 0.8]], np.float32)


def test_loss_with_no_knobs_is_sparse_cross_entropy():
    import keras

    expected = keras.losses.SparseCategoricalCrossentropy()(_Y, _P)
    assert float(_loss()(_Y, _P)) == pytest.approx(float(expected), rel=1e-5)
    assert float(_loss()(_Y, _P)) == pytest.approx(-np.mean(np.log(_P[range(4), _Y])), rel=1e-5)


def test_focal_loss_equals_keras_own_on_one_hot_labels():
    import keras

    onehot = np.eye(4, dtype=np.float32)[_Y]
    theirs = keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=2.0)(onehot, _P)
    assert float(_loss(gamma=2.0)(_Y, _P)) == pytest.approx(float(theirs), rel=1e-5)
    p = _P[range(4), _Y]
    assert float(_loss(gamma=2.0)(_Y, _P)) == pytest.approx(
        np.mean(-(1 - p) ** 2 * np.log(p)), rel=1e-5)
    alpha = np.array([0.5, 1.0, 2.0, 3.0])
    assert float(_loss(gamma=2.0, alpha=alpha)(_Y, _P)) == pytest.approx(
        np.mean(-alpha[_Y] * (1 - p) ** 2 * np.log(p)), rel=1e-5)


def test_logit_adjusted_loss_equals_the_hand_computed_value():
    counts = [80, 10, 6, 4]
    shift = 1.0 * log_prior(counts)
    z = np.log(_P.astype(np.float64)) + shift
    z -= z.max(axis=1, keepdims=True)
    log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    expected = -np.mean(log_softmax[range(4), _Y])
    assert float(_loss(shift=shift)(_Y, _P)) == pytest.approx(expected, rel=1e-5)
    # Training with the prior added penalises the head class's easy win: the loss of a sample
    # of the head class goes down, of a tail class up.
    plain = _loss()
    assert float(_loss(shift=shift)(_Y[:1], _P[:1])) < float(plain(_Y[:1], _P[:1]))
    assert float(_loss(shift=shift)(_Y[3:], _P[3:])) > float(plain(_Y[3:], _P[3:]))


def test_posthoc_adjustment_shifts_predictions_towards_tail_classes():
    counts = [1000, 100, 10]
    proba = np.array([[0.95, 0.045, 0.005], [0.5, 0.48, 0.02], [0.5, 0.1, 0.4]])
    adjusted = posthoc_adjust(proba, counts, tau=1.0)
    assert np.allclose(adjusted.sum(axis=1), 1.0)
    assert proba.argmax(axis=1).tolist() == [0, 0, 0]
    # A confident head prediction stays; close calls move to the rarer class.
    assert adjusted.argmax(axis=1).tolist() == [0, 1, 2]
    expected = proba / (np.array(counts) / sum(counts))
    assert np.allclose(adjusted, expected / expected.sum(axis=1, keepdims=True))
    assert np.allclose(posthoc_adjust(proba, counts, tau=0.0), proba)


def test_class_balanced_sampling_draws_classes_uniformly():
    from resnet_harness.training.data.pipeline import class_balanced_indices

    y = np.repeat(np.arange(4), [400, 40, 10, 2])
    dataset = class_balanced_indices(y, seed=0)
    epochs = [np.array(list(dataset.as_numpy_iterator())) for _ in range(2)]
    for drawn in epochs:
        assert len(drawn) == len(y)
        share = np.bincount(y[drawn], minlength=4) / len(y)
        assert np.all(np.abs(share - 0.25) < 0.06), share
    assert not np.array_equal(epochs[0], epochs[1])  # a new draw each epoch (iteration)
    again = np.array(list(class_balanced_indices(y, seed=0).as_numpy_iterator()))
    assert np.array_equal(again, epochs[0])  # seeded


def test_drw_switches_weights_on_for_the_last_fifth():
    from resnet_harness.studies.longtail_losses import drw_start_epoch

    assert [drw_start_epoch(e) for e in (1, 3, 25, 200)] == [0, 2, 20, 160]


def test_matrix_ids_markers_and_comparisons():
    from resnet_harness.studies.paper import CASES as PAPER

    study = [c for c in longtail.CASES if c.recipe == "study"]
    assert len(study) == 2 * len(PROFILES) * len(longtail.METHODS)
    assert len(longtail.CASES) == len(study) + len(longtail.LITERATURE_PROFILES) * len(
        longtail.METHODS)
    assert not set(longtail.CASES_BY_ID) & {c.id for c in PAPER}
    case = longtail.CASES_BY_ID["longtail-cifar10-exp100-la_loss"]
    assert case.markers == ("cifar10", "exp100", "la_loss") and case.study == "longtail"
    pairs = {(c.treatment, c.baseline, c.family) for c in longtail.COMPARISONS}
    assert ("longtail-cifar10-exp100-la_loss", "longtail-cifar10-exp100-ce",
            "longtail-cifar10-exp100") in pairs
    assert ("longtail-cifar10-exp100-la_loss-lit", "longtail-cifar10-exp100-ce-lit",
            "longtail-cifar10-exp100-lit") in pairs  # each recipe against its own ce
    ce_cases = [c for c in longtail.CASES if c.method == "ce"]
    assert len(pairs) == len(longtail.CASES) - len(ce_cases)
    from resnet_harness.analysis.comparisons import comparisons_for

    assert not any(c.family.startswith("longtail") for c in comparisons_for(
        [{"case_id": "table7-cifar10-balanced-split_orig-reg_none"}]))
    assert len([c for c in comparisons_for([{"case_id": "longtail-cifar10-exp100-ce-seed2"}])
                if c.family == "longtail-cifar10-exp100"]) == 8


def _lt_row(method, seed, bal, tail, profile="exp100"):
    case = longtail.CASES_BY_ID[f"longtail-cifar10-{profile}-{method}"]
    return {"case_id": f"{case.id}-seed{seed}", "scale": "reduced", "seed": seed,
            "status": "passed", "metrics": {"balanced_accuracy": bal, "f1_macro": bal},
            "tail_accuracy": tail, "head_accuracy": 0.5,
            "config": {"epochs": 3, "long_tail": {"profile": profile, "method": method}}}


def test_methods_against_ce_get_intervals_and_verdicts_from_the_stats_module():
    """A planted +0.10 tail gain over 5 seeds is "better"; seed noise alone is never "better";
    the only confound is the method itself (not listed)."""
    from resnet_harness.analysis import claims

    noise = [0.004, -0.006, 0.002, -0.001, 0.003]
    rows = []
    for seed, e in enumerate(noise):
        rows += [_lt_row("ce", seed, 0.30 + e, 0.05 + e),
                 _lt_row("la_loss", seed, 0.30 - e, 0.15 + 2 * e),
                 _lt_row("focal", seed, 0.30 + e / 2, 0.05 - e)]
    _, results = claims.evaluate(rows)
    got = {(r.comparison.treatment.rsplit("-", 1)[1], r.measure): r for r in results
           if r.comparison.family == "longtail-cifar10-exp100"}
    tail = got["la_loss", "tail_accuracy"]
    assert tail.verdict == "better" and tail.n == 5 and tail.low > 0
    assert tail.mean == pytest.approx(0.10 + np.mean(noise))
    assert tail.confounds == ()
    assert got["focal", "tail_accuracy"].verdict != "better"
    assert got["focal", "balanced_accuracy"].verdict in ("equivalent", "inconclusive")
    # Comparisons whose arms did not run: listed as not run, not dropped.
    assert got["drw", "balanced_accuracy"].verdict == "not run"
    assert not any(r.comparison.family.startswith("longtail-fashion") for r in results)


def _fake_cfg(method: str, epochs: int = 1):
    from types import SimpleNamespace

    case = longtail.CASES_BY_ID[f"longtail-cifar10-exp100-{method}"]
    return SimpleNamespace(case=case, study_options={}, epochs=epochs, seed=0)


def _before_fit(cfg, model, counts):
    hooks = cfg.case.hooks().bind(cfg)
    hooks.train_counts = counts
    return hooks.on_fit_start(model)


def _tiny_models(loss_a, loss_b):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(3, activation="softmax")(inputs)
    a = keras.Model(inputs, outputs)
    b = keras.models.clone_model(a)
    b.set_weights(a.get_weights())
    for model, loss in ((a, loss_a), (b, loss_b)):
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
    return a, b


def test_class_weights_train_exactly_as_a_plain_keras_run():
    """The harness's inverse_freq arm (its loss, its ``fit`` arguments) against plain Keras:
    sparse cross-entropy with scikit-learn's "balanced" weights, same data, same init."""
    from sklearn.utils.class_weight import compute_class_weight

    from resnet_harness.studies.longtail_losses import longtail_loss

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), [24, 6, 2])
    x = rng.normal(size=(len(y), 6)).astype(np.float32) + y[:, None]
    ours, plain = _tiny_models(longtail_loss(3), "sparse_categorical_crossentropy")
    extra = _before_fit(_fake_cfg("inverse_freq"), ours, np.bincount(y).tolist())
    weights = compute_class_weight("balanced", classes=np.arange(3), y=y)
    assert extra["class_weight"] == pytest.approx(dict(enumerate(weights)))
    ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, **extra)
    plain.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
              class_weight=dict(enumerate(weights)))
    for a, b in zip(ours.get_weights(), plain.get_weights()):
        assert np.allclose(a, b, atol=1e-5)
    unweighted, _ = _tiny_models("sparse_categorical_crossentropy", "mse")
    unweighted.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert not np.allclose(unweighted.get_weights()[0], ours.get_weights()[0], atol=1e-3)


def test_drw_callback_switches_the_loss_weights_at_its_epoch():
    import keras

    from resnet_harness.studies.longtail_losses import effective_number_weights, longtail_loss

    y = np.repeat(np.arange(3), [24, 6, 2])
    x = np.random.default_rng(0).normal(size=(len(y), 6)).astype(np.float32)
    model, _ = _tiny_models(longtail_loss(3), "mse")
    extra = _before_fit(_fake_cfg("drw", epochs=5), model, np.bincount(y).tolist())
    assert set(extra) == {"callbacks"}
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(model.loss.alpha.numpy().copy())

    model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[*extra["callbacks"], Record()])
    expected = effective_number_weights(np.bincount(y), 0.9999)
    assert all(np.allclose(a, 1.0) for a in seen[:4])  # epochs 0-3: uniform
    assert np.allclose(seen[4], expected, rtol=1e-6)  # epoch 4 = int(0.8 * 5): re-weighted


def test_bound_check_compares_train_counts_with_the_profile_formula():
    from resnet_harness.analysis import bounds

    y = np.repeat(np.arange(10), 10)
    from resnet_harness.training.metrics import compute_metrics

    row = {"metrics": compute_metrics(y, np.eye(10)[y], 10), "test_samples": 100,
           "test_counts": [10] * 10, "counts_before_imbalance": [300] * 10,
           "train_counts": PROFILES["exp100"].counts([300] * 10),
           "reduced_classes": list(range(1, 10)), "removal_fraction": 0.0,
           "long_tail": {"profile": "exp100"}, "tail_accuracy": 1.0}
    expected = longtail.CASES_BY_ID["longtail-cifar10-exp100-ce"].hooks().expected_train_counts(
        row["counts_before_imbalance"])
    assert bounds.check(row, floors={}, imbalanced=True, expected_counts=expected) == []
    row["train_counts"] = [300, 179, 107, 64, 38, 23, 13, 8, 5, 4]  # one image too many
    (problem,) = bounds.check(row, floors={}, imbalanced=True, expected_counts=expected)
    assert "differ from the variant's spec" in problem and "3]" in problem
    row["train_counts"] = PROFILES["exp100"].counts([300] * 10)
    row["tail_accuracy"] = 1.5
    (problem,) = bounds.check(row, floors={}, imbalanced=True, expected_counts=expected)
    assert problem.startswith("tail_accuracy=1.5000 lies outside [0, 1]")


def test_seeded_ids_are_distinct_and_the_posthoc_source_keeps_the_seed():
    from dataclasses import replace

    from resnet_harness.training.config import RunConfig

    case = replace(longtail.CASES_BY_ID["longtail-cifar10-exp100-posthoc_la"], seed=2)
    assert case.id == "longtail-cifar10-exp100-posthoc_la-seed2"
    assert case.base_id == "longtail-cifar10-exp100-posthoc_la"
    assert case.source_case().id == "longtail-cifar10-exp100-ce-seed2"
    assert study.find_case(case.id) == case
    ids = [c.id for c in RunConfig(seeds=(0, 1)).cases(longtail.CASES)]
    assert len(set(ids)) == len(ids) == 2 * len(longtail.CASES)
