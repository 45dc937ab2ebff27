"""pytest plugin installed with shoal (entry point ``pytest11``), loaded into every pytest run.

It stays light to import: fixtures only, nothing from trio or the kernel at module level.

To run a conformance suite on your provider, subclass it in a test module and define the
fixtures it asks for, e.g. for the store slot::

    from shoal.testing.store import StoreConformance

    @pytest.fixture
    def store_factory(shoal_tmp_data_root):
        ...  # an async context manager factory opening your store on the same data each time

    class TestMyStore(StoreConformance):
        pass

See ``shoal.testing.store`` for the full example.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

# The suites assert with plain ``assert``; have pytest explain their failures in detail.
pytest.register_assert_rewrite("shoal.testing.store")


@pytest.fixture
def shoal_tmp_data_root(tmp_path: Path) -> Path:
    """An empty data root for one test: what ``/var/lib/shoal`` is to the daemon."""
    root = tmp_path / "shoal-data"
    root.mkdir()
    return root


@pytest.fixture
def store_history() -> int | None:
    """Revisions of changes the store under test keeps for ``watch``: None means all of them.

    A provider's test module overrides this when its store compacts older changes, so that
    the conformance suite checks ``Compacted``.
    """
    return None
