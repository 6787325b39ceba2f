"""A minimal, independent plain-Keras run of the study's CIFAR-10 setup: the baseline that
``bench/bench.py`` compares the harness against.

It does NOT import ``resnet_harness``. It is what a skeptic would write from the paper:

* CIFAR-10 from JPEG image folders ``DATA_DIR/{train,test}/<class>/*.jpg`` (class folders in
  alphabetical = label order), decoded with PIL (``--npz`` caches the decoded uint8 arrays);
* a stratified subset of ``--train`` / ``--test`` images with
  ``sklearn.model_selection.train_test_split(stratify=y, random_state=seed)`` (all images when the
  number is 0 or not smaller than the split), converted the study's way,
  ``x.astype("float32") / 255``, and held in memory as float32 arrays;
* ``keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))`` +
  GlobalAveragePooling2D + Dense(10, softmax), Adam(1e-3), sparse categorical cross-entropy;
* ``model.fit(x, y, batch_size=32, epochs=E, shuffle=True)``; with ``--augment`` the training
  batches come from a tf.data pipeline that shuffles indices and gathers each batch from the
  float32 array (what ``fit(x, y)`` builds internally for arrays, tf.data's default graph rewrites
  off as there, so the pipeline holds no extra copy of the images), then maps the paper's
  augmentation as Keras preprocessing layers: rotation 20 degrees, shifts 0.2, horizontal flip,
  ``fill_mode="nearest"`` (the default of the ``ImageDataGenerator`` the study used);
* ``model.predict(x_test, batch_size=32)``.

Prints one JSON object (and writes it to ``--json``): load, fit and predict seconds, images per
second, accuracy and peak RSS. Run it with ``TF_ENABLE_ONEDNN_OPTS=1`` for a fair comparison with
the harness, which sets it itself (``bench.py`` does this for you).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import psutil

T_START = time.perf_counter()


class PeakRSS:
    """Samples this process's RSS every ``interval_s`` in a thread; ``mark()`` starts a window."""

    def __init__(self, interval_s: float = 0.02):
        self.process = psutil.Process()
        self.interval = interval_s
        self.peak = self.window_peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        rss = self.process.memory_info().rss
        self.peak = max(self.peak, rss)
        self.window_peak = max(self.window_peak, rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def mark(self) -> None:
        self._sample()
        self.window_peak = self.process.memory_info().rss

    def window_mb(self) -> float:
        self._sample()
        return self.window_peak / 2**20

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self._sample()
        return self.peak / 2**20


def list_split(folder: str) -> tuple[list[str], np.ndarray]:
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if len(classes) != 10:
        sys.exit(f"{folder}: expected 10 class folders, found {len(classes)}")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(os.listdir(os.path.join(folder, name)))
        paths += [os.path.join(folder, name, f) for f in files]
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


def decode(paths: list[str]) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(paths), 32, 32, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            out[i] = np.asarray(image.convert("RGB"))
    return out


def load_uint8(data_dir: str, npz: str | None):
    """Full train/test uint8 arrays and labels, from the npz cache when it exists."""
    if npz and os.path.isfile(npz):
        with np.load(npz) as data:
            return data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    arrays = []
    for split in ("train", "test"):
        paths, labels = list_split(os.path.join(data_dir, split))
        arrays += [decode(paths), labels]
    if npz:
        os.makedirs(os.path.dirname(os.path.abspath(npz)), exist_ok=True)
        tmp = f"{npz}.{os.getpid()}.tmp.npz"
        np.savez(tmp, x_train=arrays[0], y_train=arrays[1], x_test=arrays[2], y_test=arrays[3])
        os.replace(tmp, npz)
    return tuple(arrays)


def subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    if not n or n >= len(y):
        return index
    chosen, _ = train_test_split(index, train_size=n, stratify=y, random_state=seed)
    return np.sort(chosen)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="/tmp/data/cifar10-jpeg")
    p.add_argument("--npz",
                   help="cache of the decoded uint8 arrays (read if present, else written)")
    p.add_argument("--train", type=int, default=640, help="training images (0 = all 50,000)")
    p.add_argument("--test", type=int, default=320, help="test images (0 = all 10,000)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--augment", action="store_true", help="rotation/shift/flip on training data")
    p.add_argument("--max-steps", type=int, default=0,
                   help="stop fit after K steps (steps_per_epoch=K) and predict K batches only")
    p.add_argument("--prepare-only", action="store_true",
                   help="only decode the JPEGs into --npz and exit (no TensorFlow)")
    p.add_argument("--json", help="also write the result object to this file")
    args = p.parse_args(argv)

    rss = PeakRSS()
    t0 = time.perf_counter()
    x_train, y_train, x_test, y_test = load_uint8(args.data_dir, args.npz)
    if args.prepare_only:
        print(json.dumps({"npz": args.npz, "train": len(y_train), "test": len(y_test)}))
        return 0
    train_idx, test_idx = subset(y_train, args.train, args.seed), subset(y_test, args.test,
                                                                         args.seed)
    # The study's conversion: float32 arrays in [0, 1], held in memory.
    x_train, y_train = x_train[train_idx].astype("float32") / 255, y_train[train_idx]
    x_test, y_test = x_test[test_idx].astype("float32") / 255, y_test[test_idx]
    load_s = time.perf_counter() - t0
    rss_after_load = psutil.Process().memory_info().rss / 2**20

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(base.output)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(base.input, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rss_after_build = psutil.Process().memory_info().rss / 2**20

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.first = time.perf_counter(), None

        def on_train_batch_end(self, batch, logs=None):
            if self.first is None:
                self.first = time.perf_counter()

    clock = Clock()
    steps = args.max_steps or None
    bs = args.batch_size
    keras.utils.set_random_seed(args.seed)
    rss.mark()
    t0 = time.perf_counter()
    if args.augment:
        augment = keras.Sequential([
            keras.layers.RandomRotation(20 / 360, fill_mode="nearest", seed=args.seed),
            keras.layers.RandomTranslation(0.2, 0.2, fill_mode="nearest", seed=args.seed + 1),
            keras.layers.RandomFlip("horizontal", seed=args.seed + 2),
        ])
        images, labels = tf.convert_to_tensor(x_train), tf.convert_to_tensor(y_train)

        def load(index):
            return augment(tf.gather(images, index), training=True), tf.gather(labels, index)

        n = len(y_train)
        dataset = (tf.data.Dataset.range(n).shuffle(n, seed=args.seed)
                   .batch(bs).map(load, num_parallel_calls=tf.data.AUTOTUNE)
                   .prefetch(tf.data.AUTOTUNE))
        # As Keras does for arrays: without this, tf.data's default graph rewrites serialize the
        # captured image tensor and hold one more full float32 copy of the training set.
        options = tf.data.Options()
        options.experimental_optimization.apply_default_optimizations = False
        dataset = dataset.with_options(options)
        model.fit(dataset, epochs=args.epochs, steps_per_epoch=steps, verbose=0,
                  callbacks=[clock])
    else:
        model.fit(x_train, y_train, batch_size=bs, epochs=args.epochs, shuffle=True,
                  steps_per_epoch=steps, verbose=0, callbacks=[clock])
    fit_s = time.perf_counter() - t0
    fit_rss = rss.window_mb()
    if steps:
        x_test, y_test = x_test[:steps * bs], y_test[:steps * bs]
    rss.mark()
    t0 = time.perf_counter()
    proba = model.predict(x_test, batch_size=bs, verbose=0)
    predict_s = time.perf_counter() - t0
    predict_rss = rss.window_mb()

    n_seen = (min(steps * bs, len(y_train)) * args.epochs if steps
              else len(y_train) * args.epochs)
    first = (clock.first - clock.start) if clock.first else None
    steady = fit_s - first if first is not None else None
    result = {
        "script": "plain_keras", "augment": args.augment, "seed": args.seed,
        "epochs": args.epochs, "batch_size": bs, "max_steps": args.max_steps,
        "train_samples": len(y_train), "test_samples": len(y_test),
        "train_counts": np.bincount(y_train, minlength=10).tolist(),
        "load_s": load_s, "fit_s": fit_s, "predict_s": predict_s, "first_step_s": first,
        "train_images_per_s": (n_seen - min(bs, n_seen)) / steady if steady else None,
        "test_images_per_s": len(y_test) / predict_s if predict_s > 0 else None,
        "accuracy": float((proba.argmax(axis=1) == y_test).mean()),
        "rss_after_load_mb": rss_after_load, "rss_after_build_mb": rss_after_build,
        "peak_rss_fit_mb": fit_rss, "peak_rss_predict_mb": predict_rss,
        "total_s": time.perf_counter() - T_START,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
    }
    result["peak_rss_mb"] = rss.stop()
    text = json.dumps(result)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
