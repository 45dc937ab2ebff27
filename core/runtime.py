"""What the isolation and resources slots are handed: the runtime description of a container.

These types sit between the engine (which merges image config, user options and defaults)
and the providers (which turn them into namespaces, mounts and cgroups). They follow the
shape of the OCI runtime spec's ``process`` and ``linux`` sections, in Python terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Capability names in kernel numbering (CAP_CHOWN is 0).
CAPABILITY_NAMES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip

#: The capabilities a container keeps by default (Docker's set).
DEFAULT_CAPABILITIES: frozenset[str] = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
})  # fmt: skip

#: Paths hidden from an unprivileged container (Docker's defaults).
DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)  # fmt: skip

#: Paths made read-only in an unprivileged container (Docker's defaults).
DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)  # fmt: skip

#: Namespace kinds a container may get. A kind missing from ``RuntimeSpec.namespaces``
#: is shared with the host.
NAMESPACE_KINDS = ("pid", "mount", "uts", "ipc", "net", "user", "cgroup")


@dataclass(frozen=True)
class Mount:
    """One mount inside the container, made after the rootfs and before pivot_root."""

    destination: str
    type: str  # "bind", "tmpfs", "proc", "sysfs", "mqueue", "devpts", ...
    source: str = ""
    options: tuple[str, ...] = ()  # "ro", "rbind", "nosuid", "size=64m", "mode=1777", ...


@dataclass(frozen=True)
class IdMapping:
    """A uid or gid range mapped into a user namespace."""

    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True)
class ProcessSpec:
    """The process to run: a container's first process or one started by exec."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    #: "uid", "uid:gid", "name" or "name:group", resolved against the container's
    #: /etc/passwd and /etc/group; "" means root.
    user: str = ""
    additional_gids: tuple[int, ...] = ()
    terminal: bool = False
    #: Capability names ("CAP_CHOWN"...) kept in the bounding, effective, permitted and
    #: inheritable sets; every other capability is dropped from all five sets.
    capabilities: frozenset[str] = frozenset()
    no_new_privileges: bool = False
    #: rlimit name ("RLIMIT_NOFILE") -> (soft, hard)
    rlimits: tuple[tuple[str, int, int], ...] = ()
    oom_score_adj: int | None = None


@dataclass(frozen=True)
class ResourceLimits:
    """Limits applied by the resources slot. ``None`` leaves a limit unset."""

    memory: int | None = None  # bytes
    memory_swap: int | None = None  # bytes of memory + swap; -1 for unlimited
    memory_reservation: int | None = None  # bytes, a soft limit
    cpu_shares: int | None = None  # relative weight, Docker's 2..262144 scale
    cpu_quota: int | None = None  # microseconds per period
    cpu_period: int | None = None  # microseconds
    cpuset_cpus: str | None = None  # "0-1", "0,2"
    cpuset_mems: str | None = None
    pids_limit: int | None = None  # -1 or 0: unlimited
    blkio_weight: int | None = None  # 10..1000


@dataclass(frozen=True)
class RuntimeSpec:
    """Everything the isolation slot needs to create a container's first process."""

    id: str
    #: Host path of the container's root filesystem, already mounted by the snapshotter.
    rootfs: str
    process: ProcessSpec
    hostname: str = ""
    domainname: str = ""
    readonly_rootfs: bool = False
    #: Namespace kind -> None for a new namespace, or a path (/proc/PID/ns/net) to join.
    namespaces: dict[str, str | None] = field(
        default_factory=lambda: {k: None for k in ("pid", "mount", "uts", "ipc", "net", "cgroup")}
    )
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()
    mounts: tuple[Mount, ...] = ()
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)
    #: Files written into the container's /etc before start (hostname, hosts, resolv.conf):
    #: container path -> content.
    etc_files: dict[str, str] = field(default_factory=dict)
    #: cgroup.procs files the provider writes the process's PID into before ``create``
    #: returns (from ``Resources.procs_files``); empty: the caller places it.
    cgroup_procs: tuple[str, ...] = ()
    #: Run a minimal init as PID 1 that reaps zombies and forwards signals (--init).
    init: bool = False
    privileged: bool = False
