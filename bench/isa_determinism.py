"""Are a case's figures bit-identical across CPU ISAs with oneDNN's ISA pinned, and at what cost?

    python bench/isa_determinism.py                       # defaults: 16 runs, ~20-40 min
    python bench/isa_determinism.py --det unset,AVX2,SSE41,onednn_off --plain unset
    python bench/isa_determinism.py --probe unset,cpus=0  # the quick weights-digest probe only

Background: the regression guard compares a nightly run's figures with a committed baseline. On
one machine a case re-runs bit-identically, but oneDNN picks its kernels by the CPU's ISA at run
time, so a machine with another ISA (AVX2 only, say) gives figures that differ like another seed.
``ONEDNN_MAX_CPU_ISA`` caps the ISA oneDNN dispatches to; ``TF_ENABLE_ONEDNN_OPTS=0`` turns
TensorFlow's oneDNN ops off (the harness sets it to 1 with ``os.environ.setdefault``, so 0 in the
environment wins).

For each setting, with ``--deterministic`` (``--det``) and without it (``--plain``), the script
runs one small case ``--repeats`` times (default 2), each in a fresh subprocess:

    pytest experiments -k "table7 and cifar10 and balanced and not imbalanced" --scale smoke
        --seed 0 --data-dir cifar10=DATA --report-dir TMP -q -p no:cacheprovider [--deterministic]

and reads accuracy, precision_macro, f1_macro, train_loss and train_time_s (plus
steady_train_time_s and first_step_s) from ``TMP/latest/results.csv``. Runs go in rounds (every
setting once, then every setting again) so drift in the machine's load spreads evenly. The last
round runs with ``ONEDNN_VERBOSE=1`` and ``--capture=sys`` (oneDNN writes to fd 1, which pytest's
default fd capture would swallow): it records which ISA oneDNN reports and which kernels it ran;
neither changes the arithmetic, and the first round's train times are the clean ones.

It prints (and ``--out`` also writes):

- every run's figures, exact (as written in results.csv);
- per setting: whether its runs gave bit-identical figures, and its train time as a ratio to the
  unset default of the same mode (first-round times; ``steady`` excludes the first step, which is
  mostly graph tracing);
- which settings (over both modes) gave figures identical to each other;
- what ``ONEDNN_VERBOSE`` showed: the ISA line, the thread count and the kernels executed.

Settings (comma-separated; ``+`` joins parts of one setting):
``unset``                       nothing set (the harness then sets TF_ENABLE_ONEDNN_OPTS=1)
``AVX2``, ``SSE41``, ...        shorthand for ``ONEDNN_MAX_CPU_ISA=<value>``
``onednn_off``                  shorthand for ``TF_ENABLE_ONEDNN_OPTS=0``
``NAME=VALUE``                  any environment variable
``cpus=0`` / ``cpus=0-1``       run the subprocess on these CPUs only (fewer threads)

``--probe SETTINGS`` instead runs a short plain-Keras probe per setting (ResNet50 32x32, random
init, op determinism, two Adam steps on a fixed batch of 32) and prints a digest of the weights
after those steps, with the same verbose summary: a cheap check of one mechanism (e.g. whether the
thread count changes the arithmetic) without running the whole case.

Every inherited ``ONEDNN_*``/``DNNL_*``/``TF_ENABLE_ONEDNN_OPTS``/``RESNET_HARNESS_*`` variable is
removed from the children, except ``RESNET_HARNESS_CACHE_DIR`` (``--cache-dir``; by default a
temporary folder shared by every run so the JPEGs are decoded once). Others may edit the package
while this runs: ``--snapshot-head`` runs every child from a copy of the committed tree (``git
archive HEAD``; the children import ``resnet_harness`` from that copy, which the script checks), and
each run records a hash of the sources it ran, the table saying if they moved.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_K = "table7 and cifar10 and balanced and not imbalanced"
DEFAULT_DATA = "/tmp/data/cifar10-jpeg"
DEFAULT_SETTINGS = "unset,AVX2,AVX512_CORE,onednn_off"
FIGURES = ("accuracy", "precision_macro", "f1_macro", "train_loss")
TIMES = ("train_time_s", "steady_train_time_s", "first_step_s")
ISA_NAMES = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
             "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16",
             "AVX512_CORE_AMX", "AVX10_1_512_AMX", "AVX512_CORE_AMX_FP16",
             "AVX10_1_512_AMX_FP16", "DEFAULT"}
STRIPPED = ("ONEDNN_", "DNNL_", "MKLDNN_", "TF_ENABLE_ONEDNN_OPTS", "RESNET_HARNESS_")


# ---------------------------------------------------------------------------------------------
# Settings


class Setting:
    """One environment to run under: variables to set and, optionally, the CPUs to run on."""

    def __init__(self, spec: str):
        self.spec = spec.strip()
        self.env: dict[str, str] = {}
        self.cpus: set[int] | None = None
        for part in self.spec.split("+"):
            part = part.strip()
            if not part or part == "unset":
                continue
            if part == "onednn_off":
                self.env["TF_ENABLE_ONEDNN_OPTS"] = "0"
            elif part.upper() in ISA_NAMES:
                self.env["ONEDNN_MAX_CPU_ISA"] = part.upper()
            elif part.startswith("cpus="):
                self.cpus = _cpu_list(part[len("cpus="):])
            elif "=" in part:
                name, value = part.split("=", 1)
                self.env[name.strip()] = value.strip()
            else:
                raise SystemExit(f"unknown setting part {part!r} in {spec!r}")

    @property
    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in self.env.items()]
        if self.cpus is not None:
            parts.append("cpus=" + ",".join(map(str, sorted(self.cpus))))
        return " ".join(parts) or "unset"

    def child_env(self, cache_dir: str, verbose: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED)}
        env.update(RESNET_HARNESS_CACHE_DIR=cache_dir, PYTHONUNBUFFERED="1",
                   TF_CPP_MIN_LOG_LEVEL="2")
        env.update(self.env)
        if verbose:
            env["ONEDNN_VERBOSE"] = "1"
        return env

    def preexec(self):
        if self.cpus is None:
            return None
        cpus = self.cpus
        return lambda: os.sched_setaffinity(0, cpus)


def _cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for chunk in text.replace(";", ",").split(","):
        if "-" in chunk:
            lo, hi = chunk.split("-")
            cpus.update(range(int(lo), int(hi) + 1))
        elif chunk:
            cpus.add(int(chunk))
    return cpus


def parse_settings(text: str) -> list[Setting]:
    return [Setting(s) for s in text.split(",") if s.strip()] if text else []


# ---------------------------------------------------------------------------------------------
# Runs


def source_hash(code: Path) -> str:
    """A hash of the harness's sources, so a run that measured edited code shows up."""
    digest = hashlib.sha256()
    paths = sorted(itertools.chain((code / "resnet_harness").rglob("*.py"),
                                   (code / "experiments").rglob("*.py"),
                                   [code / "conftest.py", code / "pytest.ini"]))
    for path in paths:
        try:
            digest.update(str(path.relative_to(code)).encode() + b"\0" + path.read_bytes())
        except OSError:
            pass
    return digest.hexdigest()[:12]


