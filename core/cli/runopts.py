"""``shoal run``/``create`` flags and their translation into a ``ContainerCreateRequest`` body.

The parsers are pure functions (the environment and working directory are parameters) so
each Docker flag syntax is tested on its own.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from typing import Any

from .common import Parser, UsageError, flag_value
from .units import parse_cpus, parse_memory_swap, parse_size

_RESTART_NAMES = ("no", "always", "unless-stopped", "on-failure")
_VOLUME_MODES = {"ro", "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private", "rprivate"}
_PORT_PROTOCOLS = ("tcp", "udp", "sctp")


def parse_env(items: list[str], environ: Mapping[str, str]) -> list[str]:
    """``-e`` values: ``KEY=VALUE`` as given; a bare ``KEY`` takes the local value, or is
    dropped when the local environment lacks it (as Docker does)."""
    result = []
    for item in items:
        key, sep, _ = item.partition("=")
        if not key:
            raise ValueError(f"invalid environment variable: {item}")
        if sep:
            result.append(item)
        elif key in environ:
            result.append(f"{key}={environ[key]}")
    return result


def parse_env_file(text: str, environ: Mapping[str, str]) -> list[str]:
    """An ``--env-file``: one ``KEY=VALUE`` or ``KEY`` a line, ``#`` comments and blank lines skipped."""
    items = []
    for line in text.splitlines():
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key = line.partition("=")[0]
        if re.search(r"\s", key):
            raise ValueError(f"variable '{key}' contains whitespaces")
        items.append(line)
    return parse_env(items, environ)


def parse_labels(items: list[str]) -> dict[str, str]:
    """``-l key=value`` (a bare key gets an empty value)."""
    labels = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise ValueError(f"invalid label: {item}")
        labels[key] = value
    return labels


def parse_volume(spec: str, cwd: str) -> tuple[str | None, str | None]:
    """One ``-v`` spec as ``(bind, anonymous_volume)``; exactly one of the two is set.

    ``/host:/ctr[:ro]`` and ``name:/ctr`` are binds (``./dir`` is made absolute against
    ``cwd``); a lone ``/ctr`` is an anonymous volume.
    """
    parts = spec.split(":")
    if len(parts) == 1:
        if not spec.startswith("/"):
            raise ValueError(f"invalid volume specification: '{spec}'")
        return None, spec
    if len(parts) > 3 or not parts[0] or not parts[1].startswith("/"):
        raise ValueError(f"invalid volume specification: '{spec}'")
    if len(parts) == 3:
        modes = parts[2].split(",")
        if not all(modes) or not set(modes) <= _VOLUME_MODES or {"ro", "rw"} <= set(modes):
            raise ValueError(f"invalid mode: {parts[2]}")
    source = parts[0]
    if source.startswith("."):
        source = os.path.normpath(os.path.join(cwd, source))
    return ":".join((source, *parts[1:])), None


def parse_mount(spec: str) -> dict[str, Any]:
    """One ``--mount type=bind,source=/a,target=/b,readonly`` as an API ``Mount``."""
    mount: dict[str, Any] = {"Type": "volume"}
    for field in spec.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro"):
            mount["ReadOnly"] = not sep or value.lower() in ("1", "true")
        elif not sep:
            raise ValueError(f"invalid field '{field}' must be a key=value pair")
        elif key == "type":
            mount["Type"] = value
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "destination", "dst"):
            mount["Target"] = value
        elif key == "bind-propagation":
            mount.setdefault("BindOptions", {})["Propagation"] = value
        elif key == "volume-nocopy":
            mount.setdefault("VolumeOptions", {})["NoCopy"] = value.lower() in ("1", "true")
        elif key == "tmpfs-size":
            mount.setdefault("TmpfsOptions", {})["SizeBytes"] = parse_size(value)
        elif key == "tmpfs-mode":
            mount.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    if mount["Type"] not in ("bind", "volume", "tmpfs"):
        raise ValueError(f"unsupported mount type: {mount['Type']}")
    if not mount.get("Target"):
        raise ValueError("target is required")
    if mount["Type"] == "bind" and not mount.get("Source"):
        raise ValueError("source is required when specifying bind mounts")
    return mount


