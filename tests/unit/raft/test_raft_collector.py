"""The garbage collector relief of a member: frozen every so many applied entries, thawed now and then."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from shoal.plugins.raft.collector import CollectorRelief


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_objects_alive_after_enough_entries_leave_the_collectors_passes(thawed: None) -> None:
    relief = CollectorRelief(freeze_every=10, unfreeze_every=3)
    kept = [[n] for n in range(1000)]  # long-lived containers, like a store's objects
    relief.applied(9)
    assert gc.get_freeze_count() == 0
    relief.applied(1)
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept)
    relief.applied(25)  # one freeze per call at most: the count starts again
    assert relief.freezes == 2
    relief.applied(10)  # every third freeze gives everything back to the collector
    assert relief.freezes == 3 and gc.get_freeze_count() == 0
    del kept


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        CollectorRelief(freeze_every=0)
