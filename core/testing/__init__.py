"""Test support for shoal and for authors of third-party plugins.

- ``shoal.testing.store.StoreConformance``: the conformance suite of the store slot. Every
  store provider (``sqlite``, ``raft``, a third-party one) passes it. To run it on yours,
  subclass it in a test module and define the ``store_factory`` fixture (and
  ``store_history`` if your store keeps a limited history of changes); the module docstring of
  ``shoal.testing.store`` has a complete example. The suite is async and runs under
  pytest-trio (``trio_mode = true``).
- ``shoal.testing.pytest_plugin``: fixtures loaded into every pytest run once shoal is
  installed (``shoal_tmp_data_root``, the default ``store_history``).

Nothing here is imported by ``import shoal``.
"""
