"""The long-tail literature recipe side by side with its reference code: LDAM-DRW's own training
loop (``cifar_train.main_worker``, PyTorch on the CPU) and the harness's matching ``-lit`` case
(``runner.run_case``, the function the pytest plugin calls), fed the same long-tailed subset,
for a few epochs and seeds, one after the other in one run.

    pip install -e ".[reference]"                          # PyTorch (CPU) and what LDAM-DRW imports
    git clone https://github.com/kaidic/LDAM-DRW /tmp/LDAM-DRW && git -C /tmp/LDAM-DRW checkout 2536330
    python bench/longtail_reference.py run --reference-dir /tmp/LDAM-DRW --data-dir DIR \\
        [--epochs 3] [--seeds 0 1 2] [--out docs/longtail-reference]
    python bench/longtail_reference.py summarise docs/longtail-reference   # the tables, again

``DIR`` is CIFAR-10 as the harness reads it (``--data-dir``: image folders, the pickled batches
or an ``.npz``). Per seed the harness side runs first: it builds the case's training subset
(the profile's images, chosen by the seed), saves it, and trains; the reference side then
trains on exactly those images and the same test set. Each side runs in its own process.

What is reported per epoch and side (``epochs.csv``): the learning rate, the training loss
averaged over the epoch's steps without and with the weight-decay term ``wd/2 * sum ||w||^2``
(over every parameter, as PyTorch's SGD decays them; taken before each step, so it is the term
the step's gradient carries), the training accuracy on the augmented batches, the test
accuracy and balanced accuracy at the epoch's end, and the epoch's training seconds and
images/s (the harness's per-epoch test scoring left out, as the reference's ``validate`` is).

What the reference needs here, and nothing in its code is changed: ``.cuda()`` is made a no-op
(its loop calls it unconditionally; this is a CPU run); its ``IMBALANCECIFAR10`` and
``datasets.CIFAR10`` are given the harness's arrays through a dataset that does what
torchvision's ``CIFAR10.__getitem__`` does (``Image.fromarray``, then the loop's own
transforms); its TensorBoard writer is replaced by one that records the scalars; PyPI's
torchvision wheel is a CUDA build whose operators cannot load next to CPU PyTorch, so their
fake-tensor registrations are skipped (the transforms the loop uses are pure Python).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CASE = "longtail-cifar10-{profile}-{method}-lit"
# The reference's --loss_type / --train_rule for each harness method it has.
REFERENCE_ARGS = {"ce": ["--loss_type", "CE", "--train_rule", "None"],
                  "focal": ["--loss_type", "Focal", "--train_rule", "None"],
                  "drw": ["--loss_type", "CE", "--train_rule", "DRW"]}
WEIGHT_DECAY = 2e-4  # cifar_train.py's --wd default; the harness's LITERATURE_WEIGHT_DECAY
COLUMNS = ["side", "seed", "epoch", "learning_rate", "train_loss", "train_loss_with_decay",
           "decay_term", "train_accuracy", "test_accuracy", "test_balanced_accuracy",
           "train_seconds", "images_per_s", "train_samples", "subset"]
FIGURES = {"train_loss": "training loss, no decay term", "train_loss_with_decay":
           "training loss + decay term", "train_accuracy": "training accuracy (augmented)",
           "test_balanced_accuracy": "balanced test accuracy", "images_per_s": "images/s"}


def fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


# --- the harness side ------------------------------------------------------------------------

def harness_side(args) -> list[dict]:
    """Run the ``-lit`` case once through ``run_case``; save its training subset for the
    reference side; return one record per epoch."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    import keras
    import tensorflow as tf

    from resnet_harness.studies.longtail import CASES_BY_ID
    from resnet_harness.training.config import RunConfig
    from resnet_harness.training.data import default_cache_dir, load_raw
    from resnet_harness.training.data.variants import make_variant
    from resnet_harness.training.model import ModelCache
    from resnet_harness.training.runner import run_case

    case = CASES_BY_ID[CASE.format(profile=args.profile, method=args.method)]
    run = RunConfig(scale=args.scale, seed=args.seed, epochs=args.epochs,
                    max_test_samples=args.max_test, data_dirs={"cifar10": Path(args.data_dir)})
    cfg = run.for_case(case)
    raw = load_raw("cifar10", data_dir=Path(args.data_dir), cache_dir=default_cache_dir())
    variant = make_variant(raw, cfg)
    subset = fingerprint(variant.x_train, variant.y_train, variant.x_test, variant.y_test)
    np.savez(args.subset, x_train=variant.x_train, y_train=variant.y_train,
             x_test=variant.x_test, y_test=variant.y_test)

    class Decay(keras.callbacks.Callback):
        """wd/2 * sum ||w||^2 over every trainable weight before each step, and once what the
        model's own regularizers add (they must cover every weight: the recipe decays all)."""

        def on_train_begin(self, logs=None):
            weights = [v.value for v in self.model.trainable_variables]
            self.term = tf.function(lambda: WEIGHT_DECAY / 2 * tf.add_n(
                [tf.reduce_sum(tf.square(w)) for w in weights]))
            self.covered = float(keras.ops.sum(self.model.losses)) / float(self.term())
            self.per_epoch, self.steps = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.steps = []

        def on_train_batch_begin(self, batch, logs=None):
            self.steps.append(float(self.term()))

        def on_epoch_end(self, epoch, logs=None):
            self.per_epoch.append(float(np.mean(self.steps)))

    decay = Decay()
    row = run_case(cfg, raw, ModelCache(), callbacks=[decay]).row  # raises on failure
    history, n = row["history"], row["train_samples"]
    out = []
    for epoch, seconds in enumerate(history["epoch_seconds"]):
        with_decay = history["loss"][epoch]
        out.append({"side": "harness", "seed": args.seed, "epoch": epoch + 1,
                    "learning_rate": history["learning_rate"][epoch],
                    "train_loss": with_decay - decay.per_epoch[epoch],
                    "train_loss_with_decay": with_decay, "decay_term": decay.per_epoch[epoch],
                    "train_accuracy": history["accuracy"][epoch],
                    "test_accuracy": history["test_accuracy"][epoch],
                    "test_balanced_accuracy": history["test_balanced_accuracy"][epoch],
                    "train_seconds": seconds, "images_per_s": n / seconds,
                    "train_samples": n, "subset": subset})
    if abs(decay.covered - 1) > 1e-3:
        raise SystemExit(f"the harness's regularizers add {decay.covered:.4f} x wd/2 ||w||^2 "
                         "at the start, not 1: some weights are not decayed as PyTorch's SGD")
    return out


