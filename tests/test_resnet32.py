"""The CIFAR ResNet-32 backbone: the reference's architecture, initialisation and weight decay."""

from __future__ import annotations


import numpy as np
import pytest

keras = pytest.importorskip("keras")

from resnet_harness.studies.resnet32 import ShortcutA, resnet32_backbone  # noqa: E402

WD = 5e-4  # any positive value would do (the literature recipe uses 2e-4)


@pytest.fixture(scope="module")
def backbone():
    keras.utils.set_random_seed(0)
    return resnet32_backbone("none")


def with_head(base):
    """The backbone with the caller's head, a Dense(10) on the pooled features."""
    outputs = keras.layers.Dense(10, name="head")(base.output)
    return keras.Model(base.input, outputs)


def layers_of(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def test_pretrained_weights_are_refused():
    with pytest.raises(ValueError, match=r"^ResNet-32 has no pretrained weights; pass "
                                         r"--weights none$"):
        resnet32_backbone("imagenet")


def test_negative_weight_decay_is_refused():
    with pytest.raises(ValueError, match="must be >= 0"):
        resnet32_backbone("none", weight_decay=-1e-4)


def test_parameter_count_is_the_references(backbone):
    conv = (3 * 3 * 3 * 16  # stem
            + 10 * 3 * 3 * 16 * 16  # stage 1: 5 blocks x 2 convs
            + 3 * 3 * 16 * 32 + 9 * 3 * 3 * 32 * 32  # stage 2: the first conv widens
            + 3 * 3 * 32 * 64 + 9 * 3 * 3 * 64 * 64)  # stage 3
    bn_channels = 16 + 10 * 16 + 10 * 32 + 10 * 64
    head = 64 * 10 + 10
    assert (conv, bn_channels, head) == (461_232, 1_136, 650)
    model = with_head(backbone)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    frozen = sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)
    # PyTorch's parameters() count, the reference's "0.46M"; BN's running mean and variance are
    # buffers there and non-trainable weights here.
    assert trainable == conv + 2 * bn_channels + head == 464_154
    assert frozen == 2 * bn_channels == 2_272


def test_output_is_64_pooled_features(backbone):
    assert backbone.input.name == "image"
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype("float32")
    assert tuple(backbone(x, training=False).shape) == (3, 64)
    assert backbone.output_shape == (None, 64)


def test_layer_counts(backbone):
    assert len(layers_of(backbone, keras.layers.Conv2D)) == 31  # 1 + 15 blocks x 2
    assert len(layers_of(backbone, keras.layers.BatchNormalization)) == 31
    assert [layer.name for layer in layers_of(backbone, ShortcutA)] == [
        "stage2_block1_shortcut", "stage3_block1_shortcut"]
    assert all(not conv.use_bias for conv in layers_of(backbone, keras.layers.Conv2D))


def test_batch_norm_uses_pytorch_defaults(backbone):
    for bn in layers_of(backbone, keras.layers.BatchNormalization):
        assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)


def test_shortcut_a_subsamples_and_zero_pads_channels():
    x = np.random.default_rng(1).normal(size=(2, 5, 6, 4)).astype("float32")
    layer = ShortcutA(3)
    expected = np.pad(x[:, ::2, ::2, :], ((0, 0), (0, 0), (0, 0), (3, 3)))
    out = np.asarray(layer(x))
    assert out.shape == (2, 3, 3, 10) == layer.compute_output_shape(x.shape)
    np.testing.assert_array_equal(out, expected)
    assert ShortcutA.from_config(layer.get_config()).pad == 3


def test_stride_two_conv_centres_on_the_pixels_the_shortcut_keeps(backbone):
    # A kernel that copies its centre pixel: PyTorch's padding=1 then yields x[::2, ::2], the
    # pixels option A keeps; Keras' "same" padding would yield x[1::2, 1::2].
    pad = backbone.get_layer("stage2_block1_conv1_pad")
    conv = backbone.get_layer("stage2_block1_conv1")
    kernel = np.zeros((3, 3, 16, 32), "float32")
    kernel[1, 1, np.arange(16), np.arange(16)] = 1.0
    saved = conv.kernel.numpy()
    conv.kernel.assign(kernel)
    try:
        x = np.random.default_rng(2).normal(size=(2, 32, 32, 16)).astype("float32")
        out = np.asarray(keras.Model(pad.input, conv.output)(x))
    finally:
        conv.kernel.assign(saved)
    np.testing.assert_allclose(out, np.pad(x[:, ::2, ::2, :], ((0, 0),) * 3 + ((0, 16),)),
                               atol=1e-6)


def test_kernels_are_untruncated_he_normal_and_distinct(backbone):
    kernel = backbone.get_layer("stage3_block2_conv1").kernel.numpy()
    std = np.sqrt(2 / (3 * 3 * 64))  # kaiming_normal_: gain sqrt(2) over sqrt(fan_in)
    assert kernel.std() == pytest.approx(std, rel=0.03)
    # Keras' HeNormal truncates at 2.27 std; 36,864 untruncated draws pass 3 std ~100 times.
    assert np.abs(kernel).max() > 3 * std
    first = backbone.get_layer("stage1_block1_conv1").kernel.numpy()
    second = backbone.get_layer("stage1_block1_conv2").kernel.numpy()
    assert not np.array_equal(first, second)


def test_no_regularization_without_weight_decay(backbone):
    assert backbone.losses == []


def test_weight_decay_penalises_every_kernel_gamma_and_beta():
    keras.utils.set_random_seed(0)
    model = resnet32_backbone("none", weight_decay=WD)
    rng = np.random.default_rng(3)
    for bn in layers_of(model, keras.layers.BatchNormalization):
        # Off their 1 and 0 init, so that a missing gamma or beta penalty shows.
        bn.gamma.assign(rng.normal(1.0, 0.1, bn.gamma.shape).astype("float32"))
        bn.beta.assign(rng.normal(0.0, 0.1, bn.beta.shape).astype("float32"))
    penalised = ([conv.kernel for conv in layers_of(model, keras.layers.Conv2D)]
                 + [w for bn in layers_of(model, keras.layers.BatchNormalization)
                    for w in (bn.gamma, bn.beta)])
    assert len(model.losses) == len(penalised) == 93
    expected = sum(WD / 2 * np.sum(np.square(w.numpy().astype("float64"))) for w in penalised)
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)


def test_trains_one_sgd_step():
    keras.utils.set_random_seed(0)
    model = with_head(resnet32_backbone("none", weight_decay=WD))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (8, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 8)
    before = model.get_layer("stem_conv").kernel.numpy()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(before, model.get_layer("stem_conv").kernel.numpy())


def test_saved_model_reloads_with_the_same_outputs(backbone, tmp_path):
    path = tmp_path / "resnet32.keras"
    backbone.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(5).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(backbone(x)), atol=1e-6)

