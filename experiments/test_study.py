"""The paper's study as pytest cases: one per case of ``resnet_harness.studies.paper``, once per
seed under ``--seeds`` (ids end in ``-seed3``).

Select with ``-k`` on the case id (``pytest experiments -k "cifar and imbalanced"``) or with the
markers ``paper``, ``cifar10``, ``fashion_mnist``, ``table7``, ``table9``, ``table10``,
``balanced`` and ``imbalanced`` (``-m balanced``: "balanced" is also a substring of "imbalanced").
"""

from resnet_harness.plugin import case_params
from resnet_harness.studies.paper import STUDY


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", case_params(metafunc.config, STUDY))


def test_case(case, harness):
    harness.check(case)
