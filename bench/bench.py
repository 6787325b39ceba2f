"""Benchmark the harness against a minimal plain-Keras script on the same case.

Not a test: it prints a table and appends one dated JSON line to ``bench/out/results.jsonl``.
See ``bench/README.md`` for what each mode compares and the figures measured so far.

Modes (``--modes``, comma-separated; default all three):

``speed``   the harness end to end (``pytest experiments -k CASE --scale smoke ...``) against
            ``bench/plain_keras.py`` on the same data, model, epochs, batch size and seed; each run
            a fresh subprocess, the two sides alternating ABBA (H P P H ...). Reports wall time,
            fit time, training and test images/s and peak RSS of each, and harness/plain ratios.
``aug``     the harness's training throughput with and without augmentation: one subprocess
            calls ``resnet_harness.training.runner.run_case`` (the function the pytest plugin calls) on the
            case with ``augment`` on and off, alternating ABBA after one discarded warm-up run that
            pays the graph tracing. Budget: augmented >= 0.95x the un-augmented images/s.
``memory``  peak RSS with the FULL CIFAR-10 data (50,000 / 10,000) but only ``--memory-steps``
            training and prediction batches: a driver that builds exactly what ``run_case`` builds
            (``load_raw`` -> ``runner.make_inputs`` -> ``runner.model_for``) and runs
            ``fit(train.take(K))`` / ``predict(test.take(K))``, against ``plain_keras.py --train 0
            --test 0 --max-steps K`` holding float32 arrays. Budget: harness <= 0.8x plain.

Peak RSS of every subprocess is measured from the outside twice: the kernel's high-water mark
(``ru_maxrss`` from ``os.wait4`` of that child alone) and psutil polling of the child's process
tree every 50 ms; plus each side's own in-process figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PLAIN = ROOT / "bench" / "plain_keras.py"
DEFAULT_CASE = "table7-cifar10-balanced-split_orig-reg_none"
DEFAULT_DATA = Path("/tmp/data/cifar10-jpeg")
TARBALL = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
AUG_BUDGET = 0.95  # augmented images/s >= 0.95x un-augmented
MEMORY_BUDGET = 0.8  # harness peak RSS <= 0.8x plain float32 script


# ---------------------------------------------------------------------------------------------
# Subprocesses, measured from the outside


def child_env() -> dict[str, str]:
    """The environment of every measured run: oneDNN on for both sides (the harness sets it
    itself; the plain script must get it too) and no RESNET_HARNESS_* setting leaking in."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RESNET_HARNESS_") or k == "RESNET_HARNESS_CACHE_DIR"}
    env.update(TF_ENABLE_ONEDNN_OPTS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return env


def run_child(cmd: list[str], log: Path, timeout_s: float) -> dict:
    """Run ``cmd`` from the repo root; return wall time, exit code and outside peak RSS."""
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    code = code_state()
    t0 = time.perf_counter()
    with log.open("wb") as handle:
        handle.write(("$ " + " ".join(cmd) + "\n").encode())
        handle.flush()
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT,
                                env=child_env())
    try:
        tree = psutil.Process(proc.pid)
    except psutil.Error:
        tree = None
    polled, killed = 0, False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if tree is not None:
            rss = 0
            try:
                for p in [tree] + tree.children(recursive=True):
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            polled = max(polled, rss)
        if time.perf_counter() - t0 > timeout_s and not killed:
            proc.kill()
            killed = True
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"cmd": cmd, "log": str(log.relative_to(ROOT)), "rc": proc.returncode, "code": code,
            "killed": killed, "wall_s": wall,
            "maxrss_mb": usage.ru_maxrss / 1024,  # Linux: KiB
            "polled_rss_mb": polled / 2**20}


def code_state() -> str:
    """HEAD's short hash, plus "+dirty" when the harness's code differs from it (others may be
    editing the package while a bench runs; every run records what it measured)."""
    def git(*argv):
        try:
            return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True,
                                  check=False, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "resnet_harness", "experiments", "pytest.ini",
                "conftest.py")
    return head + ("+dirty" if dirty else "")


def tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join((ROOT / path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def check(run: dict, what: str) -> None:
    if run["rc"] != 0:
        killed = ", killed after timeout" if run["killed"] else ""
        sys.exit(f"{what} failed (exit {run['rc']}{killed}"
                 f"); log {run['log']}:\n{tail(run['log'])}")


# ---------------------------------------------------------------------------------------------
# The two sides of the speed comparison


def pytest_cmd(args) -> list[str]:
    """The ``pytest`` script beside the interpreter, as the README runs it. (``python -m pytest``
    can stop at start-up here: with an editable install, pytest marks ``__main__`` for assertion
    rewriting and pytest.ini's ``filterwarnings = error`` turns its warning into an error.)"""
    script = Path(args.python).parent / "pytest"
    return [str(script)] if script.is_file() else [args.python, "-m", "pytest"]


def harness_speed(args, work: Path, tag: str) -> dict:
    report = work / f"report-{tag}"
    cmd = pytest_cmd(args) + ["experiments", "-k", args.case, "--scale", "smoke",
           "--max-train-samples", str(args.train), "--max-test-samples", str(args.test),
           "--epochs", str(args.epochs), "--seed", str(args.seed),
           "--data-dir", f"cifar10={args.data_dir}", "--report-dir", str(report),
           "-p", "no:cacheprovider", "-q"]
    run = run_child(cmd, work / f"{tag}.log", args.timeout)
    from resnet_harness.storage.rundir import RunFolder

    rows = [str(f.row_path(args.case)) for f in RunFolder.runs(report)
            if f.row_path(args.case).is_file()]
    if len(rows) != 1:
        sys.exit(f"harness run {tag}: expected one row {args.case}.json under {report}, found "
                 f"{len(rows)} (exit {run['rc']}); log {run['log']}:\n{tail(run['log'])}")
    row = json.loads(Path(rows[0]).read_text())
    if row.get("status") == "error":
        sys.exit(f"harness run {tag}: case errored: {row.get('error')}")
    run.update(side="harness", tag=tag, fit_s=row["train_time_s"], predict_s=row["test_time_s"],
               first_step_s=row["first_step_s"], train_ips=row["train_images_per_s"],
               test_ips=row["test_images_per_s"], inproc_fit_rss_mb=row["peak_rss_mb"],
               accuracy=row["metrics"].get("accuracy"), train_samples=row["train_samples"],
               test_samples=row["test_samples"], train_counts=row["train_counts"])
    return run


def plain_cmd(args, out_json: Path, *, augment: bool, train: int, test: int,
              max_steps: int = 0, epochs: int | None = None) -> list[str]:
    cmd = [args.python, str(PLAIN.relative_to(ROOT)), "--data-dir", str(args.data_dir),
           "--npz", str(args.npz), "--train", str(train), "--test", str(test),
           "--epochs", str(epochs or args.epochs), "--seed", str(args.seed),
           "--json", str(out_json)]
    if augment:
        cmd.append("--augment")
    if max_steps:
        cmd += ["--max-steps", str(max_steps)]
    return cmd


def plain_speed(args, work: Path, tag: str) -> dict:
    out = work / f"{tag}.json"
    run = run_child(plain_cmd(args, out, augment=args.augment, train=args.train, test=args.test),
                    work / f"{tag}.log", args.timeout)
    check(run, f"plain run {tag}")
    res = json.loads(out.read_text())
    run.update(side="plain", tag=tag, fit_s=res["fit_s"], predict_s=res["predict_s"],
               first_step_s=res["first_step_s"], train_ips=res["train_images_per_s"],
               test_ips=res["test_images_per_s"], inproc_fit_rss_mb=res["peak_rss_fit_mb"],
               accuracy=res["accuracy"], train_samples=res["train_samples"],
               test_samples=res["test_samples"], train_counts=res["train_counts"])
    return run


def abba(repeats: int) -> list[str]:
    """H P, P H, H P, ...: each alternation flips the order, so linear drift cancels."""
    order = []
    for i in range(repeats):
        order += ["harness", "plain"] if i % 2 == 0 else ["plain", "harness"]
    return order


def med(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b) -> float | None:
    return a / b if a is not None and b else None


def mode_speed(args, work: Path) -> dict:
    runs = []
    for i, side in enumerate(abba(args.repeats)):
        tag = f"speed-{i}-{side}"
        print(f"  [{time.strftime('%H:%M:%S')}] {tag} ...", flush=True)
        run = harness_speed(args, work, tag) if side == "harness" else plain_speed(args, work, tag)
        print(f"      wall {run['wall_s']:.1f}s  fit {run['fit_s']:.1f}s  first step "
              f"{run['first_step_s']:.1f}s  train {run['train_ips']:.1f} img/s  test "
              f"{run['test_ips']:.1f} img/s  maxrss {run['maxrss_mb']:.0f} MB", flush=True)
        runs.append(run)
    keys = ("wall_s", "fit_s", "first_step_s", "predict_s", "train_ips", "test_ips",
            "inproc_fit_rss_mb", "maxrss_mb", "polled_rss_mb", "accuracy")
    summary = {side: {k: med(r[k] for r in runs if r["side"] == side) for k in keys}
               for side in ("harness", "plain")}
    ratios = {k: ratio(summary["harness"][k], summary["plain"][k]) for k in keys
              if k != "accuracy"}
    same_data = len({json.dumps(r["train_counts"]) for r in runs}) == 1
    return {"runs": runs, "median": summary, "ratio_harness_over_plain": ratios,
            "same_train_counts": same_data}


# ---------------------------------------------------------------------------------------------
# Drivers run in their own subprocess (python bench/bench.py --driver aug|memory ...)


def _driver_setup(args):
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    from resnet_harness.training.config import RunConfig
    from resnet_harness.studies.paper import get_case

    case = get_case(args.case)
    return case, RunConfig


def driver_aug(args) -> dict:
    """One process, one model cache: warm-up (traces), then ABBA runs with augment on/off."""
    from dataclasses import replace

    case, RunConfig = _driver_setup(args)
    from resnet_harness.training.data import load_raw
    from resnet_harness.training.model import ModelCache
    from resnet_harness.training.data import default_cache_dir
    from resnet_harness.training.runner import run_case

    run = RunConfig(scale="smoke", seed=args.seed, epochs=args.epochs,
                    max_train_samples=args.train, max_test_samples=args.test,
                    data_dirs={"cifar10": Path(args.data_dir)})
    cfg = run.for_case(case)
    raw = load_raw(case.dataset, data_dir=Path(args.data_dir), cache_dir=default_cache_dir())
    models = ModelCache()
    # Warm-up: traces the train and predict functions on a few batches, discarded.
    warm = replace(cfg, augment=True, max_train_samples=64, max_test_samples=32, epochs=1)
    t0 = time.perf_counter()
    run_case(warm, raw, models)
    warmup_s = time.perf_counter() - t0
    runs = []
    for i in range(args.repeats):
        order = (True, False) if i % 2 == 0 else (False, True)
        for augment in order:
            row = run_case(replace(cfg, augment=augment), raw, models).row
            runs.append({"augment": augment, "train_ips": row["train_images_per_s"],
                         "fit_s": row["train_time_s"], "first_step_s": row["first_step_s"],
                         "peak_rss_mb": row["peak_rss_mb"], "train_samples": row["train_samples"]})
            print(json.dumps(runs[-1]), flush=True)
    return {"warmup_s": warmup_s, "runs": runs}


def driver_memory(args) -> dict:
    """What ``run_case`` holds for the full data set, with K training and prediction batches."""
    import psutil

    case, RunConfig = _driver_setup(args)
    from resnet_harness.training.data import default_cache_dir, load_raw
    from resnet_harness.training.model import ModelCache
    from resnet_harness.training.runner import PeakMemory, make_inputs, model_for

    proc = psutil.Process()
    stages = {}

    def stage(name):
        stages[name] = proc.memory_info().rss / 2**20

    with PeakMemory() as whole:
        run = RunConfig(scale="paper", seed=args.seed, epochs=1, weights="none",
                        data_dirs={"cifar10": Path(args.data_dir)})
        cfg = run.for_case(case)
        assert cfg.max_train_samples is None and cfg.max_test_samples is None
        stage("start")
        t0 = time.perf_counter()
        raw = load_raw(case.dataset, data_dir=Path(args.data_dir),
                       cache_dir=default_cache_dir())
        stage("load_raw")
        import tensorflow  # noqa: F401 - ~640 MB of RSS on its own; attributed separately

        stage("import_tensorflow")
        # The runner's own steps (variant + pipelines, then the model), so nothing here drifts.
        variant, train, test = make_inputs(cfg, raw)
        stage("make_inputs")
        load_s = time.perf_counter() - t0
        model = model_for(cfg, ModelCache())
        stage("model_cache_get")
        with PeakMemory() as fit_mem:
            t0 = time.perf_counter()
            model.fit(train.take(args.memory_steps), epochs=1, verbose=0, shuffle=False)
            fit_s = time.perf_counter() - t0
        stage("fit")
        with PeakMemory() as predict_mem:
            model.predict(test.take(args.memory_steps), verbose=0)
        stage("predict")
    return {"train_samples": len(variant.y_train), "test_samples": len(variant.y_test),
            "augment": cfg.augment, "steps": args.memory_steps, "load_s": load_s, "fit_s": fit_s,
            "rss_stages_mb": stages, "peak_rss_fit_mb": fit_mem.peak_mb,
            "peak_rss_predict_mb": predict_mem.peak_mb, "peak_rss_mb": whole.peak_mb}


def driver_cmd(args, kind: str, out_json: Path) -> list[str]:
    return [args.python, str(Path(__file__).resolve().relative_to(ROOT)), "--driver", kind,
            "--case", args.case, "--data-dir", str(args.data_dir), "--train", str(args.train),
            "--test", str(args.test), "--epochs", str(args.epochs), "--seed", str(args.seed),
            "--repeats", str(args.repeats), "--memory-steps", str(args.memory_steps),
            "--driver-json", str(out_json)]


def mode_aug(args, work: Path) -> dict:
    out = work / "aug.json"
    print(f"  [{time.strftime('%H:%M:%S')}] aug driver (warm-up + {2 * args.repeats} runs) ...",
          flush=True)
    run = run_child(driver_cmd(args, "aug", out), work / "aug.log", args.timeout * 2)
    check(run, "aug driver")
    res = json.loads(out.read_text())
    on = med(r["train_ips"] for r in res["runs"] if r["augment"])
    off = med(r["train_ips"] for r in res["runs"] if not r["augment"])
    r = ratio(on, off)
    return dict(res, process=run, augmented_ips=on, unaugmented_ips=off, ratio=r,
                budget=AUG_BUDGET, met=r is not None and r >= AUG_BUDGET)


def mode_memory(args, work: Path) -> dict:
    sides = {}
    for side in ("harness", "plain"):
        out = work / f"memory-{side}.json"
        print(f"  [{time.strftime('%H:%M:%S')}] memory {side} (full data, {args.memory_steps} "
              "steps) ...", flush=True)
        cmd = (driver_cmd(args, "memory", out) if side == "harness" else
               plain_cmd(args, out, augment=args.augment, train=0, test=0,
                         max_steps=args.memory_steps, epochs=1))
        run = run_child(cmd, work / f"memory-{side}.log", args.timeout)
        check(run, f"memory {side}")
        run["result"] = json.loads(out.read_text())
        print(f"      wall {run['wall_s']:.1f}s  maxrss {run['maxrss_mb']:.0f} MB  polled "
              f"{run['polled_rss_mb']:.0f} MB  in-process fit peak "
              f"{run['result']['peak_rss_fit_mb']:.0f} MB", flush=True)
        sides[side] = run
    r = ratio(sides["harness"]["maxrss_mb"], sides["plain"]["maxrss_mb"])
    r_fit = ratio(sides["harness"]["result"]["peak_rss_fit_mb"],
                  sides["plain"]["result"]["peak_rss_fit_mb"])
    return {"sides": sides, "ratio_maxrss": r, "ratio_fit_peak": r_fit,
            "budget": MEMORY_BUDGET, "met": r is not None and r <= MEMORY_BUDGET}


# ---------------------------------------------------------------------------------------------
# Set-up and report


def ensure_data(data_dir: Path) -> None:
    if (data_dir / "train").is_dir() and (data_dir / "test").is_dir():
        return
    if data_dir.name == "cifar10-jpeg" and TARBALL.is_file():
        print(f"unpacking {TARBALL} into {data_dir.parent} ...", flush=True)
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(TARBALL) as tar:
            try:
                tar.extractall(data_dir.parent, filter="data")
            except TypeError:  # Python without extraction filters
                tar.extractall(data_dir.parent)
        if (data_dir / "train").is_dir():
            return
    sys.exit(f"no CIFAR-10 image folders at {data_dir}; unpack them with: tar xzf "
             f"../shared/data/cifar10-jpeg.tar.gz -C {data_dir.parent} (or pass --data-dir)")


def warm_caches(args, work: Path) -> None:
    """Decode the JPEGs once for each side (outside every timing): the plain script's own npz and
    the harness's array cache (~/.cache/resnet-harness)."""
    t0 = time.perf_counter()
    if not args.npz.is_file():
        run = run_child([args.python, str(PLAIN.relative_to(ROOT)), "--data-dir",
                         str(args.data_dir), "--npz", str(args.npz), "--prepare-only"],
                        work / "prepare-plain.log", args.timeout)
        check(run, "decoding the JPEGs for the plain script")
    code = ("import sys; from pathlib import Path; sys.path.insert(0, '.');"
            "from resnet_harness.data import load_raw, default_cache_dir; "
            f"load_raw('cifar10', data_dir=Path({str(args.data_dir)!r}), "
            "cache_dir=default_cache_dir())")
    run = run_child([args.python, "-c", code], work / "prepare-harness.log", args.timeout)
    check(run, "warming the harness's data cache")
    print(f"  data caches ready ({time.perf_counter() - t0:.0f}s)", flush=True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "GPU" if shutil.which("nvidia-smi") else "no GPU"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, load average at start {load}"


def fmt(value, spec=".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(result: dict) -> None:
    print()
    print(f"== bench {result['date']}  case {result['case']}  train {result['train']} / test "
          f"{result['test']}  epochs {result['epochs']}  batch 32  seed {result['seed']}  "
          f"augment {result['augment']}")
    print(f"   {result['machine']}")
    print(f"   harness code: {', '.join(result['code'])}")
    if len(result["code"]) > 1:
        print("   WARNING: the harness's code changed while the bench ran; each run's 'code' in "
              "results.jsonl says which version it measured")
    if "speed" in result:
        s = result["speed"]
        print("\n-- speed: harness (pytest, fresh process) vs plain_keras.py (fresh process)")
        head = (f"{'run':<22}{'wall s':>8}{'fit s':>8}{'1st step':>9}{'train/s':>9}"
                f"{'test/s':>8}{'fitRSS':>8}{'maxRSS':>8}{'polled':>8}{'acc':>7}")
        print(head)
        for r in s["runs"]:
            print(f"{r['tag']:<22}{fmt(r['wall_s']):>8}{fmt(r['fit_s']):>8}"
                  f"{fmt(r['first_step_s']):>9}{fmt(r['train_ips']):>9}{fmt(r['test_ips']):>8}"
                  f"{fmt(r['inproc_fit_rss_mb'], '.0f'):>8}{fmt(r['maxrss_mb'], '.0f'):>8}"
                  f"{fmt(r['polled_rss_mb'], '.0f'):>8}{fmt(r['accuracy'], '.3f'):>7}")
        for side in ("harness", "plain"):
            m = s["median"][side]
            print(f"{'median ' + side:<22}{fmt(m['wall_s']):>8}{fmt(m['fit_s']):>8}"
                  f"{fmt(m['first_step_s']):>9}{fmt(m['train_ips']):>9}{fmt(m['test_ips']):>8}"
                  f"{fmt(m['inproc_fit_rss_mb'], '.0f'):>8}{fmt(m['maxrss_mb'], '.0f'):>8}"
                  f"{fmt(m['polled_rss_mb'], '.0f'):>8}")
        q = s["ratio_harness_over_plain"]
        print(f"{'ratio harness/plain':<22}{fmt(q['wall_s'], '.2f'):>8}{fmt(q['fit_s'], '.2f'):>8}"
              f"{fmt(q['first_step_s'], '.2f'):>9}{fmt(q['train_ips'], '.2f'):>9}"
              f"{fmt(q['test_ips'], '.2f'):>8}{fmt(q['inproc_fit_rss_mb'], '.2f'):>8}"
              f"{fmt(q['maxrss_mb'], '.2f'):>8}{fmt(q['polled_rss_mb'], '.2f'):>8}")
        print("   (RSS in MB; fitRSS = each side's own in-process peak during fit; maxRSS = "
              "kernel high-water mark of the whole subprocess; polled = psutil every 50 ms)")
        if not s["same_train_counts"]:
            print("   WARNING: the two sides trained on different per-class counts")
        print("   (same sizes and per-class counts; the images differ: the harness draws its own "
              "exact stratified subset, plain_keras.py uses sklearn's train_test_split)")
    if "aug" in result:
        a = result["aug"]
        print("\n-- aug: harness run_case, augmented vs un-augmented training (one process, ABBA "
              "after a warm-up)")
        for r in a["runs"]:
            print(f"   augment={r['augment']!s:<6} train {fmt(r['train_ips'])} img/s  fit "
                  f"{fmt(r['fit_s'])} s")
        print(f"   median: augmented {fmt(a['augmented_ips'])} img/s, un-augmented "
              f"{fmt(a['unaugmented_ips'])} img/s, ratio {fmt(a['ratio'], '.3f')}  budget >= "
              f"{a['budget']}: {'MET' if a['met'] else 'NOT MET'}")
    if "memory" in result:
        m = result["memory"]
        print(f"\n-- memory: full CIFAR-10 (50,000 / 10,000), {result['memory_steps']} fit + "
              "predict batches, peak RSS in MB")
        print(f"{'side':<10}{'maxRSS':>9}{'polled':>9}{'fit peak':>10}{'whole':>9}{'wall s':>8}")
        for side, run in m["sides"].items():
            res = run["result"]
            print(f"{side:<10}{fmt(run['maxrss_mb'], '.0f'):>9}"
                  f"{fmt(run['polled_rss_mb'], '.0f'):>9}"
                  f"{fmt(res['peak_rss_fit_mb'], '.0f'):>10}{fmt(res['peak_rss_mb'], '.0f'):>9}"
                  f"{fmt(run['wall_s']):>8}")
        stages = m["sides"]["harness"]["result"]["rss_stages_mb"]
        print("   harness RSS after each stage: " +
              ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
        plain = m["sides"]["plain"]["result"]
        print(f"   plain RSS after load {plain['rss_after_load_mb']:.0f}, after model build "
              f"{plain['rss_after_build_mb']:.0f}")
        print(f"   ratio harness/plain: maxRSS {fmt(m['ratio_maxrss'], '.3f')}, fit peak "
              f"{fmt(m['ratio_fit_peak'], '.3f')}  budget <= {m['budget']} (maxRSS): "
              f"{'MET' if m['met'] else 'NOT MET'}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                   help="CIFAR-10 JPEG folders {train,test}/<class>/*.jpg (default %(default)s; "
                   "unpacked from ../shared/data/cifar10-jpeg.tar.gz when missing)")
    p.add_argument("--case", default=DEFAULT_CASE, help="case id (default %(default)s)")
    p.add_argument("--train", type=int, default=640, help="training images (default 640)")
    p.add_argument("--test", type=int, default=320, help="test images (default 320)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=2,
                   help="alternations per comparison, ABBA order (default 2)")
    p.add_argument("--modes", default="speed,aug,memory",
                   help="comma-separated: speed, aug, memory (default all)")
    p.add_argument("--memory-steps", type=int, default=5,
                   help="training/prediction batches in memory mode (default 5)")
    p.add_argument("--npz", type=Path, default=OUT / "cifar10-uint8.npz",
                   help="the plain script's cache of the decoded JPEGs")
    p.add_argument("--timeout", type=float, default=900, help="seconds per subprocess")
    p.add_argument("--python", default=sys.executable, help="interpreter for the subprocesses")
    p.add_argument("--driver", choices=("aug", "memory"), help=argparse.SUPPRESS)
    p.add_argument("--driver-json", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.data_dir = args.data_dir.expanduser().resolve()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in ("speed", "aug", "memory")]
    if bad or not args.modes:
        p.error(f"unknown mode(s) {bad}; use speed, aug, memory")
    for name in ("train", "test", "epochs", "repeats", "memory_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be 1 or more")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.driver:
        result = driver_aug(args) if args.driver == "aug" else driver_memory(args)
        args.driver_json.write_text(json.dumps(result) + "\n")
        return 0

    sys.path.insert(0, str(ROOT))
    from resnet_harness.training.model import Head
    from resnet_harness.studies.paper import get_case

    try:
        case = get_case(args.case)
    except KeyError as exc:
        sys.exit(str(exc.args[0]))
    if (case.dataset != "cifar10" or case.balance != "balanced" or case.split is not None
            or case.head != Head()) and {"speed", "memory"} & set(args.modes):
        sys.exit(f"{case.id}: plain_keras.py only reproduces balanced CIFAR-10 cases on the "
                 "original split with the plain GAP -> Dense(10) head; pick such a case or "
                 "--modes aug")
    args.augment = case.augment
    ensure_data(args.data_dir)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    work = OUT / stamp
    work.mkdir(parents=True, exist_ok=True)
    result = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
              "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
              "machine": machine(), "case": case.id, "train": args.train, "test": args.test,
              "epochs": args.epochs, "seed": args.seed, "repeats": args.repeats,
              "augment": case.augment, "memory_steps": args.memory_steps, "modes": args.modes,
              "work_dir": str(work.relative_to(ROOT))}
    print(f"bench: {', '.join(args.modes)} on {case.id}; logs in {work.relative_to(ROOT)}/",
          flush=True)
    t0 = time.perf_counter()
    warm_caches(args, work)
    if "speed" in args.modes:
        result["speed"] = mode_speed(args, work)
    if "aug" in args.modes:
        result["aug"] = mode_aug(args, work)
    if "memory" in args.modes:
        result["memory"] = mode_memory(args, work)
    result["total_s"] = time.perf_counter() - t0
    states = []
    for r in result.get("speed", {}).get("runs", []):
        states.append(r["code"])
    if "aug" in result:
        states.append(result["aug"]["process"]["code"])
    for r in result.get("memory", {}).get("sides", {}).values():
        states.append(r["code"])
    states.append(code_state())
    result["code"] = sorted(set(states), key=states.index)
    print_report(result)
    budgets = {}
    if "aug" in result:
        budgets["aug_ratio>=0.95"] = result["aug"]["met"]
    if "memory" in result:
        budgets["memory_ratio<=0.8"] = result["memory"]["met"]
    result["budgets"] = budgets
    with (OUT / "results.jsonl").open("a") as handle:
        handle.write(json.dumps(result) + "\n")
    print(f"\nbudgets: {budgets or 'none checked'}; total {result['total_s'] / 60:.1f} min; "
          f"appended to {(OUT / 'results.jsonl').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
