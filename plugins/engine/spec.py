"""From a Docker create request to what the lower slots are handed.

``build_config`` validates the request and merges it with the image's config into the
``Config``/``HostConfig`` pair that inspect shows; ``runtime_spec`` and
``resource_limits`` turn that pair into the isolation and resources slots' inputs. Every
refusal is an ``InvalidArgument`` whose message names the field, as Docker words it.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.errors import InvalidArgument
from shoal.runtime import (
    CAPABILITY_NAMES,
    DEFAULT_CAPABILITIES,
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    Mount,
    ProcessSpec,
    ResourceLimits,
    RuntimeSpec,
)

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_STOP_TIMEOUT = 10
CPU_PERIOD = 100_000  # microseconds; how --cpus becomes a quota
RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_CONFIG_KEYS = (
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts",
    "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "Image", "Volumes", "WorkingDir",
    "Entrypoint", "Labels", "StopSignal", "StopTimeout",
)  # fmt: skip


def parse_signal(value: str | int | None, default: int = signal.SIGTERM) -> int:
    """A signal from "SIGTERM", "TERM", "term" or "15"; ``InvalidArgument`` otherwise."""
    if value is None or value == "":
        return default
    text = str(value).strip()
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        try:
            return int(signal.Signals[name])
        except KeyError:
            pass
    raise InvalidArgument(f"Invalid signal: {value}")


def _strings(body: Mapping[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{key} must be a list of strings")
    return value


def merge_env(image_env: list[str], env: list[str]) -> list[str]:
    """Image env overridden by the request's, by variable name; PATH always present."""
    merged: dict[str, str] = {}
    for item in (*image_env, *env):
        name, sep, _ = item.partition("=")
        if not name:
            raise InvalidArgument(f"invalid environment variable: {item!r}")
        if sep:
            merged[name] = item
        else:
            merged.pop(name, None)  # "NAME" alone unsets, as the docker CLI resolves it
    if "PATH" not in merged:
        merged = {"PATH": DEFAULT_PATH, **merged}
    return list(merged.values())


def capabilities(host: Mapping[str, Any]) -> frozenset[str]:
    """The kept capabilities: Docker's default set, with CapAdd and CapDrop applied."""
    if host.get("Privileged"):
        return frozenset(CAPABILITY_NAMES)

    def names(key: str) -> set[str]:
        out = set()
        for raw in host.get(key) or ():
            name = str(raw).upper()
            if name == "ALL":
                out |= set(CAPABILITY_NAMES)
                continue
            name = name if name.startswith("CAP_") else "CAP_" + name
            if name not in CAPABILITY_NAMES:
                raise InvalidArgument(f'unknown capability: "{raw}"')
            out.add(name)
        return out

    added, dropped = names("CapAdd"), names("CapDrop")
    return frozenset((set(DEFAULT_CAPABILITIES) - dropped) | added) if "CAP_ALL" not in dropped else frozenset(added)


def resource_limits(host: Mapping[str, Any]) -> ResourceLimits:
    """HostConfig's resource fields as the resources slot takes them (0 means unset)."""

    def num(key: str) -> int | None:
        value = host.get(key)
        if value in (None, 0):
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgument(f"{key} must be an integer, got {value!r}")
        return value

    nano = num("NanoCpus")
    quota, period = num("CpuQuota"), num("CpuPeriod")
    if nano is not None:
        if quota is not None or period is not None:
            raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
        cpus = os.cpu_count() or 1
        if nano < 10_000_000 or nano > cpus * 1_000_000_000:
            raise InvalidArgument(f"Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available")
        quota, period = nano * CPU_PERIOD // 1_000_000_000, CPU_PERIOD
    memory = num("Memory")
    if memory is not None and memory < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    swap = num("MemorySwap")
    if swap is not None and swap != -1 and memory is not None and swap < memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    pids = host.get("PidsLimit")
    return ResourceLimits(
        memory=memory,
        memory_swap=swap,
        memory_reservation=num("MemoryReservation"),
        cpu_shares=num("CpuShares"),
        cpu_quota=quota,
        cpu_period=period,
        cpuset_cpus=host.get("CpusetCpus") or None,
        cpuset_mems=host.get("CpusetMems") or None,
        pids_limit=pids if isinstance(pids, int) and pids > 0 else None,
        blkio_weight=num("BlkioWeight"),
    )


