"""How fast the harness predicts, per inference batch size, beside how fast it trains, and
what each part of a case's evaluation costs.

    python bench/inference_speed.py [--images 2560] [--batches 32,128,256,512] [--test 10000]

ResNet50 (random init, 32x32x3, the reduced scale's model) predicts ``--images`` images through
the harness's own inference path (``training.model.predict`` over ``make_dataset``) at each
batch size, then trains one epoch on 640 images at batch 32. Prints images/s of each and the
ratio to training. Then times the parts of ``training.evaluation.evaluate`` on a ``--test``-image
test set (BatchNorm re-estimation, the training-set diagnostic, the as-trained and reported
test passes) as the harness runs them now, beside the way it ran them before this wave (batch
32, the as-trained pass over the whole test set). All in one process, one after another, so the
ratios compare on a shared machine. Changes nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2560)
    parser.add_argument("--batches", default="32,128,256,512")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--test", type=int, default=10000,
                        help="test images for the evaluate() timing (0: skip it)")
    args = parser.parse_args()

    from resnet_harness.training.data.pipeline import make_dataset
    from resnet_harness.training.model import Head, build_model, predict

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, args.images)
    model = build_model(Head(), weights="none", seed=0)
    rates = {}
    for batch in (int(b) for b in args.batches.split(",")):
        data = make_dataset(x, y, batch_size=batch, training=False, seed=0)
        predict(model, data.take(2))  # trace and warm up
        best = 0.0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            predict(model, data)
            best = max(best, args.images / (time.perf_counter() - t0))
        rates[batch] = best
    train = make_dataset(x[:640], y[:640], batch_size=32, training=True, seed=0)
    model.fit(train.take(2), epochs=1, verbose=0)
    t0 = time.perf_counter()
    model.fit(train, epochs=1, verbose=0)
    train_rate = 640 / (time.perf_counter() - t0)
    print(f"{'batch':>6} {'inference images/s':>19} {'x training':>11}")
    for batch, rate in rates.items():
        print(f"{batch:>6} {rate:>19.1f} {rate / train_rate:>11.2f}")
    print(f"training (batch 32): {train_rate:.1f} images/s")
    if args.test:
        evaluation_parts(model, rng, args.test)


def evaluation_parts(model, rng, n_test: int) -> None:
    """Seconds and images/s of each part of ``evaluate`` now and before this wave."""
    from resnet_harness.studies.paper import CASES
    from resnet_harness.training import evaluation
    from resnet_harness.training.config import RunConfig
    from resnet_harness.training.data.pipeline import make_dataset
    from resnet_harness.training.data.variants import Variant

    cfg = RunConfig(scale="reduced").for_case(CASES[0])
    y_train, y_test = np.arange(2000) % 10, np.arange(n_test) % 10
    variant = Variant(rng.integers(0, 256, (2000, 32, 32, 3), dtype=np.uint8), y_train,
                      rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8), y_test,
                      [200] * 10, (), 0.0, "bench")
    history = type("History", (), {"history": {"accuracy": [0.5], "loss": [1.0]}})()
    rows = []
    for label, batch, whole in (("now", evaluation.INFERENCE_BATCH, False), ("before", 32, True)):
        saved = evaluation.INFERENCE_BATCH, evaluation.AS_TRAINED_TEST_SAMPLES
        evaluation.INFERENCE_BATCH = batch
        evaluation.AS_TRAINED_TEST_SAMPLES = n_test if whole else saved[1]
        try:
            test = make_dataset(variant.x_test, y_test, batch_size=batch, training=False, seed=0)
            for _ in range(2):  # the first pays the tracing of each shape: keep the second
                fields, _ = evaluation.evaluate(model, variant, cfg, test, history)
        finally:
            evaluation.INFERENCE_BATCH, evaluation.AS_TRAINED_TEST_SAMPLES = saved
        recal = fields["bn_recalibration"]
        rows.append((label, fields["evaluation_s"], fields["test_time_s"], recal["seconds"],
                     recal["images"] / recal["seconds"], n_test / fields["test_time_s"]))
    print(f"\nevaluate() on {n_test} test images: {'':>6} {'all s':>7} {'test pass s':>11} "
          f"{'BN re-est. s':>12} {'BN images/s':>11} {'test images/s':>13}")
    for label, total, test_s, recal_s, recal_rate, test_rate in rows:
        print(f"{label:>38} {total:>7.1f} {test_s:>11.1f} {recal_s:>12.1f} {recal_rate:>11.1f} "
              f"{test_rate:>13.1f}")
    print(f"{'now / before':>38} {rows[0][1] / rows[1][1]:>7.2f}")


if __name__ == "__main__":
    main()
