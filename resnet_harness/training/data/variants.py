"""The study's data variants: subsets per scale, pooled re-splits, and the imbalanced training set.

Everything works on index arrays into the raw data and copies the selected images once, at the
end, so the full data set is never duplicated. Images stay uint8 at their native size; resizing,
scaling and augmentation happen per batch in ``pipeline``.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import Any

import numpy as np

from resnet_harness.training.data.sources import NUM_CLASSES, DataError, RawData

# A ``training.config.CaseConfig`` and its ``Imbalance``, named without importing them: the
# configuration sits above the data package and imports it.
CaseConfig = Imbalance = Any

# Training images per class in the full data sets, which scale-free readings of absolute counts
# (Table 2's "4,950 kept", Table 4's "5000 removed") are taken relative to.
FULL_TRAIN_PER_CLASS = {"cifar10": 5000, "fashion_mnist": 6000}


@dataclass
class Variant:
    """The train and test sets one case trains and evaluates on."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    counts_before_imbalance: list[int]
    reduced_classes: tuple[int, ...]
    removal_fraction: float  # of each reduced class (0.0 for balanced variants)
    source: str
    x_val: np.ndarray | None = None  # --validation-split: held out of the training set
    y_val: np.ndarray | None = None
    # Indices of the training and test images into the data set (train, then test, as if
    # concatenated): what two variants have in common (common random numbers, paired tests).
    train_index: np.ndarray | None = None
    test_index: np.ndarray | None = None
    # Images per class as selected, by their true labels, when a study's on_training_set hook
    # relabelled some (label noise): what the variant's spec and the bounds govern.
    selected_counts: list[int] | None = None

    @property
    def validation_counts(self) -> list[int] | None:
        if self.y_val is None:
            return None
        return np.bincount(self.y_val, minlength=NUM_CLASSES).tolist()

    @property
    def train_counts(self) -> list[int]:
        """Training images per class as the variant selected them (true labels)."""
        if self.selected_counts is not None:
            return list(self.selected_counts)
        return np.bincount(self.y_train, minlength=NUM_CLASSES).tolist()

    @property
    def test_counts(self) -> list[int]:
        return np.bincount(self.y_test, minlength=NUM_CLASSES).tolist()


def removal_fraction(imbalance: Imbalance, dataset: str) -> float:
    """The share of each reduced class's training samples that a reading removes."""
    full = FULL_TRAIN_PER_CLASS[dataset]
    if not imbalance.classes:
        return 0.0  # nothing is reduced (check_imbalance refuses it), nothing to divide by
    if imbalance.remove_fraction is not None:
        return imbalance.remove_fraction
    if imbalance.remove_total is not None:
        return min(1.0, imbalance.remove_total / len(imbalance.classes) / full)
    keep = (imbalance.keep_per_class or {})[dataset]
    return max(0.0, 1.0 - keep / full)


def expected_train_counts(before: list[int], classes: tuple[int, ...],
                          fraction: float) -> list[int]:
    """Per-class training counts an imbalanced variant must have, from the counts before."""
    return [n - int(round(n * fraction)) if c in classes else n for c, n in enumerate(before)]


