"""Short pauses of CPython's cyclic garbage collector in a member that holds a large store.

A full collection walks every tracked object, and a store's objects, change history and log
entries are many: with some 50,000 objects each full pass stopped the member for 30-80 ms,
about once per second under heavy writes. So every ``freeze_every`` applied entries a member
moves whatever is alive out of the collector's sight (``gc.freeze``): the state those entries
built is long-lived, and later passes walk only what was allocated since. Frozen objects are
still freed by reference counting; only reference cycles that become garbage while frozen
wait, until every ``unfreeze_every`` freezes the collector gets everything back
(``gc.unfreeze``) and reclaims them in its next full pass.
"""

from __future__ import annotations

import gc


class CollectorRelief:
    """Counts applied entries and freezes the collector's generations every so many."""

    def __init__(self, freeze_every: int = 1000, unfreeze_every: int = 500) -> None:
        if freeze_every < 1 or unfreeze_every < 1:
            raise ValueError("freeze_every and unfreeze_every must be at least 1")
        self.freeze_every = freeze_every
        self.unfreeze_every = unfreeze_every
        self.freezes = 0
        self._applied = 0

    def applied(self, entries: int) -> None:
        """``entries`` more entries were applied."""
        self._applied += entries
        if self._applied >= self.freeze_every:
            self._applied = 0
            self.freeze()

    def freeze(self) -> None:
        self.freezes += 1
        if self.freezes % self.unfreeze_every == 0:
            gc.unfreeze()
        else:
            gc.freeze()