def verbose_summary(log: Path) -> dict:
    """What oneDNN's verbose lines in ``log`` say: the ISA, threads and kernels executed."""
    isa, nthr, kernels = None, None, Counter()
    with log.open(errors="replace") as handle:
        for line in handle:
            if "onednn_verbose" not in line:
                continue
            line = line[line.index("onednn_verbose"):].rstrip("\n")
            fields = line.split(",")
            if ",info,cpu,isa:" in line:
                isa = line.split("isa:", 1)[1].strip()
            elif ",info,cpu,runtime:" in line and "nthr:" in line:
                nthr = line.split("nthr:", 1)[1].strip()
            elif len(fields) > 6 and fields[2] == "primitive" and fields[3] == "exec":
                kernels[f"{fields[5]}:{fields[6] or '-'}"] += 1
    return {"isa": isa, "nthr": nthr, "kernels": dict(kernels.most_common())}


def run_case(args, setting: Setting, deterministic: bool, verbose: bool, work: Path,
             tag: str) -> dict:
    report = work / f"report-{tag}"
    log = work / f"log-{tag}.txt"
    cmd = [sys.executable, "-m", "pytest", "experiments", "-k", args.k, "--scale", args.scale,
           "--seed", str(args.seed), "--data-dir", f"cifar10={args.data_dir}",
           "--report-dir", str(report), "-q", "-p", "no:cacheprovider"]
    if deterministic:
        cmd.append("--deterministic")
    if verbose:
        cmd.append("--capture=sys")
    before = source_hash(args.code)
    t0 = time.perf_counter()
    with log.open("wb") as handle:
        try:
            proc = subprocess.run(cmd, cwd=args.code, stdout=handle, stderr=subprocess.STDOUT,
                                  env=setting.child_env(args.cache_dir, verbose),
                                  preexec_fn=setting.preexec(), timeout=args.timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    wall = time.perf_counter() - t0
    row: dict = {"setting": setting.label, "deterministic": deterministic, "verbose": verbose,
                 "tag": tag, "rc": rc, "wall_s": wall, "sources": before,
                 "sources_moved": source_hash(args.code) != before}
    csv_path = report / "latest" / "results.csv"
    if not csv_path.exists():  # latest not linked (the session's end failed): the run's own
        found = sorted(report.glob("runs/*/results.csv"))
        csv_path = found[0] if len(found) == 1 else csv_path
        row["latest_missing"] = True
    try:
        with csv_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        rows, row["error"] = [], f"no results.csv ({exc})"
    if len(rows) != 1:
        row.setdefault("error", f"{len(rows)} result rows, expected 1")
    else:
        result = rows[0]
        row.update(case_id=result["case_id"], status=result["status"])
        for name in FIGURES + TIMES:
            row[name] = result.get(name, "")  # the exact text results.csv holds
    if verbose:
        row["onednn"] = verbose_summary(log)
    if row.get("error") or rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-12:]
        row["log_tail"] = "\n".join(line for line in tail if "onednn_verbose" not in line)
    if not args.keep:
        shutil.rmtree(report, ignore_errors=True)
        if not row.get("log_tail"):
            log.unlink(missing_ok=True)
    return row


