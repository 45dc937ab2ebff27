"""The container engine: Docker's container life cycle over the lower slots.

create: image -> snapshot (rootfs) -> record in the store. start: cgroup -> isolation
create (process waiting before exec) -> cgroup placement -> exec -> monitor. The monitor
waits for the exit, drains output into the log, records the status (OOM kills included),
removes the cgroup, and applies the restart policy or --rm. Containers outlive the daemon:
at start-up the engine re-adopts running ones from the store (live restore).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import shutil
import signal as signals
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from shoal.containers import STDERR, STDOUT
from shoal.errors import Conflict, InvalidArgument, NotFound, NotModified, ShoalError
from shoal.events import EventBus
from shoal.runtime import Mount
from shoal.slots import ContainerProcess, Stdio

from . import logs as logfile
from . import networking
from .container import ZERO_TIME, Container, new_state, now
from .names import check_name, generate_name
from .spec import (
    DEFAULT_STOP_TIMEOUT,
    MountRequest,
    build_config,
    etc_files,
    log_options,
    mount_requests,
    parse_signal,
    resource_limits,
    runtime_spec,
)
from .streams import EngineAttachment, StdinPipe, pump

log = logging.getLogger("shoal.engine")

KIND = "container"
#: How long output may keep flowing after the main process ended (a daemonised grandchild
#: that kept the pipe) before the log is closed anyway.
DRAIN_TIMEOUT = 2.0
RESTART_BACKOFF_MAX = 60.0


class ExecStartError(InvalidArgument):
    """A container's program could not be executed; ``exit_code`` is 126 or 127."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class ExecInstance:
    """A process started in a running container (``docker exec``)."""

    id: str
    container: Container
    config: dict[str, Any]
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    process: ContainerProcess | None = None
    done: trio.Event = field(default_factory=trio.Event)

    def inspect(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": bool(cfg.get("Tty")),
                "entrypoint": (cfg.get("Cmd") or [""])[0],
                "arguments": (cfg.get("Cmd") or [])[1:],
                "privileged": bool(cfg.get("Privileged")),
                "user": cfg.get("User") or "",
            },
            "OpenStdin": bool(cfg.get("AttachStdin")),
            "OpenStderr": bool(cfg.get("AttachStderr")),
            "OpenStdout": bool(cfg.get("AttachStdout")),
            "CanRemove": not self.running and self.exit_code is not None,
            "ContainerID": self.container.id,
            "DetachKeys": "",
            "Pid": self.pid,
        }


