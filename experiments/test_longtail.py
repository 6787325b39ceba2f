"""The long-tail study's cases: one per row of ``resnet_harness.longtail.CASES``.

Select with markers -- ``longtail``, the data set (``cifar10``, ``fashion_mnist``), the profile
(``exp100``, ``exp10``, ``step100``, ``step10``, ``paper``) and the method (``ce``,
``inverse_freq``, ``effective_num``, ``resampling``, ``focal``, ``cb_focal``, ``la_loss``,
``posthoc_la``, ``drw``) -- or with ``-k`` on the id, e.g.
``pytest experiments -m longtail -k "cifar10 and exp100"``. ``-k exp10`` also matches
``exp100`` and ``-k focal`` also ``cb_focal``: use ``-m`` for those.
"""

import pytest

from resnet_harness.longtail import CASES
from resnet_harness.plugin import case_param


@pytest.mark.parametrize("case", [case_param(case) for case in CASES])
def test_longtail(case, harness):
    harness.check(case)
