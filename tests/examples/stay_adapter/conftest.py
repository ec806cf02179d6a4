"""The kit's fixtures (a sandbox, an in-memory intake) for this package's tests."""

pytest_plugins = ["kit.testing.pytest_plugin"]