def stratified_split(y: np.ndarray, n_first: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of ``y`` into ``n_first`` and the rest, each class in proportion.

    Each class gets ``floor(n_first * share)`` places and the remaining places go to the classes
    with the largest fractional parts (ties to the lower class), so the split is exact for any
    ``n_first`` (scikit-learn's stratified splitter refuses parts smaller than the class count).
    """
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    exact = n_first * counts / len(y)
    quota = np.floor(exact).astype(np.int64)
    order = np.lexsort((classes, -(exact - quota)))
    quota[order[: n_first - quota.sum()]] += 1
    rng = np.random.default_rng([seed, 2])
    first = [rng.choice(np.flatnonzero(y == c), size=q, replace=False)
             for c, q in zip(classes, quota)]
    first_idx = np.sort(np.concatenate(first)) if first else np.empty(0, np.int64)
    return first_idx, np.setdiff1d(np.arange(len(y)), first_idx)


def stratified_subset(y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Indices of a class-stratified random subset of ``n`` samples (all, sorted, when ``n`` is
    None or not smaller than ``len(y)``)."""
    if n is None or n >= len(y):
        return np.arange(len(y))
    return stratified_split(y, n, seed)[0]


def pool_cap(split: float, max_train: int | None, max_test: int | None) -> int | None:
    """How many pooled samples a split case draws so that its caps hold: the sum of both caps, or
    the one given cap divided by its share."""
    if max_train and max_test:
        return max_train + max_test
    if max_train:
        return int(round(max_train / split))
    if max_test:
        return int(round(max_test / (1 - split)))
    return None


def _split_indices(raw: RawData, cfg: CaseConfig) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test indices into train+test pooled (test indices offset by the train
    size), before any imbalance."""
    case, seed = cfg.case, cfg.seed
    n_train = len(raw.y_train)
    if case.split is not None:
        y_pool = np.concatenate([raw.y_train, raw.y_test])
        pool = stratified_subset(
            y_pool, cfg.max_pool_samples
            or pool_cap(case.split, cfg.max_train_samples, cfg.max_test_samples), seed)
        first, second = stratified_split(y_pool[pool], int(round(case.split * len(pool))), seed)
        train_idx, test_idx = pool[first], pool[second]
    else:
        train_idx = stratified_subset(raw.y_train, cfg.max_train_samples, seed)
        test_idx = stratified_subset(raw.y_test, cfg.max_test_samples, seed) + n_train
    return np.sort(train_idx), np.sort(test_idx)


def check_imbalance(before: list[int], classes: tuple[int, ...], fraction: float,
                    cfg: CaseConfig) -> None:
    """Refuse an imbalance that leaves the "imbalanced" case balanced or drops a class: one that
    reduces no class (no class named, nothing removed), reduces every class alike, removes a
    share that the capped counts round to no image, or removes every image of a class.
    """
    if not classes or fraction <= 0:
        what = "names no class" if not classes else f"removes {fraction:g} of each class"
        raise DataError(f"{cfg.case.id} asks for an imbalanced training set but its imbalance "
                        f"reading {cfg.imbalance.reading if cfg.imbalance else '?'} {what}, so "
                        "it would train on balanced data; name at least one class with "
                        "--imbalance-classes (e.g. 0,1,2) and remove a positive share "
                        "(--imbalance-fraction)")
    if set(range(NUM_CLASSES)) <= set(classes):
        raise DataError(f"{cfg.case.id}: --imbalance-classes names every class "
                        f"({','.join(map(str, classes))}), so removing {fraction:.0%} of each "
                        "leaves the imbalanced case's training set balanced, only smaller; "
                        "name fewer classes (the paper reduces 0,1,2)")
    removed = [int(round(before[c] * fraction)) for c in classes]
    smallest = min(before[c] for c in classes)
    if min(removed) >= 1 and all(r < before[c] for r, c in zip(removed, classes)):
        return
    where = (f"{cfg.case.id}: the sample caps leave {smallest} training images in a reduced "
             f"class ({', '.join(map(str, classes))}) and removing {fraction:.0%} of them")
    if min(removed) < 1:
        need = int(0.5 / fraction) + 1  # the fewest images per class with round(n * f) >= 1
        fixes = [f"--imbalance-fraction above {0.5 / smallest:.3g}"] if smallest else []
        if need * NUM_CLASSES <= FULL_TRAIN_PER_CLASS[cfg.case.dataset] * NUM_CLASSES:
            fixes.insert(0, f"--max-train-samples to at least {need * NUM_CLASSES}")
        raise DataError(f"{where} removes no image, so the imbalanced case would be balanced; "
                        f"raise {' or '.join(fixes)}")
    raise DataError(f"{where} removes every image, so the class would be missing, not reduced; "
                    "lower --imbalance-fraction or choose another --imbalance reading")


def check_coverage(y_train: np.ndarray, y_test: np.ndarray, cfg: CaseConfig) -> None:
    """Refuse caps (or a split of capped data) that leave a class with no train or test image:
    the model could not learn it, or macro metrics and ROC-AUC would be undefined."""
    for part, y, option in (("training", y_train, "--max-train-samples"),
                            ("test", y_test, "--max-test-samples")):
        missing = [c for c, n in enumerate(np.bincount(y, minlength=NUM_CLASSES)) if n == 0]
        if missing:
            raise DataError(
                f"{cfg.case.id}: the sample caps leave no {part} image of class "
                f"{', '.join(map(str, missing))} ({len(y)} {part} images for {NUM_CLASSES} "
                f"classes); raise {option}"
                + (" (a split case divides train + test caps by its ratio)"
                   if cfg.case.split is not None else ""))


def check_variant(raw: RawData, cfg: CaseConfig) -> None:
    """The checks of :func:`make_variant` on labels only (no image is copied), so that a case
    whose variant cannot be made is refused before anything trains."""
    train_idx, test_idx = _split_indices(raw, cfg)
    y_pool = np.concatenate([raw.y_train, raw.y_test])
    y_train = y_pool[train_idx]
    check_coverage(y_train, y_pool[test_idx], cfg)
    if cfg.imbalance is not None:
        fraction = removal_fraction(cfg.imbalance, cfg.case.dataset)
        counts = np.bincount(y_train, minlength=NUM_CLASSES)
        check_imbalance(counts.tolist(), cfg.imbalance.classes, fraction, cfg)
        # What (2) removes, by count (which images does not matter to the checks below).
        keep = np.ones(len(y_train), bool)
        for c in cfg.imbalance.classes:
            members = np.flatnonzero(y_train == c)
            keep[members[:int(round(len(members) * fraction))]] = False
        train_idx, y_train = train_idx[keep], y_train[keep]
    selected = cfg.hooks.on_select_training(train_idx, y_train)
    if selected is not None:
        train_idx = selected[0]
        y_train = y_pool[train_idx]
    if cfg.validation_split:
        hold_out(y_train, cfg)


def hold_out(y_train: np.ndarray, cfg: CaseConfig) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``y_train`` of the validation part (``cfg.validation_split`` of it,
    stratified, seeded) and of what stays for training: every class keeps at least one image
    for training (a long tail's smallest classes may have none in validation). A
    :class:`DataError` when the validation part would be empty."""
    first, rest = _hold_out(y_train, int(round(cfg.validation_split * len(y_train))),
                            cfg.seed + 7)
    if len(first) == 0:
        # Keras then stops the first epoch with "Your input ran out of data" (an empty
        # validation set), after the data is loaded and the model built.
        n = len(y_train)
        enough = next((held for held in range(1, n + 1)
                       if len(_hold_out(y_train, held, cfg.seed + 7)[0])), None)
        fix = (f"use a share of at least {enough / n:.2g}" if enough else
               "every class has a single training image, which stays in training; use")
        raise DataError(
            f"{cfg.case.id}: validation split {cfg.validation_split:g} of its {n} training "
            f"images holds out no image for validation; {fix}"
            f"{', or' if enough else ''} more training images (--max-train-samples)")
    return first, rest


def _hold_out(y_train: np.ndarray, held: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    first, rest = stratified_split(y_train, held, seed)
    # A class's last training image stays in training (a long tail's smallest classes).
    for c in np.unique(y_train):
        if not np.any(y_train[rest] == c):
            back = first[y_train[first] == c][:1]
            first, rest = np.setdiff1d(first, back), np.sort(np.concatenate([rest, back]))
    return first, rest


def make_variant(raw: RawData, cfg: CaseConfig) -> Variant:
    """Build the variant of ``cfg.case`` from ``raw`` at ``cfg``'s scale.

    Order: (1) pool train+test and re-split when the case has a split, the pool first capped at
    ``pool_cap`` so the split keeps its meaning at small scales;
    otherwise cap train and test separately; (2) remove the imbalanced classes' samples from the
    training set only (or keep what the case's ``on_select_training`` hook selects); (3) under
    ``--validation-split`` hold out a stratified share of that training set for validation;
    (4) hand the training part to the case's ``on_training_set`` hook (label noise, say).
    Every random choice is seeded by ``cfg.seed``.
    """
    case, seed = cfg.case, cfg.seed
    take = _pooled_taker(raw, len(raw.y_train))
    train_idx, test_idx = _split_indices(raw, cfg)
    y_train = take(train_idx, labels=True)
    check_coverage(y_train, take(test_idx, labels=True), cfg)
    before = np.bincount(y_train, minlength=NUM_CLASSES).tolist()
    classes, fraction = (), 0.0
    if cfg.imbalance is not None:
        classes = cfg.imbalance.classes
        fraction = removal_fraction(cfg.imbalance, case.dataset)
        check_imbalance(before, classes, fraction, cfg)
        rng = np.random.default_rng([seed, 1])
        drop = []
        for c in classes:
            members = train_idx[y_train == c]
            count = int(round(len(members) * fraction))
            drop.append(rng.choice(members, size=count, replace=False))
        train_idx = np.setdiff1d(train_idx, np.concatenate(drop) if drop else [])
        y_train = take(train_idx, labels=True)
    selected = cfg.hooks.on_select_training(train_idx, y_train)
    if selected is not None:  # the case's study keeps its own training subset (a profile)
        train_idx, classes = selected
        y_train = take(train_idx, labels=True)
    val_idx = None
    if cfg.validation_split:
        # (3) hold out a stratified share of what the recipe left: never the test set.
        first, rest = hold_out(y_train, cfg)
        train_idx, val_idx = train_idx[rest], train_idx[first]
        y_train = take(train_idx, labels=True)
    selected = np.bincount(y_train, minlength=NUM_CLASSES).tolist()
    x_train, y_train = training_set(cfg, take(train_idx), y_train)
    return Variant(x_train, y_train, take(test_idx), take(test_idx, labels=True),
                   before, tuple(classes), fraction, raw.source,
                   x_val=None if val_idx is None else take(val_idx),
                   y_val=None if val_idx is None else take(val_idx, labels=True),
                   train_index=np.asarray(train_idx, np.int64),
                   test_index=np.asarray(test_idx, np.int64), selected_counts=selected)


def training_set(cfg: CaseConfig, x_train: np.ndarray, y_train: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(4) The case's ``on_training_set`` hook: the images and labels the model trains on,
    from read-only views of the chosen ones, with a generator seeded by the case's seed. A hook
    that changes the number of images or their shape is refused (the row's counts and the
    bounds would not describe what trained). ``hooks.train_counts`` are the selected images
    per class by their true labels: what the bounds check; a study reports what its hook
    changed in a row field of its own."""
    hooks = cfg.hooks
    hooks.train_counts = np.bincount(y_train, minlength=NUM_CLASSES).tolist()
    views = [x_train.view(), y_train.view()]
    for view in views:
        view.flags.writeable = False
    x_new, y_new = hooks.on_training_set(*views, np.random.default_rng([cfg.seed, 2]))
    if x_new is views[0] and y_new is views[1]:  # kept as they are (the default)
        return x_train, y_train
    x_new, y_new = np.asarray(x_new), np.asarray(y_new)
    if x_new.shape != x_train.shape or y_new.shape != y_train.shape:
        raise DataError(f"{cfg.case.id}: its study's on_training_set hook returned images "
                        f"{x_new.shape} and labels {y_new.shape} for {x_train.shape} and "
                        f"{y_train.shape}; it may change pixels and labels, not their number")
    if len(y_new) and (y_new.min() < 0 or y_new.max() >= NUM_CLASSES):
        raise DataError(f"{cfg.case.id}: its study's on_training_set hook returned labels "
                        f"outside 0..{NUM_CLASSES - 1}")
    return x_new, y_new.astype(y_train.dtype, copy=False)


def _is_all(index: np.ndarray, n: int) -> bool:
    return len(index) == n and (n == 0 or (index[0] == 0 and bool(np.all(np.diff(index) == 1))))


def _pooled_taker(raw: RawData, n_train: int):
    """Index into train+test as if concatenated, without concatenating the images."""

    def take(index: np.ndarray, labels: bool = False) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        first, second = index[index < n_train], index[index >= n_train] - n_train
        a, b = (raw.y_train, raw.y_test) if labels else (raw.x_train, raw.x_test)
        # The full train (or test) set in order is the raw array itself: no copy of 150 MB.
        if not len(second) and _is_all(first, len(a)):
            return a
        if not len(first) and _is_all(second, len(b)):
            return b
        return np.concatenate([a[first], b[second]])

    return take