# ---------------------------------------------------------------------------------------------
# The probe: a short plain-Keras ResNet50 training, digest of the weights


PROBE_CODE = r"""
import hashlib, json, time
t0 = time.perf_counter()
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(0)
tf.config.experimental.enable_op_determinism()
base = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
model = keras.Sequential([base, keras.layers.GlobalAveragePooling2D(),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
rng = np.random.RandomState(0)
x = rng.rand(32, 32, 32, 3).astype("float32")
y = rng.randint(0, 10, 32)
losses = [float(model.train_on_batch(x, y)) for _ in range(2)]
digest = hashlib.sha256()
for w in model.get_weights():
    digest.update(np.ascontiguousarray(w).tobytes())
print("PROBE " + json.dumps({"losses": [repr(v) for v in losses],
                             "digest": digest.hexdigest()[:16],
                             "seconds": time.perf_counter() - t0}), flush=True)
"""


def run_probe(args, setting: Setting, work: Path, tag: str) -> dict:
    log = work / f"probe-{tag}.txt"
    env = setting.child_env(args.cache_dir, verbose=True)
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the harness would set it
    t0 = time.perf_counter()
    with log.open("wb") as handle:
        proc = subprocess.run([sys.executable, "-c", PROBE_CODE], cwd=args.code, stdout=handle,
                              stderr=subprocess.STDOUT, env=env, preexec_fn=setting.preexec(),
                              timeout=args.timeout)
    row = {"setting": setting.label, "rc": proc.returncode,
           "wall_s": time.perf_counter() - t0, "onednn": verbose_summary(log)}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("PROBE "):
            row.update(json.loads(line[len("PROBE "):]))
    if not args.keep:
        log.unlink(missing_ok=True)
    return row


