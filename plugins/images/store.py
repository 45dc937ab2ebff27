"""The local image store: OCI manifests, configs and layer blobs, plus names.

Layout under the plugin's data directory::

    blobs/sha256/<hex>   every blob: layers, configs, manifests, manifest lists (see ``blobs``)
    ingest/              blobs being written and streamed imports being spooled
    partial/<hex>        downloads in progress, kept so that a later pull resumes them
    index.json           {"images": {id: {"manifest", "layer_sizes"[, "index"]}},
                          "names": {normalised reference: id}}

An image's id is ``sha256:<digest of its config>``, as Docker's. ``index.json`` is the only
mutable file: it is rewritten whole (temp file, fsync, rename) under a lock, after every
blob it points at is stored and every layer unpacked, so an image becomes visible in one
atomic step and an interrupted import leaves no half image, only unreferenced blobs and
layers that ``gc`` reclaims. Names are Docker references normalised by ``reference``;
``busybox@sha256:...`` names (recorded by a pull) live in the same table as tags.

Whether a container uses an image is the engine's knowledge; it passes that to ``remove``.
Pull, push, ``docker save``/``load`` archives and prune build on ``add_image`` (store the
blobs, unpack the layers through the snapshotter, then register the manifest with its
names); they live in ``pull``, ``push`` and ``archive``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import trio

from shoal.errors import Conflict, InvalidArgument, NotFound
from shoal.plugins.overlay.snapshotter import chain_ids
from shoal.slots import ImageRecord, Snapshotter

from . import oci
from . import progress as p
from .blobs import BlobStore, sha256_digest
from .credentials import Credentials
from .distribution import RegistryClient, TransportOptions
from .pack import pack_layer
from .reference import Reference, parse_reference

_FULL_ID = re.compile(r"(?:sha256:)?([0-9a-f]{64})")
_ID_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{1,64})")
_SPOOL_CHUNK = 1 << 20


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


class LocalImageStore:
    """The ``images`` slot provider; see the module docstring for the design."""

    def __init__(self, root: Path, blobs: BlobStore, snapshotter: Snapshotter, compression_level: int,
                 transport: TransportOptions | None = None, docker_config: Path | None = None,
                 concurrency: tuple[int, int] = (3, 5)) -> None:  # fmt: skip
        self.root = root
        self.blobs = blobs
        self.snapshotter = snapshotter
        self.compression_level = compression_level
        self.transport = transport or TransportOptions()
        #: Where stored registry credentials are read (None: ``~/.docker/config.json``).
        self.docker_config = docker_config
        #: Concurrent layer downloads and uploads.
        self.downloads, self.uploads = concurrency
        self.partial_dir = root / "partial"
        self._blob_locks: dict[str, trio.Lock] = {}
        self._index_path = root / "index.json"
        self._images: dict[str, dict[str, Any]] = {}
        self._names: dict[str, str] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._manifests: dict[str, dict[str, Any]] = {}
        self._lock = trio.Lock()
        # Blobs and chain ids of imports in flight: stored or unpacked, not yet in the
        # index. gc keeps them.
        self._pending: Counter[str] = Counter()

    @classmethod
    async def open(cls, root: Path | str, snapshotter: Snapshotter, compression_level: int = 6, **options: Any) -> LocalImageStore:
        """Open (or create) the store in ``root`` and load its index.

        Args:
            root: the plugin's data directory.
            snapshotter: unpacks layers and knows which ones containers use.
            compression_level: gzip level for imported layers.
            options: ``transport``, ``docker_config`` and ``concurrency`` (see ``__init__``).
        Returns:
            The store.
        """
        root = Path(root)
        blobs = await trio.to_thread.run_sync(BlobStore.open, root)
        store = cls(root, blobs, snapshotter, compression_level, **options)
        await trio.to_thread.run_sync(store._load)
        store.partial_dir.mkdir(exist_ok=True)
        return store

    # ------------------------------------------------------------------ index

    def _load(self) -> None:
        try:
            index = json.loads(self._index_path.read_text())
        except FileNotFoundError:
            return
        self._images = index["images"]
        self._names = index["names"]
        for image_id, entry in self._images.items():
            self._manifests[entry["manifest"]] = json.loads(self.blobs.read(entry["manifest"]))
            self._configs[image_id] = json.loads(self.blobs.read(image_id))

    def _save(self, images: dict[str, dict[str, Any]], names: dict[str, str]) -> None:
        fd, temp = tempfile.mkstemp(dir=self.root, prefix=".index-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": 1, "images": images, "names": names}, f, sort_keys=True, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, self._index_path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    async def _commit(self, images: dict[str, dict[str, Any]], names: dict[str, str]) -> None:
        """Persist a new index, then make it the one in memory (caller holds the lock)."""
        await trio.to_thread.run_sync(self._save, images, names)
        self._images, self._names = images, names

    # ------------------------------------------------------------------ lookups

    def _record(self, image_id: str) -> ImageRecord:
        entry = self._images[image_id]
        config = self._configs[image_id]
        return ImageRecord(
            id=image_id,
            names=tuple(sorted(n for n, i in self._names.items() if i == image_id)),
            layers=tuple(config.get("rootfs", {}).get("diff_ids", ())),
            config=config,
            size=sum(entry["layer_sizes"]),
            created=config.get("created", ""),
            digest=entry["manifest"],
        )

    def _resolve(self, reference: str) -> tuple[str, str | None]:
        """Find an image: (its id, the name that matched, or None when matched by id)."""
        full = _FULL_ID.fullmatch(reference)
        if full and "sha256:" + full.group(1) in self._images:
            return "sha256:" + full.group(1), None
        try:
            ref: Reference | None = parse_reference(reference)
        except InvalidArgument as exc:
            ref, parse_error = None, exc
        if ref is not None:
            name = str(ref)
            if name in self._names:
                return self._names[name], name
            if ref.digest:
                for image_id, entry in self._images.items():
                    same_repo = any(parse_reference(n).repository == ref.repository for n in self._names if self._names[n] == image_id)
                    if entry["manifest"] == ref.digest and same_repo:
                        return image_id, None
        prefix = _ID_PREFIX.fullmatch(reference)
        if prefix:
            matches = [i for i in self._images if i.removeprefix("sha256:").startswith(prefix.group(1))]
            if len(matches) > 1:
                raise InvalidArgument(f"image id prefix {reference!r} is ambiguous: it matches {len(matches)} images")
            if matches:
                return matches[0], None
        if ref is None:
            raise parse_error
        raise NotFound(f"No such image: {ref.familiar()}")

    async def get(self, reference: str) -> ImageRecord:
        """Find an image by name, tag, digest, id or id prefix (see ``ImageStore``)."""
        return self._record(self._resolve(reference)[0])

    async def list(self) -> list[ImageRecord]:
        """Every image, newest first (see ``ImageStore``)."""
        records = [self._record(i) for i in self._images]
        return sorted(records, key=lambda r: oci.parse_timestamp(r.created), reverse=True)

    @contextmanager
    def holding(self, keys: Collection[str]) -> Iterator[None]:
        """Keep blobs or chain ids from ``gc`` while an image is being assembled from them.

        Args:
            keys: blob digests and layer chain ids not yet referenced by the index.
        Returns:
            A context manager; the hold ends with it.
        """
        self._pending.update(keys)
        try:
            yield
        finally:
            self._pending.subtract(keys)
            for key in keys:
                if self._pending[key] <= 0:
                    del self._pending[key]

    def chain_ids_in_use(self) -> set[str]:
        """Chain ids of every stored image's layers (and of imports in flight)."""
        keep = set(self._pending)
        for image_id in self._images:
            keep.update(chain_ids(self._configs[image_id]["rootfs"]["diff_ids"]))
        return keep

    # ------------------------------------------------------------------ adding images

    async def add_image(self, manifest: bytes, names: Sequence[str], layer_sizes: Sequence[int], index: bytes | None = None) -> ImageRecord:
        """Register an image whose config and layer blobs are stored and layers unpacked.

        Args:
            manifest: the OCI or Docker image manifest's bytes, stored as they are.
            names: references to point at it (tags and digest references); a name held
                by another image moves to this one.
            layer_sizes: uncompressed size of each layer, bottom first.
            index: the manifest list it was chosen from, if any (kept: a digest
                reference to the list names this image).
        Returns:
            The image. Raises ``InvalidArgument`` for a manifest that names a missing
            blob or a layer that is not unpacked.
        """
        document = json.loads(manifest)
        config_digest = document["config"]["digest"]
        for blob in [document["config"], *document["layers"]]:
            if not self.blobs.has(blob["digest"]):
                raise InvalidArgument(f"manifest names blob {blob['digest']} that is not stored")
        config = json.loads(await trio.to_thread.run_sync(self.blobs.read, config_digest))
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(document["layers"]) or len(layer_sizes) != len(diff_ids):
            raise InvalidArgument("manifest, config and layer sizes disagree on the number of layers")
        if diff_ids and not await self.snapshotter.has_layer(diff_ids):
            raise InvalidArgument(f"layers of image {config_digest} are not unpacked")
        canonical = [str(parse_reference(n)) for n in names]
        manifest_digest = await trio.to_thread.run_sync(self.blobs.put, manifest)
        entry: dict[str, Any] = {"manifest": manifest_digest, "layer_sizes": list(layer_sizes)}
        if index is not None:
            entry["index"] = await trio.to_thread.run_sync(self.blobs.put, index)
        async with self._lock:
            images = dict(self._images)
            previous = images.get(config_digest)
            if previous is not None and previous["manifest"] != manifest_digest:
                # The same config under another manifest (recompressed layers): keep the
                # first, whose blobs the index already references.
                entry = previous
            images[config_digest] = entry
            updated = dict(self._names)
            updated.update((name, config_digest) for name in canonical)
            await self._commit(images, updated)
            self._manifests[manifest_digest] = document
            self._configs[config_digest] = config
            return self._record(config_digest)

    async def import_rootfs(
        self,
        source: str | AsyncIterator[bytes],
        reference: str | None,
        config: Mapping[str, Any],
        comment: str = "",
    ) -> ImageRecord:
        """Make a one-layer image from a tar, a directory or a byte stream (see ``ImageStore``)."""
        names = []
        if reference:
            ref = parse_reference(reference)
            if ref.digest:
                raise InvalidArgument(f"cannot import as {reference!r}: a digest reference names existing content")
            names.append(str(ref))
        oci.check_config_fields(config)
        spooled: Path | None = None
        try:
            if not isinstance(source, str):
                spooled = await self._spool(source)
            path = str(spooled or source)
            with self.blobs.writer() as blob:
                layer = await trio.to_thread.run_sync(pack_layer, path, blob, self.compression_level)
                await trio.to_thread.run_sync(blob.finish)
                layer_digest = await trio.to_thread.run_sync(blob.finish)
                created = oci.timestamp()
                document = oci.image_config(config, [layer.diff_id], created, "shoal import", comment)
                config_bytes = oci.canonical_json(document)
                config_digest = sha256_digest(config_bytes)
                with self.holding([chain_ids([layer.diff_id])[-1], layer_digest, config_digest]):
                    # Unpack from the finished temporary blob: a layer that cannot be
                    # unpacked is never stored.
                    await self.snapshotter.apply_layer([layer.diff_id], str(blob.temp_path))
                    await trio.to_thread.run_sync(blob.commit)
                    await trio.to_thread.run_sync(self.blobs.put, config_bytes)
                    manifest = oci.image_manifest((config_digest, len(config_bytes)), [(layer_digest, blob.size)])
                    return await self.add_image(oci.canonical_json(manifest), names, [layer.size])
        finally:
            if spooled:
                spooled.unlink(missing_ok=True)

    async def _spool(self, stream: AsyncIterator[bytes]) -> Path:
        """Save a streamed tar to a private file under ``ingest/``."""
        fd, name = tempfile.mkstemp(dir=self.blobs.ingest_dir, prefix="import-")
        os.close(fd)
        path = Path(name)
        try:
            async with await trio.open_file(path, "wb") as f:
                async for chunk in stream:
                    await f.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    # ------------------------------------------------------------------ names

    async def tag(self, reference: str, new_reference: str) -> None:
        """Point another name at an image (see ``ImageStore``)."""
        ref = parse_reference(new_reference)
        if ref.digest:
            raise InvalidArgument(f"cannot tag with {new_reference!r}: a tag cannot contain a digest")
        async with self._lock:
            image_id, _ = self._resolve(reference)
            names = dict(self._names)
            names[str(ref)] = image_id
            await self._commit(dict(self._images), names)

    async def remove(
        self, reference: str, force: bool = False, in_use: Mapping[str, str] | None = None
    ) -> list[dict[str, str]]:
        """Untag, and delete an image no name refers to (see ``ImageStore``)."""
        in_use = in_use or {}
        async with self._lock:
            image_id, matched = self._resolve(reference)
            names = sorted(n for n, i in self._names.items() if i == image_id)
            user = in_use.get(image_id)
            if matched is not None and len(names) > 1:
                untag = [matched]
            elif matched is not None:
                if user and not force:
                    raise Conflict(
                        f'unable to remove repository reference "{reference}" (must force) - '
                        f"container {_short(user)} is using its referenced image {_short(image_id)}"
                    )
                untag = names
            else:
                if len(names) > 1 and not force:
                    raise Conflict(
                        f"unable to delete {_short(image_id)} (must be forced) - image is referenced in multiple repositories"
                    )
                if user and not force:
                    raise Conflict(f"unable to delete {_short(image_id)} (must be forced) - image is being used by container {_short(user)}")
                untag = names
            remaining = {n: i for n, i in self._names.items() if n not in untag}
            items = [{"Untagged": parse_reference(n).familiar()} for n in untag]
            if image_id in remaining.values():
                await self._commit(dict(self._images), remaining)
                return items
            images = {i: e for i, e in self._images.items() if i != image_id}
            manifest_digest = self._images[image_id]["manifest"]
            extra = [self._images[image_id]["index"]] if "index" in self._images[image_id] else []
            await self._commit(images, remaining)
            items.append({"Deleted": image_id})
            removed_layers = await self._collect(image_id, manifest_digest, extra)
            items.extend({"Deleted": chain} for chain in removed_layers)
            return items

    async def _collect(self, image_id: str, manifest_digest: str, removed_extra: Sequence[str] = ()) -> list[str]:
        """Delete a removed image's blobs no other image needs, then unused layers."""
        del self._configs[image_id]
        manifest = self._manifests.pop(manifest_digest)
        needed = self._needed_blobs()
        doomed = {manifest_digest, image_id, *(layer["digest"] for layer in manifest["layers"])} - needed
        doomed.update(d for d in removed_extra if d not in needed)
        for digest in doomed:
            await trio.to_thread.run_sync(self.blobs.delete, digest)
        return await self.snapshotter.gc(self.chain_ids_in_use())

    def _needed_blobs(self) -> set[str]:
        """Blobs the index references, and those held for imports in flight."""
        needed = set(self._pending)
        for image_id, entry in self._images.items():
            needed.update((image_id, entry["manifest"]))
            if "index" in entry:
                needed.add(entry["index"])
            needed.update(layer["digest"] for layer in self._manifests[entry["manifest"]]["layers"])
        return needed

    async def gc(self) -> list[str]:
        """Delete blobs and unpacked layers no image references (after interrupted imports).

        Args:
            (none)
        Returns:
            The digests of deleted blobs and chain ids of deleted layers.
        """
        async with self._lock:
            stored = await trio.to_thread.run_sync(self.blobs.digests)
            doomed = sorted(stored - self._needed_blobs())
            for digest in doomed:
                await trio.to_thread.run_sync(self.blobs.delete, digest)
            partial = [] if self._pending else await trio.to_thread.run_sync(self._clear_partials)
            return doomed + partial + await self.snapshotter.gc(self.chain_ids_in_use())

    def _clear_partials(self) -> list[str]:
        """Drop resumable downloads (only when no pull is running)."""
        dropped = []
        for entry in self.partial_dir.iterdir():
            entry.unlink(missing_ok=True)
            dropped.append("sha256:" + entry.name)
        return dropped

    async def history(self, reference: str) -> list[dict[str, Any]]:
        """Describe an image's build steps, newest first (see ``ImageStore``)."""
        image_id, _ = self._resolve(reference)
        record = self._record(image_id)
        sizes = iter(self._images[image_id]["layer_sizes"])
        steps = []
        for step in self._configs[image_id].get("history", []):
            steps.append({
                "Id": "<missing>",
                "Created": int(oci.parse_timestamp(step.get("created", ""))),
                "CreatedBy": step.get("created_by", ""),
                "Tags": None,
                "Size": 0 if step.get("empty_layer") else next(sizes, 0),
                "Comment": step.get("comment", ""),
            })
        steps.reverse()
        if steps:
            steps[0]["Id"] = image_id
            steps[0]["Tags"] = [parse_reference(n).familiar() for n in record.names] or None
        return steps

    # ------------------------------------------------------------------ registries

    def partial_path(self, digest: str) -> Path:
        """Where a download of ``digest`` keeps its bytes until verified (resumable)."""
        return self.partial_dir / self.blobs.path(digest).name

    def adopt_blob(self, path: Path, digest: str) -> None:
        """Move a verified file into the blob store as ``digest`` (blocking)."""
        os.replace(path, self.blobs.path(digest))

    @asynccontextmanager
    async def blob_lock(self, digest: str) -> AsyncIterator[None]:
        """Serialise work on one blob (its download), across concurrent pulls."""
        lock = self._blob_locks.setdefault(digest, trio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._blob_locks.pop(digest, None)

    async def find_manifest(self, manifest_digest: str) -> str | None:
        """The id of the stored image whose manifest has this digest, or None."""
        for image_id, entry in self._images.items():
            if entry["manifest"] == manifest_digest:
                return image_id
        return None

    def names_image(self, name: str) -> str | None:
        """The image id a normalised name points at, or None."""
        return self._names.get(name)

    async def unpacked_size(self, diff_ids: Sequence[str], layer: Any) -> int:
        """The uncompressed size of an unpacked layer (the snapshotter records it)."""
        size = await trio.to_thread.run_sync(_recorded_layer_size, self.snapshotter, diff_ids)
        return size if size is not None else layer.size

    @asynccontextmanager
    async def registry(self, domain: str, credentials: Credentials | None = None) -> AsyncIterator[RegistryClient]:
        """A client for a registry host, with the given credentials or the stored ones."""
        from .credentials import lookup

        if credentials is None:
            credentials = await trio.to_thread.run_sync(lookup, domain, self.docker_config)
        client = await RegistryClient.connect(domain, credentials, self.transport)
        try:
            yield client
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()

    async def pull(self, reference: str, credentials: Credentials | None = None, report: p.Report = p.ignore,
                   platform: Mapping[str, str] | None = None) -> ImageRecord:  # fmt: skip
        """Pull an image from its registry (see ``ImageDistribution``)."""
        from .pull import pull_image

        ref = parse_reference(reference)
        async with self.registry(ref.domain, credentials) as client:
            return await pull_image(self, client, ref, report, platform, self.downloads)

    async def push(self, reference: str, credentials: Credentials | None = None, report: p.Report = p.ignore) -> str:
        """Push a stored image to the registry its name says (see ``ImageDistribution``)."""
        from .push import push_image

        ref = parse_reference(reference)
        if ref.digest:
            raise InvalidArgument(f"cannot push {reference!r}: push a tag, not a digest")
        record = await self.get(str(ref))
        async with self.registry(ref.domain, credentials) as client:
            digest = await push_image(self, client, record, ref, report, self.uploads)
        async with self._lock:
            names = dict(self._names)
            names[f"{ref.repository}@{digest}"] = record.id
            await self._commit(dict(self._images), names)
        return digest

    async def login(self, registry: str, credentials: Credentials) -> None:
        """Check credentials against a registry (``InvalidArgument``/``RegistryError`` if refused)."""
        async with self.registry(registry, credentials):
            pass

    async def save(self, references: Sequence[str]) -> Path:
        """Write a ``docker save`` archive to a temporary file (see ``ImageDistribution``)."""
        return await export_images(self, references)

    async def load(self, source: AsyncIterator[bytes]) -> list[tuple[ImageRecord, list[str]]]:
        """Load a ``docker save`` archive (see ``ImageDistribution``)."""
        return await load_images(self, source)

    async def describe(self, reference: str, credentials: Credentials | None = None) -> dict[str, Any]:
        """What a registry holds for a reference (see ``ImageDistribution``)."""
        ref = parse_reference(reference)
        async with self.registry(ref.domain, credentials) as client:
            manifest, digest = await client.get_manifest(ref.path, ref.digest or ref.tag or "latest")
            if manifest.is_index:
                platforms = [dict(e.platform) for e in manifest.entries if e.platform]
            else:
                assert manifest.config is not None
                config = json.loads((await client.request("GET", f"/v2/{ref.path}/blobs/{manifest.config.digest}",
                                                          f"repository:{ref.path}:pull")).content or b"{}")  # fmt: skip
                platforms = [{k: config[k] for k in ("architecture", "os", "variant") if config.get(k)}]
        return {"Descriptor": {"mediaType": manifest.media_type, "digest": digest, "size": len(manifest.raw)}, "Platforms": platforms}

    async def prune(self, all_unused: bool = False, in_use: Collection[str] = ()) -> tuple[list[dict[str, str]], int]:
        """Remove dangling images (or every image no container uses), then unused blobs.

        Args:
            all_unused: also remove tagged images that no container uses.
            in_use: ids of images containers use.
        Returns:
            Docker's deleted items and the bytes reclaimed.
        """
        before = await trio.to_thread.run_sync(self._blob_bytes)
        items: list[dict[str, str]] = []
        for image_id in list(self._images):
            if image_id in in_use:
                continue
            named = any(i == image_id and "@" not in n for n, i in self._names.items())
            if named and not all_unused:
                continue
            items.extend(await self.remove(image_id, force=True))
        await self.gc()
        after = await trio.to_thread.run_sync(self._blob_bytes)
        return items, max(before - after, 0)

    def _blob_bytes(self) -> int:
        return sum(self.blobs.size(d) for d in self.blobs.digests())


def _recorded_layer_size(snapshotter: Any, diff_ids: Sequence[str]) -> int | None:
    """The size the overlay snapshotter notes in ``layer.json``; None for other providers."""
    layer_dir = getattr(snapshotter, "layer_dir", None)
    if layer_dir is None:
        return None
    try:
        return int(json.loads((layer_dir(chain_ids(diff_ids)[-1]) / "layer.json").read_text())["size"])
    except (OSError, ValueError, KeyError):
        return None


async def export_images(store: LocalImageStore, references: Sequence[str]) -> Path:
    """Write a ``docker save`` archive of images into a temporary file under ``ingest/``.

    Args:
        store: the image store.
        references: names (saved with their tag) or ids (saved untagged, with every name).
    Returns:
        The archive's path; the caller streams it and deletes it.
    """
    from .archive import SavedImage, write_archive

    chosen: dict[str, tuple[ImageRecord, list[str]]] = {}
    for reference in references:
        image_id, matched = store._resolve(reference)
        record = store._record(image_id)
        tags = [matched] if matched and "@" not in matched else [n for n in record.names if "@" not in n]
        entry = chosen.setdefault(image_id, (record, []))
        entry[1].extend(t for t in tags if t not in entry[1])
    images = [SavedImage(record, tuple(tags), store.blobs.read(record.digest)) for record, tags in chosen.values()]
    fd, name = tempfile.mkstemp(dir=store.blobs.ingest_dir, prefix="save-", suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as out:
            with store.holding([d for r, _ in chosen.values() for d in (r.digest, r.id)]):
                await trio.to_thread.run_sync(write_archive, store, images, out)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


async def load_images(store: LocalImageStore, source: AsyncIterator[bytes]) -> list[tuple[ImageRecord, list[str]]]:
    """Load a ``docker save`` archive streamed in; returns each image and its names."""
    from .archive import load_archive

    spooled = await store._spool(source)
    try:
        return await load_archive(store, spooled)
    finally:
        spooled.unlink(missing_ok=True)
