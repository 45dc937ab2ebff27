"""Slots: extension points with exactly one provider each, chosen by name in ``[slots]``.

A slot is a ``typing.Protocol``. A plugin fills a slot by naming it in its declaration
(``Plugin(slot="store", ...)``); its setup returns the provider object, which other plugins get
from ``ctx.slot("store")`` once they declare ``requires=("store",)``. Methods that may block
are async. Optional abilities are separate protocols (``SupportsCheckpoint``), so code checks
``isinstance(provider, SupportsX)`` instead of calling a method that raises.

Every protocol and method here is documented in one format, checked by a test: a summary,
then ``Args:`` (each parameter), ``Returns:`` and ``Implementers:`` (who provides it).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import trio

    from .runtime import ProcessSpec, ResourceLimits, RuntimeSpec
    from .store import Change, Op, StoredObject


# --------------------------------------------------------------------------- isolation


@dataclass(frozen=True)
class Stdio:
    """File descriptors a container process gets; ``None`` means /dev/null.

    With ``terminal`` set, the provider allocates a pseudo-terminal instead and hands its
    master side back as ``ContainerProcess.pty_master``.
    """

    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None
    terminal: bool = False


@runtime_checkable
class ContainerProcess(Protocol):
    """A process the isolation slot started: a container's init or an exec'd process.

    Implementers:
        Returned by ``Isolation.create``, ``Isolation.exec`` and ``Isolation.restore``.
    """

    #: Host PID of the process.
    pid: int
    #: Master side of the pty when the process was created with a terminal, else None.
    pty_master: int | None

    async def start(self) -> None:
        """Let a created process run its program (the second half of create/start).

        Args:
            (none)
        Returns:
            None once the program has been executed; raises ``ShoalError`` with the
            reason (command not found, not executable) when it could not be.
        Implementers:
            Isolation providers.
        """

    async def wait(self) -> int:
        """Wait for the process to end.

        Args:
            (none)
        Returns:
            The exit status as Docker reports it: the exit code, or 128 + signal number.
        Implementers:
            Isolation providers.
        """

    def kill(self, signal: int) -> None:
        """Send a signal to the process (to the container's PID 1 for an init).

        Args:
            signal: the signal number.
        Returns:
            None; a process that already ended is not an error.
        Implementers:
            Isolation providers.
        """

    def state(self) -> dict[str, Any]:
        """Describe the process for live restore after a daemon restart.

        Args:
            (none)
        Returns:
            A JSON-serialisable mapping that ``Isolation.restore`` accepts.
        Implementers:
            Isolation providers.
        """

    def take_stdio(self) -> dict[str, int]:
        """Get back the output descriptors of a re-adopted process (after ``restore``).

        The provider keeps the read ends of the process's stdout and stderr pipes (and its pty
        master) open while the daemon is away, so the process never sees a broken pipe.

        Args:
            (none)
        Returns:
            "stdout", "stderr" and/or "pty" -> a new close-on-exec descriptor the caller owns.
        Implementers:
            Isolation providers.
        """

    def close(self) -> None:
        """Release this handle's descriptors; the process itself is not affected.

        Args:
            (none)
        Returns:
            None.
        Implementers:
            Isolation providers.
        """


@runtime_checkable
class Isolation(Protocol):
    """Turns a runtime spec and a mounted rootfs into an isolated, running process.

    Namespaces, pivot_root, /proc /dev /sys, masked and read-only paths, capabilities,
    no_new_privs, user and group, environment, working directory, terminal or pipes.

    Implementers:
        The ``namespaces`` plugin; third-party runtimes (a VM-based one, say).
    """

    async def create(self, spec: RuntimeSpec, stdio: Stdio) -> ContainerProcess:
        """Create a container's first process, stopped before it runs its program.

        The caller places the process in its cgroup (resources slot) and attaches its
        network between ``create`` and ``ContainerProcess.start``.

        Args:
            spec: what to run and how to isolate it.
            stdio: the descriptors or terminal for its standard streams.
        Returns:
            The created process; nothing of it is left behind if this raises.
        Implementers:
            Isolation providers.
        """

    async def exec(self, target: ContainerProcess, process: ProcessSpec, stdio: Stdio) -> ContainerProcess:
        """Start another process inside a running container's namespaces and cgroup.

        Args:
            target: the container's first process.
            process: what to run.
            stdio: the descriptors or terminal for its standard streams.
        Returns:
            The exec'd process, already running.
        Implementers:
            Isolation providers.
        """

    async def restore(self, state: Mapping[str, Any]) -> ContainerProcess | None:
        """Re-adopt a process from a previous daemon run (live restore).

        Args:
            state: what ``ContainerProcess.state`` returned before the restart.
        Returns:
            The process if it still runs, else None (then see ``recorded_exit``).
        Implementers:
            Isolation providers.
        """

    async def recorded_exit(self, state: Mapping[str, Any]) -> int | None:
        """The exit status of a process that ended, possibly while the daemon was away.

        Args:
            state: what ``ContainerProcess.state`` returned.
        Returns:
            The status as ``ContainerProcess.wait`` gives it, or None if none was recorded.
        Implementers:
            Isolation providers.
        """

    def forget(self, state: Mapping[str, Any]) -> None:
        """Delete what the provider keeps about a finished process (its recorded status).

        Args:
            state: what ``ContainerProcess.state`` returned.
        Returns:
            None.
        Implementers:
            Isolation providers.
        """


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class ResourceStats:
    """One reading of a container's resource use."""

    memory_usage: int
    memory_limit: int | None
    cpu_usage_ns: int
    pids: int
    io_read_bytes: int
    io_write_bytes: int
    raw: Mapping[str, Any]