class ContainerEngine:
    """The ``containers`` slot provider."""

    def __init__(self, *, store: Any, images: Any, snapshots: Any, isolation: Any, resources: Any,
                 volumes: Any | None, events: EventBus, data_dir: Path, network: Any | None = None) -> None:  # fmt: skip
        self.store = store
        self.images = images
        self.snapshots = snapshots
        self.isolation = isolation
        self.resources = resources
        self.volumes = volumes
        self.network = network
        self.events = events
        self.data_dir = data_dir
        self._containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}
        self._execs: dict[str, ExecInstance] = {}
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------------ service and restore

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The engine's service: hosts monitors and pumps; re-adopts containers first."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._restore_all()
            task_status.started()
            await trio.sleep_forever()

    async def _restore_all(self) -> None:
        for obj in await self.store.list(KIND):
            record = json.loads(json.dumps(obj.data))
            c = Container(record, obj.version)
            self._containers[c.id] = c
            self._names[c.name] = c.id
            if c.state["Status"] in ("running", "paused", "restarting"):
                await self._readopt(c)
            elif self._restarts_on_boot(c):
                self._spawn(f"restart of {c.name}", self._restart_after_boot, c)
        keep = {cid for cid, c in self._containers.items() if c.running or self._restarts_on_boot(c)}
        await networking.reconcile(self.network, self._containers, keep)

    def _restarts_on_boot(self, c: Container) -> bool:
        policy = c.host_config["RestartPolicy"]["Name"]
        stopped = c.record.get("ManuallyStopped", False)
        return policy == "always" or (policy == "unless-stopped" and not stopped)

    async def _restart_after_boot(self, c: Container) -> None:
        try:
            await self.start(c.id)
        except ShoalError as exc:
            log.warning("container %s: restart after daemon start failed: %s", c.name, exc)

    async def _readopt(self, c: Container) -> None:
        state = c.record.get("Process")
        process = await self.isolation.restore(state) if state else None
        self._open_log(c)
        if process is None:
            code = await self.isolation.recorded_exit(state) if state else None
            log.info("container %s ended while the daemon was away (exit %s)", c.name, code)
            await self._finish_run(c, code if code is not None else 255, reason="" if code is not None else "exit status lost")
            return
        c.process = process
        held = process.take_stdio()
        out_fds = {STDOUT: held.get("stdout", held.get("pty")), STDERR: held.get("stderr")}
        self._spawn_monitor(c, process, out_fds, started=time.monotonic())
        log.info("container %s re-adopted (pid %d)", c.name, process.pid)

    # ------------------------------------------------------------------ lookup and storage

    def _get(self, ref: str) -> Container:
        c = self._containers.get(ref)
        if c is not None:
            return c
        name = ref.lstrip("/")
        if name in self._names:
            return self._containers[self._names[name]]
        matches = [c for cid, c in self._containers.items() if cid.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    async def _save(self, c: Container) -> None:
        async with c.save_lock:
            data = json.loads(json.dumps(c.record))
            obj = await self.store.update(KIND, c.id, data, c.version)
            c.version = obj.version

    def _emit(self, c: Container, action: str, **extra: str) -> None:
        attrs = {"name": c.name, "image": c.config.get("Image", ""), **(c.config.get("Labels") or {}), **extra}
        self.events.emit("container", action, c.id, **attrs)

    def _container_dir(self, cid: str) -> Path:
        return self.data_dir / "containers" / cid

    def _open_log(self, c: Container) -> None:
        if c.log is None or c.log.closed:
            max_size, max_file = log_options(c.host_config["LogConfig"])
            c.log = logfile.JsonFileLog(Path(c.record["LogPath"]), max_size, max_file)

    # ------------------------------------------------------------------ create

    async def create(self, body: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise InvalidArgument("container config must be a JSON object")
        body = dict(body)
        image_ref = body.get("Image")
        if not image_ref or not isinstance(image_ref, str):
            raise InvalidArgument("Config.Image: an image is required")
        if name:
            name = check_name(name)
            if name in self._names:
                raise Conflict(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{self._names[name]}". You have to remove (or rename) that container to be able to reuse that name.'
                )
        image = await self.images.get(image_ref)
        cid = secrets.token_hex(32)
        config, host, warnings = build_config(body, image.config, image_ref, cid)
        mode = host["NetworkMode"]
        if mode.startswith("container:"):
            self._get(mode.split(":", 1)[1])
        network_settings, network_warnings = await networking.check(self.network, body, host)
        warnings += network_warnings
        name = name or generate_name(set(self._names))
        self._names[name] = cid  # reserved now: a concurrent create of the same name conflicts
        cdir = self._container_dir(cid)
        rootfs = None
        try:
            cdir.mkdir(parents=True)
            rootfs = await self.snapshots.prepare(cid, image.layers)
            record = {
                "Id": cid,
                "Created": now(),
                "Path": ((config.get("Entrypoint") or []) + (config.get("Cmd") or []))[0],
                "Args": ((config.get("Entrypoint") or []) + (config.get("Cmd") or []))[1:],
                "State": new_state(),
                "Image": image.id,
                "Name": "/" + name,
                "RestartCount": 0,
                "Driver": type(self.snapshots).__name__.lower(),
                "LogPath": str(cdir / f"{cid}-json.log"),
                "Rootfs": rootfs,
                "Config": config,
                "HostConfig": host,
                "Mounts": [],
                "NetworkSettings": network_settings,
            }
            obj = await self.store.create(KIND, cid, record, {"name": name})
        except BaseException:
            self._names.pop(name, None)
            if rootfs is not None:
                with trio.CancelScope(shield=True):
                    await self.snapshots.remove(cid)
            shutil.rmtree(cdir, ignore_errors=True)
            raise
        c = Container(record, obj.version)
        self._containers[cid] = c
        self._emit(c, "create")
        return {"Id": cid, "Warnings": warnings}

    # ------------------------------------------------------------------ start

    async def start(self, id: str) -> None:
        c = self._get(id)
        async with c.lock:
            if c.state["Status"] in ("running", "paused"):
                raise NotModified(f"container {c.name} is already running")
            if c.state["Status"] == "removing":
                raise Conflict(f"container {c.name} is being removed")
            c.record["ManuallyStopped"] = False
            await self._start(c)

    async def _mounts(self, c: Container) -> list[Mount]:
        """Resolve -v/--mount/--tmpfs into mounts, creating named and anonymous volumes."""
        mounts: list[Mount] = []
        described = []
        for request in mount_requests(c.host_config):
            source = request.source
            if request.type == "volume":
                if self.volumes is None:
                    raise InvalidArgument(f"volume mount at {request.destination}: no volume plugin is loaded")
                name = source or c.record.setdefault("AnonymousVolumes", {}).get(request.destination) or secrets.token_hex(32)
                if not source:
                    c.record["AnonymousVolumes"][request.destination] = name
                volume = await self.volumes.create(name, {} if source else {"com.docker.volume.anonymous": ""})
                request = MountRequest("volume", name, request.destination, request.read_only)
                source = volume.mountpoint
            if request.type == "tmpfs":
                options = ("nosuid", "nodev", *request.options, *(("ro",) if request.read_only else ()))
                mounts.append(Mount(request.destination, "tmpfs", "tmpfs", tuple(dict.fromkeys(options))))
            else:
                mounts.append(Mount(request.destination, "bind", source, ("rbind", "ro" if request.read_only else "rw")))
            described.append(request.to_docker(source))
        c.record["Mounts"] = described
        return mounts

    def _namespaces(self, c: Container) -> dict[str, str | None]:
        namespaces: dict[str, str | None] = {k: None for k in ("pid", "mount", "uts", "ipc", "net", "cgroup")}
        mode = c.host_config["NetworkMode"]
        if mode == "host":
            del namespaces["net"]
        elif mode.startswith("container:"):
            other = self._get(mode.split(":", 1)[1])
            if not other.running or other.process is None:
                raise Conflict(f"cannot join network of a non running container: {other.name}")
            namespaces["net"] = f"/proc/{other.process.pid}/ns/net"
        if c.host_config.get("PidMode") == "host":
            del namespaces["pid"]
        if c.host_config.get("IpcMode") == "host":
            del namespaces["ipc"]
        return namespaces

    async def _start(self, c: Container) -> None:
        """Start a stopped container (caller holds ``c.lock``)."""
        config, host = c.config, c.host_config
        if c.record.get("Process"):  # the previous run's recorded state
            self.isolation.forget(c.record.pop("Process"))
        limits = resource_limits(host)
        mounts = await self._mounts(c)
        namespaces = self._namespaces(c)
        endpoints = await networking.prepare(self.network, c)
        await networking.sandbox(self.network, c, namespaces)
        etc = etc_files(config, networking.etc_host(host, endpoints), networking.addresses(endpoints))
        spec = runtime_spec(c.id, config, host, c.record["Rootfs"], mounts, namespaces, etc)
        tty = bool(config.get("Tty"))
        open_stdin = bool(config.get("OpenStdin"))
        ours: list[int] = []  # our ends: kept
        theirs: list[int] = []  # the process's ends: closed once it has them
        stdin_w = None
        out_fds: dict[int, int | None] = {STDOUT: None, STDERR: None}
        try:
            if tty:
                stdio = Stdio(terminal=True)
            else:
                stdin_r = None
                if open_stdin:
                    stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
                    theirs.append(stdin_r)
                    ours.append(stdin_w)
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
                theirs += [out_w, err_w]
                ours += [out_r, err_r]
                out_fds = {STDOUT: out_r, STDERR: err_r}
                stdio = Stdio(stdin=stdin_r, stdout=out_w, stderr=err_w)
            await self.resources.create(c.id, limits)
            # The isolation provider places the process in its cgroup while it sets up.
            spec = dataclasses.replace(spec, cgroup_procs=tuple(self.resources.procs_files(c.id)))
            process = None
            try:
                process = await self.isolation.create(spec, stdio)
                for fd in theirs:
                    os.close(fd)
                theirs = []
                await networking.attach(self.network, c, process.pid, endpoints)
                await process.start()
            except BaseException as exc:
                with trio.CancelScope(shield=True):
                    if process is not None:
                        process.kill(signals.SIGKILL)
                        await process.wait()
                        c.record["Process"] = process.state()
                        process.close()
                    await self.resources.remove(c.id)
                if isinstance(exc, ShoalError) and hasattr(exc, "exit_code"):
                    await self._record_failed_start(c, str(exc), exc.exit_code)  # type: ignore[attr-defined]
                    raise ExecStartError(f"failed to create task for container: {exc}: unknown", exc.exit_code) from exc  # type: ignore[attr-defined]
                raise
        except BaseException:
            for fd in (*theirs, *ours):
                os.close(fd)
            await networking.release(self.network, c)
            raise
        if tty:
            out_fds = {STDOUT: os.dup(process.pty_master), STDERR: None}  # the pump owns its copy
            stdin_w = os.dup(process.pty_master) if open_stdin else None
        c.process = process
        c.stdin = StdinPipe(stdin_w) if stdin_w is not None else None
        c.stdin_ready.set()
        c.set_status("running")
        state = c.state
        state.update(Pid=process.pid, ExitCode=0, Error="", OOMKilled=False, StartedAt=now(), FinishedAt=ZERO_TIME)
        c.record["Process"] = process.state()
        self._open_log(c)
        await self._save(c)
        self._emit(c, "start")
        self._spawn_monitor(c, process, out_fds, started=time.monotonic())

    async def _record_failed_start(self, c: Container, message: str, code: int) -> None:
        c.set_status("exited")
        c.state.update(ExitCode=code, Error=message, FinishedAt=now(), Pid=0)
        await self._save(c)
        self._emit(c, "die", exitCode=str(code))
        self._signal_exit(c)
        if c.host_config.get("AutoRemove"):
            self._spawn(f"removal of {c.name}", self._auto_remove, c)

    def _spawn(self, what: str, fn: Any, *args: Any) -> None:
        """Run a per-container task; its failure is logged, never fatal to the engine."""

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception:
                log.exception("%s failed", what)

        assert self._nursery is not None, "the engine service is not running"
        self._nursery.start_soon(guarded)

    def _spawn_monitor(self, c: Container, process: ContainerProcess, out_fds: dict[int, int | None], started: float) -> None:
        self._spawn(f"monitor of container {c.name}", self._monitor, c, process, out_fds, started)

    async def _monitor(self, c: Container, process: ContainerProcess, out_fds: dict[int, int | None], started: float) -> None:
        code = await _wait_and_drain(process, out_fds, c.hub, c.log, c.name)
        c.hub.end()
        c.hub = type(c.hub)()
        oom = False
        try:
            oom = await self.resources.oom_killed(c.id)
        except ShoalError:
            pass
        await self.resources.remove(c.id)
        process.close()
        ran_for = time.monotonic() - started
        await self._finish_run(c, code, oom=oom, ran_for=ran_for)

    async def _finish_run(self, c: Container, code: int, *, oom: bool = False, ran_for: float = 0.0, reason: str = "") -> None:
        """Record the end of a run, then restart, remove (--rm) or leave it stopped."""
        if c.stdin is not None:
            await c.stdin.close()
            c.stdin = None
        c.stdin_ready = trio.Event()
        if c.log is not None:
            c.log.close()
        c.process = None
        await networking.release(self.network, c)
        state = c.state
        state.update(ExitCode=code, Pid=0, OOMKilled=oom, FinishedAt=now(), Error=reason)
        c.set_status("exited")
        if oom:
            self._emit(c, "oom")
        self._emit(c, "die", exitCode=str(code))
        restart = self._should_restart(c, code)
        if restart:
            c.restart_delay = 0.1 if ran_for >= 10 or not c.restart_delay else min(c.restart_delay * 2, RESTART_BACKOFF_MAX)
            c.set_status("restarting")
        # Waiters see the in-memory state at once; if the daemon dies before the save, live
        # restore finds the process gone and reads its recorded exit status instead.
        self._signal_exit(c)
        await self._save(c)
        if restart:
            self._spawn(f"restart of {c.name}", self._restart_later, c)
        elif c.host_config.get("AutoRemove"):
            self._spawn(f"removal of {c.name}", self._auto_remove, c)

    @staticmethod
    def _signal_exit(c: Container) -> None:
        """Wake the waiters of this run; later waiters get the next run's event."""
        c.exited.set()
        c.exited = trio.Event()

    def _should_restart(self, c: Container, code: int) -> bool:
        if c.record.get("ManuallyStopped") or c.state["Status"] == "removing":
            return False
        policy = c.host_config["RestartPolicy"]
        name = policy["Name"]
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure" and code != 0:
            limit = policy.get("MaximumRetryCount") or 0
            return limit == 0 or c.record.get("RestartCount", 0) < limit
        return False

    async def _restart_later(self, c: Container) -> None:
        with trio.CancelScope() as scope:
            c.restart_scope = scope
            await trio.sleep(c.restart_delay)
            async with c.lock:
                if c.state["Status"] != "restarting":
                    return
                c.record["RestartCount"] = c.record.get("RestartCount", 0) + 1
                try:
                    await self._start(c)
                except ShoalError as exc:
                    log.warning("container %s: restart failed: %s", c.name, exc)
                    c.set_status("exited")
                    c.state["Error"] = str(exc)
                    await self._save(c)
        c.restart_scope = None

    async def _auto_remove(self, c: Container) -> None:
        try:
            await self.remove(c.id, force=True)
        except NotFound:
            pass  # removed by a client first

    # ------------------------------------------------------------------ stop, kill, restart

    def _cancel_restart(self, c: Container) -> None:
        if c.restart_scope is not None:
            c.restart_scope.cancel()
        if c.state["Status"] == "restarting":
            c.set_status("exited")

    async def stop(self, id: str, timeout: int | None = None, signal: str | None = None) -> None:
        c = self._get(id)
        c.record["ManuallyStopped"] = True
        if c.state["Status"] == "restarting":
            self._cancel_restart(c)
            await self._save(c)
            return
        if not c.running or c.process is None:
            raise NotModified(f"container {c.name} is already stopped")
        sig = parse_signal(signal or c.config.get("StopSignal"))
        if timeout is None:
            timeout = c.config.get("StopTimeout")
            timeout = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
        exited = c.exited
        c.process.kill(sig)
        if c.state["Paused"]:
            await self.resources.freeze(c.id, False)
        with trio.move_on_after(timeout if timeout >= 0 else float("inf")):
            await exited.wait()
            return
        if c.process is not None:
            c.process.kill(signals.SIGKILL)
        await exited.wait()
        self._emit(c, "stop")

    async def kill(self, id: str, signal: str = "SIGKILL") -> None:
        c = self._get(id)
        sig = parse_signal(signal, signals.SIGKILL)
        if not c.running or c.process is None:
            raise Conflict(f"Container {c.id} is not running")
        if sig in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):
            c.record["ManuallyStopped"] = True
        c.process.kill(sig)
        self._emit(c, "kill", signal=str(sig))

    async def restart(self, id: str, timeout: int | None = None, signal: str | None = None) -> None:
        c = self._get(id)
        if c.running:
            await self.stop(c.id, timeout, signal)
        self._cancel_restart(c)
        await self.start(c.id)
        self._emit(c, "restart")

    async def pause(self, id: str) -> None:
        c = self._get(id)
        async with c.lock:
            if not c.running:
                raise Conflict(f"Container {c.id} is not running")
            if c.state["Paused"]:
                raise Conflict(f"Container {c.id} is already paused")
            await self.resources.freeze(c.id, True)
            c.set_status("paused")
            await self._save(c)
        self._emit(c, "pause")

    async def unpause(self, id: str) -> None:
        c = self._get(id)
        async with c.lock:
            if not c.state["Paused"]:
                raise Conflict(f"Container {c.id} is not paused")
            await self.resources.freeze(c.id, False)
            c.set_status("running")
            await self._save(c)
        self._emit(c, "unpause")

    # ------------------------------------------------------------------ wait, remove, rename

    def wait(self, id: str, condition: str = "not-running") -> Awaitable[dict[str, Any]]:
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        c = self._get(id)
        exited, removed = c.exited, c.removed
        return self._wait_for(c, condition or "not-running", exited, removed)

    async def _wait_for(self, c: Container, condition: str, exited: trio.Event, removed: trio.Event) -> dict[str, Any]:
        if condition == "removed":
            await removed.wait()
        elif condition == "next-exit" or c.running or c.state["Status"] == "restarting":
            await exited.wait()
        result: dict[str, Any] = {"StatusCode": c.state["ExitCode"]}
        if c.state.get("Error"):
            result["Error"] = {"Message": c.state["Error"]}
        return result

    async def remove(self, id: str, force: bool = False, volumes: bool = False) -> None:
        c = self._get(id)
        async with c.lock:
            if c.state["Status"] == "removing":
                raise Conflict(f"removal of container {c.name} is already in progress")
            if c.running and not force:
                raise Conflict(
                    f"cannot remove container \"{c.record['Name']}\": container is running: "
                    "stop the container before removing or force remove"
                )
            self._cancel_restart(c)
            previous = c.state["Status"]
            c.set_status("removing")
            if c.process is not None:
                exited = c.exited
                if c.state["Paused"] or previous == "paused":
                    await self.resources.freeze(c.id, False)
                c.process.kill(signals.SIGKILL)
                await exited.wait()
                c.set_status("removing")
            with trio.CancelScope(shield=True):
                await self._destroy(c, volumes)
        self._emit(c, "destroy")
        c.removed.set()

    async def _destroy(self, c: Container, volumes: bool) -> None:
        await networking.release(self.network, c)
        await self.snapshots.remove(c.id)
        if c.record.get("Process"):
            self.isolation.forget(c.record["Process"])
        if c.log is not None:
            c.log.close()
        shutil.rmtree(self._container_dir(c.id), ignore_errors=True)
        await self.store.delete(KIND, c.id)
        self._containers.pop(c.id, None)
        if self._names.get(c.name) == c.id:
            del self._names[c.name]
        if volumes and self.volumes is not None:
            for name in (c.record.get("AnonymousVolumes") or {}).values():
                try:
                    await self.volumes.remove(name)
                except ShoalError as exc:
                    log.warning("container %s: anonymous volume %s not removed: %s", c.name, name, exc)

    async def rename(self, id: str, name: str) -> None:
        c = self._get(id)
        new = check_name(name)
        if new == c.name:
            raise Conflict("Renaming a container with the same name as its current name")
        if new in self._names:
            raise Conflict(f'Conflict. The container name "/{new}" is already in use by container "{self._names[new]}". '
                           "You have to remove (or rename) that container to be able to reuse that name.")  # fmt: skip
        old = c.name
        self._names[new] = c.id
        del self._names[old]
        c.record["Name"] = "/" + new
        await self.store.update(KIND, c.id, json.loads(json.dumps(c.record)), c.version, {"name": new})
        c.version = (await self.store.get(KIND, c.id)).version
        self._emit(c, "rename", oldName="/" + old)

    # ------------------------------------------------------------------ queries

    async def inspect(self, id: str) -> dict[str, Any]:
        c = self._get(id)
        return c.inspect([e.id for e in self._execs.values() if e.container is c])

    async def list(self, all: bool = False, filters: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
        from .filters import container_matches

        chosen = [c for c in self._containers.values() if all or c.running or (filters and "status" in filters)]
        chosen = [c for c in chosen if container_matches(c, filters or {}, self._get)]
        chosen.sort(key=lambda c: c.record["Created"], reverse=True)
        return [c.summary() for c in chosen]

    async def logs(self, id: str, *, stdout: bool = True, stderr: bool = True, follow: bool = False, since: float = 0,
                   until: float = 0, timestamps: bool = False, tail: int | None = None) -> AsyncIterator[tuple[int, bytes]]:  # fmt: skip
        c = self._get(id)
        streams = {s for s, wanted in ((STDOUT, stdout), (STDERR, stderr)) if wanted}
        since_ns, until_ns = int(since * 1e9), int(until * 1e9)
        path = Path(c.record["LogPath"])
        if follow and c.log is not None and not c.log.closed:
            entries = logfile.follow(c.log, streams, since_ns, until_ns, tail)
        else:
            entries = _iterate(logfile.read_entries(path, streams, since_ns, until_ns, tail))
        async for entry in entries:
            data = entry.data
            if timestamps:
                data = logfile.rfc3339_nano(entry.time_ns).encode() + b" " + data
            yield entry.stream, data

    async def attach(self, id: str, *, stdin: bool, stdout: bool, stderr: bool, logs: bool = False) -> EngineAttachment:
        c = self._get(id)
        streams = {s for s, wanted in ((STDOUT, stdout), (STDERR, stderr)) if wanted}
        attachment = EngineAttachment(c.hub, streams, bool(c.config.get("Tty")), c.stdin if stdin else None,
                                      c.stdin_ready if stdin and c.config.get("OpenStdin") else None)  # fmt: skip
        if logs:
            for entry in logfile.read_entries(Path(c.record["LogPath"]), streams):
                await attachment.deliver(entry.stream, entry.data)
        if stdin and c.config.get("OpenStdin") and not c.running:
            self._spawn(f"stdin of {c.name}", self._bind_stdin_on_start, c, attachment)
        self._emit(c, "attach")
        return attachment

    async def _bind_stdin_on_start(self, c: Container, attachment: EngineAttachment) -> None:
        await c.stdin_ready.wait()
        attachment.bind_stdin(c.stdin)

    async def resize(self, id: str, height: int, width: int) -> None:
        c = self._get(id)
        if not c.running or c.process is None:
            raise Conflict(f"Container {c.id} is not running")
        if c.process.pty_master is None:
            raise InvalidArgument(f"container {c.name} has no terminal")
        _set_winsize(c.process.pty_master, height, width)

    async def top(self, id: str, ps_args: str = "-ef") -> dict[str, Any]:
        from .top import top

        c = self._get(id)
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")
        return await top(await self.resources.pids(c.id), ps_args)

    async def stats(self, id: str) -> dict[str, Any]:
        from .stats import docker_stats

        c = self._get(id)
        reading = await self.resources.stats(c.id) if c.running else None
        pid = c.process.pid if c.running and c.process is not None else None
        return docker_stats(c.id, c.record["Name"], reading, pid)

    async def prune(self, filters: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        from .filters import prune_matches

        deleted = []
        for c in list(self._containers.values()):
            if c.running or c.state["Status"] in ("restarting", "removing") or not prune_matches(c, filters or {}):
                continue
            await self.remove(c.id)
            deleted.append(c.id)
        return {"ContainersDeleted": deleted, "SpaceReclaimed": 0}

    # ------------------------------------------------------------------ exec

    async def exec_create(self, id: str, body: Mapping[str, Any]) -> str:
        c = self._get(id)
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")
        if c.state["Paused"]:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        cmd = body.get("Cmd")
        if not cmd or not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            raise InvalidArgument("No exec command specified")
        exec_id = secrets.token_hex(32)
        self._execs[exec_id] = ExecInstance(exec_id, c, dict(body))
        self._emit(c, "exec_create: " + " ".join(cmd), execID=exec_id)
        return exec_id

    def _exec(self, exec_id: str) -> ExecInstance:
        try:
            return self._execs[exec_id]
        except KeyError:
            raise NotFound(f"No such exec instance: {exec_id}") from None

    async def exec_start(self, exec_id: str, *, detach: bool = False, tty: bool | None = None) -> EngineAttachment | None:
        from .spec import capabilities, merge_env
        from shoal.runtime import ProcessSpec

        instance = self._exec(exec_id)
        if instance.running or instance.exit_code is not None:
            raise Conflict(f"exec {exec_id} has already started")
        c = instance.container
        if not c.running or c.process is None:
            raise Conflict(f"Container {c.id} is not running")
        cfg = instance.config
        use_tty = bool(cfg.get("Tty")) if tty is None else tty
        host = dict(c.host_config)
        if cfg.get("Privileged"):
            host["Privileged"] = True
        process_spec = ProcessSpec(
            args=tuple(cfg["Cmd"]),
            env=tuple(merge_env(c.config["Env"], list(cfg.get("Env") or [])) + (["TERM=xterm"] if use_tty else [])),
            cwd=cfg.get("WorkingDir") or c.config.get("WorkingDir") or "/",
            user=cfg.get("User") or c.config.get("User") or "",
            terminal=use_tty,
            capabilities=capabilities(host),
        )
        attach_stdin = bool(cfg.get("AttachStdin")) and not detach
        theirs: list[int] = []
        out_fds: dict[int, int | None] = {STDOUT: None, STDERR: None}
        stdin_w = None
        if use_tty:
            stdio = Stdio(terminal=True)
        else:
            stdin_r = None
            if attach_stdin:
                stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
                theirs.append(stdin_r)
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            theirs += [out_w, err_w]
            out_fds = {STDOUT: out_r, STDERR: err_r}
            stdio = Stdio(stdin=stdin_r, stdout=out_w, stderr=err_w)
        try:
            process = await self.isolation.exec(c.process, process_spec, stdio)
        except ShoalError as exc:
            for fd in (*theirs, *(fd for fd in out_fds.values() if fd is not None), *((stdin_w,) if stdin_w else ())):
                os.close(fd)
            instance.exit_code = getattr(exc, "exit_code", 126)
            instance.done.set()
            raise ExecStartError(f"OCI runtime exec failed: exec failed: {exc}: unknown", instance.exit_code) from exc
        for fd in theirs:
            os.close(fd)
        if use_tty:
            out_fds = {STDOUT: os.dup(process.pty_master), STDERR: None}  # the pump owns its copy
            stdin_w = os.dup(process.pty_master) if attach_stdin else None
        instance.process, instance.pid, instance.running = process, process.pid, True
        self._emit(c, "exec_start: " + " ".join(cfg["Cmd"]), execID=exec_id)
        from .streams import OutputHub

        hub = OutputHub()
        attachment = None
        if not detach:
            streams = {s for s, key in ((STDOUT, "AttachStdout"), (STDERR, "AttachStderr")) if cfg.get(key, True)}
            attachment = EngineAttachment(hub, streams, use_tty, StdinPipe(stdin_w) if stdin_w is not None else None)
        elif stdin_w is not None:
            os.close(stdin_w)
        self._spawn(f"exec {exec_id}", self._exec_monitor, instance, process, out_fds, hub)
        return attachment

    async def _exec_monitor(self, instance: ExecInstance, process: ContainerProcess, out_fds: dict[int, int | None], hub: Any) -> None:
        code = await _wait_and_drain(process, out_fds, hub, None, f"exec {instance.id}")
        hub.end()
        process.close()
        self.isolation.forget(process.state())
        instance.exit_code, instance.running = code, False
        instance.done.set()
        self._emit(instance.container, "exec_die", execID=instance.id, exitCode=str(code))

    async def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return self._exec(exec_id).inspect()

    async def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        instance = self._exec(exec_id)
        if instance.process is None or instance.process.pty_master is None:
            raise InvalidArgument(f"exec {exec_id} has no terminal")
        _set_winsize(instance.process.pty_master, height, width)

    # ------------------------------------------------------------------ for other plugins

    def images_in_use(self) -> dict[str, str]:
        """Image id -> id of a container using it (the image store refuses to delete those)."""
        return {c.record["Image"]: c.id for c in self._containers.values()}

    def counts(self) -> dict[str, int]:
        states = [c.state["Status"] for c in self._containers.values()]
        return {
            "Containers": len(states),
            "ContainersRunning": states.count("running"),
            "ContainersPaused": states.count("paused"),
            "ContainersStopped": len(states) - states.count("running") - states.count("paused"),
        }


async def _wait_and_drain(process: ContainerProcess, out_fds: dict[int, int | None], hub: Any, log_file: Any, owner: str) -> int:
    """Copy a process's output until it exits and its output is drained (or DRAIN_TIMEOUT
    passed: a daemonised grandchild may keep the pipe); its exit status."""
    drained = trio.Event()
    async with trio.open_nursery() as nursery:

        async def pumps() -> None:
            async with trio.open_nursery() as inner:
                for stream, fd in out_fds.items():
                    if fd is not None:
                        inner.start_soon(_logged_pump, fd, stream, hub, log_file, owner)
            drained.set()

        nursery.start_soon(pumps)
        code = await process.wait()
        with trio.move_on_after(DRAIN_TIMEOUT):
            await drained.wait()
        nursery.cancel_scope.cancel()
    return code


async def _logged_pump(fd: int, stream: int, hub: Any, log_file: Any, owner: str) -> None:
    try:
        await pump(fd, stream, hub, log_file)
    except Exception:
        log.exception("output of %s: copying stream %d failed", owner, stream)


async def _iterate(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def _set_winsize(fd: int, height: int, width: int) -> None:
    import fcntl
    import struct
    import termios

    if height <= 0 or width <= 0:
        raise InvalidArgument(f"invalid terminal size {height}x{width}")
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
