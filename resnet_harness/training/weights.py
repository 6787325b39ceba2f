"""A cheap check that a local ``--weights PATH`` is a "notop" weights file of its backbone.

Keras only finds out while building the model inside the first case (after the data is loaded),
and a file that loads into the wrong layers is not found out at all. This reads the HDF5 file's
structure (names and shapes, never the data) and compares it with the backbone's, so a wrong
format, a truncated file or another architecture stops the run before anything trains.
ResNet50's layout is written out below (no TensorFlow needed); any other registered backbone's
is read from the backbone itself, built once with random init.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

# What keras.Model.load_weights accepts for an HDF5 weights file (Keras 3 and the legacy format).
SUFFIXES = (".weights.h5", ".h5", ".hdf5")
FIX = ("pass Keras' resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 (or a ResNet50(include_"
       "top=False) model's save_weights file), 'imagenet' or 'none'")


class WeightsError(ValueError):
    """The weights file cannot be used; the message is one line with the fix."""


def resnet50_notop_shapes() -> list[tuple[int, ...]]:
    """Shapes of every weight array of ``keras.applications.ResNet50(include_top=False)``:
    each convolution's kernel and bias, each batch norm's gamma, beta, mean and variance."""
    shapes: list[tuple[int, ...]] = []

    def conv(size: int, cin: int, cout: int) -> None:
        shapes.extend([(size, size, cin, cout), (cout,)] + [(cout,)] * 4)  # conv + its BN

    conv(7, 3, 64)
    channels = 64
    for filters, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            if block == 0:
                conv(1, channels, 4 * filters)  # the projection shortcut
            conv(1, channels, filters)
            conv(3, filters, filters)
            conv(1, filters, 4 * filters)
            channels = 4 * filters
    return shapes


def backbone_shapes(backbone: str) -> list[tuple[int, ...]]:
    """Shapes of every weight array of the registered ``backbone`` (random init, 32x32x3):
    ResNet50's from :func:`resnet50_notop_shapes`, any other's by building it."""
    if backbone == "resnet50":
        return resnet50_notop_shapes()
    from resnet_harness.training.backbones import BACKBONES

    model = BACKBONES[backbone]("none")
    return [tuple(int(d) for d in weight.shape) for weight in model.weights]


def backbone_layers(backbone: str) -> int:
    """How many layers of the registered ``backbone`` hold weights (what Keras' legacy reader
    counts): ResNet50's 53 convolutions and their 53 batch norms, any other's by building it."""
    if backbone == "resnet50":
        return 2 * sum(1 for shape in resnet50_notop_shapes() if len(shape) == 4)
    from resnet_harness.training.backbones import BACKBONES

    model = BACKBONES[backbone]("none")
    return sum(1 for layer in model.layers if layer.weights)


def _legacy_layers(group) -> int:
    """Layers with weights in a legacy-layout HDF5 group (its ``layer_names`` that carry
    ``weight_names``)."""
    count = 0
    for name in group.attrs.get("layer_names", []):
        key = name.decode() if isinstance(name, bytes) else str(name)
        if key in group and len(group[key].attrs.get("weight_names", [])):
            count += 1
    return count


def _fix(backbone: str) -> str:
    if backbone == "resnet50":
        return FIX
    return (f"pass a {backbone} notop weights file (Keras' application with include_top=False, "
            f"as {backbone}=PATH), 'imagenet' or 'none'")


def check_weights_file(path: Path | str, backbone: str = "resnet50") -> None:
    """Raise :class:`WeightsError` unless ``path`` holds notop weights of ``backbone`` (a
    registered name) that Keras can load."""
    path = Path(path)
    fix = _fix(backbone)
    name = path.name.lower()
    if not name.endswith(SUFFIXES):
        raise WeightsError(f"weights file {str(path)!r} does not end in {', '.join(SUFFIXES)}, "
                           f"so Keras cannot load it; {fix}")
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            group = handle
            if "layer_names" not in handle.attrs and "model_weights" in handle:
                group = handle["model_weights"]  # a whole legacy model saved with model.save
            # Keras picks its reader by the name: ".weights.h5" is the Keras 3 layout, any
            # other ".h5" the legacy one (a "layer_names" attribute); the other fails to load.
            legacy = "layer_names" in group.attrs
            if name.endswith(".weights.h5") and legacy:
                raise WeightsError(f"weights file {str(path)!r} holds the legacy Keras layout "
                                   "but its name ends in .weights.h5, which Keras reads as the "
                                   "Keras 3 layout; rename it to end in just .h5")
            if not name.endswith(".weights.h5") and not legacy:
                raise WeightsError(f"weights file {str(path)!r} has no 'layer_names' (not the "
                                   "legacy Keras layout that a plain .h5 name asks Keras for); "
                                   "if it was saved by Keras 3, rename it to end in .weights.h5")
            layers = _legacy_layers(group) if legacy else None
            shapes: list[tuple[int, ...]] = []
            group.visititems(lambda _, obj: shapes.append(tuple(obj.shape))
                             if isinstance(obj, h5py.Dataset) else None)
    except OSError as exc:
        # h5py: "Unable to synchronously open file (truncated file: eof = 1000000, ...)".
        inner = re.search(r"\(([^()]*)\)", str(exc))
        reason = (inner.group(1) if inner else str(exc)).strip() or type(exc).__name__
        raise WeightsError(f"weights file {str(path)!r} cannot be read as HDF5 ({reason}); it is "
                           f"truncated or not a Keras weights file; {fix}") from None
    expected = Counter(backbone_shapes(backbone))
    found = Counter(shapes)
    if found == expected and layers is not None and layers != backbone_layers(backbone):
        # Keras' legacy reader matches the file's layers with weights to the model's one by one:
        # the same arrays grouped into other layers fail inside the first case.
        raise WeightsError(
            f"weights file {str(path)!r} groups its {sum(found.values())} weight arrays into "
            f"{layers} layers, {'ResNet50' if backbone == 'resnet50' else backbone} has "
            f"{backbone_layers(backbone)}, so Keras cannot load it; {fix}")
    if found != expected:
        extra = sorted((found - expected).elements())
        missing = sorted((expected - found).elements())
        detail = "; ".join(part for part in (
            f"unexpected shapes {extra[:3]}" if extra else "",
            f"missing shapes {missing[:3]}" if missing else "") if part)
        title = "ResNet50" if backbone == "resnet50" else backbone
        raise WeightsError(
            f"weights file {str(path)!r} is not {title} without its top: {sum(found.values())} "
            f"weight arrays, expected {sum(expected.values())} ({detail}); {fix}")
