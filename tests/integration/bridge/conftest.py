"""Fixtures of the bridge tests (defined in bridge_support, shared with the test modules)."""

from bridge_support import engine, harness  # noqa: F401  (fixtures)
