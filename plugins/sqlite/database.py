"""The synchronous half of the sqlite store: schema, transactions and reads on one connection.

Every function here blocks and takes a ``sqlite3.Connection`` opened by ``connect``; the async
store runs them in worker threads. Several processes may open the same file: a write
transaction starts with ``BEGIN IMMEDIATE`` (the database's write lock) and reads the revision
counter inside it, so two writers can never hand out the same revision.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from shoal.errors import InvalidArgument, ShoalError
from shoal.store import Change, Check, Create, Delete, Op, StoredObject, Update, check_op, describe

#: Bumped when the layout below changes incompatibly; a newer file is refused.
SCHEMA_VERSION = 1

_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
-- revision: the last committed revision; compacted: changes up to it are gone.
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0), ('compacted', 0);
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    created INTEGER NOT NULL,
    data TEXT NOT NULL,
    labels TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
-- One row per label so that list() filters through an index instead of decoding JSON.
CREATE TABLE IF NOT EXISTS labels (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS labels_by_value ON labels (kind, key, value, id);
-- The watch history: each change with the object after it (for a delete, as it was).
CREATE TABLE IF NOT EXISTS changes (
    revision INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    action TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    created INTEGER NOT NULL,
    data TEXT NOT NULL,
    labels TEXT NOT NULL,
    PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""


def connect(path: str, synchronous: Literal["full", "normal"], busy_timeout: float) -> sqlite3.Connection:
    """Open a connection for use from worker threads, transactions managed explicitly.

    ``busy_timeout`` is how long a statement waits for another process's lock before it
    fails with "database is locked".
    """
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    except BaseException:
        conn.close()
        raise
    return conn


def initialise(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL and create the tables; safe to race with another process."""
    (found,) = conn.execute("PRAGMA user_version").fetchone()
    if found > SCHEMA_VERSION:
        raise ShoalError(f"store file has schema version {found}; this shoal reads up to {SCHEMA_VERSION}")
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if mode != "wal":
        raise ShoalError(f"cannot switch the store file to WAL journaling (got {mode!r})")
    try:
        conn.executescript(_SCHEMA)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# --------------------------------------------------------------------------- encoding