@runtime_checkable
class Resources(Protocol):
    """Places containers in control groups with limits; reads stats and OOM events.

    Implementers:
        The ``cgroups`` plugin (v1, v2 and hybrid hosts).
    """

    async def create(self, name: str, limits: ResourceLimits) -> None:
        """Create the group for one container with its limits.

        Args:
            name: the container's id; unique among live groups.
            limits: the limits to apply.
        Returns:
            None; raises ``InvalidArgument`` naming a limit the host cannot apply, leaving
            nothing behind.
        Implementers:
            Resources providers.
        """

    async def add_process(self, name: str, pid: int) -> None:
        """Move a process into the group.

        Args:
            name: the group.
            pid: host PID of the process.
        Returns:
            None.
        Implementers:
            Resources providers.
        """

    def procs_files(self, name: str) -> list[str]:
        """The group's ``cgroup.procs`` files, for ``RuntimeSpec.cgroup_procs``.

        An isolation provider that writes the new process's PID into them itself can do it
        while it sets up the rest of the container, hiding the kernel's attach latency.

        Args:
            name: the group, already created.
        Returns:
            Absolute paths, one per hierarchy the group lives in.
        Implementers:
            Resources providers.
        """

    async def update(self, name: str, limits: ResourceLimits) -> None:
        """Change the limits of a live group.

        Args:
            name: the group.
            limits: the new limits; ``None`` fields stay as they are.
        Returns:
            None.
        Implementers:
            Resources providers.
        """

    async def freeze(self, name: str, frozen: bool) -> None:
        """Freeze (pause) or thaw (unpause) every process in the group.

        Args:
            name: the group.
            frozen: True to freeze, False to thaw.
        Returns:
            None once the group reached the state.
        Implementers:
            Resources providers.
        """

    async def stats(self, name: str) -> ResourceStats:
        """Read the group's current resource use.

        Args:
            name: the group.
        Returns:
            One reading.
        Implementers:
            Resources providers.
        """

    async def oom_killed(self, name: str) -> bool:
        """Tell whether the kernel's OOM killer ended a process of the group.

        Args:
            name: the group.
        Returns:
            True once an OOM kill happened in it.
        Implementers:
            Resources providers.
        """

    async def pids(self, name: str) -> list[int]:
        """List the host PIDs in the group (for ``top``).

        Args:
            name: the group.
        Returns:
            The PIDs, in no particular order.
        Implementers:
            Resources providers.
        """

    async def remove(self, name: str) -> None:
        """Remove the group; its processes must have ended.

        Args:
            name: the group; a missing group is not an error.
        Returns:
            None.
        Implementers:
            Resources providers.
        """


