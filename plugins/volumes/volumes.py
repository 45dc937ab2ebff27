"""Named volumes as directories: ``<root>/<name>/_data`` with ``<root>/<name>/volume.json``.

The layout is Docker's local driver's (the data one level down), so the volume directory
can hold metadata beside the data a container sees. A volume is created in a temporary
directory and renamed into place whole, so a half-made volume is never listed; removal
renames it away first for the same reason. Names follow Docker's rule
(``[a-zA-Z0-9][a-zA-Z0-9_.-]+``); an empty name gets a random 64-hex-digit one, as
``docker volume create`` without a name does.

Whether a container uses a volume is the engine's knowledge: it refuses ``remove`` of a
volume in use before calling this store. Driver options (the local driver's
``type``/``device``/``o`` mounts) are not supported and refused, not ignored.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import trio

from shoal.errors import InvalidArgument, NotFound
from shoal.slots import VolumeRecord

DRIVER = "local"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_META = "volume.json"
_DATA = "_data"
_TEMP_PREFIX = ".tmp-"
_MAX_NAME = 255  # a file name's limit


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _valid(name: str) -> bool:
    return bool(_NAME.fullmatch(name)) and len(name) <= _MAX_NAME


def check_name(name: str) -> str:
    """Return ``name`` if Docker accepts it as a volume name; raise ``InvalidArgument`` otherwise."""
    if not _valid(name):
        raise InvalidArgument(
            f"invalid volume name {name!r}: it must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (two characters or more)"
        )
    return name


class LocalVolumes:
    """The ``volumes`` slot provider; see the module docstring for the design."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = trio.Lock()

    @classmethod
    def open(cls, root: Path | str) -> LocalVolumes:
        """Create the root directory and drop volumes half-made or half-removed earlier.

        Args:
            root: the directory holding the volumes.
        Returns:
            The store.
        """
        path = Path(root)
        path.mkdir(parents=True, exist_ok=True)
        for entry in path.iterdir():
            if entry.name.startswith(_TEMP_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)
        return cls(path)

    def _record(self, name: str) -> VolumeRecord:
        directory = self.root / name
        try:
            meta = json.loads((directory / _META).read_text())
        except FileNotFoundError:
            raise NotFound(f"no such volume: {name}") from None
        return VolumeRecord(
            name=name,
            driver=DRIVER,
            mountpoint=str(directory / _DATA),
            labels=meta.get("labels", {}),
            created=meta.get("created", ""),
            options={},
        )

    async def create(self, name: str, labels: Mapping[str, str], options: Mapping[str, str] | None = None) -> VolumeRecord:
        """Create a volume, or return the existing one (see ``VolumeStore``)."""
        if options:
            raise InvalidArgument(f"the local volume driver takes no options (got {', '.join(sorted(options))})")
        name = check_name(name) if name else secrets.token_hex(32)
        async with self._lock:
            return await trio.to_thread.run_sync(self._create, name, dict(labels))

    def _create(self, name: str, labels: dict[str, str]) -> VolumeRecord:
        if (self.root / name / _META).exists():
            return self._record(name)
        work = Path(tempfile.mkdtemp(dir=self.root, prefix=_TEMP_PREFIX))
        try:
            (work / _DATA).mkdir(mode=0o755)
            (work / _META).write_text(json.dumps({"labels": labels, "created": _now()}))
            os.chmod(work, 0o711)
            os.rename(work, self.root / name)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return self._record(name)

    async def get(self, name: str) -> VolumeRecord:
        """Find a volume (see ``VolumeStore``)."""
        if not _valid(name):
            raise NotFound(f"no such volume: {name}")
        return await trio.to_thread.run_sync(self._record, name)

    async def list(self) -> list[VolumeRecord]:
        """Every volume, ordered by name (see ``VolumeStore``)."""
        return await trio.to_thread.run_sync(self._list)

    def _list(self) -> list[VolumeRecord]:
        records = []
        for entry in sorted(self.root.iterdir()):
            if _valid(entry.name) and (entry / _META).exists():
                records.append(self._record(entry.name))
        return records

    async def remove(self, name: str) -> None:
        """Delete a volume and its data (see ``VolumeStore``)."""
        if not _valid(name):
            raise NotFound(f"no such volume: {name}")
        async with self._lock:
            await trio.to_thread.run_sync(self._remove, name)

    def _remove(self, name: str) -> None:
        directory = self.root / name
        if not (directory / _META).exists():
            raise NotFound(f"no such volume: {name}")
        doomed = self.root / f"{_TEMP_PREFIX}rm-{secrets.token_hex(8)}"
        os.rename(directory, doomed)
        shutil.rmtree(doomed)
