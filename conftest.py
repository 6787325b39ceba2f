# pytester runs the plugin end to end in tests/; it must be enabled in the root conftest.
pytest_plugins = ["pytester"]