# --------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class ImageRecord:
    """An image in the local store.

    ``config`` is the whole OCI image config (``architecture``, ``os``, ``created``,
    ``config`` with Cmd/Entrypoint/Env/WorkingDir/User/ExposedPorts/Labels/Healthcheck,
    ``rootfs.diff_ids``, ``history``); the engine merges ``config["config"]`` into a
    container's spec.
    """

    id: str  # "sha256:<config digest>"
    names: tuple[str, ...]  # normalised references: "docker.io/library/busybox:latest"
    layers: tuple[str, ...]  # diff ids (uncompressed layer digests), bottom first
    config: Mapping[str, Any]  # the OCI image config
    size: int  # bytes of the uncompressed layers
    created: str  # RFC 3339, from the config
    digest: str = ""  # "sha256:<manifest digest>" of the stored OCI manifest


@runtime_checkable
class ImageStore(Protocol):
    """Keeps images: content-addressed blobs (layers, configs, manifests), names and tags.

    References follow Docker's normalisation: "busybox" is "docker.io/library/busybox:latest".
    Whether a container still uses an image is the engine's knowledge: it passes the images
    in use to ``remove``.

    Implementers:
        The ``images`` plugin (local store; it also has the ``ImageDistribution`` ability:
        pull, push, save, load, prune).
    """

    async def get(self, reference: str) -> ImageRecord:
        """Find an image by name, tag, digest, full id or unambiguous id prefix.

        Args:
            reference: "busybox", "busybox:1.36", "host:5000/x@sha256:...", "sha256:<id>",
                an id prefix.
        Returns:
            The image; raises ``NotFound`` naming the reference, ``InvalidArgument`` for
            a malformed reference or an id prefix that matches several images.
        Implementers:
            Image store providers.
        """

    async def list(self) -> list[ImageRecord]:
        """List every image in the store.

        Args:
            (none)
        Returns:
            The images, newest first.
        Implementers:
            Image store providers.
        """

    async def import_rootfs(
        self,
        source: str | AsyncIterator[bytes],
        reference: str | None,
        config: Mapping[str, Any],
        comment: str = "",
    ) -> ImageRecord:
        """Make a one-layer image from a root filesystem and unpack it for containers.

        Args:
            source: path of a tar (plain, gzip, bzip2, xz or zstd) or of a directory, or
                the tar's bytes as an async stream (an API request body).
            reference: the name to tag it with, or None for an untagged image.
            config: image config fields (Cmd, Entrypoint, Env, WorkingDir, User,
                ExposedPorts, Labels, Healthcheck...) to record.
            comment: the history comment ("Imported from -").
        Returns:
            The new image; nothing of it is visible if this raises.
        Implementers:
            Image store providers.
        """

    async def tag(self, reference: str, new_reference: str) -> None:
        """Give an image another name; a name held by another image moves to this one.

        Args:
            reference: an existing image.
            new_reference: the name to add (a tag, not a digest).
        Returns:
            None.
        Implementers:
            Image store providers.
        """

    async def remove(self, reference: str, force: bool = False, in_use: Mapping[str, str] | None = None) -> list[dict[str, str]]:
        """Untag an image, and delete it once no name refers to it.

        Args:
            reference: the image: a name untags that name; an id removes every name.
            force: delete even when containers use it or several names refer to it.
            in_use: image id -> a container using it, as the engine knows; an image in
                use is not deleted (``Conflict``) unless forced.
        Returns:
            Docker's ``{"Untagged": name}`` and ``{"Deleted": id}`` items, in order.
        Implementers:
            Image store providers.
        """

    async def history(self, reference: str) -> list[dict[str, Any]]:
        """Describe how an image was built, newest step first.

        Args:
            reference: the image.
        Returns:
            Docker's history items: Id, Created (unix seconds), CreatedBy, Tags, Size,
            Comment.
        Implementers:
            Image store providers.
        """


