"""How fast the harness predicts, per inference batch size, beside how fast it trains.

    python bench/inference_speed.py [--images 2560] [--batches 32,128,256,512]

ResNet50 (random init, 32x32x3, the reduced scale's model) predicts ``--images`` images through
the harness's own inference path (``training.model.predict`` over ``make_dataset``) at each
batch size, then trains one epoch on 640 images at batch 32. Prints images/s of each and the
ratio to training; all in one process, one after another, so the ratios compare on a shared
machine. Changes nothing.
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


if __name__ == "__main__":
    main()
