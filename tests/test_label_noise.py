"""The proof of a study owning itself: label noise, written as a user would (one module, one
experiments file, no line of the package changed), with a hook that changes the training set
(fixed flipped labels, seeded) and a claim whose check carries its own margin ("costs less than
5 points"). It runs end to end with the tiny backbone on synthetic data: rows, its column, its
comparisons, its claim with its margin in claims.csv, the terminal and the report, and its
section rebuilt by a fresh process from another folder."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from helpers import CONFTEST, FAST

LABEL_NOISE = '''
"""Label noise: does flipping 20% / 40% of the training labels cost accuracy?"""
from dataclasses import dataclass

import numpy as np

from resnet_harness.storage.schema import Field
from resnet_harness.study import Case, Check, Claim, Comparison, Hooks, Study, register


@dataclass(frozen=True)
class NoiseCase(Case):
    study = "label_noise"
    noise: float = 0.0  # share of training labels flipped to another class

    @property
    def base_id(self):
        return f"noise-{self.dataset}-{round(self.noise * 100)}pct"

    @property
    def label(self):
        return f"{round(self.noise * 100)}% noise"

    def config_fields(self, cfg):
        return {"label_noise": self.noise}  # in the row's identity: resume compares it

    def hooks(self):
        return NoiseHooks()


class NoiseHooks(Hooks):
    """Flips ``case.noise`` of the training labels, once per run (the same for every epoch),
    each to another class drawn uniformly; the count flipped goes to the row."""

    flipped = 0

    def on_training_set(self, x_train, y_train, rng):
        n = int(round(self.case.noise * len(y_train)))
        chosen = rng.choice(len(y_train), size=n, replace=False)
        noisy = y_train.copy()
        noisy[chosen] = (y_train[chosen] + rng.integers(1, 10, size=n)) % 10
        self.flipped = n
        return x_train, noisy

    def on_row(self, metrics):
        return {"flipped_labels": self.flipped}


CASES = tuple(NoiseCase(dataset="fashion_mnist", noise=r) for r in (0.0, 0.2, 0.4))
CLEAN, NOISY20, NOISY40 = (c.id for c in CASES)


def section(rows, ctx):
    flipped = sorted(r.get("flipped_labels") for r in rows)
    return f"<p>label-noise section: {len(rows)} rows, flipped {flipped}</p>"


STUDY = register(Study(
    name="label_noise", title="Label noise", cases=CASES,
    comparisons=tuple(Comparison("label-noise", "label_noise", CLEAN, arm, ("accuracy",))
                      for arm in (NOISY20, NOISY40)),
    claims=(Claim("noise20-costs-under-5-points", "20% label noise costs less than 5 points",
                  "ours", (Check(CLEAN, NOISY20, "accuracy", "not lower", margin=0.05),)),),
    fields=(Field("flipped_labels", "count", None, "d", doc="training labels flipped"),),
    factor_fields={"label_noise": ("label_noise",)},
    report=section), __name__)
'''

EXPERIMENTS = '''
from label_noise import STUDY
from resnet_harness.plugin import case_params


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", case_params(metafunc.config, STUDY))


def test_label_noise(case, harness):
    harness.check(case)
'''


def test_label_noise_is_one_module_and_one_experiments_file(pytester: pytest.Pytester):
    pytester.makepyfile(label_noise=LABEL_NOISE, test_label_noise=EXPERIMENTS, conftest=CONFTEST)
    result = pytester.runpytest_subprocess(*FAST, "--seeds", "0-1", "--progress", "off")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*noise20-costs-under-5-points*",
                                 "*not lower with margin 0.05: *"])
    run = (pytester.path / "reports" / "latest").resolve()
    frame = pd.read_csv(run / "results.csv").set_index("case_id")
    assert set(frame["study"]) == {"label_noise"} and len(frame) == 6
    # The hook's training set is what trained: its flipped count is in the row, as declared.
    rows = {p.stem: json.loads(p.read_text()) for p in (run / "cases").glob("*.json")}
    for case_id, row in rows.items():
        noise = row["config"]["label_noise"]
        assert row["flipped_labels"] == round(noise * row["train_samples"]), case_id
        assert frame.loc[case_id, "flipped_labels"] == row["flipped_labels"]
        assert "paper" not in row  # a row carries only what its study declares
    comparisons = pd.read_csv(run / "comparisons.csv")
    assert set(comparisons["family"]) == {"label-noise"} and (comparisons["n_seeds"] == 2).all()
    claims = pd.read_csv(run / "claims.csv")
    assert list(claims["claim"]) == ["noise20-costs-under-5-points"]
    assert claims["margins"].iloc[0] == "accuracy: 0.05"
    assert "not lower with margin 0.05" in claims["evidence"].iloc[0]
    page = (run / "report.html").read_text()
    assert "label-noise section: 6 rows" in page
    assert "20% label noise costs less than 5 points" in page
    assert "a claim&#x27;s own margin" in page or "not lower with margin 0.05" in page
    # Rebuilt by a fresh process from another folder: one warning names what to put on the
    # path; with it, the section, the claim and the column come back.
    away = pytester.mkdir("elsewhere")
    (run / "report.html").unlink()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(away)
        lost = pytester.run(sys.executable, "-m", "resnet_harness", "report", str(run),
                            "--out", str(away / "out"))
        patch.setenv("PYTHONPATH", str(pytester.path))
        rebuilt = pytester.run(sys.executable, "-m", "resnet_harness", "report", str(run),
                               "--out", str(away / "again"))
    assert lost.ret == 0
    assert "label_noise" in lost.stderr.str() and "PYTHONPATH" in lost.stderr.str()
    assert "label-noise section" not in (away / "out" / "report.html").read_text()
    assert rebuilt.ret == 0 and "cannot be imported" not in rebuilt.stderr.str()
    page = (away / "again" / "report.html").read_text()
    assert "label-noise section: 6 rows" in page and "noise20-costs-under-5-points" not in \
        rebuilt.stderr.str()


# -- the hook itself, on tiny arrays -----------------------------------------------------------

def _cfg(case, seed=0):
    from resnet_harness.training.config import CaseConfig

    return CaseConfig(case=case, scale="smoke", seed=seed, epochs=1, weights="none",
                      max_train_samples=None, max_test_samples=None, imbalance=None,
                      augment=False, hflip=False)


def test_the_training_set_hook_sees_read_only_data_and_its_changes_train(tmp_path):
    from resnet_harness.study import Case, Hooks
    from resnet_harness.training.data.sources import DataError
    from resnet_harness.training.data.variants import training_set

    seen = SimpleNamespace(writeable=None, calls=0)

    class Flip(Hooks):
        def on_training_set(self, x, y, rng):
            seen.writeable, seen.calls = (x.flags.writeable, y.flags.writeable), seen.calls + 1
            return x, (y + 1) % 10

    class Shrink(Hooks):
        def on_training_set(self, x, y, rng):
            return x[:-1], y[:-1]

    class FlipCase(Case):
        @property
        def base_id(self):
            return "flip"

        def hooks(self):
            return Flip()

    class ShrinkCase(FlipCase):
        def hooks(self):
            return Shrink()

    x, y = np.zeros((20, 4, 4, 3), np.uint8), np.repeat(np.arange(10), 2)
    cfg = _cfg(FlipCase(dataset="cifar10"))
    x_new, y_new = training_set(cfg, x, y)
    assert seen.writeable == (False, False) and seen.calls == 1
    assert y_new.tolist() == ((y + 1) % 10).tolist() and y.tolist() == np.repeat(
        np.arange(10), 2).tolist()  # the shared arrays are untouched
    assert cfg.hooks.train_counts == [2] * 10  # as selected, by true label
    assert cfg.hooks is cfg.hooks  # one object per case run
    with pytest.raises(DataError, match="may change pixels and labels, not their number"):
        training_set(_cfg(ShrinkCase(dataset="cifar10")), x, y)


def test_a_hooks_object_serves_one_case_run():
    from resnet_harness.study import Case, Hooks

    shared = Hooks()

    class Shared(Case):
        @property
        def base_id(self):
            return "shared"

        def hooks(self):
            return shared

    _cfg(Shared(dataset="cifar10")).hooks
    with pytest.raises(RuntimeError, match="must return a new object on each call"):
        _cfg(Shared(dataset="cifar10"), seed=1).hooks
