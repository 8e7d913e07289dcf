"""Test-suite-wide setup: the labctl pytest plugin (the `lab` fixture) for our own tests.

Users enable it the same way in their conftest.py, or with `pytest -p labctl.checks.pytest_plugin`.
"""

pytest_plugins = ["labctl.checks.pytest_plugin"]
