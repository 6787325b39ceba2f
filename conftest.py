import os

# pytester runs the plugin end to end in tests/; it must be enabled in the root conftest.
pytest_plugins = ["pytester"]

# The harness's own tests build and train tiny Keras models in this process. The plugin sets
# these only once a session has experiment cases (it stays inert elsewhere), so set them here,
# before any test module imports TensorFlow: oneDNN on, as in experiment runs.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
