pytest_plugins = ["smart_core.testing.pytest_plugin"]
