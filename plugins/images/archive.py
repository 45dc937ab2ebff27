"""``docker save`` / ``docker load`` archives.

An archive written here is both an OCI image layout and Docker's format, as Docker 25+
writes it: ``oci-layout``, ``index.json`` (one entry per image, named by the
``io.containerd.image.name`` and ``org.opencontainers.image.ref.name`` annotations),
``blobs/sha256/<hex>`` (manifests, configs and the layers as stored), ``manifest.json``
(``[{"Config", "RepoTags", "Layers"}]`` with paths into ``blobs/``) and ``repositories``.

Reading accepts Docker's format from any Docker version (``manifest.json`` with layers as
plain or compressed tars anywhere in the archive) and plain OCI layouts (``index.json``
only). Every layer is unpacked (and its diff id verified against the config) before the
image is registered, so a bad archive leaves no image behind.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import trio

from shoal.errors import InvalidArgument
from shoal.plugins.overlay.compression import detect
from shoal.plugins.overlay.snapshotter import chain_ids

from . import oci
from .blobs import sha256_digest
from .manifests import INDEX_TYPES, parse_manifest, select_platform
from .reference import parse_reference

if TYPE_CHECKING:
    from shoal.slots import ImageRecord

    from .store import LocalImageStore

_CHUNK = 1 << 20
_LAYER_TYPES = {"gzip": oci.LAYER_GZIP_TYPE, "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
                "none": "application/vnd.oci.image.layer.v1.tar"}  # fmt: skip


@dataclass(frozen=True)
class SavedImage:
    """One image to save: its record and the tags to record for it."""

    record: ImageRecord
    tags: tuple[str, ...]
    manifest: bytes


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, fileobj=_BytesReader(data))


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._view) if n < 0 else self._pos + n
        out = self._view[self._pos : end].tobytes()
        self._pos += len(out)
        return out


def write_archive(store: LocalImageStore, images: Sequence[SavedImage], out: IO[bytes]) -> None:
    """Write a ``docker save`` tar of ``images`` to ``out`` (blocking)."""
    written: set[str] = set()
    manifest_json: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
        for directory in ("blobs/", "blobs/sha256/"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for image in images:
            document = json.loads(image.manifest)
            blobs = [image.record.digest, document["config"]["digest"], *(l["digest"] for l in document["layers"])]
            for digest in blobs:
                if digest in written:
                    continue
                written.add(digest)
                archive.add(str(store.blobs.path(digest)), arcname=f"blobs/sha256/{digest.removeprefix('sha256:')}", recursive=False)
            path = lambda d: f"blobs/sha256/{d.removeprefix('sha256:')}"  # noqa: E731
            manifest_json.append({"Config": path(document["config"]["digest"]), "RepoTags": list(image.tags) or None,
                                  "Layers": [path(l["digest"]) for l in document["layers"]]})  # fmt: skip
            descriptor = {"mediaType": document.get("mediaType", oci.MANIFEST_TYPE), "digest": image.record.digest,
                          "size": len(image.manifest)}  # fmt: skip
            for tag in image.tags or ("",):
                entry = dict(descriptor)
                if tag:
                    ref = parse_reference(tag)
                    entry["annotations"] = {"io.containerd.image.name": str(ref), "org.opencontainers.image.ref.name": ref.tag or ""}
                    repositories.setdefault(ref.familiar().rsplit(":", 1)[0], {})[ref.tag or "latest"] = image.record.id.removeprefix("sha256:")
                index.append(entry)
        _add_bytes(archive, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_bytes(archive, "index.json", json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                                      "manifests": index}).encode())  # fmt: skip
        _add_bytes(archive, "manifest.json", json.dumps(manifest_json).encode())
        if repositories:
            _add_bytes(archive, "repositories", json.dumps(repositories).encode())


@dataclass
class _Loaded:
    config_digest: str
    layers: list[str]  # member names of the layer files, bottom first
    tags: list[str]


def _read_member(archive: tarfile.TarFile, name: str) -> bytes:
    member = _member(archive, name)
    handle = archive.extractfile(member)
    if handle is None:
        raise InvalidArgument(f"archive entry {name!r} is not a file")
    return handle.read()


def _member(archive: tarfile.TarFile, name: str) -> tarfile.TarInfo:
    name = os.path.normpath(name).lstrip("/")
    try:
        member = archive.getmember(name)
    except KeyError:
        raise InvalidArgument(f"the archive has no {name!r}") from None
    for _ in range(8):  # layers of older archives may be symlinks to other layers
        if not (member.issym() or member.islnk()):
            return member
        target = member.linkname if member.islnk() else os.path.normpath(os.path.join(os.path.dirname(member.name), member.linkname))
        member = archive.getmember(target)
    raise InvalidArgument(f"archive entry {name!r} is a loop of links")


def _docker_entries(archive: tarfile.TarFile) -> list[_Loaded]:
    try:
        entries = json.loads(_read_member(archive, "manifest.json"))
        return [_Loaded(_config_path_digest(archive, e["Config"]), list(e["Layers"]), list(e.get("RepoTags") or [])) for e in entries]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("manifest.json of the archive is malformed") from None


def _config_path_digest(archive: tarfile.TarFile, path: str) -> str:
    return sha256_digest(_read_member(archive, path))


def _oci_entries(archive: tarfile.TarFile) -> list[_Loaded]:
    try:
        index = json.loads(_read_member(archive, "index.json"))
    except ValueError:
        raise InvalidArgument("index.json of the archive is malformed") from None
    out = []
    for entry in index.get("manifests") or []:
        digest = entry.get("digest", "")
        raw = _read_member(archive, f"blobs/sha256/{digest.removeprefix('sha256:')}")
        manifest = parse_manifest(raw, entry.get("mediaType", ""))
        if manifest.media_type in INDEX_TYPES:
            chosen = select_platform(manifest.entries)
            manifest = parse_manifest(_read_member(archive, f"blobs/sha256/{chosen.digest.removeprefix('sha256:')}"))
        assert manifest.config is not None
        annotations = entry.get("annotations") or {}
        name = annotations.get("io.containerd.image.name", "")
        tags = [name] if name else []
        out.append(_Loaded(manifest.config.digest, [f"blobs/sha256/{l.digest.removeprefix('sha256:')}" for l in manifest.layers], tags))
    return out


async def load_archive(store: LocalImageStore, path: Path) -> list[tuple[ImageRecord, list[str]]]:
    """Load every image of an archive file; returns each image and the names it got."""
    archive = await trio.to_thread.run_sync(lambda: tarfile.open(path, "r:*"))
    try:
        names = set(await trio.to_thread.run_sync(archive.getnames))
        reader = _docker_entries if "manifest.json" in names else _oci_entries
        if reader is _oci_entries and "index.json" not in names:
            raise InvalidArgument("not an image archive: it has neither manifest.json nor index.json")
        entries = await trio.to_thread.run_sync(reader, archive)
        loaded = []
        for entry in entries:
            loaded.append((await _load_one(store, archive, entry), entry.tags))
        return loaded
    finally:
        archive.close()


async def _load_one(store: LocalImageStore, archive: tarfile.TarFile, entry: _Loaded) -> ImageRecord:
    config_raw = await trio.to_thread.run_sync(_read_member, archive, _config_member_name(archive, entry.config_digest))
    config = json.loads(config_raw)
    diff_ids = config.get("rootfs", {}).get("diff_ids") or []
    if len(diff_ids) != len(entry.layers):
        raise InvalidArgument(f"image config {entry.config_digest} lists {len(diff_ids)} layers, the archive {len(entry.layers)}")
    chains = chain_ids(diff_ids)
    layers: list[tuple[str, int, str]] = []
    with store.holding([entry.config_digest, *chains]), ExitStack() as holds:
        for i, name in enumerate(entry.layers):
            layers.append(await _store_layer(store, archive, name, diff_ids[: i + 1]))
            holds.enter_context(store.holding([layers[-1][0]]))
        await trio.to_thread.run_sync(store.blobs.put, config_raw, entry.config_digest)
        manifest = {
            "schemaVersion": 2, "mediaType": oci.MANIFEST_TYPE,
            "config": {"mediaType": oci.CONFIG_TYPE, "digest": entry.config_digest, "size": len(config_raw)},
            "layers": [{"mediaType": _LAYER_TYPES[kind], "digest": d, "size": s} for d, s, kind in layers],
        }  # fmt: skip
        sizes = [await store.unpacked_size(diff_ids[: i + 1], _Size(s)) for i, (_, s, _) in enumerate(layers)]
        return await store.add_image(oci.canonical_json(manifest), entry.tags, sizes)


@dataclass(frozen=True)
class _Size:
    size: int


def _config_member_name(archive: tarfile.TarFile, digest: str) -> str:
    hex_digest = digest.removeprefix("sha256:")
    for candidate in (f"blobs/sha256/{hex_digest}", f"{hex_digest}.json"):
        try:
            archive.getmember(candidate)
            return candidate
        except KeyError:
            continue
    raise InvalidArgument(f"the archive has no config {digest}")


async def _store_layer(store: LocalImageStore, archive: tarfile.TarFile, name: str, diff_ids: list[str]) -> tuple[str, int, str]:
    """Copy a layer file into the blob store as it is, unpacking it first; (digest, size, compression)."""
    with store.blobs.writer() as blob:

        def copy() -> str:
            handle = archive.extractfile(_member(archive, name))
            if handle is None:
                raise InvalidArgument(f"archive entry {name!r} is not a file")
            head = b""
            while data := handle.read(_CHUNK):
                head = head or data[:8]
                blob.write(data)
            blob.finish()
            return detect(head)

        kind = await trio.to_thread.run_sync(copy)
        if kind not in _LAYER_TYPES:
            raise InvalidArgument(f"layer {name} is {kind}-compressed; only gzip, zstd or uncompressed layers can be loaded")
        await store.snapshotter.apply_layer(diff_ids, str(blob.temp_path))
        size = blob.size
        digest = await trio.to_thread.run_sync(blob.commit)
    return digest, size, kind
