"""The replicated state machine of the ``raft`` store: versioned objects and their change history.

Every node applies the same committed commands in the same order, so every node computes the
same objects, revisions and errors (a ``Conflict`` is a deterministic outcome of a command, not
a failure to apply it). Commands and snapshots are JSON, the format the objects' data already
round-trips through.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from shoal.errors import Conflict, InvalidArgument, NotFound, ShoalError
from shoal.store import Change, Check, Compacted, Create, Delete, Op, StoredObject, Update, check_op

def _op_to_json(op: Op) -> dict[str, Any]:
    if not isinstance(op, (Create, Update, Delete, Check)):
        raise InvalidArgument(f"not a store operation: {op!r}")
    for name in ("kind", "id"):
        value = getattr(op, name)
        if not isinstance(value, str) or not value:
            raise InvalidArgument(f"{type(op).__name__.lower()}: {name} must be a non-empty string, got {value!r}")
    out: dict[str, Any] = {"op": type(op).__name__.lower(), "kind": op.kind, "id": op.id}
    if isinstance(op, (Create, Update)):
        out["data"] = dict(op.data)
        out["labels"] = None if op.labels is None else dict(op.labels)
    if isinstance(op, (Update, Delete, Check)):
        out["version"] = op.version
    return out


def op_from_json(raw: dict[str, Any]) -> Op:
    """An operation from its JSON form (``{"op": "create", "kind": ..., "id": ..., ...}``)."""
    kind, id, name = raw["kind"], raw["id"], raw["op"]
    if name == "create":
        return Create(kind, id, raw["data"], raw.get("labels") or {})
    if name == "update":
        return Update(kind, id, raw["data"], raw["version"], raw.get("labels"))
    if name == "delete":
        return Delete(kind, id, raw.get("version"))
    if name == "check":
        return Check(kind, id, raw["version"])
    raise InvalidArgument(f"unknown store operation {name!r}")


def encode_command(ops: Sequence[Op], request_id: str) -> bytes:
    """A transaction as the bytes of one log entry; raises ``InvalidArgument`` for non-JSON data.

    ``request_id`` (unique per transaction) lets the state machine apply a command proposed
    twice (after a leader change) only once.
    """
    try:
        command = {"rid": request_id, "ops": [_op_to_json(op) for op in ops]}
        return json.dumps(command, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"store data must be JSON-serialisable: {exc}") from None


def _obj_to_json(o: StoredObject) -> list[Any]:
    return [o.kind, o.id, o.version, o.data, o.labels, o.created]


def _obj_from_json(raw: list[Any]) -> StoredObject:
    kind, id, version, data, labels, created = raw
    return StoredObject(kind, id, version, data, labels, created)


def _obviously_valid(op: Op, current: StoredObject | None) -> bool:
    """The common cases ``check_op`` accepts, decided without building its error context."""
    if isinstance(op, Create):
        return current is None
    if isinstance(op, (Update, Delete)):
        return current is not None and (op.version is None or op.version == current.version)
    return False


#: Objects (or changes, or outcomes) encoded per piece of a snapshot.
SNAPSHOT_PIECE = 64


_ENCODER = json.JSONEncoder(separators=(",", ":"))
_string = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


#: Command outcomes remembered for deduplication (far more than can be in flight at once).
OUTCOMES_KEPT = 4096


def _outcome_to_json(outcome: list[StoredObject | None] | ShoalError) -> list[Any]:
    if isinstance(outcome, ShoalError):
        return ["conflict" if isinstance(outcome, Conflict) else "not_found", str(outcome)]
    return ["ok", [None if o is None else _obj_to_json(o) for o in outcome]]


def _outcome_from_json(raw: list[Any]) -> list[StoredObject | None] | ShoalError:
    kind, value = raw
    if kind == "ok":
        return [None if o is None else _obj_from_json(o) for o in value]
    return (Conflict if kind == "conflict" else NotFound)(value)


class ObjectState:
    """Objects by (kind, id), the store revision, and the changes of the last ``history`` revisions."""

    def __init__(self, history: int | None = None) -> None:
        if history is not None and history < 1:
            raise InvalidArgument(f"history: must be at least 1 revision, got {history}")
        self.history = history
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.revision = 0
        #: Changes with a revision at or below this were dropped.
        self.compacted = 0
        self.changes: list[Change] = []
        #: Outcomes of the latest commands by request id, oldest first: a repeated command
        #: gets its first outcome instead of being applied again.
        self.outcomes: OrderedDict[str, list[StoredObject | None] | ShoalError] = OrderedDict()
        #: id(item) -> (item, its JSON) for the objects, changes and outcomes of the last snapshot.
        self._encoded: dict[int, tuple[object, str]] = {}

    def apply(self, data: bytes) -> list[StoredObject | None] | ShoalError:
        """Apply one committed command: the results of its ops, or the error that refused it."""
        try:
            command = json.loads(data)
            rid = command["rid"]
            ops = [op_from_json(raw) for raw in command["ops"]]
        except (ValueError, KeyError, TypeError, InvalidArgument) as exc:
            # Every node refuses the same bytes the same way; the log stays usable.
            return InvalidArgument(f"malformed store command in the log: {exc!r}")
        if rid in self.outcomes:
            return self.outcomes[rid]
        outcome = self._apply_ops(ops)
        self.outcomes[rid] = outcome
        if len(self.outcomes) > OUTCOMES_KEPT:
            self.outcomes.popitem(last=False)
        return outcome

    def _apply_ops(self, ops: list[Op]) -> list[StoredObject | None] | ShoalError:
        staged: dict[tuple[str, str], StoredObject | None] = {}
        revision = self.revision + 1
        results: list[StoredObject | None] = []
        changes: list[Change] = []
        for op in ops:
            key = (op.kind, op.id)
            current = staged[key] if key in staged else self.objects.get(key)
            if not _obviously_valid(op, current):
                try:
                    check_op(op, current)
                except (Conflict, NotFound) as exc:
                    return exc
            if isinstance(op, Check):
                results.append(None)
                continue
            if isinstance(op, Delete):
                assert current is not None
                staged[key] = None
                changes.append(Change(revision, "delete", current))
                results.append(None)
                continue
            if isinstance(op, Create):
                obj = StoredObject(op.kind, op.id, revision, op.data, op.labels, created=revision)
                changes.append(Change(revision, "create", obj))
            else:
                assert current is not None
                labels = current.labels if op.labels is None else op.labels
                obj = StoredObject(op.kind, op.id, revision, op.data, labels, created=current.created)
                changes.append(Change(revision, "update", obj))
            staged[key] = obj
            results.append(obj)
        if not changes:
            return results
        for key, obj in staged.items():
            if obj is None:
                self.objects.pop(key, None)
            else:
                self.objects[key] = obj
        self.revision = revision
        self.changes.extend(changes)
        self._compact()
        return results

    def _compact(self) -> None:
        if self.history is None or self.revision - self.compacted <= 2 * self.history:
            return
        self.compacted = self.revision - self.history
        drop = 0
        while drop < len(self.changes) and self.changes[drop].revision <= self.compacted:
            drop += 1
        del self.changes[:drop]

    def get(self, kind: str, id: str) -> StoredObject:
        obj = self.objects.get((kind, id))
        if obj is None:
            raise NotFound(f"{kind}/{id}: no such object")
        return obj

    def list(self, kind: str, labels: Mapping[str, str] | None = None) -> list[StoredObject]:
        wanted = dict(labels or {})
        found = [
            o for (k, _), o in self.objects.items()
            if k == kind and all(o.labels.get(name) == value for name, value in wanted.items())
        ]  # fmt: skip
        return sorted(found, key=lambda o: o.id)

    def changes_after(self, since: int, kinds: Sequence[str] | None) -> list[Change]:
        """Changes with a revision above ``since``; raises ``Compacted`` if some were dropped."""
        if since < self.compacted:
            raise Compacted(f"changes after revision {since} were compacted (history starts after {self.compacted})")
        lo, hi = 0, len(self.changes)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.changes[mid].revision <= since:
                lo = mid + 1
            else:
                hi = mid
        picked = self.changes[lo:]
        if kinds is not None:
            wanted = set(kinds)
            picked = [c for c in picked if c.object.kind in wanted]
        return picked

    def snapshot(self) -> Iterator[bytes]:
        """Capture the state now (cheap: objects are immutable) and return its JSON in pieces.

        Each piece is a short burst of work, so the caller can serve other work between pieces
        while later commands are applied. The JSON of each object, change and outcome is
        remembered from one snapshot to the next (they are immutable): a snapshot encodes only
        what is new since the last one.
        """
        revision, compacted = self.revision, self.compacted
        objects, changes, outcomes = list(self.objects.values()), list(self.changes), list(self.outcomes.items())
        return self._encode(revision, compacted, objects, changes, outcomes)

    def _encode(self, revision: int, compacted: int, objects: list[StoredObject], changes: list[Change],
                outcomes: list[tuple[str, list[StoredObject | None] | ShoalError]]) -> Iterator[bytes]:  # fmt: skip
        known = self._encoded
        # Only what this snapshot holds is remembered for the next one.
        fresh: dict[int, tuple[object, str]] = {}

        def text(item: Any, encode: Callable[[Any], str]) -> str:
            key = id(item)  # the cache holds the item, so its id is not reused while the entry lives
            hit = fresh.get(key) or known.get(key)
            if hit is None or hit[0] is not item:
                hit = (item, encode(item))
            fresh[key] = hit
            return hit[1]

        def object_json(o: StoredObject) -> str:
            return _ENCODER.encode(_obj_to_json(o))

        def change_json(c: Change) -> str:
            return f"[{c.revision},{_string(c.action)},{text(c.object, object_json)}]"

        def outcome_json(outcome: list[StoredObject | None] | ShoalError) -> str:
            if isinstance(outcome, ShoalError):
                return _ENCODER.encode(_outcome_to_json(outcome))
            return '["ok",[' + ",".join("null" if o is None else text(o, object_json) for o in outcome) + "]]"

        yield f'{{"revision":{revision},"compacted":{compacted},"objects":['.encode()
        for n in range(0, len(objects), SNAPSHOT_PIECE):
            part = ",".join([text(o, object_json) for o in objects[n : n + SNAPSHOT_PIECE]])
            yield (("," if n else "") + part).encode()
        yield b'],"changes":['
        for n in range(0, len(changes), SNAPSHOT_PIECE):
            part = ",".join([text(c, change_json) for c in changes[n : n + SNAPSHOT_PIECE]])
            yield (("," if n else "") + part).encode()
        yield b'],"outcomes":['
        for n in range(0, len(outcomes), SNAPSHOT_PIECE):
            piece = outcomes[n : n + SNAPSHOT_PIECE]
            part = ",".join([f"[{_string(rid)},{text(o, outcome_json)}]" for rid, o in piece])
            yield (("," if n else "") + part).encode()
        yield b"]}"
        self._encoded = fresh

    def restore(self, data: bytes) -> None:
        raw = json.loads(data) if data else {"revision": 0, "compacted": 0, "objects": [], "changes": [], "outcomes": []}
        self.revision, self.compacted = raw["revision"], raw["compacted"]
        self.objects = {(o.kind, o.id): o for o in map(_obj_from_json, raw["objects"])}
        self.changes = [Change(rev, action, _obj_from_json(obj)) for rev, action, obj in raw["changes"]]
        self.outcomes = OrderedDict((rid, _outcome_from_json(outcome)) for rid, outcome in raw["outcomes"])
        self._encoded = {}