# --- the reference side ----------------------------------------------------------------------

def _torch_on_cpu():
    """What LDAM-DRW's loop needs to run unmodified on a CPU-only PyTorch (see the module's
    docstring)."""
    import torch
    import torch.library

    register_fake = torch.library.register_fake

    def tolerant(op, *a, **k):
        decorate = register_fake(op, *a, **k)

        def apply(fn):
            try:
                return decorate(fn)
            except RuntimeError:  # a CUDA build's operator that is not there
                return fn
        return apply

    torch.library.register_fake = tolerant
    import torchvision  # noqa: F401  (imported now, while the registrations are tolerant)
    torch.library.register_fake = register_fake
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    return torch


def reference_side(args) -> list[dict]:
    """Run ``cifar_train.main_worker`` on the saved subset; one record per epoch."""
    import random
    import tempfile
    import types

    torch = _torch_on_cpu()
    from PIL import Image

    sys.path.insert(0, str(Path(args.reference_dir).resolve()))
    import cifar_train
    import models

    data = np.load(args.subset)
    subset = fingerprint(data["x_train"], data["y_train"], data["x_test"], data["y_test"])

    class Arrays(torch.utils.data.Dataset):
        """torchvision's ``CIFAR10.__getitem__`` over given uint8 HWC arrays."""

        def __init__(self, x, y, transform):
            self.x, self.y, self.transform = x, [int(v) for v in y], transform

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return self.transform(Image.fromarray(self.x[i])), self.y[i]

        def get_cls_num_list(self):
            return np.bincount(self.y, minlength=10).tolist()

    cifar_train.IMBALANCECIFAR10 = lambda transform, **_: Arrays(
        data["x_train"], data["y_train"], transform)
    cifar_train.datasets = types.SimpleNamespace(CIFAR10=lambda transform, **_: Arrays(
        data["x_test"], data["y_test"], transform))

    starts, ends, steps = [], [], []
    build = models.resnet32

    def resnet32(**kwargs):
        model = build(**kwargs)

        def before_step(module, inputs):
            if module.training:
                with torch.no_grad():
                    steps[-1].append(float(WEIGHT_DECAY / 2 * sum(
                        p.pow(2).sum() for p in module.parameters())))
        model.register_forward_pre_hook(before_step)
        return model

    models.resnet32 = resnet32
    adjust = cifar_train.adjust_learning_rate

    def adjust_learning_rate(optimizer, epoch, args):
        starts.append(time.perf_counter())
        steps.append([])
        return adjust(optimizer, epoch, args)

    cifar_train.adjust_learning_rate = adjust_learning_rate
    scalars: dict[str, list] = {}

    class Recorder:
        def __init__(self, *a, **k):
            pass

        def add_scalar(self, tag, value, step):
            if tag == "loss/train":
                ends.append(time.perf_counter())
            scalars.setdefault(tag, []).append(float(value))

        def add_scalars(self, tag, values, step):
            scalars.setdefault(tag, []).append({k: float(v) for k, v in values.items()})

    cifar_train.SummaryWriter = Recorder
    with tempfile.TemporaryDirectory() as work:
        argv = ["--epochs", str(args.epochs), "--seed", str(args.seed), "-j", str(args.workers),
                "--root_log", f"{work}/log", "--root_model", f"{work}/checkpoint",
                *REFERENCE_ARGS[args.method]]
        ref = cifar_train.parser.parse_args(argv)
        ref.store_name = "_".join([ref.dataset, ref.arch, ref.loss_type, ref.train_rule,
                                   ref.imb_type, str(ref.imb_factor), ref.exp_str])
        cifar_train.prepare_folders(ref)
        # main()'s seeding, then its call.
        random.seed(ref.seed)
        torch.manual_seed(ref.seed)
        torch.backends.cudnn.deterministic = True
        cifar_train.main_worker(None, 0, ref)
    n = len(data["y_train"])
    out = []
    for epoch in range(args.epochs):
        seconds = ends[epoch] - starts[epoch]
        term = float(np.mean(steps[epoch]))
        loss = scalars["loss/train"][epoch]
        per_class = scalars["acc/test_val_cls_acc"][epoch]
        out.append({"side": "reference", "seed": args.seed, "epoch": epoch + 1,
                    "learning_rate": scalars["lr"][epoch], "train_loss": loss,
                    "train_loss_with_decay": loss + term, "decay_term": term,
                    "train_accuracy": scalars["acc/train_top1"][epoch] / 100,
                    "test_accuracy": scalars["acc/test_val_top1"][epoch] / 100,
                    "test_balanced_accuracy": float(np.mean(list(per_class.values()))),
                    "train_seconds": seconds, "images_per_s": n / seconds,
                    "train_samples": n, "subset": subset})
    return out


