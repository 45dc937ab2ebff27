"""The replicated object state: deterministic outcomes, deduplication, snapshots, bad commands."""

from __future__ import annotations

from shoal.errors import Conflict, InvalidArgument
from shoal.plugins.raft.objects import ObjectState, encode_command
from shoal.store import Create, Update


def test_a_repeated_command_is_applied_once() -> None:
    state = ObjectState()
    command = encode_command([Create("thing", "a", {"n": 1})], "rid-1")
    first = state.apply(command)
    assert state.apply(command) == first  # a retry after a leader change: same answer
    assert state.revision == 1
    again = state.apply(encode_command([Create("thing", "a", {"n": 2})], "rid-2"))
    assert isinstance(again, Conflict) and state.revision == 1


def test_snapshot_restores_objects_history_and_outcomes() -> None:
    state = ObjectState(history=2)
    made = state.apply(encode_command([Create("thing", "a", {"n": 0}, {"l": "x"})], "r0"))
    assert isinstance(made, list) and made[0] is not None
    obj = made[0]
    for n in range(1, 7):
        result = state.apply(encode_command([Update("thing", "a", {"n": n}, obj.version)], f"r{n}"))
        assert isinstance(result, list) and result[0] is not None
        obj = result[0]
    kept = [c.revision for c in state.changes]
    encode = state.snapshot()
    state.apply(encode_command([Create("thing", "later", {})], "r-later"))  # not in the snapshot
    copy = ObjectState(history=2)
    copy.restore(encode())
    assert copy.revision == 7 and copy.get("thing", "a") == obj and copy.list("thing", {"l": "x"}) == [obj]
    assert [c.revision for c in copy.changes_after(copy.compacted, None)] == kept
    assert copy.apply(encode_command([Update("thing", "a", {}, 1)], "r3")) == state.outcomes["r3"]


def test_malformed_commands_are_refused_the_same_way_everywhere() -> None:
    state = ObjectState()
    for data in (b"garbage", b"{}", b'{"rid": "x", "ops": [{"op": "explode", "kind": "k", "id": "i"}]}', b"[1]"):
        outcome = state.apply(data)
        assert isinstance(outcome, InvalidArgument) and "malformed store command" in str(outcome)
    assert state.revision == 0
