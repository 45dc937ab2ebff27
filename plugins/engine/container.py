"""A container as the engine holds it: its stored record and its live parts.

The record is what the store keeps (and what survives a daemon restart): Docker's
``Config`` and ``HostConfig``, the ``State``, and the isolation provider's process state
for live restore. The live parts (process handle, stdin, output hub, log writer, events
that waiters hold) exist only in this daemon.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from shoal.containers import Attachment
from shoal.slots import ContainerProcess

from shoal.humanize import human_duration
from .logs import JsonFileLog, rfc3339_nano
from .streams import OutputHub, StdinPipe

ZERO_TIME = "0001-01-01T00:00:00Z"


def now() -> str:
    return rfc3339_nano(time.time_ns())


def parse_time(text: str) -> float:
    """Unix time of one of our RFC 3339 stamps; 0 for Docker's zero time."""
    if not text or text.startswith("0001-"):
        return 0.0
    from .logs import parse_rfc3339_nano

    return parse_rfc3339_nano(text) / 1e9


def new_state() -> dict[str, Any]:
    return {
        "Status": "created", "Running": False, "Paused": False, "Restarting": False,
        "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
        "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME,
    }  # fmt: skip


@dataclass
class Container:
    """One container: ``record`` is persisted, everything else is this daemon's."""

    record: dict[str, Any]
    version: int = 0
    process: ContainerProcess | None = None
    stdin: StdinPipe | None = None
    stdin_ready: trio.Event = field(default_factory=trio.Event)
    hub: OutputHub = field(default_factory=OutputHub)
    log: JsonFileLog | None = None
    #: Set when the current run ends, then replaced (each waiter keeps the one it saw).
    exited: trio.Event = field(default_factory=trio.Event)
    removed: trio.Event = field(default_factory=trio.Event)
    lock: trio.Lock = field(default_factory=trio.Lock)
    save_lock: trio.Lock = field(default_factory=trio.Lock)
    #: Cancels a pending restart (back-off) when the container is stopped or removed.
    restart_scope: trio.CancelScope | None = None
    restart_delay: float = 0.0
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.record["Id"]

    @property
    def name(self) -> str:
        return self.record["Name"].lstrip("/")

    @property
    def state(self) -> dict[str, Any]:
        return self.record["State"]

    @property
    def config(self) -> dict[str, Any]:
        return self.record["Config"]

    @property
    def host_config(self) -> dict[str, Any]:
        return self.record["HostConfig"]

    @property
    def running(self) -> bool:
        return bool(self.state["Running"])

    def set_status(self, status: str) -> None:
        state = self.state
        state["Status"] = status
        state["Running"] = status in ("running", "paused")
        state["Paused"] = status == "paused"
        state["Restarting"] = status == "restarting"
        state["Dead"] = status == "dead"

    def command(self) -> str:
        args = (self.config.get("Entrypoint") or []) + (self.config.get("Cmd") or [])
        return " ".join(shlex.quote(a) if " " in a else a for a in args)

    def status_line(self) -> str:
        """Docker's human status: "Up 3 seconds", "Exited (0) 2 minutes ago"..."""
        state = self.state
        status = state["Status"]
        if status in ("running", "paused"):
            up = f"Up {human_duration(time.time() - parse_time(state['StartedAt']))}"
            return up + " (Paused)" if status == "paused" else up
        if status == "restarting":
            return f"Restarting ({state['ExitCode']}) {human_duration(time.time() - parse_time(state['FinishedAt']))} ago"
        if status == "exited":
            return f"Exited ({state['ExitCode']}) {human_duration(time.time() - parse_time(state['FinishedAt']))} ago"
        return status.capitalize()

    def summary(self) -> dict[str, Any]:
        """Docker's ``ContainerSummary``."""
        record = self.record
        return {
            "Id": self.id,
            "Names": [record["Name"]],
            "Image": self.config.get("Image", ""),
            "ImageID": record["Image"],
            "Command": self.command(),
            "Created": int(parse_time(record["Created"])),
            "Ports": self.port_list(),
            "Labels": self.config.get("Labels") or {},
            "State": self.state["Status"],
            "Status": self.status_line(),
            "HostConfig": {"NetworkMode": self.host_config.get("NetworkMode", "default")},
            "NetworkSettings": {"Networks": record.get("NetworkSettings", {}).get("Networks", {})},
            "Mounts": record.get("Mounts", []),
        }

    def port_list(self) -> list[dict[str, Any]]:
        """``NetworkSettings.Ports`` in the list form of ``ContainerSummary``."""
        ports = []
        for key, bindings in (self.record.get("NetworkSettings", {}).get("Ports") or {}).items():
            number, _, proto = key.partition("/")
            if not bindings:
                ports.append({"PrivatePort": int(number), "Type": proto or "tcp"})
                continue
            for binding in bindings:
                ports.append({"IP": binding.get("HostIp") or "0.0.0.0", "PrivatePort": int(number),
                              "PublicPort": int(binding["HostPort"]), "Type": proto or "tcp"})  # fmt: skip
        return ports

    def inspect(self, exec_ids: list[str]) -> dict[str, Any]:
        """Docker's ``ContainerInspectResponse``."""
        record = self.record
        config = dict(self.config)
        return {
            "Id": self.id,
            "Created": record["Created"],
            "Path": record["Path"],
            "Args": record["Args"],
            "State": dict(self.state),
            "Image": record["Image"],
            "ResolvConfPath": record.get("ResolvConfPath", ""),
            "HostnamePath": record.get("HostnamePath", ""),
            "HostsPath": record.get("HostsPath", ""),
            "LogPath": record.get("LogPath", ""),
            "Name": record["Name"],
            "RestartCount": record.get("RestartCount", 0),
            "Driver": record.get("Driver", ""),
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": exec_ids or None,
            "HostConfig": dict(self.host_config),
            "GraphDriver": {"Name": record.get("Driver", ""), "Data": {"MergedDir": record.get("Rootfs", "")}},
            "SizeRw": None,
            "Mounts": record.get("Mounts", []),
            "Config": config,
            "NetworkSettings": record.get("NetworkSettings", {"Networks": {}}),
        }
