"""A membership provider for one host: the member list is this node, and never changes."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from shoal.slots import Member

if TYPE_CHECKING:
    from . import LocalMembershipConfig


def machine_node_id() -> str:
    """A stable id for this host: /etc/machine-id when present, else the hostname."""
    try:
        machine_id = Path("/etc/machine-id").read_text().strip()
    except OSError:
        machine_id = ""
    return machine_id[:25] or socket.gethostname()


class LocalMembership:
    def __init__(self, member: Member) -> None:
        self._member = member

    @classmethod
    def from_config(cls, config: LocalMembershipConfig) -> LocalMembership:
        node_id = config.node_id or machine_node_id()
        return cls(Member(id=node_id, address=config.address, state="alive", meta={"hostname": socket.gethostname()}))

    def local(self) -> Member:
        return self._member

    def members(self) -> list[Member]:
        return [self._member]

    async def subscribe(self) -> AsyncIterator[Member]:
        # One host: no member ever changes; the stream stays open until its consumer stops.
        await trio.sleep_forever()
        yield self._member  # pragma: no cover - unreachable, makes this an async generator