# --- the run and its summary -----------------------------------------------------------------

def run(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    path = out / "epochs.csv"
    for seed in args.seeds:
        subset = out / f".subset-{seed}.npz"
        for side in ("harness", "reference"):
            cmd = [sys.executable, __file__, side, "--seed", str(seed), "--subset", str(subset),
                   "--epochs", str(args.epochs), "--profile", args.profile, "--method",
                   args.method, "--data-dir", str(args.data_dir), "--scale", args.scale,
                   "--workers", str(args.workers), "--reference-dir", str(args.reference_dir)]
            if args.max_test:
                cmd += ["--max-test", str(args.max_test)]
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{side} side, seed {seed}, failed:\n{done.stderr[-3000:]}")
            got = json.loads(done.stdout.strip().splitlines()[-1])
            records += got
            print(f"{side:9} seed {seed}: {time.perf_counter() - t0:6.0f} s, last epoch "
                  f"balanced test accuracy {got[-1]['test_balanced_accuracy']:.4f}", flush=True)
            # Written after every side, so a run that dies keeps what it measured.
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, COLUMNS)
                writer.writeheader()
                writer.writerows(records)
        subset.unlink(missing_ok=True)
        same = {r["subset"] for r in records if r["seed"] == seed}
        if len(same) != 1:
            raise SystemExit(f"seed {seed}: the two sides trained on different data {same}")
    meta = {"case": CASE.format(profile=args.profile, method=args.method),
            "scale": args.scale, "epochs": args.epochs, "seeds": args.seeds,
            "reference": "kaidic/LDAM-DRW cifar_train.py", "workers": args.workers,
            "data_dir": str(args.data_dir), "machine": _machine()}
    (out / "run.json").write_text(json.dumps(meta, indent=1) + "\n")
    summarise(out)


