import os

# The harness's plugin is opt-in: this project loads it here, as a user's project does. pytester
# runs it end to end in tests/; both must be named in the root conftest.
pytest_plugins = ["pytester", "resnet_harness.plugin"]

# The harness's own tests build and train tiny Keras models in this process. The plugin sets
# these only once a session has experiment cases (it stays inert elsewhere), so set them here,
# before any test module imports TensorFlow: oneDNN on, as in experiment runs.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
