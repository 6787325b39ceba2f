"""What live progress costs (docs/speed.md "What live progress costs"), two ways in one run:

1. per call, without training: the Keras callback's per-step work when no line is due, one
   in-place draw, one plain line, one snapshot an xdist worker sends on its progress channel
   (``relay.ChannelSink`` over a real execnet channel to a popen gateway: serialising and
   writing to the pipe, what a worker's send costs), and one poll of the xdist controller
   (drawing two workers' snapshots; once a second, in the controller's process);
2. end to end: the same small Keras model fitted with and without the progress callback, the
   arms interleaved (their order rotated every repeat, so load drift hits them alike), reported
   as ratios to the arm without progress: the median and quartiles over repeats of each
   repeat's ratio (the fits compared ran seconds apart), for wall time and for this process's
   CPU time; the quartiles show the noise floor of the machine. TensorFlow runs on one
   thread by default (``--threads``): on a shared machine other processes move a lone
   thread's CPU time less than that of spinning worker threads. Both arms carry the
   harness's own step clock, which is what makes Keras call batch callbacks synchronously in a
   real case; progress adds no sync of its own. A small model has short steps, so its ratio
   bounds ResNet50's.

Run: ``python bench/progress_cost.py [--repeats N] [--epochs E] [--images N] [--threads T]``
(~1-2 min on 2 CPU cores with the defaults).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _pytest._io import TerminalWriter  # noqa: E402

from resnet_harness.plugin.progress import (CaseProgress, ProgressPoller,  # noqa: E402
                                            SessionProgress, StatusLines, TerminalSink,
                                            progress_callback)
from resnet_harness.plugin.relay import ChannelSink, Inbox  # noqa: E402
from resnet_harness.training.runner import _StepClock  # noqa: E402

BATCH = 32


def per_call(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def per_call_figures() -> dict[str, float]:
    """Seconds per call of each piece, measured without training."""
    writer = TerminalWriter(io.StringIO())
    writer.fullwidth = 80
    in_place = TerminalSink(StatusLines(writer, in_place=True), interval=1e9,
                            session=SessionProgress())
    callback = progress_callback(in_place, "case-a", batch_size=BATCH)
    callback.set_params({"epochs": 3, "steps": 1000})
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    logs = {"loss": 1.0, "accuracy": 0.5}
    figures = {"step": per_call(lambda: callback.on_train_batch_end(0, logs), 200_000)}
    state = CaseProgress("table7-cifar10-imbalanced-split_orig-reg_none", 2, 3, 40, 94, 1.234,
                         0.456, 212.0, 65.0)
    figures["draw"] = per_call(lambda: in_place.publish(state, False), 20_000)
    plain = TerminalSink(StatusLines(TerminalWriter(io.StringIO()), in_place=False), interval=0)
    lines = iter(range(10**9))
    figures["line"] = per_call(lambda: plain.publish(
        CaseProgress(state.case_id, step=next(lines)), False), 20_000)
    with channel_to_a_worker() as channel:
        sink = ChannelSink(channel, "gw0")
        figures["channel"] = per_call(lambda: sink.publish(state, False), 2_000)
    inbox = Inbox()
    for worker in ("gw0", "gw1"):
        inbox.receive(worker, dict(vars(state), worker=worker))
    poller = ProgressPoller(inbox.states, StatusLines(TerminalWriter(io.StringIO()), False),
                            1e9, SessionProgress())
    figures["poll"] = per_call(poller.poll, 2_000)
    return figures


@contextlib.contextmanager
def channel_to_a_worker():
    """An execnet channel to a popen gateway whose task reads everything sent on it."""
    import execnet

    gateway = execnet.makegateway("execmodel=main_thread_only//popen")
    try:
        channel = gateway.remote_exec("for item in channel:\n    pass\n")
        yield channel
        channel.close()
        channel.waitclose(timeout=60)
    finally:
        gateway.exit()


def spread(ratios: list[float]) -> str:
    """``median [lower quartile, upper quartile]``."""
    if len(ratios) < 2:
        return f"{ratios[0]:.4f}"
    low, _, high = statistics.quantiles(ratios, n=4)
    return f"{statistics.median(ratios):.4f} [{low:.4f}, {high:.4f}]"


def small_model(images: int, threads: int):
    """A small CNN on random 32x32x3 images (10 classes): steps of a few ms."""
    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((images, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, images)
    return model, x, y


def arms(channel) -> dict[str, Callable[[], list]]:
    """Each arm: a function returning the extra callbacks of one fit."""
    def tty():
        writer = TerminalWriter(io.StringIO())
        writer.fullwidth = 80
        return [progress_callback(TerminalSink(StatusLines(writer, in_place=True),
                                               session=SessionProgress()), "case-a",
                                  batch_size=BATCH)]

    def every_step():
        sink = TerminalSink(StatusLines(TerminalWriter(io.StringIO()), in_place=False),
                            interval=0, session=SessionProgress())
        return [progress_callback(sink, "case-a", batch_size=BATCH)]

    def worker():
        return [progress_callback(ChannelSink(channel, "gw0"), "case-a", batch_size=BATCH,
                                  worker="gw0")]

    return {"off": lambda: [], "tty 0.5 s": tty, "channel 1 s": worker,
            "every step": every_step}


def fit_figures(repeats: int, epochs: int, images: int,
                threads: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds per fit of each arm, ``repeats`` each, interleaved."""
    model, x, y = small_model(images, threads)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # tracing, out of the timings
    times: dict[str, list[tuple[float, float]]] = {}
    with channel_to_a_worker() as channel:
        named = list(arms(channel).items())
        for repeat in range(repeats):
            shift = repeat % len(named)
            for name, extra in named[shift:] + named[:shift]:
                callbacks = [_StepClock(), *extra()]
                start, cpu = time.perf_counter(), time.process_time()
                model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, shuffle=False,
                          callbacks=callbacks)
                times.setdefault(name, []).append((time.perf_counter() - start,
                                                   time.process_time() - cpu))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=12, help="fits per arm (12)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per fit (2)")
    parser.add_argument("--images", type=int, default=1024, help="training images (1024)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (1)")
    args = parser.parse_args()
    if min(args.repeats, args.epochs, args.images, args.threads) < 1:
        parser.error("--repeats, --epochs, --images and --threads must be at least 1")

    figures = per_call_figures()
    print(f"per step, no line due: {figures['step'] * 1e6:.2f} us")
    print(f"in-place draw (at most every 0.5 s): {figures['draw'] * 1e6:.1f} us")
    print(f"plain line: {figures['line'] * 1e6:.1f} us")
    print(f"worker snapshot on its channel (at most every 1 s and at epoch ends): "
          f"{figures['channel'] * 1e6:.1f} us")
    print(f"controller poll of 2 workers' snapshots (once a second): "
          f"{figures['poll'] * 1e6:.1f} us")

    times = fit_figures(args.repeats, args.epochs, args.images, args.threads)
    steps = args.epochs * -(-args.images // BATCH)
    off = times["off"]
    print(f"\nfit of a small CNN, {steps} steps of {BATCH} images, {args.repeats} fits per arm, "
          f"{args.threads} TensorFlow thread(s) (load average {os.getloadavg()[0]:.1f}); "
          f"ratio to off: median of the repeats' [quartiles]:")
    print(f"  {'arm':<11} {'wall s':>7} {'wall ratio':>26} {'CPU ratio':>26}")
    for name, values in times.items():
        wall = spread([w / o for (w, _), (o, _) in zip(values, off)])
        cpu = spread([c / o for (_, c), (_, o) in zip(values, off)])
        print(f"  {name:<11} {statistics.median(w for w, _ in values):7.3f} {wall:>26} "
              f"{cpu:>26}")
    step_s = min(w for w, _ in off) / steps
    print(f"a step: {step_s * 1e3:.2f} ms; progress's per-step work when no line is due: "
          f"{figures['step'] / step_s * 100:.4f}% of it")

if __name__ == "__main__":
    main()
