"""A few network namespaces made ahead of the containers that will join them.

Creating a network namespace and a veth pair costs the kernel a few milliseconds under its
network-wide lock; made in the background, a container start only joins a namespace and
gives its pair an address and a bridge. Each spare serves one container and is never reused:
when the container is released its descriptor is closed and the kernel reclaims namespace
and pair. Spares are held by descriptors of the daemon only, so a crashed daemon leaves none
behind.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from pathlib import Path

import trio
from pyroute2.netlink.exceptions import NetlinkError

from . import netlink

log = logging.getLogger("shoal.bridge")

#: How long ``close`` waits for the kernel to remove the pooled pairs.
_REMOVAL_TIMEOUT = 5.0


class SparePool:
    """Keeps ``size`` spares ready; hands one to each container that asks."""

    def __init__(self, host: netlink.RouteSocket, size: int, prefix: str, mtu: int) -> None:
        self._host = host
        self._size = size
        self._prefix = prefix
        self._mtu = mtu
        self._ready: deque[netlink.Spare] = deque()
        self._taken: dict[str, netlink.Spare] = {}  # container -> its spare
        self._wired: set[str] = set()  # containers whose spare has its address
        self._dying: list[netlink.Spare] = []  # released, to be let go together
        self._wake = trio.Event()
        self._closed = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Refill the pool whenever a spare is taken (the plugin's service runs this)."""
        task_status.started()
        while not self._closed:
            while len(self._ready) < self._size and not self._closed:
                name = self._prefix + secrets.token_hex(8)[: 15 - len(self._prefix)]
                try:
                    with trio.CancelScope(shield=True):  # a spare made must not be lost
                        spare = await trio.to_thread.run_sync(netlink.make_spare, self._host, name, self._mtu)
                except (OSError, NetlinkError) as exc:  # the pool is only a shortcut: log, retry later
                    log.warning("could not prepare a network namespace: %s", exc)
                    await trio.sleep(1)
                    continue
                if self._closed:
                    spare.close()
                    return
                self._ready.append(spare)
            self._wake = trio.Event()
            await self._wake.wait()

    def take(self, container: str) -> str | None:
        """A spare's namespace path for ``container`` to join, or None if none is ready."""
        if container in self._taken:
            return self._taken[container].path
        if not self._ready:
            return None
        spare = self._ready.popleft()
        self._taken[container] = spare
        return spare.path

    def unwired(self, container: str) -> netlink.Spare | None:
        """The container's spare if it has not been given its address yet."""
        if container in self._wired:
            return None
        return self._taken.get(container)

    def wired(self, container: str) -> None:
        """Note that the container's spare is in use (its pair now belongs to an endpoint).

        The replacement is made now, not when the spare was taken: making it would compete
        with the container's own set-up for the kernel's locks.
        """
        self._wired.add(container)
        self._wake.set()

    def retire(self, container: str) -> bool:
        """The container is gone (or never started): its spare is to go at the next ``bury``.

        Returns whether it had one.
        """
        self._wired.discard(container)
        spare = self._taken.pop(container, None)
        if spare is not None:
            self._dying.append(spare)
            self._wake.set()
        return spare is not None

    def bury(self) -> None:
        """Let the retired spares go, all at once (the kernel reclaims them in one pass)."""
        while self._dying:
            self._dying.pop().close()

    async def close(self) -> None:
        """Let every spare go; wait until the kernel has removed the unused pairs."""
        self._closed = True
        self._wake.set()
        for container in list(self._taken):
            self.retire(container)
        self.bury()
        names = [spare.name for spare in self._ready]
        while self._ready:
            self._ready.popleft().close()
        with trio.move_on_after(_REMOVAL_TIMEOUT):
            while any(Path("/sys/class/net", name).exists() for name in names):
                await trio.sleep(0.005)
