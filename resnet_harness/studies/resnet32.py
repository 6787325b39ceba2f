"""He et al. (2016)'s CIFAR ResNet-32, as the LDAM-DRW reference code builds it.

The reference is ``resnet32()`` in kaidic/LDAM-DRW ``models/resnet_cifar.py``
(``ResNet_s(BasicBlock, [5, 5, 5])``): a 3x3 convolution with 16 filters, three stages of five
basic blocks with 16, 32 and 64 filters (stride 2 in the first block of the last two),
option-A shortcuts, and global average pooling to 64 features. With a ``Dense(10)`` head it has
464,154 trainable parameters, the reference's "0.46M".

Where Keras' defaults differ from PyTorch's, the PyTorch values are used: kernels drawn from an
untruncated He normal (``kaiming_normal_``), BatchNorm momentum 0.9 and epsilon 1e-5, and stride-2
convolutions padded by one pixel on every side.
"""

from __future__ import annotations

import keras
from keras import ops

from resnet_harness.training.backbones import ModelError

INPUT_SHAPE = (32, 32, 3)
STAGES = ((16, 1), (32, 2), (64, 2))  # (filters, stride of the stage's first block)
BLOCKS_PER_STAGE = 5
# PyTorch's BatchNorm2d defaults: running = 0.9 * running + 0.1 * batch statistic.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="resnet_harness")
class ShortcutA(keras.layers.Layer):
    """The option-A shortcut of a block that halves the resolution and doubles the channels:
    ``x[:, ::2, ::2, :]`` with ``pad`` zero channels added before and after the input's (the
    reference's ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))``).

    It has no weights, so a model using it keeps the reference's parameter count.
    """

    def __init__(self, pad: int, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, inputs):
        return ops.pad(inputs[:, ::2, ::2, :],
                       [[0, 0], [0, 0], [0, 0], [self.pad, self.pad]])

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        half = (lambda n: None if n is None else (n + 1) // 2)
        return (batch, half(height), half(width),
                None if channels is None else channels + 2 * self.pad)

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


def _he_normal():
    # kaiming_normal_ draws from an untruncated normal; keras' HeNormal truncates at two standard
    # deviations. A fresh instance per layer: one instance with a fixed seed repeats its draws.
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_in",
                                              distribution="untruncated_normal")


def _conv(x, filters: int, stride: int, name: str, regularizer):
    padding = "same"
    if stride != 1:
        # PyTorch pads one pixel on every side, so a stride-2 window centres on the even pixels
        # that ShortcutA keeps; Keras' "same" pads only after, centring on the odd ones.
        x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(filters, 3, strides=stride, padding=padding, use_bias=False,
                               kernel_initializer=_he_normal(), kernel_regularizer=regularizer,
                               name=name)(x)


def _batch_norm(x, name: str, regularizer):
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                           gamma_regularizer=regularizer,
                                           beta_regularizer=regularizer, name=name)(x)


def _basic_block(x, filters: int, stride: int, name: str, regularizer):
    out = _conv(x, filters, stride, f"{name}_conv1", regularizer)
    out = _batch_norm(out, f"{name}_bn1", regularizer)
    out = keras.layers.ReLU(name=f"{name}_relu1")(out)
    out = _conv(out, filters, 1, f"{name}_conv2", regularizer)
    out = _batch_norm(out, f"{name}_bn2", regularizer)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = ShortcutA(filters // 4, name=f"{name}_shortcut")(x)
    out = keras.layers.Add(name=f"{name}_add")([out, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(out)


def resnet32_backbone(weights: str, weight_decay: float = 0.0):
    """CIFAR ResNet-32 from a 32x32x3 input named "image" to 64 pooled features per image.

    The output is already globally average-pooled, shape ``(batch, 64)``; the caller adds the
    classifier. ``weights`` must be "none" (random init): there are no pretrained weights.

    ``weight_decay`` reproduces PyTorch SGD's ``weight_decay``, which adds ``wd * w`` to the
    gradient of every parameter, BatchNorm's gamma and beta included: every convolution kernel,
    gamma and beta carries ``keras.regularizers.L2(weight_decay / 2)``, whose penalty
    ``wd / 2 * sum(w**2)`` has exactly that gradient. At 0 no regularizer is attached. The head's
    weights are the caller's to regularise (the reference decays them too).
    """
    if weights != "none":
        raise ValueError("ResNet-32 has no pretrained weights; pass --weights none")
    if weight_decay < 0:
        raise ValueError(f"weight decay {weight_decay} must be >= 0")
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay > 0 else None

    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = _conv(inputs, STAGES[0][0], 1, "stem_conv", regularizer)
    x = _batch_norm(x, "stem_bn", regularizer)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, (filters, first_stride) in enumerate(STAGES, start=1):
        for block in range(1, BLOCKS_PER_STAGE + 1):
            x = _basic_block(x, filters, first_stride if block == 1 else 1,
                             f"stage{stage}_block{block}", regularizer)
    # Not "pool": the harness's own head names its pooling layer so.
    outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, outputs, name="resnet32_backbone")


def normalized_resnet32(weights: str, weight_decay: float = 0.0):
    """He et al. 2016's CIFAR ResNet-32 as in LDAM-DRW's reference code
    (:func:`resnet32_backbone`), after the reference's per-channel normalisation of CIFAR-10
    (the pipeline gives images in [0, 1]): the backbone the long-tail study registers as
    ``resnet32``."""
    try:
        base = resnet32_backbone(weights, weight_decay=weight_decay)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    inputs = keras.Input(INPUT_SHAPE, name="image")
    # transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)) of LDAM-DRW
    x = keras.layers.Normalization(mean=CIFAR_MEAN, variance=[s * s for s in CIFAR_STD],
                                   name="cifar_normalize")(inputs)
    return keras.Model(inputs, base(x), name="resnet32")


CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