def parse_tmpfs(spec: str) -> tuple[str, str]:
    """``--tmpfs /run:rw,size=64m`` as (path, options)."""
    path, _, options = spec.partition(":")
    if not path.startswith("/"):
        raise ValueError(f"invalid tmpfs path: {path!r} is not absolute")
    return path, options


def parse_restart(value: str) -> dict[str, Any]:
    """``--restart`` as an API ``RestartPolicy``: no, always, unless-stopped, on-failure[:N]."""
    name, sep, count = value.partition(":")
    if name not in _RESTART_NAMES:
        raise ValueError(f"invalid restart policy format: unknown policy '{name}'")
    if sep:
        if name != "on-failure":
            raise ValueError(f"maximum retry count cannot be used with restart policy '{name}'")
        if not count.isdigit():
            raise ValueError(f"invalid restart policy format: maximum retry count must be an integer: {count!r}")
        return {"Name": name, "MaximumRetryCount": int(count)}
    return {"Name": name, "MaximumRetryCount": 0}


def _port_range(text: str, what: str) -> list[int]:
    first, sep, last = text.partition("-")
    if not first.isdigit() or (sep and not last.isdigit()):
        raise ValueError(f"invalid {what}: {text}")
    low, high = int(first), int(last) if sep else int(first)
    if not 0 < low <= high <= 65535:
        raise ValueError(f"invalid {what}: {text}")
    return list(range(low, high + 1))


def parse_port(spec: str) -> tuple[dict[str, dict], dict[str, list[dict[str, str]]]]:
    """One ``-p [ip:][hostPort:]containerPort[/proto]`` as (ExposedPorts, PortBindings).

    Ranges (``8000-8001:80-81``) pair up one to one; IPv6 addresses go in brackets.
    """
    rest, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in _PORT_PROTOCOLS:
        raise ValueError(f"invalid proto: {proto}")
    host_ip = ""
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0 or rest[close + 1 : close + 2] != ":":
            raise ValueError(f"invalid IP address: {rest}")
        host_ip, rest = rest[1:close], rest[close + 2 :]
    parts = rest.split(":")
    if len(parts) == 3 and not host_ip:
        host_ip = parts.pop(0)
    if len(parts) > 2 or not parts[-1]:
        raise ValueError(f"invalid port format: {spec}")
    container_ports = _port_range(parts[-1], "containerPort")
    host_text = parts[0] if len(parts) == 2 else ""
    host_ports = _port_range(host_text, "hostPort") if host_text else []
    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for index, port in enumerate(container_ports):
        key = f"{port}/{proto}"
        exposed[key] = {}
        if not host_ports:
            host_port = ""
        elif len(host_ports) == len(container_ports):
            host_port = str(host_ports[index])
        elif len(container_ports) == 1:
            host_port = host_text  # the daemon picks a free port of the range
        else:
            raise ValueError(f"invalid ranges specified for container and host Ports: {spec}")
        bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host_port})
    return exposed, bindings


