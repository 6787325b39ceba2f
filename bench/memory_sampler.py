"""Why peak memory is sampled with psutil in a thread (``runner.PeakMemory``) and not with
memory-profiler (README "Dependencies"): the cost of each around a Keras ``fit`` once TensorFlow's
thread pools run, and of each around a no-op. Needs ``pip install memory-profiler`` (not a
dependency of the harness). Run: ``python bench/memory_sampler.py``."""
import os, sys, time, threading
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np, keras
from memory_profiler import memory_usage
from resnet_harness.training.runner import PeakMemory

x = np.random.rand(512, 32, 32, 3).astype("float32"); y = np.random.randint(0, 10, 512)
model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(32, 3, activation="relu"),
                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # trace, start the pools
fit = lambda: model.fit(x, y, batch_size=64, epochs=1, verbose=0)
print("threads alive:", threading.active_count(), "rss MB", PeakMemory()._process.memory_info().rss >> 20, flush=True)
res = {"plain": [], "psutil": [], "memory_profiler": []}
for rep in range(3):
    t = time.perf_counter(); fit(); res["plain"].append(time.perf_counter() - t)
    t = time.perf_counter()
    with PeakMemory(): fit()
    res["psutil"].append(time.perf_counter() - t)
    t = time.perf_counter(); peak = memory_usage((fit, (), {}), interval=0.02, max_usage=True)
    res["memory_profiler"].append(time.perf_counter() - t)
    print(rep, {k: round(v[-1], 3) for k, v in res.items()}, flush=True)
# start-up cost alone: a no-op under each
t = time.perf_counter()
for _ in range(5):
    memory_usage((lambda: None, (), {}), interval=0.02, max_usage=True)
print("memory_profiler no-op call s:", round((time.perf_counter() - t) / 5, 3))
t = time.perf_counter()
for _ in range(5):
    with PeakMemory(): pass
print("PeakMemory no-op s:", round((time.perf_counter() - t) / 5, 4))
print("median", {k: round(sorted(v)[1], 3) for k, v in res.items()})