# ---------------------------------------------------------------------------------------------
# Printing


def _mode(det: bool) -> str:
    return "det" if det else "plain"


def _figures(row: dict) -> tuple | None:
    if row.get("error") or row.get("rc") != 0:
        return None
    return tuple(row[name] for name in FIGURES)


def _f(value, digits=3) -> str:
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return "-"


def print_table(rows: list[dict], settings: dict[bool, list[Setting]], echo) -> None:
    echo("== every run (figures exactly as results.csv holds them; verbose = ONEDNN_VERBOSE=1 "
         "round)")
    head = ["mode", "setting", "run", "accuracy", "precision_macro", "f1_macro", "train_loss",
            "train_s", "steady_s", "first_step_s", "wall_s"]
    table = [head]
    for row in rows:
        table.append([_mode(row["deterministic"]), row["setting"],
                      row["tag"].rsplit("-", 1)[-1] + (" (verbose)" if row["verbose"] else ""),
                      *(row.get(n, "-") or "-" for n in FIGURES),
                      _f(row.get("train_time_s"), 2), _f(row.get("steady_train_time_s"), 2),
                      _f(row.get("first_step_s"), 2), _f(row["wall_s"], 1)])
    _print_grid(table, echo)
    for row in rows:
        if row.get("error") or row.get("rc") != 0:
            echo(f"  FAILED {row['tag']}: rc={row['rc']} {row.get('error', '')}\n"
                 f"{row.get('log_tail', '')}")
    if any(r["sources_moved"] for r in rows) or len({r["sources"] for r in rows}) > 1:
        echo("  NOTE: the harness's sources changed during the measurement: "
             + ", ".join(f"{r['tag']}={r['sources']}" for r in rows))

    echo("\n== per setting: bit-identical across its runs? train time vs the unset default of "
         "the same mode (first-round, non-verbose run; mean of all runs in brackets)")
    table = [["mode", "setting", "runs", "bit-identical", "train_s", "x unset", "steady_s",
              "x unset", "first_step_s", "x unset"]]
    by_key: dict[tuple[bool, str], list[dict]] = {}
    for row in rows:
        by_key.setdefault((row["deterministic"], row["setting"]), []).append(row)

    def clean_time(group, name):
        first = [r for r in group if not r["verbose"] and r.get(name)]
        pick = first or [r for r in group if r.get(name)]
        return float(pick[0][name]) if pick else None

    def mean_time(group, name):
        values = [float(r[name]) for r in group if r.get(name)]
        return sum(values) / len(values) if values else None

    for det, group_settings in settings.items():
        base = by_key.get((det, "unset"))
        for setting in group_settings:
            group = by_key.get((det, setting.label), [])
            figs = [_figures(r) for r in group]
            identical = ("n/a (1 run)" if len(figs) < 2 else
                         "FAILED" if None in figs else
                         "yes" if len(set(figs)) == 1 else "NO")
            cells = [_mode(det), setting.label, str(len(group)), identical]
            for name in TIMES:
                value, mean = clean_time(group, name), mean_time(group, name)
                ref = clean_time(base, name) if base else None
                cells.append("-" if value is None else f"{value:.2f} [{mean:.2f}]")
                cells.append("-" if value is None or not ref else f"{value / ref:.2f}")
            table.append(cells)
    _print_grid(table, echo)

    echo("\n== settings whose figures are identical to each other (every run of each setting "
         "agrees; both modes)")
    groups: dict[tuple, list[str]] = {}
    for (det, label), group in by_key.items():
        figs = {_figures(r) for r in group}
        if len(figs) == 1 and None not in figs:
            groups.setdefault(next(iter(figs)), []).append(f"{_mode(det)}:{label}")
        else:
            echo(f"  {_mode(det)}:{label}: its own runs differ or failed; left out")
    for n, (figs, members) in enumerate(groups.items(), 1):
        echo(f"  group {n}: {' | '.join(members)}")
        echo("           " + ", ".join(f"{k}={v}" for k, v in zip(FIGURES, figs)))

    echo("\n== what ONEDNN_VERBOSE=1 showed (verbose round)")
    for row in rows:
        if row.get("onednn"):
            _print_onednn(f"{_mode(row['deterministic'])}:{row['setting']}", row["onednn"],
                          echo)


