"""The linearizability checker on hand-made key-value histories."""

from __future__ import annotations

import math

import pytest

from shoal.plugins.raft.linearizability import Operation, RegisterModel, check_kv_history, check_operations


def put(client: int, value: str, call: float, ret: float = math.inf, key: str = "k") -> Operation:
    return Operation(client, key, "put", value, call, ret)


def get(client: int, value: str | None, call: float, ret: float, key: str = "k") -> Operation:
    return Operation(client, key, "get", value, call, ret)


@pytest.mark.parametrize(
    "history",
    [
        [],
        [get(1, None, 0, 1)],
        [put(1, "a", 0, 1), get(2, "a", 2, 3)],
        # Concurrent with the put, a read may see the old or the new value.
        [put(1, "a", 0, 10), get(2, None, 1, 2), get(3, "a", 3, 4)],
        # Two concurrent puts may take effect in either order.
        [put(1, "a", 0, 5), put(2, "b", 0, 5), get(3, "a", 6, 7)],
        [put(1, "a", 0, 5), put(2, "b", 0, 5), get(3, "b", 6, 7)],
        # A put that never answered may have taken effect...
        [put(1, "a", 0, 1), put(2, "b", 2), get(3, "b", 5, 6)],
        # ... or not.
        [put(1, "a", 0, 1), put(2, "b", 2), get(3, "a", 5, 6)],
        # Operations touching at an instant count as concurrent.
        [put(1, "a", 0, 5), get(2, None, 5, 6)],
    ],
)
def test_linearizable_histories_pass(history: list[Operation]) -> None:
    assert check_kv_history(history).ok


@pytest.mark.parametrize(
    "history",
    [
        # A read after a completed write misses it.
        [put(1, "a", 0, 1), get(2, None, 2, 3)],
        # A read sees a value nobody wrote.
        [get(1, "ghost", 0, 1)],
        # Stale read: b overwrote a before the read began.
        [put(1, "a", 0, 1), put(2, "b", 2, 3), get(3, "a", 4, 5)],
        # Two sequential reads see the writes in opposite orders.
        [put(1, "a", 0, 10), put(2, "b", 0, 10), get(3, "a", 1, 2), get(3, "b", 3, 4), get(4, "a", 5, 6)],
        # A value comes back after the newer one was read.
        [put(1, "a", 0, 1), put(2, "b", 2, 20), get(3, "b", 3, 4), get(4, "a", 5, 6)],
    ],
)
def test_non_linearizable_histories_fail(history: list[Operation]) -> None:
    result = check_kv_history(history)
    assert not result.ok
    assert "key 'k' is not linearizable" in result.reason


def test_keys_are_checked_independently() -> None:
    history = [put(1, "a", 0, 1, key="x"), get(2, None, 2, 3, key="y"), get(3, "a", 4, 5, key="x")]
    assert check_kv_history(history).ok
    history.append(get(4, "a", 6, 7, key="y"))
    result = check_kv_history(history)
    assert not result.ok and "'y'" in result.reason


def test_large_concurrent_history_is_checked_quickly() -> None:
    # Many overlapping writes and reads: memoization keeps the search small.
    ops = []
    for i in range(40):
        ops.append(put(i % 4, f"v{i}", i, i + 6))
        ops.append(get(4 + i % 3, f"v{i}", i + 7, i + 8))
    assert check_operations(RegisterModel(), ops)


def test_return_before_call_is_an_error() -> None:
    with pytest.raises(ValueError, match="returns before it is called"):
        check_kv_history([get(1, None, 5, 4)])
