"""The local image store: OCI manifests, configs and layer blobs, plus names.

Layout under the plugin's data directory::

    blobs/sha256/<hex>   every blob: gzip layers, configs, manifests (see ``blobs``)
    ingest/              blobs being written and streamed imports being spooled
    index.json           {"images": {id: {"manifest", "layer_sizes"}},
                          "names": {normalised reference: id}}

An image's id is ``sha256:<digest of its config>``, as Docker's. ``index.json`` is the only
mutable file: it is rewritten whole (temp file, fsync, rename) under a lock, after every
blob it points at is stored and every layer unpacked, so an image becomes visible in one
atomic step and an interrupted import leaves no half image, only unreferenced blobs and
layers that ``gc`` reclaims. Names are Docker references normalised by ``reference``;
``busybox@sha256:...`` names (recorded by a pull) live in the same table as tags.

Whether a container uses an image is the engine's knowledge; it passes that to ``remove``.
The registry plugin builds on ``add_image``: store the blobs, unpack the layers through
the snapshotter, then register the manifest with its names.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from shoal.errors import Conflict, InvalidArgument, NotFound
from shoal.plugins.overlay.snapshotter import chain_ids
from shoal.slots import ImageRecord, Snapshotter

from . import oci
from .blobs import BlobStore, sha256_digest
from .pack import pack_layer
from .reference import Reference, parse_reference

_FULL_ID = re.compile(r"(?:sha256:)?([0-9a-f]{64})")
_ID_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{1,64})")
_SPOOL_CHUNK = 1 << 20


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


class LocalImageStore:
    """The ``images`` slot provider; see the module docstring for the design."""

    def __init__(self, root: Path, blobs: BlobStore, snapshotter: Snapshotter, compression_level: int) -> None:
        self.root = root
        self.blobs = blobs
        self.snapshotter = snapshotter
        self.compression_level = compression_level
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
    async def open(cls, root: Path | str, snapshotter: Snapshotter, compression_level: int = 6) -> LocalImageStore:
        """Open (or create) the store in ``root`` and load its index.

        Args:
            root: the plugin's data directory.
            snapshotter: unpacks layers and knows which ones containers use.
            compression_level: gzip level for imported layers.
        Returns:
            The store.
        """
        root = Path(root)
        blobs = await trio.to_thread.run_sync(BlobStore.open, root)
        store = cls(root, blobs, snapshotter, compression_level)
        await trio.to_thread.run_sync(store._load)
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

    async def add_image(self, manifest: bytes, names: Sequence[str], layer_sizes: Sequence[int]) -> ImageRecord:
        """Register an image whose config and layer blobs are stored and layers unpacked.

        Args:
            manifest: the OCI image manifest's bytes, stored as they are.
            names: references to point at it (tags and digest references); a name held
                by another image moves to this one.
            layer_sizes: uncompressed size of each layer, bottom first.
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
        async with self._lock:
            images = dict(self._images)
            images[config_digest] = {"manifest": manifest_digest, "layer_sizes": list(layer_sizes)}
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
            await self._commit(images, remaining)
            items.append({"Deleted": image_id})
            removed_layers = await self._collect(image_id, manifest_digest)
            items.extend({"Deleted": chain} for chain in removed_layers)
            return items

    async def _collect(self, image_id: str, manifest_digest: str) -> list[str]:
        """Delete a removed image's blobs no other image needs, then unused layers."""
        del self._configs[image_id]
        manifest = self._manifests.pop(manifest_digest)
        needed = self._needed_blobs()
        doomed = {manifest_digest, image_id, *(layer["digest"] for layer in manifest["layers"])} - needed
        for digest in doomed:
            await trio.to_thread.run_sync(self.blobs.delete, digest)
        return await self.snapshotter.gc(self.chain_ids_in_use())

    def _needed_blobs(self) -> set[str]:
        """Blobs the index references, and those held for imports in flight."""
        needed = set(self._pending)
        for image_id, entry in self._images.items():
            needed.update((image_id, entry["manifest"]))
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
            return doomed + await self.snapshotter.gc(self.chain_ids_in_use())

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