@dataclass(frozen=True)
class MountRequest:
    """One -v / --mount / --tmpfs entry, validated."""

    type: str  # "bind", "volume", "tmpfs"
    source: str  # host path, volume name ("" for an anonymous volume), or ""
    destination: str
    read_only: bool = False
    options: tuple[str, ...] = ()

    def to_docker(self, mountpoint: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {
            "Type": self.type,
            "Source": mountpoint or self.source,
            "Destination": self.destination,
            "Mode": "",
            "RW": not self.read_only,
            "Propagation": "rprivate" if self.type == "bind" else "",
        }
        if self.type == "volume":
            out |= {"Name": self.source, "Driver": "local"}
        return out


def _check_destination(dest: str, field: str) -> str:
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid mount config for {field}: mount path must be absolute: {dest!r}")
    if os.path.normpath(dest) == "/":
        raise InvalidArgument(f"invalid mount config for {field}: invalid specification: destination can't be '/'")
    return os.path.normpath(dest)


def parse_bind(spec: str) -> MountRequest:
    """A -v entry: "/host:/ctr[:ro]", "name:/ctr[:ro]" or "/ctr" (anonymous volume)."""
    parts = spec.split(":")
    if len(parts) == 1:
        return MountRequest("volume", "", _check_destination(parts[0], "Binds"))
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    source, dest = parts[0], _check_destination(parts[1], "Binds")
    options = parts[2].split(",") if len(parts) == 3 else []
    known = {"ro", "rw", "z", "Z", "nocopy", "rprivate", "private", "rshared", "shared", "rslave", "slave"}
    for option in options:
        if option not in known:
            raise InvalidArgument(f"invalid mode: {option}")
    read_only = "ro" in options
    if source.startswith("/"):
        if not os.path.exists(source):
            raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path does not exist: {source}")
        return MountRequest("bind", os.path.normpath(source), dest, read_only)
    if not VOLUME_NAME.match(source):
        raise InvalidArgument(
            f'create {source}: "{source}" includes invalid characters for a local volume name, '
            "only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )
    return MountRequest("volume", source, dest, read_only)


def parse_mount(mount: Mapping[str, Any]) -> MountRequest:
    """An entry of HostConfig.Mounts (the --mount flag)."""
    kind = mount.get("Type", "volume")
    target = _check_destination(str(mount.get("Target", "")), "Mounts")
    read_only = bool(mount.get("ReadOnly"))
    source = str(mount.get("Source") or "")
    if kind == "bind":
        if not source.startswith("/"):
            raise InvalidArgument(f"invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute")
        if not os.path.exists(source):
            raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path does not exist: {source}")
        return MountRequest("bind", os.path.normpath(source), target, read_only)
    if kind == "volume":
        if source and not VOLUME_NAME.match(source):
            raise InvalidArgument(f"invalid mount config for type \"volume\": invalid volume name: {source!r}")
        return MountRequest("volume", source, target, read_only)
    if kind == "tmpfs":
        opts = mount.get("TmpfsOptions") or {}
        options = []
        if opts.get("SizeBytes"):
            options.append(f"size={int(opts['SizeBytes'])}")
        if opts.get("Mode"):
            options.append(f"mode={int(opts['Mode']):o}")
        return MountRequest("tmpfs", "", target, read_only, tuple(options))
    raise InvalidArgument(f"invalid mount config: mount type unknown: {kind!r}")


def mount_requests(host: Mapping[str, Any]) -> list[MountRequest]:
    """Every mount a container asks for, destinations unique."""
    requests = [parse_bind(b) for b in _strings(host, "Binds") or []]
    requests += [parse_mount(m) for m in host.get("Mounts") or []]
    for dest, options in (host.get("Tmpfs") or {}).items():
        opts = tuple(o for o in str(options).split(",") if o)
        requests.append(MountRequest("tmpfs", "", _check_destination(dest, "Tmpfs"), "ro" in opts, opts))
    seen: set[str] = set()
    for request in requests:
        if request.destination in seen:
            raise InvalidArgument(f"Duplicate mount point: {request.destination}")
        seen.add(request.destination)
    return requests


def restart_policy(host: Mapping[str, Any]) -> dict[str, Any]:
    policy = dict(host.get("RestartPolicy") or {})
    name = policy.get("Name", "") or "no"
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy '{name}'")
    retries = policy.get("MaximumRetryCount", 0) or 0
    if name != "on-failure" and retries:
        raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    if retries < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    if name != "no" and host.get("AutoRemove"):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    return {"Name": name, "MaximumRetryCount": retries}


def build_config(body: Mapping[str, Any], image_config: Mapping[str, Any], image_ref: str, container_id: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Validate a create request; return (Config, HostConfig, warnings) as inspect shows them."""
    if not isinstance(body, Mapping):
        raise InvalidArgument("container config must be a JSON object")
    host = dict(body.get("HostConfig") or {})
    warnings: list[str] = []
    image_cfg = image_config.get("config", image_config) or {}

    config: dict[str, Any] = {k: body.get(k) for k in _CONFIG_KEYS}
    entrypoint = _strings(body, "Entrypoint")
    cmd = _strings(body, "Cmd")
    if entrypoint is None:
        entrypoint = image_cfg.get("Entrypoint")
        if cmd is None:
            cmd = image_cfg.get("Cmd")
    elif entrypoint == [""]:  # --entrypoint "" clears the image's entrypoint
        entrypoint = None
        cmd = cmd if cmd is not None else None
    if not (entrypoint or []) + (cmd or []):
        raise InvalidArgument("no command specified")
    config["Entrypoint"] = entrypoint
    config["Cmd"] = cmd
    config["Env"] = merge_env(list(image_cfg.get("Env") or []), _strings(body, "Env") or [])
    config["WorkingDir"] = body.get("WorkingDir") or image_cfg.get("WorkingDir") or ""
    if config["WorkingDir"] and not config["WorkingDir"].startswith("/"):
        raise InvalidArgument(f"the working directory '{config['WorkingDir']}' is invalid, it needs to be an absolute path")
    config["User"] = body.get("User") or image_cfg.get("User") or ""
    config["Labels"] = {**(image_cfg.get("Labels") or {}), **(body.get("Labels") or {})}
    config["ExposedPorts"] = {**(image_cfg.get("ExposedPorts") or {}), **(body.get("ExposedPorts") or {})} or None
    config["Volumes"] = {**(image_cfg.get("Volumes") or {}), **(body.get("Volumes") or {})} or None
    config["StopSignal"] = body.get("StopSignal") or image_cfg.get("StopSignal") or "SIGTERM"
    parse_signal(config["StopSignal"])
    config["Healthcheck"] = body.get("Healthcheck") or image_cfg.get("Healthcheck")
    config["Hostname"] = body.get("Hostname") or container_id[:12]
    config["Domainname"] = body.get("Domainname") or ""
    config["Image"] = image_ref
    for flag in ("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce"):
        config[flag] = bool(body.get(flag))
    timeout = body.get("StopTimeout")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool)):
        raise InvalidArgument(f"StopTimeout must be an integer, got {timeout!r}")

    resource_limits(host)
    capabilities(host)
    mount_requests(host)
    host["RestartPolicy"] = restart_policy(host)
    mode = host.get("NetworkMode") or "default"
    if not (mode in ("default", "bridge", "none", "host") or mode.startswith("container:")):
        # User-defined networks need the network slot; the engine checks that.
        pass
    host["NetworkMode"] = mode
    log_config = host.get("LogConfig") or {}
    if log_config.get("Type") not in (None, "", "json-file"):
        raise InvalidArgument(f"logging driver not supported: {log_config.get('Type')} (available: json-file)")
    host["LogConfig"] = {"Type": "json-file", "Config": dict(log_config.get("Config") or {})}
    log_options(host["LogConfig"])
    return config, host, warnings


def parse_size(text: str, field: str) -> int:
    """Docker's log size strings: "10m", "1k", "512" (bytes)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgKMG]?)[bB]?", text.strip())
    if not match:
        raise InvalidArgument(f"invalid value for {field}: {text!r}")
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(float(match.group(1)) * factor)


def log_options(log_config: Mapping[str, Any]) -> tuple[int, int]:
    """(max_size bytes, max_file count) of a json-file LogConfig."""
    options = log_config.get("Config") or {}
    unknown = set(options) - {"max-size", "max-file", "compress", "labels", "env", "tag"}
    if unknown:
        raise InvalidArgument(f"unknown log opt '{sorted(unknown)[0]}' for json-file log driver")
    max_size = parse_size(options["max-size"], "max-size") if options.get("max-size") else 0
    try:
        max_file = int(options.get("max-file", 1))
    except ValueError:
        raise InvalidArgument(f"invalid value for max-file: {options.get('max-file')!r}") from None
    if max_file < 1:
        raise InvalidArgument("max-file cannot be less than 1")
    if max_file > 1 and not max_size:
        raise InvalidArgument("max-file can only be used with max-size")
    return max_size, max_file


def etc_files(config: Mapping[str, Any], host: Mapping[str, Any], addresses: list[str]) -> dict[str, str]:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf for a container."""
    hostname = config["Hostname"]
    hosts = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for extra in host.get("ExtraHosts") or []:
        name, _, address = extra.partition(":")
        hosts.append(f"{address}\t{name}")
    for address in addresses:
        hosts.append(f"{address}\t{hostname}")
    return {
        "/etc/hostname": hostname + "\n",
        "/etc/hosts": "\n".join(hosts) + "\n",
        "/etc/resolv.conf": resolv_conf(host),
    }


def resolv_conf(host: Mapping[str, Any]) -> str:
    """The host's resolv.conf without loopback servers (unreachable from a container), plus
    the container's own --dns, --dns-search and --dns-option."""
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        lines = []
    kept = [line for line in lines if not re.match(r"\s*nameserver\s+(127\.|::1\b)", line)]
    if host.get("Dns"):
        kept = [line for line in kept if not line.strip().startswith("nameserver")]
        kept += [f"nameserver {server}" for server in host["Dns"]]
    if host.get("DnsSearch"):
        kept = [line for line in kept if not line.strip().startswith(("search", "domain"))]
        kept.append("search " + " ".join(host["DnsSearch"]))
    if host.get("DnsOptions"):
        kept.append("options " + " ".join(host["DnsOptions"]))
    return "\n".join(kept) + "\n"


def runtime_spec(
    container_id: str,
    config: Mapping[str, Any],
    host: Mapping[str, Any],
    rootfs: str,
    mounts: list[Mount],
    namespaces: dict[str, str | None],
    etc: dict[str, str],
) -> RuntimeSpec:
    """The isolation slot's input for a container's first process."""
    privileged = bool(host.get("Privileged"))
    args = tuple((config.get("Entrypoint") or []) + (config.get("Cmd") or []))
    env = list(config["Env"]) + [f"HOSTNAME={config['Hostname']}"]
    if config.get("Tty"):
        env.append("TERM=xterm")
    process = ProcessSpec(
        args=args,
        env=tuple(env),
        cwd=config.get("WorkingDir") or "/",
        user=config.get("User") or "",
        terminal=bool(config.get("Tty")),
        capabilities=capabilities(host),
        no_new_privileges="no-new-privileges" in (host.get("SecurityOpt") or [])
        or "no-new-privileges:true" in (host.get("SecurityOpt") or []),
        oom_score_adj=host.get("OomScoreAdj") or None,
    )
    shm_size = host.get("ShmSize") or 64 * 1024 * 1024
    shm = Mount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"))
    return RuntimeSpec(
        id=container_id,
        rootfs=rootfs,
        process=process,
        hostname=config["Hostname"],
        domainname=config.get("Domainname") or "",
        readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        namespaces=namespaces,
        mounts=(shm, *mounts),
        masked_paths=() if privileged else DEFAULT_MASKED_PATHS,
        readonly_paths=() if privileged else DEFAULT_READONLY_PATHS,
        sysctls=dict(host.get("Sysctls") or {}),
        etc_files=etc,
        init=bool(host.get("Init")),
        privileged=privileged,
    )
