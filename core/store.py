"""Types of the store slot: stored objects, transaction operations and changes.

Providers implement ``commit``, ``get``, ``list``, ``revision`` and ``watch``;
``StoreBase`` derives the single-object conveniences from ``commit``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import Conflict, NotFound, ShoalError


class Compacted(ShoalError):
    """A watch asked for history older than the store keeps."""


@dataclass(frozen=True)
class StoredObject:
    """An object as stored: its version is the store revision of its last change."""

    kind: str
    id: str
    version: int
    data: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=dict)
    created: int = 0  # the revision that created it


@dataclass(frozen=True)
class Create:
    """Create an object; fails with ``Conflict`` if the id is taken."""

    kind: str
    id: str
    data: Mapping[str, Any]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Update:
    """Replace an object's data (and labels, unless None) if it is at ``version``."""

    kind: str
    id: str
    data: Mapping[str, Any]
    version: int
    labels: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Delete:
    """Delete an object, if it is at ``version`` when that is given."""

    kind: str
    id: str
    version: int | None = None


@dataclass(frozen=True)
class Check:
    """Require an object to be at ``version`` (0: to be absent) without changing it."""

    kind: str
    id: str
    version: int


Op = Create | Update | Delete | Check


@dataclass(frozen=True)
class Change:
    """One object's change in a committed transaction."""

    revision: int
    action: Literal["create", "update", "delete"]
    object: StoredObject  # for a delete: the object as it was


def describe(op: Op) -> str:
    """Name an operation in error messages: "update service/web"."""
    return f"{type(op).__name__.lower()} {op.kind}/{op.id}"


def check_op(op: Op, current: StoredObject | None) -> None:
    """Raise the error a provider must raise when ``op`` cannot apply to ``current``.

    Shared by every provider so that all of them fail the same way on the same input.
    """
    what = describe(op)
    if isinstance(op, Create):
        if current is not None:
            raise Conflict(f"{what}: already exists")
        return
    if isinstance(op, Check):
        found = current.version if current is not None else 0
        if found != op.version:
            raise Conflict(f"{what}: expected version {op.version}, found {found}")
        return
    if current is None:
        raise NotFound(f"{what}: no such object")
    expected = op.version
    if expected is not None and current.version != expected:
        raise Conflict(f"{what}: expected version {expected}, found {current.version}")


class StoreBase(ABC):
    """Single-object operations for a provider that implements ``commit`` and ``get``."""

    @abstractmethod
    async def commit(self, ops: Sequence[Op]) -> list[StoredObject | None]:
        """Apply operations atomically (see ``shoal.slots.Store.commit``)."""

    async def create(
        self, kind: str, id: str, data: Mapping[str, Any], labels: Mapping[str, str] | None = None
    ) -> StoredObject:
        (obj,) = await self.commit([Create(kind, id, data, labels or {})])
        assert obj is not None
        return obj

    async def update(
        self, kind: str, id: str, data: Mapping[str, Any], version: int, labels: Mapping[str, str] | None = None
    ) -> StoredObject:
        (obj,) = await self.commit([Update(kind, id, data, version, labels)])
        assert obj is not None
        return obj

    async def delete(self, kind: str, id: str, version: int | None = None) -> None:
        await self.commit([Delete(kind, id, version)])