def _print_onednn(name: str, info: dict, echo) -> None:
    kernels = info.get("kernels") or {}
    total = sum(kernels.values())
    echo(f"  {name}: isa={info.get('isa')} nthr={info.get('nthr')} primitive execs={total}")
    if kernels:
        text = ", ".join(f"{k} x{v}" for k, v in kernels.items())
        echo("      " + text)


def _print_grid(table: list[list[str]], echo) -> None:
    widths = [max(len(str(r[i])) for r in table) for i in range(len(table[0]))]
    for r in table:
        echo("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def host_lines() -> list[str]:
    model, flags = platform.processor() or platform.machine(), ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.*)$", info, re.M).group(1)
        flags = re.search(r"^flags\s*:\s*(.*)$", info, re.M).group(1).split()
    except (OSError, AttributeError):
        pass
    isa = [f for f in flags if re.match(r"(sse4|avx|fma|amx)", f)]
    from importlib import metadata
    try:
        tfv = metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        tfv = "not installed"
    return [f"host: {model}, {os.cpu_count()} CPUs, ISA flags: {' '.join(isa)}",
            f"python {platform.python_version()}, tensorflow {tfv}"]


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--det", default=DEFAULT_SETTINGS,
                        help=f"settings run with --deterministic (default {DEFAULT_SETTINGS})")
    parser.add_argument("--plain", default=DEFAULT_SETTINGS,
                        help="settings run without --deterministic (default: the same; '' for "
                             "none)")
    parser.add_argument("--probe", default="",
                        help="run only the short Keras probe under these settings")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting (default 2)")
    parser.add_argument("--no-verbose", action="store_true",
                        help="do not run the last round with ONEDNN_VERBOSE=1")
    parser.add_argument("-k", default=DEFAULT_K, help="pytest -k selecting one case")
    parser.add_argument("--scale", default="smoke")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="CIFAR-10 JPEG folders")
    parser.add_argument("--cache-dir", default=None,
                        help="RESNET_HARNESS_CACHE_DIR for every run (default: a temp folder)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per subprocess")
    parser.add_argument("--keep", action="store_true", help="keep report folders and logs")
    parser.add_argument("--out", type=Path, default=None, help="also write the output here")
    parser.add_argument("--snapshot-head", action="store_true",
                        help="run the children from a copy of git HEAD, not the working tree")
    args = parser.parse_args(argv)

    lines: list[str] = []

    def echo(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    work = Path(tempfile.mkdtemp(prefix="isa-determinism-"))
    own_cache = args.cache_dir is None
    if own_cache:
        args.cache_dir = str(work / "cache")
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    echo(f"bench/isa_determinism.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    echo(f"started {started}; " + "; ".join(host_lines()))
    echo(f"work folder {work}" + (" (kept)" if args.keep else ""))
    args.code = ROOT
    try:
        if args.snapshot_head:
            args.code = work / "code"
            args.code.mkdir()
            head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                  capture_output=True, text=True, check=True).stdout.strip()
            archive = subprocess.Popen(["git", "archive", "HEAD"], cwd=ROOT,
                                       stdout=subprocess.PIPE)
            subprocess.run(["tar", "-x", "-C", str(args.code)], stdin=archive.stdout,
                           check=True)
            if archive.wait() != 0:
                raise SystemExit("git archive HEAD failed")
            echo(f"code: a copy of git HEAD {head} in {args.code}")
        else:
            echo(f"code: the working tree {ROOT}")
        where = subprocess.run([sys.executable, "-c", "import resnet_harness.plugin.cases as m; "
                                "print(m.__file__)"], cwd=args.code,
                               capture_output=True, text=True).stdout.strip()
        if not where.startswith(str(args.code)):
            echo(f"children would import resnet_harness from {where!r}, not {args.code}")
            return 2
        echo(f"sources hash {source_hash(args.code)}")
        if args.probe:
            echo("\n== probe: ResNet50 32x32, 2 Adam steps on a fixed batch, op determinism; "
                 "digest of the weights after them")
            rows = [run_probe(args, s, work, f"probe{i}")
                    for i, s in enumerate(parse_settings(args.probe))]
            table = [["setting", "rc", "loss step 1", "loss step 2", "weights digest", "s"]]
            for r in rows:
                losses = r.get("losses") or ["-", "-"]
                table.append([r["setting"], str(r["rc"]), losses[0], losses[1],
                              r.get("digest", "-"), _f(r["wall_s"], 1)])
            _print_grid(table, echo)
            digests: dict[str, list[str]] = {}
            for r in rows:
                digests.setdefault(r.get("digest", "failed"), []).append(r["setting"])
            for digest, members in digests.items():
                echo(f"  digest {digest}: {' | '.join(members)}")
            for r in rows:
                _print_onednn(r["setting"], r["onednn"], echo)
        else:
            settings = {True: parse_settings(args.det), False: parse_settings(args.plain)}
            for det in settings:  # ratios are taken against the unset default of each mode
                if settings[det] and "unset" not in [s.label for s in settings[det]]:
                    settings[det].insert(0, Setting("unset"))
            # Check that -k selects exactly one case before spending the time.
            probe = subprocess.run([sys.executable, "-m", "pytest", "experiments", "-k", args.k,
                                    "--scale", args.scale, "--collect-only", "-q", "-p",
                                    "no:cacheprovider"], cwd=args.code, capture_output=True,
                                   text=True)
            selected = [l for l in probe.stdout.splitlines() if "::" in l]
            echo(f"case: {selected}")
            if len(selected) != 1:
                echo(f"-k {args.k!r} selects {len(selected)} cases, expected 1")
                return 2
            plan = [(det, s) for det, group in settings.items() for s in group]
            rows = []
            for round_ in range(1, args.repeats + 1):
                verbose = round_ == args.repeats and args.repeats > 1 and not args.no_verbose
                for det, setting in plan:
                    tag = f"{_mode(det)}-{len(rows)}-{round_}"
                    row = run_case(args, setting, det, verbose, work, tag)
                    rows.append(row)
                    status = row.get("error") or row.get("status")
                    print(f"  [{time.strftime('%H:%M:%S')}] {_mode(det)} {setting.label} "
                          f"run {round_}{' (verbose)' if verbose else ''}: {status}, "
                          f"{row['wall_s']:.0f}s, "
                          + ", ".join(f"{n}={row.get(n, '-')}" for n in FIGURES), flush=True)
            echo("")
            print_table(rows, settings, echo)
            raw = ROOT / "bench" / "out" / "isa_determinism.jsonl"
            raw.parent.mkdir(parents=True, exist_ok=True)
            with raw.open("a") as handle:
                handle.write(json.dumps({"started": started, "argv": sys.argv[1:],
                                         "rows": rows}) + "\n")
            echo(f"\nraw rows appended to {raw.relative_to(ROOT)}")
        echo(f"finished {time.strftime('%Y-%m-%d %H:%M:%S')}")
    finally:
        if args.out:
            args.out.write_text("\n".join(lines) + "\n")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
