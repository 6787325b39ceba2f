"""The long-tail study's cases: one per case of ``resnet_harness.studies.longtail``.

Select with markers -- ``longtail``, the data set (``cifar10``, ``fashion_mnist``), the profile
(``exp100``, ``exp10``, ``step100``, ``step10``, ``paper``) and the method (``ce``,
``inverse_freq``, ``effective_num``, ``resampling``, ``focal``, ``cb_focal``, ``la_loss``,
``posthoc_la``, ``drw``) -- or with ``-k`` on the id, e.g.
``pytest experiments -m longtail -k "cifar10 and exp100"``. ``-k exp10`` also matches
``exp100`` and ``-k focal`` also ``cb_focal``: use ``-m`` for those. The study runs only when
asked for by name (``-m``/``-k`` naming ``longtail``): plain ``pytest experiments`` runs the
paper's matrix alone. ``--seeds`` repeats every case once per seed, as for the paper's.
"""

from resnet_harness.plugin import case_params
from resnet_harness.studies.longtail import STUDY


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", case_params(metafunc.config, STUDY))


def test_longtail(case, harness):
    harness.check(case)
