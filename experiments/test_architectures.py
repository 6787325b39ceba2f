"""The architectures study's cases: one per case of ``resnet_harness.studies.architectures``.

Select with markers -- ``architectures``, the data set (``cifar10``, ``fashion_mnist``), the
backbone (``resnet50``, ``mobilenetv2``, ``densenet121``, ``vgg16``, ``efficientnetb0``), the
variant (``balanced``, ``imbalanced``, ``exp100``) and ``early_stopping`` (Table 7 with a
validation set, with and without early stopping) -- or with ``-k`` on the id, e.g.
``pytest experiments -m "architectures and cifar10 and not early_stopping" -k mobilenetv2``.
``-k balanced`` also matches ``imbalanced``: use ``-m balanced`` for that. The study runs only
when asked for by name (``-m``/``-k`` naming ``architectures``): plain ``pytest experiments``
runs the paper's matrix alone. ``--seeds`` repeats every case once per seed, as for the paper's.
"""

from resnet_harness.plugin import case_params
from resnet_harness.studies.architectures import STUDY


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", case_params(metafunc.config, STUDY))


def test_architectures(case, harness):
    harness.check(case)
