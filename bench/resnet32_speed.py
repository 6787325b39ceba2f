"""ResNet-32's training speed on this machine: images/s of ``fit`` at batch 128 (the literature
recipe's batch), plain SGD with momentum, weight decay on, after a step that traces the graph.

    python bench/resnet32_speed.py [--steps 20]

Measured (2 shared CPU cores, load 2-3): 66-114 images/s over five runs (XLA: 66), so one epoch
of CIFAR-10-LT exp100 (12,406 images) takes ~2 min and the published 200 epochs ~6-7 hours.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from resnet_harness.studies.resnet32 import resnet32_backbone

WD = 2e-4


class _StepClock(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.end = time.perf_counter()


def measure(steps: int = 20) -> float:
    """Images per second of ``fit`` at batch 128; reported, not asserted."""
    batch = 128
    keras.utils.set_random_seed(0)
    model = with_head(resnet32_backbone("none", weight_decay=WD))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)  # as the harness's build_model compiles by default
    rng = np.random.default_rng(6)
    x = rng.uniform(0, 1, (batch * steps, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, batch * steps)
    model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)  # traces the step
    clock = _StepClock()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False, callbacks=[clock])
    images_per_s = batch * steps / (clock.end - clock.start)
    return images_per_s


def with_head(base):
    inputs = keras.Input((32, 32, 3))
    return keras.Model(inputs, keras.layers.Dense(10)(base(inputs)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    steps = parser.parse_args().steps
    print(f"ResNet-32 fit, batch 128, {steps} steps: {measure(steps):.0f} images/s")
