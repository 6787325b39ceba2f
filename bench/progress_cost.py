"""What live progress costs per training step, measured without training (README "Watching
progress"): the Keras callback's per-step work when no draw is due, one in-place draw, one
plain line, and one progress file of an xdist worker. Compare with a step of the model
(``train_images_per_s`` of a row, divided into the batch size). Run: ``python bench/progress_cost.py``."""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _pytest._io import TerminalWriter  # noqa: E402

from resnet_harness.plugin.progress import (CaseProgress, FileSink, StatusLines,  # noqa: E402
                                     TerminalSink, progress_callback)


def per_call(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    writer = TerminalWriter(io.StringIO())
    in_place = TerminalSink(StatusLines(writer, in_place=True), interval=1e9)
    callback = progress_callback(in_place, "case-a", batch_size=32)
    callback.set_params({"epochs": 3, "steps": 1000})
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    step = per_call(lambda: callback.on_train_batch_end(0), 200_000)
    state = CaseProgress("table7-cifar10-imbalanced-split_orig-reg_none", 3, 21, 2, 3, 40, 94,
                         212.0, 65.0)
    draw = per_call(lambda: in_place.publish(state, False), 20_000)
    plain = TerminalSink(StatusLines(TerminalWriter(io.StringIO()), in_place=False), interval=0)
    line = per_call(lambda: plain.publish(state, False), 20_000)
    with tempfile.TemporaryDirectory() as folder:
        sink = FileSink(Path(folder), "gw0")
        write = per_call(lambda: sink.publish(state, False), 2_000)
    print(f"per step, no draw due: {step * 1e6:.2f} us")
    print(f"in-place draw (at most every 0.5 s): {draw * 1e6:.1f} us")
    print(f"plain line: {line * 1e6:.1f} us")
    print(f"worker progress file (at most every 1 s): {write * 1e6:.1f} us")


if __name__ == "__main__":
    main()