@runtime_checkable
class ImageDistribution(Protocol):
    """An optional ability of an image store: registries, archives and pruning.

    Progress is reported as Docker's JSON-lines messages (``{"status", "id",
    "progressDetail", "progress"}``) through a callback; credentials are the registry
    user's (``username``, ``password``, ``identity_token``), or None for those stored in
    Docker's ``config.json``.

    Implementers:
        The ``images`` plugin.
    """

    async def pull(self, reference: str, credentials: Any = None, report: Callable[[dict[str, Any]], None] = ...,
                   platform: Mapping[str, str] | None = None) -> ImageRecord:  # fmt: skip
        """Pull an image from its registry, unpacked and ready to run.

        Args:
            reference: "busybox", "host:5000/app:1", "repo@sha256:...".
            credentials: for the registry, or None for the stored ones.
            report: receives progress messages.
            platform: {"os", "architecture", "variant"} to pick from a manifest list;
                None for this host's.
        Returns:
            The stored image; nothing is visible if this raises (the downloaded bytes are
            kept so that the next pull resumes).
        Implementers:
            Image store providers that reach registries.
        """

    async def push(self, reference: str, credentials: Any = None, report: Callable[[dict[str, Any]], None] = ...) -> str:
        """Push a stored image to the registry and repository its name says.

        Args:
            reference: the image's name with a tag.
            credentials: for the registry, or None for the stored ones.
            report: receives progress messages.
        Returns:
            The digest of the pushed manifest.
        Implementers:
            Image store providers that reach registries.
        """

    async def login(self, registry: str, credentials: Any) -> None:
        """Check credentials against a registry.

        Args:
            registry: the registry host ("docker.io", "host:5000").
            credentials: the user's credentials.
        Returns:
            None; raises an error naming the registry when they are refused.
        Implementers:
            Image store providers that reach registries.
        """

    async def describe(self, reference: str, credentials: Any = None) -> dict[str, Any]:
        """What a registry holds for a reference, without pulling it.

        Args:
            reference: the image reference.
            credentials: for the registry, or None for the stored ones.
        Returns:
            Docker's ``DistributionInspect``: {"Descriptor": {...}, "Platforms": [...]}.
        Implementers:
            Image store providers that reach registries.
        """

    async def save(self, references: Sequence[str]) -> Any:
        """Write images to a ``docker save`` archive (a temporary file).

        Args:
            references: the images (a name saves that tag; an id saves every name).
        Returns:
            The archive's ``pathlib.Path``; the caller deletes it.
        Implementers:
            Image store providers.
        """

    async def load(self, source: AsyncIterator[bytes]) -> list[tuple[ImageRecord, list[str]]]:
        """Load the images of a ``docker save`` archive (or an OCI layout tar).

        Args:
            source: the archive's bytes.
        Returns:
            Each loaded image with the names it was given.
        Implementers:
            Image store providers.
        """

    async def prune(self, all_unused: bool = False, in_use: Collection[str] = ()) -> tuple[list[dict[str, str]], int]:
        """Remove dangling images (or all unused ones), then unreferenced blobs and layers.

        Args:
            all_unused: remove tagged images no container uses, too.
            in_use: ids of the images containers use.
        Returns:
            Docker's ``{"Untagged"|"Deleted": ...}`` items and the bytes reclaimed.
        Implementers:
            Image store providers.
        """


@runtime_checkable
class Snapshotter(Protocol):
    """Unpacks image layers once and builds container root filesystems over them.

    Layers are named by their OCI chain id; a container's rootfs is a writable layer
    over read-only shared ones (overlayfs), or a private copy where overlayfs is missing.

    Implementers:
        The ``overlay`` plugin (overlayfs, with a copying fallback).
    """

    async def has_layer(self, diff_ids: Sequence[str]) -> bool:
        """Tell whether a layer stack is unpacked.

        Args:
            diff_ids: diff ids of the stack, bottom first.
        Returns:
            True if its top layer (and so every one below) is unpacked.
        Implementers:
            Snapshotter providers.
        """

    async def apply_layer(self, diff_ids: Sequence[str], source: str) -> str:
        """Unpack one layer tar on top of its already unpacked parents.

        Args:
            diff_ids: diff ids from the bottom layer up to and including this one.
            source: path of the layer tar (plain, gzip or zstd); its uncompressed bytes
                must hash to ``diff_ids[-1]``.
        Returns:
            The layer's chain id; an already unpacked layer is not unpacked again. Raises
            ``InvalidArgument`` for a digest mismatch or an unsafe or malformed tar, with
            nothing left behind.
        Implementers:
            Snapshotter providers.
        """

    async def prepare(self, key: str, layers: Sequence[str]) -> str:
        """Make a writable root filesystem over read-only layers (again: the same path).

        Args:
            key: the container's id.
            layers: diff ids of the image's layers, bottom first; all unpacked.
        Returns:
            The host path where the rootfs is mounted.
        Implementers:
            Snapshotter providers.
        """

    async def remove(self, key: str) -> None:
        """Unmount and delete a container's writable layer.

        Args:
            key: the container's id; a missing snapshot is not an error.
        Returns:
            None.
        Implementers:
            Snapshotter providers.
        """

    async def gc(self, keep: Collection[str]) -> list[str]:
        """Delete unpacked layers no image keeps and no container uses.

        Args:
            keep: chain ids the images still reference.
        Returns:
            The chain ids deleted.
        Implementers:
            Snapshotter providers.
        """