def _encode_value(value: object) -> object:
    # json.dumps knows dict but not other mappings (MappingProxyType, a frozen view).
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _encode(op: Create | Update, labels: Mapping[str, str]) -> tuple[str, str]:
    if not isinstance(op.data, Mapping):
        raise InvalidArgument(f"{describe(op)}: data must be a mapping, not {type(op.data).__name__}")
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidArgument(f"{describe(op)}: label {key!r}={value!r}: keys and values must be strings")
    try:
        data = json.dumps(op.data, default=_encode_value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{describe(op)}: data is not JSON: {exc}") from None
    return data, json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


def _decode(kind: str, id: str, version: int, created: int, data: str, labels: str) -> StoredObject:
    return StoredObject(kind, id, version, json.loads(data), json.loads(labels), created=created)


# --------------------------------------------------------------------------- reads


def _fetch(conn: sqlite3.Connection, kind: str, id: str) -> tuple[StoredObject, str, str] | None:
    """The object with its encoded data and labels (kept so a delete can record them as is)."""
    row = conn.execute(
        "SELECT version, created, data, labels FROM objects WHERE kind = ? AND id = ?", (kind, id)
    ).fetchone()
    if row is None:
        return None
    version, created, data, labels = row
    return _decode(kind, id, version, created, data, labels), data, labels


def get(conn: sqlite3.Connection, kind: str, id: str) -> StoredObject | None:
    """Read one object, or None."""
    found = _fetch(conn, kind, id)
    return found[0] if found is not None else None


def list_objects(conn: sqlite3.Connection, kind: str, labels: Mapping[str, str]) -> list[StoredObject]:
    """Objects of ``kind`` carrying every label given, ordered by id (code point order)."""
    sql = "SELECT id, version, created, data, labels FROM objects AS o WHERE kind = ?"
    params: list[object] = [kind]
    for key, value in labels.items():
        sql += (
            " AND EXISTS (SELECT 1 FROM labels AS l"
            " WHERE l.kind = o.kind AND l.id = o.id AND l.key = ? AND l.value = ?)"
        )
        params += [key, value]
    sql += " ORDER BY id"
    return [_decode(kind, *row) for row in conn.execute(sql, params)]


def _meta(conn: sqlite3.Connection, key: str) -> int:
    (value,) = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(value)


def revision(conn: sqlite3.Connection) -> int:
    """The last committed revision."""
    return _meta(conn, "revision")


@dataclass(frozen=True)
class ChangeBatch:
    """Recorded changes read in one snapshot, with the counters of that snapshot."""

    revision: int  # the last committed revision
    compacted: int  # changes up to this revision are no longer kept
    upto: int  # every change up to this revision was considered
    changes: list[Change]


def read_changes(
    conn: sqlite3.Connection, after: int, max_revisions: int, kinds: Sequence[str] | None
) -> ChangeBatch:
    """Read the changes of at most ``max_revisions`` revisions after ``after``, in order.

    A whole revision is always read at once, so a watcher never sees half a transaction.
    """
    conn.execute("BEGIN")  # one read snapshot for the counters and the rows
    try:
        current = _meta(conn, "revision")
        compacted = _meta(conn, "compacted")
        upto = min(after + max_revisions, current)
        changes: list[Change] = []
        if upto > after and compacted <= after:
            sql = (
                "SELECT revision, action, kind, id, version, created, data, labels FROM changes"
                " WHERE revision > ? AND revision <= ?"
            )
            params: list[object] = [after, upto]
            if kinds is not None:
                sql += f" AND kind IN ({','.join('?' * len(kinds))})"
                params += kinds
            sql += " ORDER BY revision, seq"
            for rev, action, kind, id, version, created, data, labels in conn.execute(sql, params):
                changes.append(Change(rev, action, _decode(kind, id, version, created, data, labels)))
    finally:
        conn.execute("COMMIT")
    return ChangeBatch(revision=current, compacted=compacted, upto=upto, changes=changes)


# --------------------------------------------------------------------------- writes


def commit(conn: sqlite3.Connection, ops: Sequence[Op], history: int | None) -> tuple[int, list[StoredObject | None]]:
    """Apply ``ops`` in one transaction, each seeing the effect of the ones before it.

    Returns the revision after the transaction and, per op, the object as stored after it
    (None for deletes and checks). A transaction that only checks changes nothing and leaves
    the revision as it is. On any error nothing is applied.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        new_revision = revision(conn) + 1
        results: list[StoredObject | None] = []
        changed = 0
        for op in ops:
            result = _apply(conn, op, new_revision, changed)
            if not isinstance(op, Check):
                changed += 1
            results.append(result)
        if changed:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'revision'", (new_revision,))
            if history is not None:
                _compact(conn, new_revision - history)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return (new_revision if changed else new_revision - 1), results


def _apply(conn: sqlite3.Connection, op: Op, new_revision: int, seq: int) -> StoredObject | None:
    found = _fetch(conn, op.kind, op.id)
    check_op(op, found[0] if found is not None else None)
    if isinstance(op, Check):
        return None
    if isinstance(op, Delete):
        assert found is not None  # check_op raised NotFound otherwise
        current, data, labels = found
        conn.execute("DELETE FROM objects WHERE kind = ? AND id = ?", (op.kind, op.id))
        conn.execute("DELETE FROM labels WHERE kind = ? AND id = ?", (op.kind, op.id))
        _record(conn, new_revision, seq, "delete", current, data, labels)
        return None

    if isinstance(op, Create):
        labels_map: Mapping[str, str] = op.labels
        created = new_revision
    else:
        assert found is not None
        labels_map = op.labels if op.labels is not None else found[0].labels
        created = found[0].created
    data, labels = _encode(op, labels_map)
    conn.execute(
        "INSERT OR REPLACE INTO objects (kind, id, version, created, data, labels) VALUES (?, ?, ?, ?, ?, ?)",
        (op.kind, op.id, new_revision, created, data, labels),
    )
    if isinstance(op, Create) or op.labels is not None:
        conn.execute("DELETE FROM labels WHERE kind = ? AND id = ?", (op.kind, op.id))
        conn.executemany(
            "INSERT INTO labels (kind, id, key, value) VALUES (?, ?, ?, ?)",
            [(op.kind, op.id, key, value) for key, value in labels_map.items()],
        )
    stored = _decode(op.kind, op.id, new_revision, created, data, labels)
    _record(conn, new_revision, seq, "create" if isinstance(op, Create) else "update", stored, data, labels)
    return stored


def _record(
    conn: sqlite3.Connection, rev: int, seq: int, action: str, obj: StoredObject, data: str, labels: str
) -> None:
    conn.execute(
        "INSERT INTO changes (revision, seq, action, kind, id, version, created, data, labels)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (rev, seq, action, obj.kind, obj.id, obj.version, obj.created, data, labels),
    )


def _compact(conn: sqlite3.Connection, floor: int) -> None:
    # Each commit drops only what fell out of the window since the last one: an index range.
    if floor > _meta(conn, "compacted"):
        conn.execute("DELETE FROM changes WHERE revision <= ?", (floor,))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'compacted'", (floor,))


def validate_op(op: Any) -> None:
    """Reject what is not an operation, or names no object, before taking any lock."""
    if not isinstance(op, (Create, Update, Delete, Check)):
        raise InvalidArgument(f"not a store operation: {op!r}")
    if not isinstance(op.kind, str) or not op.kind or not isinstance(op.id, str) or not op.id:
        raise InvalidArgument(f"{describe(op)}: kind and id must be non-empty strings")
