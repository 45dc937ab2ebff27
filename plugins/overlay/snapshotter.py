"""The overlay snapshotter: layers unpacked once, container root filesystems over them.

Layout under the plugin's data directory::

    layers/<chain id hex>/fs           the unpacked layer, read-only once renamed here
    layers/<chain id hex>/layer.json   its diff id, parent chain id and size
    containers/<key>/upper, work       the container's writable layer (overlay driver)
    containers/<key>/rootfs            its root filesystem: the overlay mount point, or
                                       the merged copy (copy driver)
    containers/<key>/snapshot.json     the chain ids it uses (kept by gc) and the driver
    containers/.removing-<key>         a removal in progress; finished at start
    tmp/                               unpacks and copies in progress; cleared at start

Layers are named by their OCI chain id: ``ChainID(L0) = DiffID(L0)`` and
``ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))``, so a layer's directory is shared
by every image with the same stack below it, and only by those (its whiteouts mean
something only over that stack).

An unpack happens in ``tmp/`` and is renamed into ``layers/`` when complete and its diff
id verified: an interrupted unpack leaves nothing under ``layers/``. Unpacks of the same
layer are serialised and the second finds the first's result. ``apply_growing_layer``
unpacks a layer whose file is still being downloaded, in a child process that follows it
(see ``unpack.unpack_growing``), and commits it the same way once told the download is
complete and verified.

Drivers: ``overlay`` mounts ``lowerdir=<layers, top first>,upperdir,workdir`` with one
mount(2) call; ``copy`` merges the layers into the container's own directory (for hosts
without overlayfs, or a data root on a file system overlayfs refuses as upper layer).
``auto`` tries a real overlay mount in ``tmp/`` at start-up and falls back to ``copy``.
Both need root (device nodes, ownership, ``trusted.*`` xattrs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, Literal

import trio

from shoal.errors import InvalidArgument, NotFound

from . import mounts
from .compression import decompressed
from .copy import apply_copy
from .unpack import unpack_growing, unpack_layer

log = logging.getLogger("shoal.plugins.overlay")

Driver = Literal["overlay", "copy"]
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REMOVING = ".removing-"


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The OCI chain id of each layer of a stack, bottom first."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not _DIGEST.fullmatch(diff_id):
            raise InvalidArgument(f"malformed layer diff id {diff_id!r}")
        if chains:
            diff_id = "sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest()
        chains.append(diff_id)
    return chains


def _write_json(path: Path, data: Any, durable: bool = True) -> None:
    """Write JSON next to ``path`` and rename it into place (atomic; fsynced if durable)."""
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "w") as f:
        json.dump(data, f)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(temp, path)


class OverlaySnapshotter:
    """The ``snapshots`` slot provider; see the module docstring for the design."""

    def __init__(self, root: Path, driver: Driver) -> None:
        self.root = root
        self.driver: Driver = driver
        self.layers_dir = root / "layers"
        self.containers_dir = root / "containers"
        self.tmp_dir = root / "tmp"
        self._layer_locks: dict[str, trio.Lock] = {}

    @classmethod
    def open(cls, root: Path | str, driver: Literal["auto", "overlay", "copy"] = "auto") -> OverlaySnapshotter:
        """Create the directories, clear interrupted work, and choose the driver.

        Args:
            root: the plugin's data directory.
            driver: "overlay", "copy", or "auto" (overlay if a test mount works here).
        Returns:
            The snapshotter; raises ``InvalidArgument`` when ``root`` has characters
            overlayfs options cannot carry.
        """
        root = Path(root).absolute()
        if mounts.UNSAFE_PATH_CHARS & set(str(root)):
            raise InvalidArgument(f"overlay data directory {str(root)!r} contains one of , : \\ = (overlayfs cannot use it)")
        for sub in ("layers", "containers"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root / "tmp", ignore_errors=True)
        (root / "tmp").mkdir()
        for entry in (root / "containers").iterdir():
            if entry.name.startswith(_REMOVING):  # a removal a crash interrupted
                mounts.unmount(str(entry / "rootfs"))
                shutil.rmtree(entry)
        chosen: Driver
        if driver == "auto":
            reason = overlay_unusable(root / "tmp")
            chosen = "copy" if reason else "overlay"
            log.info("overlay snapshotter: driver %s%s", chosen, f" ({reason})" if reason else "")
        else:
            chosen = driver
            log.info("overlay snapshotter: driver %s (configured)", chosen)
        return cls(root, chosen)

    # ------------------------------------------------------------------ layers

    def layer_dir(self, chain_id: str) -> Path:
        """The directory of an unpacked layer (its ``fs`` holds the files)."""
        return self.layers_dir / chain_id.removeprefix("sha256:")

    async def has_layer(self, diff_ids: Sequence[str]) -> bool:
        """Tell whether the top layer of a stack is unpacked (see ``Snapshotter``)."""
        return bool(diff_ids) and self.layer_dir(chain_ids(diff_ids)[-1]).is_dir()

    async def apply_layer(self, diff_ids: Sequence[str], source: str) -> str:
        """Unpack a layer tar over its unpacked parents (see ``Snapshotter``)."""
        if not diff_ids:
            raise InvalidArgument("apply_layer needs at least the layer's own diff id")
        chains = chain_ids(diff_ids)
        chain = chains[-1]
        if len(chains) > 1 and not self.layer_dir(chains[-2]).is_dir():
            raise NotFound(f"parent layer {chains[-2]} of {chain} is not unpacked")
        async with self._layer_lock(chain):
            if not self.layer_dir(chain).is_dir():
                parent = chains[-2] if len(chains) > 1 else None
                await trio.to_thread.run_sync(self._unpack, source, diff_ids[-1], chain, parent)
        return chain

    async def apply_growing_layer(self, diff_ids: Sequence[str], source: str, sizes: AsyncIterable[tuple[int, bool]], *,
                                  before_commit: Callable[[], Awaitable[object]] | None = None,
                                  task_status: Any = trio.TASK_STATUS_IGNORED) -> str:  # fmt: skip
        """Unpack a layer while its file is still being downloaded (``apply_layer`` otherwise).

        For ``nursery.start``: reports ``started(True)`` when the layer is unpacked
        already (and returns at once), else ``started(False)`` once it holds the layer's
        lock (a concurrent unpack of the same layer then waits for this one) and has
        ``source`` open (created empty if missing), so the file may be renamed from then
        on. A child process (see ``unpack_growing``) unpacks the bytes ``sizes``
        announces; when a final size has arrived and the tar hashes to its diff id, the
        layer is renamed into place after ``before_commit`` returns (the caller's wait
        for the parent layer, which must be unpacked by then). A caller that announces
        the end only once the blob's digest is verified gets nothing stored from an
        unverified download; cancelled, this leaves nothing behind.
        """
        if not diff_ids:
            raise InvalidArgument("apply_growing_layer needs at least the layer's own diff id")
        chains = chain_ids(diff_ids)
        chain = chains[-1]
        async with self._layer_lock(chain):
            if self.layer_dir(chain).is_dir():
                task_status.started(True)
                return chain
            work = await trio.to_thread.run_sync(self._new_work)
            try:
                fd = os.open(source, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    task_status.started(False)
                    digest, size = await unpack_growing(fd, str(work / "fs"), sizes)
                finally:
                    os.close(fd)
                if before_commit is not None:
                    await before_commit()
                parent = chains[-2] if len(chains) > 1 else None
                await trio.to_thread.run_sync(self._commit, work, digest, size, diff_ids[-1], chain, parent)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(partial(shutil.rmtree, work, ignore_errors=True))
                raise
        return chain

    @asynccontextmanager
    async def _layer_lock(self, chain: str) -> AsyncIterator[None]:
        """Serialise unpacks of one layer (concurrent pulls of images that share it)."""
        lock = self._layer_locks.setdefault(chain, trio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._layer_locks.pop(chain, None)

    def _new_work(self) -> Path:
        """A fresh unpack directory in ``tmp/``, with an empty ``fs``."""
        work = Path(tempfile.mkdtemp(dir=self.tmp_dir, prefix="layer-"))
        (work / "fs").mkdir(mode=0o755)
        return work

    def _unpack(self, source: str, diff_id: str, chain: str, parent: str | None) -> None:
        work = self._new_work()
        try:
            with open(source, "rb") as raw:
                digest, size = unpack_layer(decompressed(raw), str(work / "fs"))
            self._commit(work, digest, size, diff_id, chain, parent)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def _commit(self, work: Path, digest: str, size: int, diff_id: str, chain: str, parent: str | None) -> None:
        """Check an unpacked layer and rename it into ``layers/`` (the caller cleans up on errors)."""
        if digest != diff_id:
            raise InvalidArgument(f"layer {chain} has diff id {digest}, expected {diff_id}")
        if parent is not None and not self.layer_dir(parent).is_dir():
            raise NotFound(f"parent layer {parent} of {chain} is not unpacked")
        _write_json(work / "layer.json", {"diff_id": diff_id, "chain_id": chain, "parent": parent, "size": size})
        os.chmod(work, 0o755)
        os.rename(work, self.layer_dir(chain))

    # ------------------------------------------------------------------ containers

    def _container_dir(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise InvalidArgument(f"invalid snapshot key {key!r}: use letters, digits, '_', '.' and '-'")
        return self.containers_dir / key

    async def prepare(self, key: str, layers: Sequence[str]) -> str:
        """Mount (or copy) a container's rootfs over its layers (see ``Snapshotter``)."""
        directory = self._container_dir(key)
        chains = chain_ids(layers)
        for chain in chains:
            if not self.layer_dir(chain).is_dir():
                raise NotFound(f"layer {chain} is not unpacked")
        if self.driver == "overlay":
            await trio.to_thread.run_sync(self._prepare_overlay, directory, chains)
        else:
            await trio.to_thread.run_sync(self._prepare_copy, directory, chains)
        return str(directory / "rootfs")

    def _prepare_overlay(self, directory: Path, chains: list[str]) -> None:
        rootfs = directory / "rootfs"
        if mounts.is_mounted(str(rootfs)):
            return
        created = not directory.exists()
        try:
            if created:
                # Build the directory aside and rename it, so a half-made one is never seen.
                work = Path(tempfile.mkdtemp(dir=self.tmp_dir, prefix="ctr-"))
                for sub in ("upper", "work", "rootfs"):
                    (work / sub).mkdir(mode=0o755)
                # Not fsynced: it costs more than the rest of prepare, and a record lost in
                # a crash is rewritten by the next prepare of this key.
                _write_json(work / "snapshot.json", {"driver": "overlay", "layers": chains}, durable=False)
                os.chmod(work, 0o700)
                os.rename(work, directory)
            elif not (directory / "snapshot.json").exists():
                _write_json(directory / "snapshot.json", {"driver": "overlay", "layers": chains}, durable=False)
            lower = [str(self.layer_dir(c) / "fs") for c in reversed(chains)] or [str(self._empty_layer())]
            mounts.mount_overlay(str(rootfs), lower, str(directory / "upper"), str(directory / "work"))
        except BaseException:
            if created:
                shutil.rmtree(directory, ignore_errors=True)
            raise

    def _prepare_copy(self, directory: Path, chains: list[str]) -> None:
        if (directory / "snapshot.json").exists():
            return
        work = Path(tempfile.mkdtemp(dir=self.tmp_dir, prefix="ctr-"))
        try:
            rootfs = work / "rootfs"
            rootfs.mkdir(mode=0o755)
            for chain in chains:
                apply_copy(str(self.layer_dir(chain) / "fs"), str(rootfs))
            _write_json(work / "snapshot.json", {"driver": "copy", "layers": chains})
            os.chmod(work, 0o700)
            os.rename(work, directory)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def _empty_layer(self) -> Path:
        """An empty lower directory, for an image without layers (overlayfs needs one)."""
        empty = self.root / "empty"
        empty.mkdir(mode=0o755, exist_ok=True)
        return empty

    async def remove(self, key: str) -> None:
        """Unmount (lazily if busy) and delete a container's snapshot (see ``Snapshotter``)."""
        directory = self._container_dir(key)
        await trio.to_thread.run_sync(self._remove, directory)

    @staticmethod
    def _remove(directory: Path) -> None:
        if not directory.exists():
            return
        mounts.unmount(str(directory / "rootfs"))
        # Rename first: a crash half-way through the delete leaves nothing that looks live.
        doomed = directory.with_name(_REMOVING + directory.name)
        os.rename(directory, doomed)
        shutil.rmtree(doomed)

    def snapshots(self) -> dict[str, list[str]]:
        """Every container snapshot's key and the chain ids it uses."""
        result = {}
        for entry in self.containers_dir.iterdir():
            if entry.name.startswith(_REMOVING):
                continue
            try:
                result[entry.name] = json.loads((entry / "snapshot.json").read_text())["layers"]
            except FileNotFoundError:
                continue
        return result

    # ------------------------------------------------------------------ garbage collection

    async def gc(self, keep: Collection[str]) -> list[str]:
        """Delete layers neither ``keep`` nor a container needs (see ``Snapshotter``)."""
        return await trio.to_thread.run_sync(self._gc, set(keep))

    def _gc(self, keep: set[str]) -> list[str]:
        for chains in self.snapshots().values():
            keep.update(chains)
        parents: dict[str, str | None] = {}
        for entry in self.layers_dir.iterdir():
            try:
                parents["sha256:" + entry.name] = json.loads((entry / "layer.json").read_text())["parent"]
            except FileNotFoundError:
                parents["sha256:" + entry.name] = None
        # A kept layer keeps the stack beneath it: prepare needs every one.
        pending = [c for c in keep if c in parents]
        while pending:
            parent = parents.get(pending.pop())
            if parent and parent not in keep:
                keep.add(parent)
                pending.append(parent)
        removed = sorted(chain for chain in parents if chain not in keep and chain not in self._layer_locks)
        for chain in removed:
            doomed = self.tmp_dir / f"gc-{chain.removeprefix('sha256:')}"
            os.rename(self.layer_dir(chain), doomed)
            shutil.rmtree(doomed)
        return removed


def overlay_unusable(scratch: Path) -> str | None:
    """Try an overlay mount in ``scratch``; return why it failed, or None if it works."""
    probe = Path(tempfile.mkdtemp(dir=scratch, prefix="probe-"))
    try:
        for sub in ("lower", "upper", "work", "merged"):
            (probe / sub).mkdir()
        try:
            mounts.mount_overlay(str(probe / "merged"), [str(probe / "lower")], str(probe / "upper"), str(probe / "work"))
        except OSError as exc:
            return f"overlay mount failed: {exc.strerror or exc}"
        mounts.unmount(str(probe / "merged"))
        return None
    finally:
        shutil.rmtree(probe, ignore_errors=True)
