"""Published ports: parsing Docker's PortBindings, choosing host ports, holding them.

A published port is a DNAT rule (see ``rules``) plus a socket the daemon keeps bound to the
host address and port, so no other program can take the port while the container has it and
a taken port is refused up front with a clear error.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from shoal.errors import Conflict, InvalidArgument


@dataclass(frozen=True)
class PortBinding:
    """One container port published on one host address and port."""

    proto: str  # "tcp" | "udp"
    container_port: int
    host_ip: str  # "" means every host address
    host_port: int

    def key(self) -> tuple[str, str, int]:
        return (self.proto, self.host_ip or "0.0.0.0", self.host_port)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PortRequest:
    """A binding as asked for: the host port may be 0 (any) or a range."""

    proto: str
    container_port: int
    host_ip: str
    low: int  # 0: any free port in the engine's range
    high: int


def _port(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: not a port number") from None
    if not 0 <= value <= 65535:
        raise InvalidArgument(f"invalid {what} {text!r}: ports are 1-65535")
    return value


def parse_key(key: str) -> tuple[int, str]:
    """"80/tcp" -> (80, "tcp"); a missing protocol means tcp."""
    port, _, proto = key.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid port {key!r}: protocol must be tcp or udp")
    number = _port(port, "container port")
    if number == 0:
        raise InvalidArgument(f"invalid port {key!r}: the container port cannot be 0")
    return number, proto


def requests(bindings: Mapping[str, Any] | None, exposed: Mapping[str, Any] | None, publish_all: bool) -> list[PortRequest]:
    """What HostConfig.PortBindings (and -P over Config.ExposedPorts) asks to publish."""
    out: list[PortRequest] = []
    for key, entries in (bindings or {}).items():
        port, proto = parse_key(key)
        for entry in entries or [{}]:
            host_ip = (entry or {}).get("HostIp") or ""
            if host_ip:
                try:
                    socket.inet_pton(socket.AF_INET, host_ip)
                except OSError:
                    raise InvalidArgument(f"invalid host IP {host_ip!r} for port {key}: only IPv4 addresses are supported") from None
            text = str((entry or {}).get("HostPort") or "0")
            low_text, _, high_text = text.partition("-")
            low = _port(low_text, "host port")
            high = _port(high_text, "host port") if high_text else low
            if high < low:
                raise InvalidArgument(f"invalid host port range {text!r}")
            out.append(PortRequest(proto, port, "" if host_ip == "0.0.0.0" else host_ip, low, high))
    if publish_all:
        bound = {(r.container_port, r.proto) for r in out}
        for key in exposed or {}:
            port, proto = parse_key(key)
            if (port, proto) not in bound:
                out.append(PortRequest(proto, port, "", 0, 0))
    return out


def _clashes(key: tuple[str, str, int], taken: Collection[tuple[str, str, int]]) -> bool:
    """Whether a binding overlaps a taken one (0.0.0.0 overlaps every address)."""
    proto, ip, port = key
    return any(p == proto and n == port and (a == ip or "0.0.0.0" in (a, ip)) for p, a, n in taken)


def hold(binding: PortBinding) -> socket.socket:
    """Bind (and for TCP, listen on) the host port; ``Conflict`` if another program has it."""
    kind = socket.SOCK_STREAM if binding.proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((binding.host_ip or "0.0.0.0", binding.host_port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1)
    except OSError as exc:
        sock.close()
        where = f"{binding.host_ip or '0.0.0.0'}:{binding.host_port}"
        if exc.errno == errno.EADDRINUSE:
            raise Conflict(f"Bind for {where} failed: port is already allocated") from None
        raise Conflict(f"Bind for {where} failed: {exc.strerror}") from None
    return sock


def choose(
    wanted: Iterable[PortRequest], taken: Collection[tuple[str, str, int]], port_range: tuple[int, int]
) -> tuple[list[PortBinding], list[socket.socket]]:
    """Host ports for every request, each held by a socket; nothing is held if one fails.

    ``taken`` holds the (proto, host ip, port) of every other container's binding.
    """
    chosen: list[PortBinding] = []
    held: list[socket.socket] = []
    try:
        for request in wanted:
            low, high = (request.low, request.high) if request.low else port_range
            last_error: Conflict | None = None
            for port in range(low, high + 1):
                binding = PortBinding(request.proto, request.container_port, request.host_ip, port)
                keys = [b.key() for b in chosen] + list(taken)
                if _clashes(binding.key(), keys):
                    last_error = Conflict(f"Bind for {binding.host_ip or '0.0.0.0'}:{port} failed: port is already allocated")
                    continue
                try:
                    held.append(hold(binding))
                except Conflict as exc:
                    last_error = exc
                    continue
                chosen.append(binding)
                break
            else:
                raise last_error or Conflict("no free host port in the range")
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return chosen, held
