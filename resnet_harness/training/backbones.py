"""The backbones by name: ``--backbone``, ``Case.backbone`` and ``--weights NAME=PATH`` read this
registry; a study adds its own with :func:`register_backbone`. Builders import Keras when
called, so the registry is cheap to read (the option validators and the run configuration do).
"""

from __future__ import annotations

from typing import Callable

INPUT_SHAPE = (32, 32, 3)


class ModelError(Exception):
    """The model cannot be built as asked; the message is one line with the fix."""


def resnet50_backbone(weights: str, weight_decay: float = 0.0):
    """``keras.applications.ResNet50(include_top=False)`` on 32x32x3 inputs.

    ``weights`` is "imagenet", "none" (random init) or the path of a weights file for the base.
    """
    import keras

    if weight_decay:
        raise ModelError("ResNet50 from keras.applications takes no weight decay here; use "
                         "--backbone resnet32 for the literature recipe")
    try:
        return keras.applications.ResNet50(
            include_top=False, weights=None if weights == "none" else weights,
            input_shape=INPUT_SHAPE)
    except Exception as exc:  # noqa: BLE001 - download and file errors all mean "no weights"
        if weights == "imagenet":
            raise ModelError(
                "cannot load ImageNet weights for ResNet50 (download failed: "
                f"{type(exc).__name__}); use --weights none for random init, or --weights PATH "
                "to a local resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5") from None
        raise ModelError(f"cannot load ResNet50 weights from {weights}: {exc}; pass a ResNet50 "
                         "'notop' weights file, 'imagenet' or 'none'") from None


def tiny_backbone(weights: str, weight_decay: float = 0.0):
    """A two-convolution stand-in for ResNet50 (random init only, one BatchNormalization), for
    fast self-tests of the harness's wiring; never used for the study's figures (a weight decay
    is ignored: it has nothing to regularise that matters)."""
    import keras

    if weights != "none":
        raise ModelError("the tiny backbone has no pretrained weights; use --weights none")
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Conv2D(8, 3, strides=2, name="tiny_conv1")(inputs)
    # One BatchNormalization, like ResNet50's 53, so that self-tests exercise its re-estimation.
    x = keras.layers.BatchNormalization(name="tiny_bn")(x)
    x = keras.layers.ReLU(name="tiny_relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="tiny_conv2")(x)
    return keras.Model(inputs, x, name="tiny_backbone")


# Backbones by name (``--backbone``, ``Case.backbone``); a study adds its own with
# :func:`register_backbone` instead of editing this dict.
BACKBONES: dict[str, Callable] = {"resnet50": resnet50_backbone, "tiny": tiny_backbone}


def register_backbone(name: str, builder: Callable) -> Callable:
    """Make ``builder`` the backbone called ``name``, for ``Case.backbone``, ``--backbone`` and
    ``--weights NAME=PATH``; returns ``builder``. Registering a name again replaces it (a
    module imported twice).

    ``builder(weights, weight_decay=0.0)`` returns a ``keras.Model`` from 32x32x3 images in
    [0, 1] to a feature map (the head pools it) or a feature vector; ``weights`` is
    "imagenet", "none" or a weights file's path; it raises :class:`ModelError` (one line, with
    the fix) when it cannot build as asked. A ``--backbone NAME`` given on the command line
    must be registered before options are parsed: the built-in studies' are; a project's own
    study registers them from its root ``conftest.py``.
    """
    if not name or not name.replace("_", "").isalnum() or name != name.lower():
        raise ValueError(f"backbone name {name!r}: use lower-case letters, digits and '_'")
    BACKBONES[name] = builder
    return builder