@runtime_checkable
class GrowingLayers(Protocol):
    """A snapshotter's optional ability: unpack a layer while its file is still downloading.

    A pull checks for it with ``isinstance`` and otherwise unpacks each layer from the stored
    blob with ``Snapshotter.apply_layer`` once it is downloaded.

    Implementers:
        The ``overlay`` plugin (a child process follows the file, so the unpack does not
        contend with the download for the interpreter).
    """

    async def apply_growing_layer(self, diff_ids: Sequence[str], source: str, sizes: AsyncIterable[tuple[int, bool]], *,
                                  before_commit: Callable[[], Awaitable[object]] | None = None,
                                  task_status: Any = ...) -> str:  # fmt: skip
        """Unpack a layer from a file that grows; for ``nursery.start``.

        Args:
            diff_ids: diff ids from the bottom layer up to and including this one.
            source: path of the layer file being written (created empty if missing); it
                may be renamed once the task has started.
            sizes: (bytes the file holds, whether that is its final size) as they become
                known; bytes are flushed before they are announced. Announcing the final
                size only after the blob's digest is verified keeps an unverified download
                from ever being committed.
            before_commit: awaited before the layer is renamed into place (the caller's
                wait for the parent layer).
            task_status: started with True when the layer is unpacked already (nothing
                else happens), else with False once the source is open.
        Returns:
            The layer's chain id. Raises ``InvalidArgument`` for a diff id mismatch or an
            unsafe or malformed tar, or when ``sizes`` ends without a final size; nothing
            is left behind then, or when cancelled.
        Implementers:
            Snapshotter providers that can follow a download.
        """


@dataclass(frozen=True)
class VolumeRecord:
    """A named volume."""

    name: str
    driver: str
    mountpoint: str
    labels: Mapping[str, str]
    created: str
    options: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class VolumeStore(Protocol):
    """Named volumes that outlive containers (``-v NAME:/path``).

    Whether a container uses a volume is the engine's knowledge: it refuses ``remove``
    of a volume in use before calling the store.

    Implementers:
        The ``local-volumes`` plugin.
    """

    async def create(self, name: str, labels: Mapping[str, str], options: Mapping[str, str] | None = None) -> VolumeRecord:
        """Create a volume, or return the existing one of that name.

        Args:
            name: the volume's name (``[a-zA-Z0-9][a-zA-Z0-9_.-]+``); "" for a random one.
            labels: labels to record.
            options: driver options; ``InvalidArgument`` for ones the driver lacks.
        Returns:
            The volume.
        Implementers:
            Volume providers.
        """

    async def get(self, name: str) -> VolumeRecord:
        """Find a volume.

        Args:
            name: the volume's name.
        Returns:
            The volume; raises ``NotFound``.
        Implementers:
            Volume providers.
        """

    async def list(self) -> list[VolumeRecord]:
        """List volumes.

        Args:
            (none)
        Returns:
            Every volume, ordered by name.
        Implementers:
            Volume providers.
        """

    async def remove(self, name: str) -> None:
        """Delete a volume and its data (the engine first checks no container uses it).

        Args:
            name: the volume's name.
        Returns:
            None; raises ``NotFound``.
        Implementers:
            Volume providers.
        """


# --------------------------------------------------------------------------- network


@dataclass(frozen=True)
class Endpoint:
    """A container's attachment to one network."""

    network: str  # the network's name
    container: str
    interface: str  # host end of the link (the veth on the bridge)
    ipv4: str | None
    gateway: str | None
    mac: str | None
    aliases: tuple[str, ...] = ()
    network_id: str = ""
    endpoint_id: str = ""
    prefixlen: int = 0
    #: Published ports: {"proto", "container_port", "host_ip", "host_port"} each.
    ports: tuple[Mapping[str, Any], ...] = ()
    #: The resolver the container should use (an embedded DNS), or None for the host's.
    nameserver: str | None = None


