"""Training: run configuration, data, model, the runner that trains and evaluates one case.
Knows nothing of pytest, of the analysis or of any particular study: a case brings its own
hooks (see :mod:`resnet_harness.study`)."""
