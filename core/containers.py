"""The ``containers`` slot: the container engine's Python API.

Its provider composes the lower slots (images, snapshots, isolation, resources, network,
volumes, store) into Docker's container life cycle. It speaks Docker's data model: request
bodies and results are the JSON shapes of the Docker Engine API (``ContainerCreateRequest``,
``ContainerInspectResponse``, ``ContainerSummary``...), so the HTTP frontend is a thin
translation and an embedding program uses the same calls the daemon serves.

Errors: ``NotFound`` (404), ``Conflict`` (409: name in use, container running, already
stopped), ``InvalidArgument`` (400: a bad field, named in the message), any other
``ShoalError`` (500).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, Protocol, runtime_checkable

#: Stream numbers of Docker's multiplexed framing.
STDIN, STDOUT, STDERR = 0, 1, 2


@runtime_checkable
class Attachment(Protocol):
    """A live connection to a container's or exec's standard streams.

    Implementers:
        Returned by ``Containers.attach`` and ``Containers.exec_start``.
    """

    #: True when the process has a terminal: output is one raw stream (read gives STDOUT).
    tty: bool

    async def read(self) -> tuple[int, bytes] | None:
        """Wait for the next chunk of output.

        Args:
            (none)
        Returns:
            (STDOUT or STDERR, data), or None once the process closed its output.
        Implementers:
            Container providers.
        """

    async def write(self, data: bytes) -> None:
        """Send bytes to the process's standard input.

        Args:
            data: the bytes.
        Returns:
            None; raises ``BrokenPipeError`` when the process no longer reads.
        Implementers:
            Container providers.
        """

    async def close_stdin(self) -> None:
        """Close standard input (the client half-closed its side).

        Args:
            (none)
        Returns:
            None.
        Implementers:
            Container providers.
        """

    async def aclose(self) -> None:
        """Detach: stop streaming; the process keeps running.

        Args:
            (none)
        Returns:
            None.
        Implementers:
            Container providers.
        """


@runtime_checkable
class Containers(Protocol):
    """The container life cycle, in Docker's terms.

    Implementers:
        The ``engine`` plugin; an embedding program gets it from ``engine.slot("containers")``.
    """

    async def create(self, body: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
        """Create a container from a Docker create request.

        Args:
            body: ``ContainerCreateRequest`` (Image, Cmd, Env, HostConfig...).
            name: the container's name, or None for a generated one.
        Returns:
            ``{"Id": ..., "Warnings": [...]}``; nothing is left behind if this raises.
        Implementers:
            Container providers.
        """

    async def start(self, id: str) -> None:
        """Start a created or stopped container.

        Args:
            id: id, id prefix or name.
        Returns:
            None once the program runs; raises ``InvalidArgument`` with exit code 126 or 127
            semantics in its message when the program cannot be executed.
        Implementers:
            Container providers.
        """

    async def stop(self, id: str, timeout: int | None = None, signal: str | None = None) -> None:
        """Send the stop signal, then SIGKILL after the timeout.

        Args:
            id: id, id prefix or name.
            timeout: seconds to wait before SIGKILL (None: the container's StopTimeout, 10).
            signal: the signal to send first (None: the container's StopSignal, SIGTERM).
        Returns:
            None once it stopped; raises ``Conflict`` (HTTP 304 in the API) if not running.
        Implementers:
            Container providers.
        """

    async def kill(self, id: str, signal: str = "SIGKILL") -> None:
        """Send a signal to the container's main process.

        Args:
            id: id, id prefix or name.
            signal: name ("SIGHUP", "HUP") or number ("9").
        Returns:
            None; raises ``Conflict`` if not running, ``InvalidArgument`` for a bad signal.
        Implementers:
            Container providers.
        """

    async def restart(self, id: str, timeout: int | None = None, signal: str | None = None) -> None:
        """Stop (if running) and start again.

        Args:
            id: id, id prefix or name.
            timeout: as for ``stop``.
            signal: as for ``stop``.
        Returns:
            None.
        Implementers:
            Container providers.
        """

    async def pause(self, id: str) -> None:
        """Freeze every process of the container.

        Args:
            id: id, id prefix or name.
        Returns:
            None.
        Implementers:
            Container providers.
        """

    async def unpause(self, id: str) -> None:
        """Thaw a paused container.

        Args:
            id: id, id prefix or name.
        Returns:
            None.
        Implementers:
            Container providers.
        """

    def wait(self, id: str, condition: str = "not-running") -> Awaitable[dict[str, Any]]:
        """Register a wait for a condition at once, and return the awaitable that ends it.

        Not a coroutine function on purpose: the wait is registered when called, so a client
        that sends wait before start (as ``docker run`` does) cannot miss a quick exit.
        Callers must await the result.

        Args:
            id: id, id prefix or name; ``NotFound`` is raised by the call itself.
            condition: "not-running", "next-exit" or "removed".
        Returns:
            An awaitable of ``{"StatusCode": code}`` (plus ``"Error": {"Message": ...}`` if
            waiting failed).
        Implementers:
            Container providers.
        """

    async def remove(self, id: str, force: bool = False, volumes: bool = False) -> None:
        """Remove a container and everything it holds (snapshot, cgroup, logs).

        Args:
            id: id, id prefix or name.
            force: kill it first if running (else ``Conflict``).
            volumes: also remove its anonymous volumes.
        Returns:
            None.
        Implementers:
            Container providers.
        """

    async def rename(self, id: str, name: str) -> None:
        """Give a container a new name.

        Args:
            id: id, id prefix or name.
            name: the new name; ``Conflict`` if in use.
        Returns:
            None.
        Implementers:
            Container providers.
        """

    async def inspect(self, id: str) -> dict[str, Any]:
        """Describe one container.

        Args:
            id: id, id prefix or name.
        Returns:
            ``ContainerInspectResponse``.
        Implementers:
            Container providers.
        """

    async def list(self, all: bool = False, filters: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """List containers, newest first.

        Args:
            all: include stopped ones.
            filters: Docker's filters (id, name, label, status, exited, ancestor...).
        Returns:
            ``ContainerSummary`` objects.
        Implementers:
            Container providers.
        """

    def logs(
        self,
        id: str,
        *,
        stdout: bool = True,
        stderr: bool = True,
        follow: bool = False,
        since: float = 0,
        until: float = 0,
        timestamps: bool = False,
        tail: int | None = None,
    ) -> AsyncIterator[tuple[int, bytes]]:
        """Stream a container's logged output (an async generator: iterate, don't await).

        Args:
            id: id, id prefix or name.
            stdout: include standard output.
            stderr: include standard error.
            follow: keep streaming new output until the container stops.
            since: only lines at or after this Unix time (0: all).
            until: only lines before this Unix time (0: no bound).
            timestamps: prefix each line with its RFC 3339 time.
            tail: only the last N lines (None: all).
        Returns:
            An async iterator of (STDOUT or STDERR, line bytes).
        Implementers:
            Container providers.
        """

    async def attach(self, id: str, *, stdin: bool, stdout: bool, stderr: bool, logs: bool = False) -> Attachment:
        """Connect to a running (or about to start) container's streams.

        Returns at once, also for a container that is only created: clients attach first and
        start the container afterwards, so output from its first instant is seen.

        Args:
            id: id, id prefix or name.
            stdin: forward input to the container.
            stdout: receive its standard output.
            stderr: receive its standard error.
            logs: replay logged output first.
        Returns:
            The attachment.
        Implementers:
            Container providers.
        """

    async def resize(self, id: str, height: int, width: int) -> None:
        """Resize a container's terminal.

        Args:
            id: id, id prefix or name.
            height: rows.
            width: columns.
        Returns:
            None.
        Implementers:
            Container providers.
        """

    async def top(self, id: str, ps_args: str = "-ef") -> dict[str, Any]:
        """List a container's processes.

        Args:
            id: id, id prefix or name.
            ps_args: ps(1) options.
        Returns:
            ``{"Titles": [...], "Processes": [[...], ...]}``.
        Implementers:
            Container providers.
        """

    async def stats(self, id: str) -> dict[str, Any]:
        """Read one sample of resource use.

        Args:
            id: id, id prefix or name.
        Returns:
            Docker's ``ContainerStatsResponse`` without ``precpu_stats`` (the frontend pairs
            consecutive samples).
        Implementers:
            Container providers.
        """

    async def exec_create(self, id: str, body: Mapping[str, Any]) -> str:
        """Prepare a process to run in a running container.

        Args:
            id: id, id prefix or name.
            body: ``ExecConfig`` (Cmd, Env, User, WorkingDir, Tty, AttachStdin...).
        Returns:
            The exec instance's id.
        Implementers:
            Container providers.
        """

    async def exec_start(self, exec_id: str, *, detach: bool = False, tty: bool | None = None) -> Attachment | None:
        """Run a prepared exec instance.

        Args:
            exec_id: from ``exec_create``.
            detach: run without attaching (returns None).
            tty: override the instance's Tty setting.
        Returns:
            The attachment, or None when detached.
        Implementers:
            Container providers.
        """

    async def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        """Describe an exec instance.

        Args:
            exec_id: from ``exec_create``.
        Returns:
            ``ExecInspectResponse`` (Running, ExitCode, Pid...).
        Implementers:
            Container providers.
        """

    async def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        """Resize an exec instance's terminal.

        Args:
            exec_id: from ``exec_create``.
            height: rows.
            width: columns.
        Returns:
            None.
        Implementers:
            Container providers.
        """

    async def prune(self, filters: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        """Remove every stopped container.

        Args:
            filters: Docker's prune filters (until, label).
        Returns:
            ``{"ContainersDeleted": [...], "SpaceReclaimed": bytes}``.
        Implementers:
            Container providers.
        """
