"""The replicated object state: deterministic outcomes, deduplication, snapshots, bad commands."""

from __future__ import annotations

import json

from shoal.errors import Conflict, InvalidArgument
from shoal.plugins.raft.objects import SNAPSHOT_PIECE, ObjectState, encode_command
from shoal.store import Create, Delete, Update


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
    pieces = state.snapshot()
    state.apply(encode_command([Create("thing", "later", {})], "r-later"))  # not in the snapshot
    copy = ObjectState(history=2)
    copy.restore(b"".join(pieces))
    assert copy.revision == 7 and copy.get("thing", "a") == obj and copy.list("thing", {"l": "x"}) == [obj]
    assert [c.revision for c in copy.changes_after(copy.compacted, None)] == kept
    assert copy.apply(encode_command([Update("thing", "a", {}, 1)], "r3")) == state.outcomes["r3"]


def test_malformed_commands_are_refused_the_same_way_everywhere() -> None:
    state = ObjectState()
    for data in (b"garbage", b"{}", b'{"rid": "x", "ops": [{"op": "explode", "kind": "k", "id": "i"}]}', b"[1]"):
        outcome = state.apply(data)
        assert isinstance(outcome, InvalidArgument) and "malformed store command" in str(outcome)
    assert state.revision == 0


def test_snapshots_are_plain_json_and_reuse_unchanged_objects() -> None:
    state = ObjectState(history=3)
    for n in range(SNAPSHOT_PIECE + 5):  # more than one piece of objects
        state.apply(encode_command([Create("thing", f"t{n}", {"n": n, "s": "\u00e9"}, {"l": "x"})], f"c{n}"))
    state.apply(encode_command([Create("thing", "t0", {})], "refused"))  # a Conflict outcome
    state.apply(encode_command([Update("thing", "t1", {"n": -1}, 2), Delete("thing", "t2")], "both"))
    first = b"".join(state.snapshot())
    objects = list(state.objects.values())
    expected = {
        "revision": state.revision,
        "compacted": state.compacted,
        "objects": [[o.kind, o.id, o.version, o.data, o.labels, o.created] for o in objects],
        "changes": [[c.revision, c.action, [c.object.kind, c.object.id, c.object.version, c.object.data,
                                            c.object.labels, c.object.created]] for c in state.changes],
    }  # fmt: skip
    decoded = json.loads(first)
    assert {k: decoded[k] for k in expected} == expected
    assert [rid for rid, _ in decoded["outcomes"]] == list(state.outcomes)
    assert decoded["outcomes"][-2][1][0] == "conflict"
    state.apply(encode_command([Update("thing", "t3", {"n": 3.5}, 4)], "late"))
    second = b"".join(state.snapshot())  # cached objects and a new one
    copy = ObjectState(history=3)
    copy.restore(second)
    assert copy.objects == state.objects and copy.changes == state.changes and copy.revision == state.revision
    assert b"".join(copy.snapshot()) == second