def _machine() -> str:
    import platform
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def summarise(out: Path) -> str:
    """The per-epoch table (each side's mean, its seeds' range) and the verdict per figure:
    does every harness seed fall within the reference's range, and Welch's t-test of the means.
    Written to ``summary.md`` beside the rows and printed."""
    from scipy import stats

    out = Path(out)
    with (out / "epochs.csv").open() as f:
        rows = list(csv.DictReader(f))
    meta = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    epochs = sorted({int(r["epoch"]) for r in rows})
    lines = [f"# {meta.get('case', 'the -lit case')} beside LDAM-DRW's own loop",
             "", f"Regenerate: `python bench/longtail_reference.py summarise {out}`; made by "
             f"`python bench/longtail_reference.py run` ({meta.get('scale')} scale, "
             f"{meta.get('epochs')} epochs, seeds {meta.get('seeds')}, the reference's "
             f"DataLoader workers {meta.get('workers')}, {meta.get('machine')}).", "",
             "| figure | epoch | harness mean [seeds] | reference mean [seeds] | harness in "
             "reference's range | Welch p |", "|---|---|---|---|---|---|"]
    for name, title in FIGURES.items():
        for epoch in epochs:
            h, r = ([float(x[name]) for x in rows if x["side"] == side and
                     int(x["epoch"]) == epoch] for side in ("harness", "reference"))
            if not h or not r:
                continue
            inside = sum(min(r) <= v <= max(r) for v in h)
            p = (stats.ttest_ind(h, r, equal_var=False).pvalue
                 if len(h) > 1 and len(r) > 1 and np.std(h) + np.std(r) > 0 else float("nan"))
            lines.append(f"| {title} | {epoch} | {np.mean(h):.4f} [{_seeds(h)}] | "
                         f"{np.mean(r):.4f} [{_seeds(r)}] | {inside} of {len(h)} | {p:.3f} |")
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    print(text)
    return text


def _seeds(values) -> str:
    return ", ".join(f"{v:.4f}" if abs(v) < 10 else f"{v:.0f}" for v in values)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["run", "summarise", "harness", "reference"])
    parser.add_argument("out", nargs="?", default="docs/longtail-reference")
    parser.add_argument("--reference-dir", default=os.environ.get("LDAM_DRW_DIR", ""))
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="exp100")
    parser.add_argument("--method", default="ce", choices=sorted(REFERENCE_ARGS))
    parser.add_argument("--scale", default="paper", choices=["paper", "reduced"])
    parser.add_argument("--max-test", type=int, default=None)
    parser.add_argument("--workers", type=int, default=4,
                        help="the reference's DataLoader workers (its -j; default 4, as it has)")
    parser.add_argument("--subset", default="")
    parser.add_argument("--out", dest="out_dir", default=None)
    args = parser.parse_args(argv)
    args.out = args.out_dir or args.out
    if "=" in args.data_dir:  # cifar10=PATH, as the harness's --data-dir takes it
        name, _, path = args.data_dir.partition("=")
        if name != "cifar10":
            raise SystemExit(f"--data-dir {args.data_dir}: this bench reads CIFAR-10; give "
                             "cifar10=PATH or PATH")
        args.data_dir = path
    if args.mode == "summarise":
        summarise(Path(args.out))
        return
    if args.mode in ("run", "reference") and not (Path(args.reference_dir) / "cifar_train.py").is_file():
        raise SystemExit(f"--reference-dir {args.reference_dir!r} holds no cifar_train.py: "
                         "clone kaidic/LDAM-DRW (commit 2536330) and name its folder")
    if args.mode in ("run", "harness") and not args.data_dir:
        raise SystemExit("--data-dir is missing: name CIFAR-10 as the harness reads it "
                         "(image folders, pickled batches or an .npz)")
    if args.mode == "run":
        run(args)
        return
    records = harness_side(args) if args.mode == "harness" else reference_side(args)
    print(json.dumps(records))


if __name__ == "__main__":
    main()