@runtime_checkable
class Network(Protocol):
    """Networks, addresses and published ports for containers.

    A container's endpoint is allocated (address, ports: persisted, so never given twice)
    before its first process exists, so /etc/hosts can name the address; it is attached
    once the process's network namespace exists, before the program runs; it is detached
    when the process ends. Network objects are Docker's ``Network`` JSON.

    Implementers:
        The ``bridge`` plugin.
    """

    async def create_network(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a network.

        Args:
            body: Docker's ``NetworkCreateRequest`` (Name, Driver, IPAM, Internal, Labels, Options).
        Returns:
            ``{"Id": ..., "Warning": ...}``; raises ``Conflict`` (name taken, overlapping
            subnet), ``InvalidArgument`` (bad subnet or gateway) or ``NotFound`` (driver),
            with nothing made.
        Implementers:
            Network providers.
        """

    async def remove_network(self, ref: str) -> None:
        """Remove a network no container is attached to.

        Args:
            ref: network name, id or unique id prefix.
        Returns:
            None; raises ``NotFound``, ``Conflict`` (endpoints attached) or
            ``InvalidArgument`` (a predefined network).
        Implementers:
            Network providers.
        """

    async def inspect_network(self, ref: str) -> dict[str, Any]:
        """Describe a network.

        Args:
            ref: network name, id or unique id prefix.
        Returns:
            Docker's ``Network`` object with its ``Containers``; raises ``NotFound``.
        Implementers:
            Network providers.
        """

    async def list_networks(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, Any]]:
        """List networks.

        Args:
            filters: Docker's network filters (name, id, driver, type, label, scope, dangling).
        Returns:
            Docker's ``Network`` objects, sorted by name.
        Implementers:
            Network providers.
        """

    async def prune_networks(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[str]:
        """Remove every user-defined network without attached containers.

        Args:
            filters: ``label`` filters the removed networks must match.
        Returns:
            The names of the removed networks.
        Implementers:
            Network providers.
        """

    async def sandbox(self, container: str) -> str | None:
        """Offer a network namespace made ahead of time for a container to join.

        A provider that keeps ready namespaces (lo up, a veth pair in place) spares the start
        path the kernel's namespace and link creation; ``attach`` then only configures it.

        Args:
            container: the container's id.
        Returns:
            The path of a namespace to join (the container's ``namespaces["net"]``), or None:
            the container makes its own.
        Implementers:
            Network providers; one without such a pool returns None.
        """

    async def allocate(self, container: str, name: str, network: str, options: Mapping[str, Any]) -> Endpoint:
        """Reserve a container's address and published ports on a network (idempotent).

        Args:
            container: the container's id.
            name: the container's name (what other containers resolve).
            network: network name or id.
            options: ``ip`` (a fixed address), ``aliases``, ``port_bindings`` (Docker's
                PortBindings), ``exposed_ports`` and ``publish_all`` (-P), ``dns`` (upstream
                resolvers of the embedded DNS).
        Returns:
            The endpoint, persisted; raises ``Conflict`` (address or port taken) or
            ``InvalidArgument`` (address outside the subnet), with nothing reserved.
        Implementers:
            Network providers.
        """

    async def attach(self, container: str, netns: str, network: str, options: Mapping[str, Any]) -> Endpoint:
        """Connect a container's network namespace to a network (allocating if not done yet).

        Args:
            container: the container's id.
            netns: path of its network namespace (/proc/PID/ns/net).
            network: network name or id.
            options: those of ``allocate`` plus ``name``, ``interface`` (the name inside,
                default eth0) and ``default_route`` (default True).
        Returns:
            The endpoint made; nothing is left behind if this raises.
        Implementers:
            Network providers.
        """

    async def detach(self, container: str, network: str) -> None:
        """Disconnect a container from a network and release what it held.

        Args:
            container: the container's id.
            network: network name or id.
        Returns:
            None; an endpoint already gone is not an error.
        Implementers:
            Network providers.
        """

    async def release(self, container: str) -> None:
        """Disconnect a container from every network.

        Args:
            container: the container's id.
        Returns:
            None.
        Implementers:
            Network providers.
        """

    async def endpoints(self, container: str) -> list[Endpoint]:
        """A container's current endpoints.

        Args:
            container: the container's id.
        Returns:
            Its endpoints, one per network it is attached to.
        Implementers:
            Network providers.
        """

    async def restore(self, container: str, netns: str) -> None:
        """Take a running container back after a daemon restart (ports held, DNS answered).

        Args:
            container: the container's id.
            netns: path of its network namespace.
        Returns:
            None.
        Implementers:
            Network providers.
        """

    async def reconcile(self, keep: Collection[str]) -> None:
        """Release the endpoints of containers that are no longer running.

        Args:
            keep: ids of the containers whose endpoints stay (running or about to restart).
        Returns:
            None.
        Implementers:
            Network providers.
        """


# --------------------------------------------------------------------------- scheduler


@dataclass(frozen=True)
class Placement:
    """The scheduler's decision for one task."""

    task: str
    node: str | None  # None: no node fits
    reason: str = ""  # why no node fits, for the task's status message


@runtime_checkable
class Scheduler(Protocol):
    """Chooses a node for each pending task (filters, then spread preferences).

    Pure logic: no I/O, so its methods are synchronous.

    Implementers:
        The swarm ``spread`` scheduler plugin.
    """

    def place(self, tasks: Sequence[Mapping[str, Any]], nodes: Sequence[Mapping[str, Any]]) -> list[Placement]:
        """Assign nodes to tasks.

        Args:
            tasks: pending tasks with their spec (resources, constraints, preferences).
            nodes: ready nodes with their description, labels, resources and current tasks.
        Returns:
            One placement per task, in the order given.
        Implementers:
            Scheduler providers.
        """


# --------------------------------------------------------------------------- secrets


@runtime_checkable
class SecretStore(Protocol):
    """Holds secret payloads, encrypted at rest; the store keeps their metadata.

    Implementers:
        The swarm secrets plugin; third-party vault back-ends.
    """

    async def put(self, secret_id: str, data: bytes) -> None:
        """Store a payload.

        Args:
            secret_id: the secret's id.
            data: the payload (at most 500 KB).
        Returns:
            None.
        Implementers:
            Secret store providers.
        """

    async def get(self, secret_id: str) -> bytes:
        """Read a payload back.

        Args:
            secret_id: the secret's id.
        Returns:
            The decrypted payload; raises ``NotFound``.
        Implementers:
            Secret store providers.
        """

    async def delete(self, secret_id: str) -> None:
        """Forget a payload.

        Args:
            secret_id: the secret's id; a missing one is not an error.
        Returns:
            None.
        Implementers:
            Secret store providers.
        """


# --------------------------------------------------------------------------- store


@runtime_checkable
class Store(Protocol):
    """Versioned objects with atomic transactions and a watch stream.

    Every object has a kind ("container", "service"...), an id, a JSON-like ``data`` mapping,
    string labels, and a version: the store's revision when it last changed. The store's
    revision grows by one per committed transaction. ``shoal.store.StoreBase`` derives
    the single-object methods from ``commit``; ``shoal.testing.store`` is the conformance
    suite every provider passes.

    Implementers:
        ``sqlite`` (one host), ``raft`` (swarm managers), third-party back-ends (etcd).
    """

    async def commit(self, ops: Sequence[Op]) -> list[StoredObject | None]:
        """Apply operations atomically: all of them or none, in order.

        Each op sees the effect of those before it in the same call. A commit of nothing
        but ``Check`` ops (or of no ops) changes nothing and does not advance the revision.

        Args:
            ops: ``Create``, ``Update``, ``Delete`` and ``Check`` operations.
        Returns:
            For each op, the object as stored after it (None for a delete or a check);
            raises ``Conflict`` (an id in use, a stale version) or ``NotFound`` naming the
            op that failed, with nothing applied.
        Implementers:
            Store providers.
        """

    async def get(self, kind: str, id: str) -> StoredObject:
        """Read one object.

        Args:
            kind: the object's kind.
            id: the object's id.
        Returns:
            The object; raises ``NotFound``.
        Implementers:
            Store providers.
        """

    async def list(self, kind: str, labels: Mapping[str, str] | None = None) -> list[StoredObject]:
        """List objects of a kind, optionally those carrying all the given labels.

        Args:
            kind: the kind.
            labels: label -> value pairs every returned object carries.
        Returns:
            The objects, ordered by id.
        Implementers:
            Store providers.
        """

    async def revision(self) -> int:
        """Read the store's current revision.

        Args:
            (none)
        Returns:
            The revision of the last committed transaction (0 for an empty store).
        Implementers:
            Store providers.
        """

    def watch(self, since: int, kinds: Sequence[str] | None = None) -> AsyncIterator[Change]:
        """Stream every change after a revision, first the recorded ones, then new ones.

        Args:
            since: changes with a revision greater than this are streamed.
            kinds: only these kinds, or all.
        Returns:
            An async iterator of changes, in revision order, that never ends by itself;
            raises ``Compacted`` when ``since`` is older than the history kept, or later
            when the watcher falls that far behind; ``trio.ClosedResourceError`` once the
            provider is closed.
        Implementers:
            Store providers.
        """

    async def create(self, kind: str, id: str, data: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> StoredObject:
        """Create one object.

        Args:
            kind: the kind.
            id: the id, unique within the kind.
            data: the content.
            labels: its labels.
        Returns:
            The stored object; raises ``Conflict`` if the id is in use.
        Implementers:
            Store providers (``StoreBase`` supplies it).
        """

    async def update(
        self, kind: str, id: str, data: Mapping[str, Any], version: int, labels: Mapping[str, str] | None = None
    ) -> StoredObject:
        """Replace one object's content, if it is still at the version the caller read.

        Args:
            kind: the kind.
            id: the id.
            data: the new content.
            version: the version the caller read; a newer stored one raises ``Conflict``.
            labels: new labels, or None to keep them.
        Returns:
            The stored object.
        Implementers:
            Store providers (``StoreBase`` supplies it).
        """

    async def delete(self, kind: str, id: str, version: int | None = None) -> None:
        """Delete one object.

        Args:
            kind: the kind.
            id: the id.
            version: if given, delete only if still at this version.
        Returns:
            None; raises ``NotFound`` or ``Conflict``.
        Implementers:
            Store providers (``StoreBase`` supplies it).
        """


# --------------------------------------------------------------------------- membership


@dataclass(frozen=True)
class Member:
    """A node as membership sees it."""

    id: str
    address: str
    state: str  # "alive", "suspect", "dead", "left"
    meta: Mapping[str, str]


@runtime_checkable
class Membership(Protocol):
    """Which nodes exist and which are alive (gossip in a cluster, just us on one host).

    Implementers:
        ``local-membership`` (one host); the swarm ``gossip`` plugin (SWIM).
    """

    def local(self) -> Member:
        """Describe this node.

        Args:
            (none)
        Returns:
            This node's member record.
        Implementers:
            Membership providers.
        """

    def members(self) -> list[Member]:
        """List the nodes known now, this one included.

        Args:
            (none)
        Returns:
            Every known member with its state.
        Implementers:
            Membership providers.
        """

    def subscribe(self) -> AsyncIterator[Member]:
        """Stream member changes (joined, suspected, died, left).

        Args:
            (none)
        Returns:
            An async iterator yielding a member each time its state changes.
        Implementers:
            Membership providers.
        """


# --------------------------------------------------------------------------- transport


@runtime_checkable
class Transport(Protocol):
    """Authenticated byte streams between nodes (TCP with mutual TLS, or in memory).

    The peer's identity given to ``serve``'s handler is the common name of its certificate
    ("" when the transport authenticates nobody).

    Implementers:
        ``shoal.plugins.raft.transport``: ``TlsTransport`` (certificates from files),
        ``TcpTransport`` and ``MemoryTransport`` (tests); the swarm ``tls-transport`` plugin.
    """

    async def connect(self, address: str) -> trio.abc.Stream:
        """Open a stream to a peer.

        Args:
            address: "host:port" of the peer.
        Returns:
            A connected, authenticated stream; raises ``OSError`` or ``trio.BrokenResourceError``.
        Implementers:
            Transport providers.
        """

    async def serve(
        self,
        handler: Callable[[trio.abc.Stream, str], Awaitable[None]],
        *,
        task_status: trio.TaskStatus[str] = ...,  # type: ignore[assignment]
    ) -> None:
        """Accept streams from peers until cancelled.

        Args:
            handler: called in its own task with each stream and the peer's identity.
            task_status: started with the address actually listened on.
        Returns:
            Never, until cancelled.
        Implementers:
            Transport providers.
        """


# --------------------------------------------------------------------------- registry

from .containers import Containers  # noqa: E402  (its own module: the largest contract)

#: Every slot: name -> (protocol, what it is for). A plugin's ``slot`` must be one of these.
SLOTS: dict[str, type] = {
    "containers": Containers,
    "isolation": Isolation,
    "resources": Resources,
    "images": ImageStore,
    "snapshots": Snapshotter,
    "volumes": VolumeStore,
    "network": Network,
    "scheduler": Scheduler,
    "secrets": SecretStore,
    "store": Store,
    "membership": Membership,
    "transport": Transport,
}