def add_container_flags(parser: argparse.ArgumentParser) -> None:
    """The flags ``run`` and ``create`` share, spelled as Docker spells them."""
    add = parser.add_argument
    add("-i", "--interactive", action="store_true", help="keep STDIN open even if not attached")
    add("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    add("-e", "--env", action="append", default=[], metavar="KEY=VALUE", help="set an environment variable")
    add("--env-file", action="append", default=[], metavar="FILE", help="read environment variables from a file")
    add("-v", "--volume", action="append", default=[], metavar="SPEC", help="bind mount a volume")
    add("--mount", action="append", default=[], metavar="SPEC", help="attach a filesystem mount")
    add("--tmpfs", action="append", default=[], metavar="PATH[:OPTS]", help="mount a tmpfs directory")
    add("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    add("-u", "--user", metavar="USER[:GROUP]", help="user name or uid, and optionally group")
    add("--name", help="assign a name to the container")
    add("-h", "--hostname", help="container host name")
    add("--entrypoint", help="overwrite the default ENTRYPOINT of the image")
    add("-l", "--label", action="append", default=[], metavar="KEY=VALUE", help="set metadata on a container")
    add("-m", "--memory", help="memory limit")
    add("--memory-swap", help="swap limit equal to memory plus swap: -1 to enable unlimited swap")
    add("--memory-reservation", help="memory soft limit")
    add("--cpus", help="number of CPUs")
    add("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
    add("--cpuset-cpus", metavar="CPUS", help="CPUs in which to allow execution (0-3, 0,1)")
    add("--pids-limit", type=int, help="tune container pids limit (-1 for unlimited)")
    add("--restart", default="no", help="restart policy to apply when a container exits")
    add(
        "--init", action="store_true", help="run an init inside the container that forwards signals and reaps processes"
    )
    add("--cap-add", action="append", default=[], metavar="CAP", help="add Linux capabilities")
    add("--cap-drop", action="append", default=[], metavar="CAP", help="drop Linux capabilities")
    add("--privileged", action="store_true", help="give extended privileges to this container")
    add("--read-only", action="store_true", help="mount the container's root filesystem as read only")
    add("--network", "--net", default=None, metavar="MODE", help="network mode: none, host, or a network")
    add("--ip", metavar="ADDRESS", help="IPv4 address on the container's network")
    add("--network-alias", action="append", default=[], metavar="NAME", help="add a network-scoped alias")
    add("--dns", action="append", default=[], metavar="ADDRESS", help="set custom DNS servers")
    add("--dns-search", action="append", default=[], metavar="DOMAIN", help="set custom DNS search domains")
    add("--dns-option", action="append", default=[], metavar="OPTION", help="set DNS options")
    add("--add-host", action="append", default=[], metavar="HOST:IP", help="add a custom host-to-IP mapping")
    add(
        "-p", "--publish", action="append", default=[], metavar="SPEC", help="publish a container's port(s) to the host"
    )
    add("-P", "--publish-all", action="store_true", help="publish all exposed ports to random host ports")
    add("--expose", action="append", default=[], metavar="PORT", help="expose a port or a range of ports")
    add("--stop-signal", help="signal to stop the container")
    add("--stop-timeout", type=int, help="timeout (in seconds) to stop a container")
    add("image", metavar="IMAGE")
    add("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")


def container_parser(prog: str, description: str) -> Parser:
    """The parser of ``shoal run``/``shoal create``."""
    parser = Parser(prog, description)
    add_container_flags(parser)
    return parser


def create_body(
    args: argparse.Namespace, environ: Mapping[str, str], cwd: str, *, detach: bool, auto_remove: bool = False
) -> dict[str, Any]:
    """The ``POST /containers/create`` body for parsed ``run``/``create`` flags.

    Raises ``UsageError`` with Docker's wording for a bad flag value.
    """
    env: list[str] = []
    for path in args.env_file:
        try:
            with open(path, encoding="utf-8") as file:
                env += parse_env_file(file.read(), environ)
        except OSError as exc:
            raise UsageError(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") from None
        except ValueError as exc:
            raise UsageError(f'invalid argument "{path}" for "--env-file" flag: {exc}') from None
    for item in args.env:
        env += flag_value("-e, --env", item, lambda v: parse_env([v], environ))
    labels: dict[str, str] = {}
    for item in args.label:
        labels.update(flag_value("-l, --label", item, lambda v: parse_labels([v])))

    binds, volumes = [], {}
    for spec in args.volume:
        bind, anonymous = flag_value("-v, --volume", spec, lambda v: parse_volume(v, cwd))
        if bind:
            binds.append(bind)
        else:
            volumes[anonymous] = {}
    mounts = [flag_value("--mount", spec, parse_mount) for spec in args.mount]
    tmpfs = dict(flag_value("--tmpfs", spec, parse_tmpfs) for spec in args.tmpfs)

    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in args.publish:
        spec_exposed, spec_bindings = flag_value("-p, --publish", spec, parse_port)
        exposed.update(spec_exposed)
        for key, value in spec_bindings.items():
            bindings.setdefault(key, []).extend(value)
    for spec in args.expose:
        exposed.update(flag_value("--expose", spec, parse_port)[0])

    restart = flag_value("--restart", args.restart, parse_restart)
    if auto_remove and restart["Name"] != "no":
        raise UsageError("Conflicting options: cannot specify both --restart and --rm")

    host_config: dict[str, Any] = {
        "Binds": binds or None,
        "Mounts": mounts or None,
        "Tmpfs": tmpfs or None,
        "RestartPolicy": restart,
        "AutoRemove": auto_remove,
        "CapAdd": args.cap_add or None,
        "CapDrop": args.cap_drop or None,
        "Privileged": args.privileged,
        "ReadonlyRootfs": args.read_only,
        "PortBindings": bindings or None,
    }
    if args.init:
        host_config["Init"] = True
    if args.publish_all:
        host_config["PublishAllPorts"] = True
    if args.network:
        host_config["NetworkMode"] = args.network
    for key, values in (("Dns", args.dns), ("DnsSearch", args.dns_search), ("DnsOptions", args.dns_option)):
        if values:
            host_config[key] = values
    for item in args.add_host:
        name, sep, address = item.partition(":")
        if not sep or not name or not address:
            raise UsageError(f'invalid argument "{item}" for "--add-host" flag: bad format for add-host: "{item}"')
    if args.add_host:
        host_config["ExtraHosts"] = args.add_host
    if args.memory is not None:
        host_config["Memory"] = flag_value("-m, --memory", args.memory, parse_size)
    if args.memory_swap is not None:
        host_config["MemorySwap"] = flag_value("--memory-swap", args.memory_swap, parse_memory_swap)
    if args.memory_reservation is not None:
        host_config["MemoryReservation"] = flag_value("--memory-reservation", args.memory_reservation, parse_size)
    if args.cpus is not None:
        host_config["NanoCpus"] = flag_value("--cpus", args.cpus, parse_cpus)
    if args.cpu_shares is not None:
        host_config["CpuShares"] = args.cpu_shares
    if args.cpuset_cpus is not None:
        host_config["CpusetCpus"] = args.cpuset_cpus
    if args.pids_limit is not None:
        host_config["PidsLimit"] = args.pids_limit
    if args.tty:
        from .terminal import terminal_size

        size = terminal_size()
        if size:
            host_config["ConsoleSize"] = list(size)

    attach_stdin = args.interactive and not detach
    body: dict[str, Any] = {
        "Image": args.image,
        "Cmd": args.command or None,
        "Env": env,
        "Labels": labels,
        "Tty": args.tty,
        "OpenStdin": args.interactive,
        "StdinOnce": attach_stdin,
        "AttachStdin": attach_stdin,
        "AttachStdout": not detach,
        "AttachStderr": not detach,
        "HostConfig": {k: v for k, v in host_config.items() if v is not None},
    }
    if args.ip or args.network_alias:
        if not args.network or args.network in ("bridge", "default", "none", "host"):
            raise UsageError("user specified IP address and aliases are supported only on user defined networks")
        endpoint: dict[str, Any] = {}
        if args.ip:
            endpoint["IPAMConfig"] = {"IPv4Address": args.ip}
        if args.network_alias:
            endpoint["Aliases"] = args.network_alias
        body["NetworkingConfig"] = {"EndpointsConfig": {args.network: endpoint}}
    if args.entrypoint is not None:
        body["Entrypoint"] = [args.entrypoint]  # [""] resets the image's entrypoint
    if volumes:
        body["Volumes"] = volumes
    if exposed:
        body["ExposedPorts"] = exposed
    for key, value in (("Hostname", args.hostname), ("User", args.user), ("WorkingDir", args.workdir),
                       ("StopSignal", args.stop_signal), ("StopTimeout", args.stop_timeout)):  # fmt: skip
        if value is not None:
            body[key] = value
    return body
