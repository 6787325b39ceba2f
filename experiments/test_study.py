"""The study's scenarios as pytest cases: one per row of ``resnet_harness.matrix.CASES``.

Select with ``-k`` on the case id (``pytest experiments -k "cifar and imbalanced"``) or with the
markers ``cifar10``, ``fashion_mnist``, ``table7``, ``table9``, ``table10``, ``balanced`` and
``imbalanced`` (``-m balanced``: "balanced" is also a substring of "imbalanced").
"""

import pytest

from resnet_harness.matrix import CASES
from resnet_harness.plugin import case_param


@pytest.mark.parametrize("case", [case_param(case) for case in CASES])
def test_case(case, harness):
    harness.check(case)
